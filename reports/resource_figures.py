"""The resource-use figures, from the epochs table's timing columns (reports/resources.py): the GPU's busy
share over a stage's time, and each stage's epoch time split by phase. None where a study lacks the columns
(CPU studies have no GPU figure; studies made before segtune recorded timings have neither).

Apart from reports/figures.py only to keep each module short; the same conventions.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from reports import resources
from reports.schema import (
    CHECKPOINT_S,
    DATA_WAIT_S,
    EPOCH_END,
    EPOCH_SECONDS,
    EVAL_S,
    GPU_BUSY,
    SETUP_S,
    STAGE,
    TRAIN_S,
    TRIAL_ID,
)

PHASE_LABELS = {
    SETUP_S: "trial setup (process, data, model)",
    DATA_WAIT_S: "waiting for data",
    TRAIN_S: "training steps",
    EVAL_S: "evaluation",
    CHECKPOINT_S: "checkpoint",
    resources.OTHER: "other (Ray's reporting, ...)",
}
PHASE_COLOURS = {
    SETUP_S: "#ff7f0e",
    DATA_WAIT_S: "#d62728",
    TRAIN_S: "#2ca02c",
    EVAL_S: "#1f77b4",
    CHECKPOINT_S: "#9467bd",
    resources.OTHER: "#c7c7c7",
}
IDLE_FILL = "rgba(127, 127, 127, 0.18)"
LEGEND_TRIALS = 20  # more trials than this: no legend (each trace's hover still names its trial)


def gpu_busy_over_time(epochs: pd.DataFrame, stage: str) -> go.Figure | None:
    """Each epoch of a stage as a step at its GPU_BUSY, one trace per trial, against seconds since the
    study's first trial started; the gaps when no trial ran (inside the stage, and the one before it) shaded.
    None on a CPU study or one without timings."""
    rows = resources.timed(epochs)
    rows = rows[rows[STAGE] == stage] if len(rows) else rows
    if GPU_BUSY not in rows or not rows[GPU_BUSY].notna().any():
        return None
    origin = float(resources.trial_intervals(epochs)[resources.START].min())
    fig = go.Figure()
    measured = rows[rows[GPU_BUSY].notna()]
    legend = measured[TRIAL_ID].nunique() <= LEGEND_TRIALS
    for trial_id, trial in measured.groupby(TRIAL_ID, sort=False):
        trial = trial.sort_values(EPOCH_END)
        xs: list[float | None] = []
        ys: list[float | None] = []
        for end, seconds, busy in zip(trial[EPOCH_END], trial[EPOCH_SECONDS], trial[GPU_BUSY], strict=True):
            xs += [end - seconds - origin, end - origin, None]
            ys += [busy, busy, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=str(trial_id), showlegend=legend))
    gaps = resources.idle_gaps(epochs)
    for gap in gaps[gaps[STAGE] == stage].itertuples(index=False) if len(gaps) else ():
        start, end = getattr(gap, resources.START) - origin, getattr(gap, resources.END) - origin
        fig.add_vrect(x0=start, x1=end, fillcolor=IDLE_FILL, line_width=0, layer="below")
    share = resources.gpu_busy_share(epochs, stage)
    fig.update_layout(
        title=f"GPU busy per epoch, stage {stage} ({share:.0%} of the stage's time; grey: no trial running)",
        xaxis_title="seconds since the study's first trial started",
        yaxis_title="GPU busy (share of the epoch)",
        yaxis_range=[0, 1.05],
    )
    return fig


def phase_time(epochs: pd.DataFrame) -> go.Figure | None:
    """Each stage's epoch seconds split by phase, stacked. None without phase columns."""
    table = resources.phase_seconds(epochs)
    if not len(table):
        return None
    totals = table[resources.EPOCHS_S]
    fig = go.Figure()
    for column, label in PHASE_LABELS.items():
        seconds = table[column]
        if not seconds.notna().any():
            continue
        fig.add_trace(
            go.Bar(
                x=[str(s) for s in table.index],
                y=seconds,
                name=label,
                marker_color=PHASE_COLOURS[column],
                customdata=(seconds / totals).fillna(0),
                hovertemplate=f"{label}: %{{y:.4g}} s (%{{customdata:.0%}} of the epochs' time)<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        title="Where the trials' time went, per stage (all trials' setup and epochs summed, from Ray's start of each)",
        xaxis_title="stage",
        yaxis_title="seconds",
    )
    return fig
