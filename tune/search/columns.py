"""The results tables' column types, as the writer stores them in Parquet (tune/search/results.py): a reported
integer stays one, an integer hyperparameter stays one beside the stages that leave it unset, and a column whose
values mix types across stages is stored as strings."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from reports.schema import CONFIG_PREFIX, is_missing


def plain_number(value: Any) -> int | float:
    """A reported number as Python's: an integer stays one (epochs.parquet's pid, torch_threads: int64, not float)."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def integer_columns(trials: pd.DataFrame) -> pd.DataFrame:
    """A hyperparameter that is an integer wherever it is set (a width, a batch size) as an integer column that can
    hold no value (pandas' Int64), so that it stays one beside the rows of stages that leave it unset; one set
    nowhere in these rows (another stage's, read back by a resume) left out, for the other rows to type."""
    for column in [c for c in trials.columns if c.startswith(CONFIG_PREFIX)]:
        kinds = {_kind(v) for v in trials[column] if not is_missing(v)}
        if not kinds:
            trials = trials.drop(columns=column)
        elif kinds == {"int"}:
            trials[column] = trials[column].astype("Int64")
    return trials


def consistent_columns(trials: pd.DataFrame) -> pd.DataFrame:
    """Columns whose values mix types across stages (a config value that is a bool in one stage and
    absent in another) are stored as strings, so that Parquet accepts them."""
    for column in trials.columns:
        kinds = {_kind(v) for v in trials[column] if not is_missing(v)}
        if len(kinds) > 1 and not kinds <= {"int", "float"}:
            trials[column] = trials[column].map(lambda v: None if is_missing(v) else str(v))
    return trials


def _kind(value: Any) -> str:
    """A cell's kind whether pandas gives it as a Python or a numpy scalar (an Int64 column gives numpy.int64)."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    return "float" if isinstance(value, numbers.Real) else type(value).__name__
