"""The side-by-side table of several studies in one report: each study's row (what it searched, on what data, its
best, what it spent); reports/page.py draws it."""

from __future__ import annotations

import math
from typing import Any

from reports.axes import metric_of
from reports.load import Experiment
from reports.references import against_floor
from reports.schema import GPU_HOURS, WALL_TIME_S, best_value

SIDE_BY_SIDE = (
    "study",
    "space",
    "data",
    "trials",
    "final stage's metric",
    "its best",
    "the best model on val",
    "trial-hours",
    "GPU-hours",
)


def side_row(exp: Experiment) -> tuple[Any, ...]:
    """A study's row of the side-by-side table (SIDE_BY_SIDE): what it searched, its best, what it spent."""
    trials, final = exp.trials, exp.stages[-1] if exp.stages else None
    metric = "{} ({})".format(*metric_of(trials, final)) if final else ""
    spent = [float(trials[c].fillna(0).sum()) if c in trials else math.nan for c in (WALL_TIME_S, GPU_HOURS)]
    best = best_value(trials, final) if final else math.nan
    live = " (running now: a snapshot)" * any(n.startswith("the study is running now") for n in exp.notes)
    floor = against_floor(exp.references)  # the evaluation at the study's end: its best against all background
    return (
        exp.name + live,
        exp.space or "?",
        exp.data or "?",
        len(trials),
        metric,
        best,
        floor,
        spent[0] / 3600,
        spent[1],
    )
