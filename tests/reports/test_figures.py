"""Figures from small handmade result tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports import axes, figures, schema
from tests.reports.study_files import timed_epoch, trial_row


def test_parallel_coordinates_show_the_top_trials_best_first() -> None:
    trials = pd.DataFrame(
        [
            trial_row(t, v, mode="min", params={"width": w, "epoch_samples": 8, "lr": lr})
            for t, v, w, lr in [("a", 0.3, 8, 1e-3), ("b", 0.1, 16, 2e-4), ("c", 0.2, 32, 2e-4)]
        ]
    )
    fig = figures.parallel_coordinates(trials, "train", top_k=2)
    assert fig is not None
    dims = {d.label: list(d.values) for d in fig.data[0].dimensions}
    assert dims == {"width": [16.0, 32.0], "val_iou": [0.1, 0.2]}  # the same in both shown: no axis
    assert [note.text for note in fig.layout.annotations] == ["the same in all of them: epoch_samples 8, lr 0.0002"]
    assert fig.data[0].labelangle == 0  # few axes: labels side by side
    many = [{f"p{i}": i * (t == "a") for i in range(12)} for t in "ab"]
    wide = pd.DataFrame([trial_row(t, v, params=params) for t, v, params in zip("ab", (0.3, 0.1), many, strict=True)])
    fig = figures.parallel_coordinates(wide, "train")
    assert fig is not None and fig.data[0].labelangle == -30  # 11 axes and the metric


def test_counts_and_whole_number_parameters_get_whole_number_ticks() -> None:
    """Epochs, trial numbers and parameters such as batch_size take whole values: their axes tick on them (Plotly's
    own ticks put 1.5 and 2.5 on a 4-epoch axis, 2.5 and 3.5 on a batch_size axis of 2 and 4)."""
    trials = pd.DataFrame(
        [
            trial_row(t, v, params={"batch_size": b, "lr": lr}, **{schema.STARTED_AT: n})
            for n, (t, v, b, lr) in enumerate([("a", 0.3, 2, 1e-3), ("b", 0.1, 4, 2e-4), ("c", 0.2, 8, 3e-4)])
        ]
    )
    fig = figures.parallel_coordinates(trials, "train")
    assert fig is not None
    ticks = {d.label: d.tickvals for d in fig.data[0].dimensions}
    assert list(ticks["batch_size"]) == [2.0, 4.0, 8.0] and ticks["lr"] is None and ticks["val_iou"] is None
    history = figures.optimisation_history(trials, "train")
    assert history is not None and history.layout.xaxis.dtick == 1
    assert history.layout.xaxis2.dtick is None  # trial-hours: not a count
    for last, step in ((4, 1), (10, 1), (11, 2), (40, 5), (100, 10), (250, 50)):
        epochs = pd.DataFrame([timed_epoch("a", "train", e, 100.0 * e, 10.0) for e in range(1, last + 1)])
        curves = figures.learning_curves(trials, epochs, "train")
        assert curves is not None and curves.layout.xaxis.dtick == step, last
    assert axes.count_ticks(1) == {"tick0": 0, "dtick": 1}


def test_a_stage_of_many_trials_names_its_best_curves_and_draws_the_others_faint_beneath() -> None:
    """A legend of every trial (239 in a study a user ran, each completed one the same blue) named none; the best
    NAMED_CURVES are named best first, the others drawn beneath with one legend entry for each status's."""
    ids = [f"t{k:02d}" for k in range(25)]
    status = {t: "stopped" if k % 5 == 4 else "completed" for k, t in enumerate(ids)}
    trials = pd.DataFrame([{**trial_row(t, k / 100), schema.STATUS: status[t]} for k, t in enumerate(ids)])
    epochs = pd.DataFrame([{**timed_epoch(t, "train", 1, 100.0, 10.0), "val_iou": k / 100} for k, t in enumerate(ids)])
    fig = figures.learning_curves(trials, epochs, "train")
    assert fig is not None and len(fig.data) == 25  # every curve drawn
    legend = [t.name for t in sorted(fig.data, key=lambda t: t.legendrank) if t.showlegend is not False]
    best = ids[::-1][: figures.NAMED_CURVES]
    assert legend[: figures.NAMED_CURVES] == [f"{t} ({status[t]})" for t in best]
    assert set(legend[figures.NAMED_CURVES :]) == {"other completed trials (12)", "other stopped trials (3)"}
    faint = [trace for trace in fig.data if trace.name.startswith("other")]
    assert len(faint) == 15 and {trace.opacity for trace in faint} == {0.5}
    assert fig.data[: len(faint)] == tuple(faint)  # drawn first: beneath the named ones, the best last, on top
    assert [t.hovertemplate.split("<br>")[0] for t in fig.data[-3:]] == [f"{t} ({status[t]})" for t in best[2::-1]]
    few = figures.learning_curves(trials.head(3), epochs.head(3), "train")
    assert few is not None
    assert [t.name for t in sorted(few.data, key=lambda t: t.legendrank)] == [f"t0{k} (completed)" for k in (2, 1, 0)]


