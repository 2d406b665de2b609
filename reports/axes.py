"""What the report's figures share: a trial status's colour, a stage's trials and metric, and their axes (counts
on whole numbers; metric values that barely differ on an axis that does not magnify the difference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from reports.schema import METRIC, MODE, STAGE, Status

STATUS_COLOURS: dict[str, str] = {  # (a Status is its str)
    Status.COMPLETED: "#1f77b4",
    Status.STOPPED: "#ff7f0e",
    Status.CUT: "#9467bd",  # stopped by the time budget
    Status.FAILED: "#d62728",
    Status.RUNNING: "#7f7f7f",
}


def stage_trials(trials: pd.DataFrame, stage: str) -> pd.DataFrame:
    return trials[trials[STAGE] == stage]


def metric_of(trials: pd.DataFrame, stage: str) -> tuple[str, str]:
    rows = stage_trials(trials, stage)
    return str(rows[METRIC].iloc[0]), str(rows[MODE].iloc[0])


def count_ticks(largest: float) -> dict[str, int]:
    """An axis of counts (epochs, trial numbers) from 1 to `largest`: ticks on whole numbers, 1, 2, 5, 10, 20, ...
    apart so that at most 10 are drawn (Plotly's own put ticks at 1.5, 2.5 on a short axis)."""
    step = 1
    while largest / step > 10:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2  # 1, 2, 5, 10, 20, 50, ...
    return {"tick0": 0, "dtick": step}


STEADY = 0.02  # values closer than this share of their size are drawn on an axis that wide, centred on them
STEADY_FLOOR = 1e-4  # ... and values closer than this (about 0): no metric here tells trials apart by less


def steady_range(values: pd.Series | np.ndarray | Sequence[float]) -> dict[str, list[float]]:
    """An axis's range for metric values that differ by less than STEADY of their size (or STEADY_FLOOR, about 0):
    that wide, centred on them, from 0 where none is below 0 (an IoU axis shows no negative values); {} where they
    differ more, for Plotly's own, which spreads trials that differ by 1e-6 over the whole axis as if they differed."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {}
    low, high = float(finite.min()), float(finite.max())
    wide = max(STEADY * max(abs(low), abs(high)), STEADY_FLOOR)
    if high - low >= wide:
        return {}
    wide = max(wide, 1.1 * (high - low))  # the outer values inside the axis, not on its edges
    start = (low + high - wide) / 2
    start = 0.0 if start < 0 <= low else start
    return {"range": [start, start + wide]}
