"""One self-contained HTML page (plotly.js embedded, opens offline) from loaded experiments."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from reports import figures, importance_figure, resource_figures, resources
from reports.leaderboard import fmt, leaderboard_html, table_html
from reports.load import Experiment
from reports.page_assets import GL_SCRIPT, GL_WAIT, SORT_SCRIPT, STYLE
from reports.records import submit_command
from reports.references import no_segmenter_text, references_text
from reports.schema import (
    BEST_EPOCH,
    BEST_METRIC,
    CHECKPOINT,
    CLASS_ID,
    CLASS_IDS,
    CLASS_NAME,
    COLOUR,
    EPOCH,
    LABEL,
    METRIC,
    ORDER,
    REFERENCES,
    STANDING,
    SUBMISSION_FILE,
    TRIAL_ID,
    VAL_ORACLE_IOU,
    VIDEO_ID,
    VIDEOS,
    duration,
    ranked,
    status_text,
)
from reports.side_by_side import SIDE_BY_SIDE, side_row
from reports.spent import epochs_spent_text


def figure_html(fig: go.Figure | None, div_id: str) -> str:
    if fig is None:
        return ""
    parallel = any(isinstance(trace, go.Parcoords) for trace in fig.data)
    # parallel coordinates put their axis labels above the plot: leave room for them under the title (a figure that
    # sets its own height or margins, for angled labels or a note below, keeps them)
    own = fig.layout.margin
    fig.update_layout(
        height=fig.layout.height or (460 if parallel else 430),
        margin={"t": own.t or (110 if parallel else 60), "l": own.l or 60, "r": own.r or 30, "b": own.b or 50},
    )
    fig.update_xaxes(exponentformat="e")  # 4e-04, not Plotly's SI "400μ" trial-hours
    fig.update_yaxes(exponentformat="e")
    if parallel:  # drawn with WebGL: only while on screen (GL_SCRIPT)
        spec = pio.to_json(fig, validate=False).replace("</", "<\\/")  # (inside a script element)
        return (
            f'<div id="{div_id}" class="plotly-graph-div gl-figure" style="height:{fig.layout.height}px">{GL_WAIT}</div>'
            f'<script type="application/json" id="{div_id}-spec">{spec}</script>'
        )
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def gallery_html(gallery: pd.DataFrame | None, per_class: pd.DataFrame | None) -> str:
    """The gallery's pictures, a row per video, under a legend of the colours of the classes its masks show (from
    the per-class table's colours; none for a study written before they were recorded)."""
    if gallery is None or not len(gallery):
        return ""
    cells = [
        f'<figure><img alt="{html.escape(r[LABEL])} of video {r[VIDEO_ID]}" src="{r["data_uri"]}"><figcaption>video {r[VIDEO_ID]}: {html.escape(r[LABEL])}</figcaption></figure>'
        for r in gallery.sort_values([VIDEO_ID, ORDER]).to_dict("records")
    ]
    return f'<h3>Gallery: val videos, the best model</h3>{_legend(gallery, per_class)}<div class="gallery">{"".join(cells)}</div>'


def _legend(gallery: pd.DataFrame, per_class: pd.DataFrame | None) -> str:
    if CLASS_IDS not in gallery or per_class is None or COLOUR not in per_class:
        return ""
    shown = sorted({int(c) for ids in gallery[CLASS_IDS] for c in ids})
    classes = per_class.set_index(CLASS_ID).reindex(shown).dropna(subset=[COLOUR])
    swatches = "".join(
        f' <span class="class"><span class="swatch" style="background:{html.escape(str(row[COLOUR]))}"></span>'
        f"{html.escape(str(row[CLASS_NAME]))}</span>"
        for _, row in classes.iterrows()
    )
    return f'<p class="colour-legend">The masks\' colours:{swatches}</p>' if swatches else ""