def test_parallel_coordinates_of_trials_that_all_score_the_same_have_one_colour() -> None:
    trials = pd.DataFrame([trial_row(t, 0.1075, params={"lr": lr}) for t, lr in (("a", 1e-3), ("b", 2e-4))])
    fig = figures.parallel_coordinates(trials, "train")
    assert fig is not None and fig.data[0].line.color == figures.TIED and not fig.data[0].line.showscale
    assert fig.layout.title.text.endswith("all scoring val_iou 0.1075")


def test_the_per_class_title_counts_the_classes_found_nowhere_and_those_only_predicted() -> None:
    """It said "3 classes present" where one of them was only predicted (IoU 0, no true pixel), and classes at 0
    drew no bar and no number: a label over nothing, as if not evaluated."""
    table = pd.DataFrame(
        {
            schema.CLASS_ID: [0, 1, 2, 3, 4],
            schema.CLASS_NAME: ["background", "red cube", "blue cone", "green ball", "gray cube"],
            schema.IOU: [0.9, 0.6, 0.0, float("nan"), 0.0],  # green ball: in neither; gray cube: missed
            schema.TARGET_PIXELS: [900, 40, 0, 0, 30],
            schema.PREDICTED_PIXELS: [880, 50, 12, 0, 0],
            schema.COLOUR: ["#000000", "#ad2323", "#2a4bd7", "#1d6914", "#575757"],
        }
    )
    fig = figures.per_class_iou(table)
    assert fig is not None
    assert list(fig.data[0].x) == ["background", "red cube", "blue cone", "gray cube"]
    assert list(fig.data[0].text) == ["0.9", "0.6", "0", "0"]  # each bar's value, a 0 too
    assert list(fig.data[0].marker.color) == ["#000000", "#ad2323", "#2a4bd7", "#575757"]  # the gallery's colours
    assert fig.layout.title.text == (
        "Best model: IoU per class on val (3 classes in the true masks, 1 of them at 0; 1 more only predicted (IoU 0); "
        "mean 0.375)"
    )
    fig = figures.per_class_iou(table[table[schema.IOU] > 0].drop(columns=schema.COLOUR))  # an older study's table
    assert fig is not None and fig.layout.title.text.endswith("(2 classes in the true masks; mean 0.750)")


