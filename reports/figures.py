"""Pure functions from result tables (and a stage's Optuna study) to plotly figures. None where a figure
has nothing to show.

Most figures are drawn by hand rather than by `optuna.visualization`: they read the trial and epoch
tables, which know what Optuna does not (ASHA's rungs, a trial's status, its best epoch, its compute
time). Each figure's docstring says why, where Optuna has a figure of the same kind.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.axes import STATUS_COLOURS, count_ticks, metric_of, stage_trials, steady_range
from reports.schema import (
    BEST_METRIC,
    CLASS_NAME,
    COLOUR,
    EPOCH,
    EPOCHS,
    IOU,
    PARENT_TRIAL,
    PREDICTED_PIXELS,
    STAGE,
    STARTED_AT,
    STATUS,
    TARGET_PIXELS,
    TRIAL_ID,
    WALL_TIME_S,
    Status,
    param_columns,
    param_name,
    ranked,
    short_value,
    stage_order,
    trial_numbers,
)

NAMED_CURVES = 10  # the learning curves named in the legend: the best trials'; the others are drawn faint

TIED = "#21918c"  # Viridis's middle: the parallel coordinates' lines where the trials shown all score the same


def learning_curves(trials: pd.DataFrame, epochs: pd.DataFrame, stage: str) -> go.Figure | None:
    """The stage metric per trial over epochs; stopped trials dashed, ASHA's rungs as vertical lines. A stage of more
    than NAMED_CURVES trials names its best NAMED_CURVES in the legend and draws the others thin and faint beneath,
    one legend entry for each status's (a legend of 239 trials, each completed one the same blue, named none);
    every curve names its trial as the pointer is over it.

    Hand-made rather than optuna.visualization.plot_intermediate_values, which knows neither the
    trials' statuses nor ASHA's rungs, nor the trials Optuna was never told about."""
    if not len(epochs):
        return None
    metric, _ = metric_of(trials, stage)
    rows = epochs[(epochs[STAGE] == stage) & epochs[metric].notna()] if metric in epochs else epochs.iloc[:0]
    if not len(rows):
        return None
    status = stage_trials(trials, stage).set_index(TRIAL_ID)[STATUS]
    curves = {str(trial_id): curve for trial_id, curve in rows.groupby(TRIAL_ID, sort=False)}
    rank = {trial_id: k for k, trial_id in enumerate(ranked(trials, stage)[TRIAL_ID])}  # best first
    named = (
        set(curves) if len(curves) <= NAMED_CURVES else {t for t in curves if rank.get(t, NAMED_CURVES) < NAMED_CURVES}
    )
    others = Counter(status.get(trial_id, Status.RUNNING) for trial_id in curves if trial_id not in named)
    shown = set()  # the statuses whose other trials have their legend entry
    fig = go.Figure()
    order = sorted(curves, key=lambda t: (t in named, -rank.get(t, len(rank))))  # the others beneath; the best on top
    for trial_id, curve in ((t, curves[t]) for t in order):
        state = status.get(trial_id, Status.RUNNING)
        label = f"{trial_id} ({state})"
        other = trial_id not in named
        fig.add_trace(
            go.Scatter(
                x=curve[EPOCH],
                y=curve[metric],
                mode="lines+markers",
                name=f"other {state} trials ({others[state]})" if other else label,
                hovertemplate=f"{label}<br>epoch %{{x}}<br>{metric} %{{y:.4g}}<extra></extra>",
                line={
                    "color": STATUS_COLOURS.get(state, "#7f7f7f"),
                    "dash": "dash" if state in (Status.STOPPED, Status.CUT) else "solid",
                    "width": 1 if other else 2,
                },
                marker={"size": 3 if other else 6},
                opacity=0.5 if other else 1.0,
                legendgroup=f"other {state}" if other else state,
                legendrank=2000 if other else 1000 + rank.get(trial_id, len(rank)),  # the best first, the others last
                showlegend=not other or state not in shown,
            )
        )
        shown |= {state} if other else set()
    for rung in asha_rungs(stage_trials(trials, stage)):
        fig.add_vline(
            x=rung, line={"color": "#999", "dash": "dot"}, annotation_text=f"rung {rung}", annotation_position="top"
        )
    fig.update_layout(
        title=f"Learning curves, stage {stage}: {metric} per epoch (dashed: stopped by ASHA or the time budget)",
        xaxis_title="epoch",
        yaxis={"title": metric, **steady_range(rows[metric])},
        xaxis=count_ticks(rows[EPOCH].max()),
    )
    return fig


def asha_rungs(trials: pd.DataFrame) -> list[int]:
    """The epochs at which ASHA stopped trials: its rungs, as far as the results show them."""
    stopped = trials[trials[STATUS] == Status.STOPPED][EPOCHS].dropna()
    return sorted({int(e) for e in stopped})


def best_so_far(values: pd.Series, mode: str) -> pd.Series:
    return values.cummax() if mode == "max" else values.cummin()


def optimisation_history(trials: pd.DataFrame, stage: str) -> go.Figure | None:
    """Each trial's best value and the best so far, against trial number and against compute time.

    Hand-made rather than optuna.visualization.plot_optimization_history, which has no compute-time
    axis, no status colours, and shows an ASHA-stopped trial at its last rung's value, not its best."""
    rows = stage_trials(trials, stage)
    number = trial_numbers(rows)
    rows = rows[rows[BEST_METRIC].notna()].sort_values(STARTED_AT, kind="stable")
    if not len(rows):
        return None
    metric, mode = metric_of(trials, stage)
    hours = rows[WALL_TIME_S].fillna(0).cumsum() / 3600  # (the trials' time, in the order they started)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("against trial number (# in the leaderboard)", "against compute time (trial-hours)"),
    )
    for col, x in ((1, number[rows.index]), (2, hours)):
        for state, of in rows.groupby(STATUS, sort=False):  # a legend entry per status: what its colour says
            fig.add_trace(
                go.Scatter(
                    x=x[of.index],
                    y=of[BEST_METRIC],
                    mode="markers",
                    marker={"color": STATUS_COLOURS.get(str(state), "#7f7f7f")},
                    name=f"{state} trial",
                    legendgroup=str(state),
                    text=of[TRIAL_ID],
                    hovertemplate="%{text}: %{y:.4g}<extra></extra>",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        order = x.sort_values(kind="stable").index  # the best so far along the axis
        fig.add_trace(
            go.Scatter(
                x=x[order],
                y=best_so_far(rows.loc[order, BEST_METRIC], mode),
                mode="lines",
                line={"shape": "hv", "color": "#2ca02c"},
                name="best so far",
                legendgroup="best",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
    fig.update_layout(title=f"Optimisation history, stage {stage} ({metric}, {mode})")
    fig.update_xaxes(count_ticks(number.max()), row=1, col=1)
    fig.update_yaxes(title_text=metric, **steady_range(rows[BEST_METRIC]))
    return fig


LEVEL_LABELS_UP_TO = 10  # axes whose labels fit side by side in the report's width


def parallel_coordinates(trials: pd.DataFrame, stage: str, top_k: int = 20) -> go.Figure | None:
    """Hyperparameters of the top_k trials by the stage metric, coloured by it.

    Hand-made rather than optuna.visualization.plot_parallel_coordinate, which draws every COMPLETE
    trial (no top k, no ASHA-stopped trials at their best value) and drops a trial that lacks a
    conditional choice, where we show it as "-"."""
    rows = ranked(trials, stage).head(top_k)
    if len(rows) < 2:
        return None
    metric, _ = metric_of(trials, stage)
    dims = []
    same = {}  # a parameter with one value in every trial shown says nothing as an axis: named below the plot
    for column in param_columns(rows):
        values = rows[column]
        if values.nunique(dropna=False) == 1:
            same[param_name(column)] = values.iloc[0]
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            levels = sorted(set(values.dropna().astype(float)))  # batch_size, depth: ticks on its values, not 2.5
            whole = len(levels) <= LEVEL_LABELS_UP_TO and all(level.is_integer() for level in levels)
            dims.append(
                {"label": param_name(column), "values": values.astype(float), **({"tickvals": levels} if whole else {})}
            )
        else:
            labels = values.map(lambda v: "-" if pd.isna(v) else str(v))  # a conditional one may be missing
            codes = {v: k for k, v in enumerate(sorted(set(labels)))}
            dims.append(
                {
                    "label": param_name(column),
                    "values": labels.map(codes),
                    "tickvals": list(codes.values()),
                    "ticktext": list(codes),
                }
            )
    steady = steady_range(rows[BEST_METRIC]).get("range")  # values 1e-7 apart: not at the axis's two ends
    dims.append({"label": metric, "values": rows[BEST_METRIC], **({"range": steady} if steady else {})})
    varied = rows[BEST_METRIC].nunique() > 1  # one value: one colour (plotly's scale went from -0.2 to 0.6 about it)
    scale = {"cmin": steady[0], "cmax": steady[1]} if steady else {}  # ... nor at the colour scale's
    fig = go.Figure(
        go.Parcoords(
            line={"color": rows[BEST_METRIC], "colorscale": "Viridis", "showscale": True, **scale}
            if varied
            else {"color": TIED},
            dimensions=dims,
            labelangle=-30 if (angled := len(dims) > LEVEL_LABELS_UP_TO) else 0,  # many axes: labels would overlap
        )
    )
    fig.update_layout(
        title=f"Hyperparameters of the top {len(rows)} trials, stage {stage}, "
        + (f"coloured by {metric}" if varied else f"all scoring {metric} {rows[BEST_METRIC].iloc[0]:.4g}"),
        height=460 + (60 if angled else 0) + (30 if same else 0),
        margin={"t": 170 if angled else 110, "b": 80 if same else 50},
    )
    if same:
        text = "the same in all of them: " + ", ".join(f"{k} {short_value(v)}" for k, v in same.items())
        fig.add_annotation(
            text=text, xref="paper", yref="paper", x=0, y=-0.1, yanchor="top", xanchor="left", showarrow=False
        )
    return fig


def parent_vs_child(trials: pd.DataFrame, parent_stage: str, child_stage: str) -> go.Figure | None:
    """For a staged space: each parent trial's metric against the metrics of the trials built on it."""
    rows, parents = _built_on(trials, parent_stage, child_stage)
    if rows[PARENT_TRIAL].nunique() < 2:  # all built on one: a column of points (one_parent says so)
        return None
    parent_metric, _ = metric_of(trials, parent_stage)
    child_metric, _ = metric_of(trials, child_stage)
    fig = go.Figure(
        go.Scatter(
            x=parents.loc[rows[PARENT_TRIAL], BEST_METRIC],
            y=rows[BEST_METRIC],
            mode="markers",
            text=[f"{c} from {p}" for c, p in zip(rows[TRIAL_ID], rows[PARENT_TRIAL], strict=True)],
            marker={"color": [STATUS_COLOURS.get(s, "#7f7f7f") for s in rows[STATUS]], "size": 10},
        )
    )
    fig.update_layout(
        title=f"{parent_stage} trial's {parent_metric} against the {child_metric} of the {child_stage} trials built on it",
        xaxis={
            "title": f"{parent_stage}: {parent_metric}",
            **steady_range(parents.loc[rows[PARENT_TRIAL], BEST_METRIC]),
        },
        yaxis={"title": f"{child_stage}: {child_metric}", **steady_range(rows[BEST_METRIC])},
    )
    return fig


def _built_on(trials: pd.DataFrame, parent_stage: str, child_stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials of `child_stage` with a value built on a trial of `parent_stage`, and that stage's trials by id."""
    children = stage_trials(trials, child_stage)
    parents = stage_trials(trials, parent_stage).set_index(TRIAL_ID)
    children = children if PARENT_TRIAL in children else children.assign(**{PARENT_TRIAL: None})  # (a one-stage space)
    return children[children[PARENT_TRIAL].isin(parents.index) & children[BEST_METRIC].notna()], parents


def one_parent(trials: pd.DataFrame, parent_stage: str, child_stage: str) -> str:
    """Said instead of parent_vs_child where the trials of `child_stage` with a value were all built on one trial of
    `parent_stage` (as mask_space's and dynamics' second stage is, trained on the first stage's best); "" otherwise."""
    rows, _ = _built_on(trials, parent_stage, child_stage)
    parents = rows[PARENT_TRIAL].unique()
    if len(parents) != 1:
        return ""
    return (
        f"The {len(rows)} {child_stage} trial{'s were' if len(rows) != 1 else ' was'} all built on one {parent_stage} "
        f"trial, {parents[0]}: no figure of {parent_stage} against {child_stage} (it compares trials built on "
        "different ones)."
    )


def per_class_iou(table: pd.DataFrame | None) -> go.Figure | None:
    """The best model's IoU per class on val, each bar in its class's colour in the gallery's masks (where the table
    has them) and its value written above it (a 0 draws no bar); classes absent from both sides left out, those it
    found nowhere and those it predicted where the true masks have none (IoU 0 both) counted in the title."""
    if table is None or not len(table):
        return None
    rows = table[table[IOU].notna()]
    true = rows[TARGET_PIXELS] > 0
    colours = rows[COLOUR] if COLOUR in rows else STATUS_COLOURS[Status.COMPLETED]
    fig = go.Figure(
        go.Bar(
            x=rows[CLASS_NAME],
            y=rows[IOU],
            text=[f"{iou:.2g}" for iou in rows[IOU]],  # 0.004 is not 0
            textposition="outside",
            cliponaxis=False,  # 0.97's number above its bar, not cut by the axis's 1
            customdata=np.stack([rows[TARGET_PIXELS], rows[PREDICTED_PIXELS]], axis=-1),
            marker={"color": colours, "line": {"color": "#999", "width": 1}},  # (background's is black)
            hovertemplate="%{x}: IoU %{y:.3f}<br>%{customdata[0]} true pixels, %{customdata[1]} predicted<extra></extra>",
        )
    )
    missed = int((true & (rows[IOU] == 0)).sum())
    missed_said = f", {missed} of them at 0" if missed else ""
    only = f"; {(~true).sum()} more only predicted (IoU 0)" if (~true).any() else ""
    fig.update_layout(
        title=f"Best model: IoU per class on val ({true.sum()} classes in the true masks{missed_said}{only}; "
        f"mean {rows[IOU].mean():.3f})",
        yaxis_title="IoU",
        yaxis_range=[0, 1],
    )
    return fig


def comparison(experiments: list[tuple[str, pd.DataFrame]]) -> go.Figure | None:
    """Best so far of the final stage of several studies, against trial number."""
    fig = go.Figure()
    for name, trials in experiments:
        if not len(trials):
            continue
        stage = stage_order(trials)[-1]
        rows = stage_trials(trials, stage)
        number = trial_numbers(rows)
        rows = rows[rows[BEST_METRIC].notna()]
        rows = rows.loc[number[rows.index].sort_values(kind="stable").index]
        if not len(rows):
            continue
        _, mode = metric_of(trials, stage)
        fig.add_trace(
            go.Scatter(
                x=number[rows.index],
                y=best_so_far(rows[BEST_METRIC], mode),
                mode="lines",
                line={"shape": "hv"},
                name=f"{name} ({stage})",
            )
        )
    if not fig.data:
        return None
    fig.update_layout(
        title="Best so far, final stage of each study",
        xaxis_title="trial number",
        yaxis={"title": "best metric", **steady_range(np.concatenate([trace.y for trace in fig.data]))},
        xaxis=count_ticks(max(max(trace.x) for trace in fig.data)),
    )
    return fig