def references_html(trials: pd.DataFrame, epochs: pd.DataFrame, stage: str) -> str:
    """The stage's best trial beside the rules measured at its best epoch (copy_last, extrapolate,
    oracle), where its task reports them; empty otherwise. Failed trials are not told of (their models answer nothing)."""
    best = ranked(trials, stage, statuses=STANDING)
    if not len(best) or not len(epochs):
        return ""
    top = best.iloc[0]
    rows = epochs[(epochs[TRIAL_ID] == top[TRIAL_ID]) & (epochs[EPOCH] == top[BEST_EPOCH])]
    shown = {column: rows[column].iloc[0] for column in REFERENCES if column in rows and len(rows)}
    shown = {column: value for column, value in shown.items() if not pd.isna(value)}
    if not shown:
        return ""
    items = "".join(f"<li>{html.escape(REFERENCES[column])}: {fmt(value)}</li>" for column, value in shown.items())
    scores = (  # a per-frame segmenter (only it has an oracle): its metric is not the task's, whatever its name
        f" (its masks of the true frames 11 and 22: a segmenter's, not a prediction of frame 22; the {top[METRIC]} of the "
        "stage that trains on its masks is the task's)"
        if VAL_ORACLE_IOU in shown
        else ""
    )
    return (
        f'<div class="references"><p>Best trial {html.escape(str(top[TRIAL_ID]))}: {html.escape(str(top[METRIC]))} '
        f"{fmt(top[BEST_METRIC])}{html.escape(scores)}; the rules on the same masks at its best epoch:</p>"
        f"<ul>{items}</ul></div>"
    )


def experiment_html(exp: Experiment, index: int) -> str:
    parts = [
        f'<h2 id="study-{index}">{html.escape(exp.name)}</h2>',
        f"<p>space <b>{html.escape(exp.space or '?')}</b>, folder <code>{html.escape(str(exp.folder))}</code></p>",
    ]
    parts += [f'<p class="ran">{html.escape(exp.ran)}</p>'] if exp.ran else []
    parts += [f'<div class="note">{html.escape(note)}</div>' for note in exp.notes]
    trials = exp.trials
    if not len(trials):
        parts.append("<p>This experiment has no results yet: nothing to show.</p>")
        return "\n".join(parts)
    parts.append(f"<p>{html.escape(status_text(trials))}</p>")
    if exp.references is not None and len(exp.references):  # first: what the study came to, then how it got there
        # the summary's line of a space with no segmenter: epochs without an oracle (only a segmenter's stage has one)
        oracle = VAL_ORACLE_IOU in exp.epochs and exp.epochs[VAL_ORACLE_IOU].notna().any()
        said = no_segmenter_text(exp.space) if exp.space and len(exp.epochs) and not oracle else ""
        parts.append(
            "<h3>The best model beside answers that need no training</h3>"
            f'<p class="val-references">{html.escape(references_text(exp.references))}</p>'
            + (f'<p class="no-segmenter">{html.escape(said[:1].upper() + said[1:])}.</p>' if said else "")
        )
    if exp.submission is not None:
        another = f"{submit_command(exp.folder)} --trial ID"  # as the summary says it
        parts.append(
            f'<p class="submission">Submission: <code>{html.escape(str(exp.folder / SUBMISSION_FILE))}</code>, the best '
            f"checkpoint's masks of the {exp.submission[VIDEOS]} hidden videos "
            f"(<code>{html.escape(str(exp.submission[CHECKPOINT]))}</code>); another trial's: "
            f"<code>{html.escape(another)}</code>.</p>"
        )
    # the best model on val, class by class and in pictures: what its score is made of (were at the page's foot)
    parts.append(figure_html(figures.per_class_iou(exp.per_class), f"e{index}-per-class"))
    parts.append(gallery_html(exp.gallery, exp.per_class))
    parts.append("<h3>Leaderboard</h3>" + leaderboard_html(trials, f"leaderboard-{index}"))
    stages = exp.stages
    for k, stage in enumerate(stages):
        prefix = f"e{index}-s{k}"
        parts.append(f"<h3>Stage {html.escape(stage)}</h3>")
        spent = epochs_spent_text(trials, stage)
        parts.append(f'<p class="spent">Compute: {html.escape(spent)}</p>' if spent else "")
        parts.append(references_html(trials, exp.epochs, stage))
        parts.append(figure_html(figures.learning_curves(trials, exp.epochs, stage), f"{prefix}-curves"))
        parts.append(figure_html(figures.optimisation_history(trials, stage), f"{prefix}-history"))
        parts.append(figure_html(figures.parallel_coordinates(trials, stage), f"{prefix}-parallel"))
        study = exp.studies.get(stage)  # (none: the study's note says it has no journal)
        importances = importance_figure.importances(trials, stage, study)
        parts.append(figure_html(importances, f"{prefix}-importance"))
        parts.append(
            f'<p class="importance">{html.escape(NO_IMPORTANCE.format(stage))}</p>'
            * (importances is None and study is not None)
        )
    for k in range(1, len(stages)):
        parts.append(figure_html(figures.parent_vs_child(trials, stages[k - 1], stages[k]), f"e{index}-parents-{k}"))
        said = figures.one_parent(trials, stages[k - 1], stages[k])
        parts.append(f'<p class="parents">{html.escape(said)}</p>' if said else "")
    parts.append(resources_html(exp, index))
    return "\n".join(parts)