def test_values_that_barely_differ_are_not_spread_over_the_whole_axis() -> None:
    """On a tiny set every trial scored 0.0217 give or take 1e-6: Plotly's own axis ran from 0.021699 to 0.021701, the
    trials looking far apart. Values closer than 2% of their size (or 1e-4, about 0) get an axis that wide."""
    trials = pd.DataFrame(
        [
            trial_row(t, 0.0217 + d) | {schema.STARTED_AT: n}
            for n, (t, d) in enumerate(zip("abc", (0, 1e-6, -1e-6), strict=True))
        ]
    )
    fig = figures.optimisation_history(trials, "train")
    assert fig is not None
    low, high = fig.layout.yaxis.range
    assert low < 0.0217 - 1e-6 < 0.0217 + 1e-6 < high and 2e-6 / (high - low) < 0.01  # a flat line, as they are
    assert fig.layout.yaxis2.range == fig.layout.yaxis.range  # both panels

    def shown(values: list[float]) -> list[float]:
        drawn = axes.steady_range(values)
        assert drawn, values
        low, high = drawn["range"]
        assert low < min(values) or low == 0 == min(values)
        assert max(values) < high
        return [low, high]

    assert shown([0.0, 1e-6])[0] == 0 and shown([0.0, 0.0]) == [0.0, 1e-4]  # about 0: no negative IoU drawn
    assert shown([-10.0, -10.01])[1] - shown([-10.0, -10.01])[0] == pytest.approx(0.2, rel=0.01)  # below 0: about them
    assert shown([1.0, 1.019])  # nearly 2% apart: both inside the axis, not on its edges
    assert axes.steady_range([0.1, 0.5]) == {} and axes.steady_range([0.0, 1e-3]) == {}  # apart: Plotly's axis
    assert axes.steady_range([float("nan")]) == {}


def test_stages_whose_trials_are_all_built_on_one_parent_say_so_instead_of_a_scatter() -> None:
    trials = pd.DataFrame(
        [
            trial_row("s1", 0.4, stage="segmenter"),
            trial_row("s2", 0.5, stage="segmenter"),
            *(trial_row(f"p{k}", 0.2 + k / 100, stage="predictor", parent_trial="s2") for k in range(3)),
        ]
    )
    assert figures.parent_vs_child(trials, "segmenter", "predictor") is None
    assert figures.one_parent(trials, "segmenter", "predictor") == (
        "The 3 predictor trials were all built on one segmenter trial, s2: no figure of segmenter against predictor (it "
        "compares trials built on different ones)."
    )
    trials.loc[trials["trial_id"] == "p0", "parent_trial"] = "s1"
    assert figures.parent_vs_child(trials, "segmenter", "predictor") is not None
    assert figures.one_parent(trials, "segmenter", "predictor") == ""


def test_the_history_is_against_the_trials_numbers_with_a_legend_entry_per_status() -> None:
    """Its x was each trial's place among those with a value: after a failed trial #2, trial #3 was drawn at 2, and
    no leaderboard column told which trial a point was; its one legend entry "trial" took the first point's colour."""
    rows = [
        ("a", 0.3, "stopped"),
        ("b", math.nan, "failed"),
        ("c", 0.1, "completed"),
        ("d", 0.5, "completed"),
    ]
    trials = pd.DataFrame(
        [
            trial_row(t, v, status=s) | {schema.STARTED_AT: n, schema.TRIAL_NUMBER: n + 1}
            for n, (t, v, s) in enumerate(rows)
        ]
    )
    fig = figures.optimisation_history(trials, "train")
    assert fig is not None
    points = {trace.name: list(trace.x) for trace in fig.data if trace.xaxis == "x" and trace.mode == "markers"}
    assert points == {"stopped trial": [1], "completed trial": [3, 4]}  # (#2 failed: no value)
    best = next(trace for trace in fig.data if trace.xaxis == "x" and trace.name == "best so far")
    assert list(best.x) == [1, 3, 4] and list(best.y) == [0.3, 0.3, 0.5]
    assert {trace.marker.color for trace in fig.data if trace.name == "stopped trial"} == {"#ff7f0e"}


def test_parallel_coordinates_of_values_that_barely_differ_draw_them_close_in_place_and_colour() -> None:
    trials = pd.DataFrame(
        [trial_row(t, 0.0070329 + d, params={"lr": lr}) for t, d, lr in [("a", 0, 1e-3), ("b", 1.1e-6, 1e-2)]]
    )
    fig = figures.parallel_coordinates(trials, "train")
    assert fig is not None
    low, high = fig.data[0].dimensions[-1].range
    assert (fig.data[0].line.cmin, fig.data[0].line.cmax) == (low, high)
    assert 1.1e-6 / (high - low) < 0.01  # not one trial at each end of the axis and of the colour scale
