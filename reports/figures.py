"""Pure functions from result tables to plotly figures. None where a figure has nothing to show."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

STATUS_COLOURS = {"completed": "#1f77b4", "stopped": "#ff7f0e", "failed": "#d62728", "running": "#7f7f7f"}


def stage_trials(trials: pd.DataFrame, stage: str) -> pd.DataFrame:
    return trials[trials["stage"] == stage]


def metric_of(trials: pd.DataFrame, stage: str) -> tuple[str, str]:
    rows = stage_trials(trials, stage)
    return str(rows["metric"].iloc[0]), str(rows["mode"].iloc[0])


def param_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns that vary or are set in these trials."""
    return [c for c in trials.columns if c.startswith("config/") and trials[c].notna().any()]


def learning_curves(trials: pd.DataFrame, epochs: pd.DataFrame, stage: str) -> go.Figure | None:
    """The stage metric per trial over epochs; stopped trials dashed, ASHA's rungs as vertical lines."""
    if not len(epochs):
        return None
    metric, _ = metric_of(trials, stage)
    rows = epochs[(epochs["stage"] == stage) & epochs[metric].notna()] if metric in epochs else epochs.iloc[:0]
    if not len(rows):
        return None
    status = stage_trials(trials, stage).set_index("trial_id")["status"]
    fig = go.Figure()
    for trial_id, curve in rows.groupby("trial_id", sort=False):
        state = status.get(trial_id, "running")
        fig.add_trace(
            go.Scatter(
                x=curve["epoch"],
                y=curve[metric],
                mode="lines+markers",
                name=f"{trial_id} ({state})",
                line={"color": STATUS_COLOURS.get(state, "#7f7f7f"), "dash": "dash" if state == "stopped" else "solid"},
                legendgroup=state,
            )
        )
    for rung in asha_rungs(stage_trials(trials, stage)):
        fig.add_vline(
            x=rung, line={"color": "#999", "dash": "dot"}, annotation_text=f"rung {rung}", annotation_position="top"
        )
    fig.update_layout(
        title=f"Learning curves, stage {stage}: {metric} per epoch (dashed: stopped by ASHA)",
        xaxis_title="epoch",
        yaxis_title=metric,
    )
    return fig


def asha_rungs(trials: pd.DataFrame) -> list[int]:
    """The epochs at which ASHA stopped trials: its rungs, as far as the results show them."""
    stopped = trials[trials["status"] == "stopped"]["epochs"].dropna()
    return sorted({int(e) for e in stopped})


def optimisation_history(trials: pd.DataFrame, stage: str) -> go.Figure | None:
    """Each trial's best value and the best so far, against trial number and against compute time."""
    rows = stage_trials(trials, stage)
    rows = rows[rows["best_metric"].notna()].sort_values("started_at")
    if not len(rows):
        return None
    metric, mode = metric_of(trials, stage)
    best = rows["best_metric"].cummax() if mode == "max" else rows["best_metric"].cummin()
    number = np.arange(1, len(rows) + 1)
    hours = rows["wall_time_s"].fillna(0).cumsum() / 3600
    fig = make_subplots(rows=1, cols=2, subplot_titles=("against trial number", "against compute time (trial-hours)"))
    colours = [STATUS_COLOURS.get(s, "#7f7f7f") for s in rows["status"]]
    for col, x in ((1, number), (2, hours)):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows["best_metric"],
                mode="markers",
                marker={"color": colours},
                name="trial",
                text=rows["trial_id"],
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=best,
                mode="lines",
                line={"shape": "hv", "color": "#2ca02c"},
                name="best so far",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
    fig.update_layout(title=f"Optimisation history, stage {stage} ({metric}, {mode})")
    fig.update_yaxes(title_text=metric)
    return fig