NO_IMPORTANCE = (
    "No hyperparameter importance for stage {}: fANOVA needs 3 finished trials or more whose scores differ, and a "
    "hyperparameter that varies among them"
)
NO_TIMINGS = "No timing columns in this study's epochs (made before segtune recorded them): no resource use to show."


def resources_html(exp: Experiment, index: int) -> str:
    """The "Resource use" section: the study's GPU-busy share and idle time in a sentence, where the epochs'
    time went per stage, and per stage a table of its numbers and its GPU's busy share over time."""
    parts = ['<h3>Resource use</h3><div class="resources">']
    epochs = exp.epochs
    timed = resources.timed(epochs)
    if not len(timed):
        parts.append(f"<p>{html.escape(NO_TIMINGS if len(epochs) else 'No epochs yet: no resource use to show.')}</p>")
        return "".join([*parts, "</div>"])
    if len(timed) < len(epochs):
        parts.append(
            f"<p>Timings for {len(timed)} of {len(epochs)} epochs; the others were made before segtune recorded them.</p>"
        )
    epochs = resources.with_setup(epochs, exp.trials)  # each trial from its start, its setup before epoch 1 idle
    share, idle = resources.gpu_busy_share(epochs), resources.idle_totals(resources.idle_gaps(epochs))
    intervals = resources.trial_intervals(epochs)
    span = float(intervals[resources.END].max() - intervals[resources.START].min())
    busy = (
        "No GPU columns in the epochs (the trials ran on CPUs): no GPU-busy share."
        if share is None
        else f"The GPU was busy {share:.0%} of the study's time ({duration(span)}, its first trial's start to its last trial's end)."
    )
    gaps = " and ".join(f"{duration(seconds)} {kind}" for kind, seconds in idle.items() if seconds)
    idle_text = f"Time with no trial running: {gaps}." if gaps else "A trial was running throughout."
    parts.append(f"<p class='busy'>{html.escape(busy)} {html.escape(idle_text)}</p>")
    parts.append(figure_html(resource_figures.phase_time(epochs), f"e{index}-phases"))
    use = {str(stage): row for stage, row in resources.stage_use(epochs).iterrows()}
    for k, stage in enumerate(exp.stages):
        if stage not in use:
            continue
        parts.append(f"<h4>Stage {html.escape(stage)}</h4>" + table_html(stage_use_table(use[stage])))
        parts.append(figure_html(resource_figures.gpu_busy_over_time(epochs, stage), f"e{index}-s{k}-gpu"))
    return "".join([*parts, "</div>"])