def parallel_coordinates(trials: pd.DataFrame, stage: str, top_k: int = 20) -> go.Figure | None:
    """Hyperparameters of the top_k trials by the stage metric, coloured by it."""
    rows = stage_trials(trials, stage)
    rows = rows[rows["best_metric"].notna()]
    if len(rows) < 2:
        return None
    metric, mode = metric_of(trials, stage)
    rows = rows.sort_values("best_metric", ascending=mode == "min").head(top_k)
    dims = []
    for column in param_columns(rows):
        values = rows[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            dims.append({"label": column[7:], "values": values.astype(float)})
        else:
            labels = values.map(lambda v: "-" if pd.isna(v) else str(v))  # a conditional one may be missing
            codes = {v: k for k, v in enumerate(sorted(set(labels)))}
            dims.append(
                {
                    "label": column[7:],
                    "values": labels.map(codes),
                    "tickvals": list(codes.values()),
                    "ticktext": list(codes),
                }
            )
    dims.append({"label": metric, "values": rows["best_metric"]})
    fig = go.Figure(
        go.Parcoords(line={"color": rows["best_metric"], "colorscale": "Viridis", "showscale": True}, dimensions=dims)
    )
    fig.update_layout(title=f"Hyperparameters of the top {len(rows)} trials, stage {stage}, coloured by {metric}")
    return fig


def importances(trials: pd.DataFrame, stage: str) -> go.Figure | None:
    """Optuna's fANOVA importance of each hyperparameter for the stage metric (finished trials)."""
    rows = stage_trials(trials, stage)
    rows = rows[rows["status"].isin(["completed", "stopped"]) & rows["best_metric"].notna()]
    columns = [c for c in param_columns(rows) if rows[c].nunique(dropna=True) > 1]
    if len(rows) < 3 or not columns or rows["best_metric"].nunique() < 2:  # fANOVA needs a spread of scores
        return None
    metric, mode = metric_of(trials, stage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    distributions = {c[7:]: _distribution(rows[c]) for c in columns}
    for record in rows.to_dict("records"):
        params = {c[7:]: _plain(record[c]) for c in columns}
        if any(v is None for v in params.values()):
            continue
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=float(record["best_metric"]))
        )
    if len(study.trials) < 3:
        return None
    scores = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    names = list(scores)[::-1]
    fig = go.Figure(go.Bar(x=[scores[n] for n in names], y=names, orientation="h"))
    fig.update_layout(
        title=f"Hyperparameter importance for {metric}, stage {stage} (fANOVA over {len(study.trials)} trials)",
        xaxis_title="importance",
    )
    return fig


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _distribution(values: pd.Series) -> optuna.distributions.BaseDistribution:
    present = [_plain(v) for v in values if _plain(v) is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            return optuna.distributions.IntDistribution(min(present), max(present))
        return optuna.distributions.FloatDistribution(float(min(present)), float(max(present)))
    return optuna.distributions.CategoricalDistribution(sorted(set(present), key=str))


def parent_vs_child(trials: pd.DataFrame, parent_stage: str, child_stage: str) -> go.Figure | None:
    """For a staged space: each parent trial's metric against the metrics of the trials built on it."""
    children = stage_trials(trials, child_stage)
    parents = stage_trials(trials, parent_stage).set_index("trial_id")
    if "parent_trial" not in children or not len(children) or not len(parents):
        return None
    rows = children[children["parent_trial"].isin(parents.index) & children["best_metric"].notna()]
    if not len(rows):
        return None
    parent_metric, _ = metric_of(trials, parent_stage)
    child_metric, _ = metric_of(trials, child_stage)
    fig = go.Figure(
        go.Scatter(
            x=parents.loc[rows["parent_trial"], "best_metric"],
            y=rows["best_metric"],
            mode="markers",
            text=[f"{c} from {p}" for c, p in zip(rows["trial_id"], rows["parent_trial"], strict=True)],
            marker={"color": [STATUS_COLOURS.get(s, "#7f7f7f") for s in rows["status"]], "size": 10},
        )
    )
    fig.update_layout(
        title=f"{parent_stage} trial's {parent_metric} against the {child_metric} of the {child_stage} trials built on it",
        xaxis_title=f"{parent_stage}: {parent_metric}",
        yaxis_title=f"{child_stage}: {child_metric}",
    )
    return fig


def per_class_iou(table: pd.DataFrame | None) -> go.Figure | None:
    """The best model's IoU per class on val; classes absent from both sides left out."""
    if table is None or not len(table):
        return None
    rows = table[table["iou"].notna()]
    fig = go.Figure(
        go.Bar(
            x=rows["class_name"],
            y=rows["iou"],
            customdata=rows["target_pixels"],
            hovertemplate="%{x}: IoU %{y:.3f}<br>%{customdata} target pixels<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Best model: IoU per class on val ({len(rows)} classes present, mean {rows['iou'].mean():.3f})",
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
        stage = list(dict.fromkeys(trials["stage"]))[-1]
        rows = stage_trials(trials, stage)
        rows = rows[rows["best_metric"].notna()].sort_values("started_at")
        if not len(rows):
            continue
        _, mode = metric_of(trials, stage)
        best = rows["best_metric"].cummax() if mode == "max" else rows["best_metric"].cummin()
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(rows) + 1), y=best, mode="lines", line={"shape": "hv"}, name=f"{name} ({stage})"
            )
        )
    if not fig.data:
        return None
    fig.update_layout(
        title="Best so far, final stage of each study", xaxis_title="trial number", yaxis_title="best metric"
    )
    return fig