def stage_use_table(row: pd.Series) -> pd.DataFrame:
    """One stage's row of resources.stage_use as (what, value, share) lines; what it lacks left out."""
    total, span = row[resources.EPOCHS_S], row[resources.SPAN_S]
    lines = [
        (label, duration(row[column]), f"{row[column] / total:.0%} of the epochs' time" if total else "")
        for column, label in resource_figures.PHASE_LABELS.items()
        if not pd.isna(row[column])
    ]
    lines += [
        ("epochs in all", duration(total), ""),
        ("the stage's time (first trial's start to last trial's end)", duration(span), ""),
    ]
    if not pd.isna(row[resources.BUSY_SHARE]):
        lines.append(("GPU busy", "", f"{row[resources.BUSY_SHARE]:.0%} of the stage's time"))
    idle = row[resources.IDLE_TRIALS_S]
    lines.append(("idle between trials", duration(idle), f"{idle / span:.0%} of the stage's time" if span else ""))
    if (most := row[resources.AT_ONCE]) > 1 and span:  # (with one at a time: the idle time between trials)
        empty = f"{row[resources.EMPTY_SLOTS_S] / (most * span):.0%} of its {most:.0f} trials at once over the stage"
        lines.append(("trial slots left empty", duration(row[resources.EMPTY_SLOTS_S]), empty))
    lines.append(("idle before the stage (between stages)", duration(row[resources.IDLE_STAGES_S]), ""))
    if not pd.isna(row[resources.PEAK_GB]):
        lines.append(("peak GPU memory (the largest of any epoch)", f"{row[resources.PEAK_GB]:.2f} GiB", ""))
    if row[resources.SPLIT_TRIALS]:
        why = "a batch ran out of GPU memory whole: taken in parts since, gradients accumulated (epochs' micro_batches)"
        lines.append(("trials that split their batches", f"{row[resources.SPLIT_TRIALS]:.0f}", why))
    return pd.DataFrame(lines, columns=["", "value", "share"])


def build_page(experiments: Sequence[Experiment], *, title: str = "Hyperparameter search report") -> str:
    sections = []
    if len(experiments) > 1:
        first = side_row(experiments[0])
        head = "".join(
            f"<th{' class=text' * isinstance(v, str)}>{name}</th>" for name, v in zip(SIDE_BY_SIDE, first, strict=True)
        )
        rows = "".join(
            "<tr>"
            + "".join(f"<td{' class=text' * isinstance(v, str)}>{html.escape(fmt(v))}</td>" for v in side_row(e))
            + "</tr>"
            for e in experiments
        )
        groups: dict[str, list[str]] = {}  # the studies scored on each data (root and val videos)
        for e in experiments:
            groups.setdefault(e.data or "?", []).append(e.name)
        said = (
            "<p>Not all of them were scored on the same val videos; their scores compare within each group alone: "
            + html.escape(
                "; ".join(
                    f"group {k}: {', '.join(names)} on {data}" for k, (data, names) in enumerate(groups.items(), 1)
                )
            )
            + ".</p>"
            if len(groups) > 1
            else ""
        )
        group = {data: k for k, data in enumerate(groups, 1)}
        named = [(e.name + f" (group {group[e.data or '?']})" * (len(groups) > 1), e.trials) for e in experiments]
        sections.append(
            f"<h2>Side by side</h2>{said}<table class='leaderboard'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            + figure_html(figures.comparison(named), "comparison")
        )
    sections += [experiment_html(exp, k) for k, exp in enumerate(experiments)]
    links = ", ".join(f'<a href="#study-{k}">{html.escape(e.name)}</a>' for k, e in enumerate(experiments))
    studies = f"{len(experiments)} stud{'y' if len(experiments) == 1 else 'ies'}: {links}"  # (a long page: links)
    return html_page(title, f"<p>{studies}</p>\n{''.join(sections)}")


def html_page(title: str, body: str) -> str:
    """A self-contained page (plotly.js embedded, opens offline) in the report's style: the title as its
    heading, then `body`; tables of class `leaderboard` sort by a click on a column's head."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
{body}
<script>{SORT_SCRIPT}{GL_SCRIPT}</script>
</body></html>
"""
