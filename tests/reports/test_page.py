"""The page's HTML from handmade studies (the browser tests in test_report.py need a search run)."""

from __future__ import annotations

import fcntl
import re
from pathlib import Path

import pandas as pd

from reports import schema
from reports.load import NO_JOURNAL, load_experiment
from reports.page import NO_TIMINGS, build_page, gallery_html, leaderboard_html
from tests.reports.study_files import (
    SPREAD,
    TIMED_EPOCHS,
    TIMED_TRIALS,
    trial_row,
    write_journal,
    write_study_folder,
)

ROWS = [
    trial_row(f"t{k}", curve[-1], params=params, status="completed" if state == "complete" else "stopped")
    for k, (params, curve, state) in enumerate(SPREAD)
]


def test_the_leaderboard_ranks_each_stage_by_its_mode_and_puts_trials_without_a_value_last() -> None:
    trials = pd.DataFrame(
        [
            trial_row("a", 0.3, mode="min"),
            trial_row("b", status="failed"),
            trial_row("c", 0.1, mode="min"),
            trial_row("d", 0.2, mode="min"),
        ]
    )
    page = leaderboard_html(trials, "board")
    assert re.findall(r'<td class="text" data-value="(\w)">', page) == ["c", "d", "a", "b"]


def test_values_that_differ_past_4_digits_are_written_with_the_digits_that_tell_them_apart() -> None:
    trials = pd.DataFrame([trial_row(t, v, mode="min") for t, v in [("a", 0.0070339123), ("b", 0.0070338726)]])
    page = leaderboard_html(trials, "board")
    assert ">0.0070338726<" not in page and ">0.00703387<" in page and ">0.00703391<" in page  # (0.007034 twice)
    assert ">0.25<" in leaderboard_html(pd.DataFrame([trial_row("a", 0.25), trial_row("b", 0.5)]), "board")


def test_failed_and_running_trials_come_after_the_finished_ones_unranked_and_no_failure_reads_nan() -> None:
    """A failed or running trial with a value better than a finished one's is no answer yet (the best rule, the
    docs): it is listed after them without a rank. A trial without a failure shows an empty cell, not NaN."""
    trials = pd.DataFrame(
        [
            trial_row("a", 0.1, status="stopped"),
            trial_row("b", 0.4, status="failed", failure="ValueError: width"),
            trial_row("c", 0.3, status="running"),
            trial_row("d", 0.2),
            trial_row("e", status="failed", failure="ValueError: depth"),
        ]
    )
    trials.loc[trials["failure"].isna(), "failure"] = float("nan")  # as read back from Parquet beside failed trials
    page = leaderboard_html(trials, "board")
    rows = re.findall(r'<tr [^>]*><td[^>]*>(\d*)</td><td class="text" data-value="(\w)">', page)
    assert rows == [("1", "d"), ("2", "a"), ("", "b"), ("", "c"), ("", "e")]
    assert ">nan<" not in page


def test_each_stage_has_its_own_board_the_final_stage_first_with_the_hyperparameters_it_searched() -> None:
    """A staged study's leaderboard was one table, ranks restarting at each stage, the final stage (the answer) below
    the pretraining one, and every stage's hyperparameters in columns mostly empty (37 for a mask_space study)."""
    trials = pd.DataFrame(
        [
            trial_row("p1", 0.5, stage="pretrain", params={"lr": 0.1}),
            trial_row("p2", 0.6, stage="pretrain", params={"lr": 0.2}),
            trial_row("f1", 0.05, stage="finetune", metric="val_loss", mode="min", params={"freeze": True}),
        ]
    )
    page = leaderboard_html(trials, "board")
    finetune, pretrain = page.split('<p class="board">')[1:]
    assert finetune.startswith("Stage <b>finetune</b> (the final stage: its best is the answer): 1 trial, ranked by ")
    assert "val_loss, lowest first" in finetune and 'id="board-1"' in finetune
    assert '<th class="text">freeze</th>' in finetune and ">lr</th>" not in finetune and "<th>val_loss</th>" in finetune
    assert pretrain.startswith("Stage <b>pretrain</b>: 2 trials, ranked by val_iou, highest first")
    assert ">lr</th>" in pretrain and ">freeze</th>" not in pretrain and 'id="board-0"' in pretrain
    assert '<td class="text" data-value="p2">p2</td><td data-value="2">2</td>' in pretrain  # its number, #
    assert re.findall(r'<tr [^>]*><td[^>]*>(\d*)</td><td class="text" data-value="(\w+)">', pretrain) == [
        ("1", "p2"),
        ("2", "p1"),
    ]


def test_a_study_with_a_journal_shows_its_importances(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS, settings={"name": "u", "space": "unet"})
    write_journal(folder / schema.OPTUNA_FILE, schema.optuna_study_name("u", "train"), SPREAD)
    page = build_page([load_experiment(folder)])
    assert 'id="e0-s0-importance"' in page and 'id="e0-s0-parallel"' in page


def test_a_study_without_a_journal_says_so_and_shows_no_importances(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS, settings={"name": "u", "space": "unet"})
    page = build_page([load_experiment(folder)])
    assert 'id="e0-s0-importance"' not in page and 'id="e0-s0-parallel"' in page
    assert NO_JOURNAL in page


def test_side_by_side_shows_the_best_of_each_final_stage(tmp_path: Path) -> None:
    low = write_study_folder(tmp_path / "low", [trial_row("a", 0.3, mode="min"), trial_row("b", 0.1, mode="min")])
    high = write_study_folder(tmp_path / "high", [trial_row("a", 0.3), trial_row("b", 0.1)])
    page = build_page([load_experiment(low), load_experiment(high)])
    row = "<td class=text>{}</td><td class=text>unet</td><td class=text>?</td><td>2</td><td class=text>val_iou ({})</td><td>{}</td>"
    assert row.format("low", "min", 0.1) in page and row.format("high", "max", 0.3) in page
    assert "Not all of them were scored" not in page  # (neither says: no search.json)
    assert page.count("<td>0.1</td><td class=text></td><td>0.03333</td><td>0</td></tr>") == 1  # 2 trials of 60 s
    (high / schema.DRIVER_LOCK).write_text("pid 4242 on node7, since 2026-12-05 10:00:00 UTC\n")
    with open(high / schema.DRIVER_LOCK) as held:  # its driver runs: its row is a snapshot, and says so
        fcntl.flock(held, fcntl.LOCK_EX)
        page = build_page([load_experiment(low), load_experiment(high)])
    assert row.format("high (running now: a snapshot)", "max", 0.3) in page and row.format("low", "min", 0.1) in page


def test_side_by_side_names_the_data_of_each_study_and_says_where_they_differ(tmp_path: Path) -> None:
    own = write_study_folder(tmp_path / "own", [trial_row("a", 0.3)], settings={"space": "unet", "data": "/d/kubric"})
    embedded = write_study_folder(tmp_path / "e", [trial_row("a", 0.3)], settings={"space": "unet", "data": None})
    page = build_page([load_experiment(own), load_experiment(embedded)])
    assert "<td class=text>/d/kubric</td>" in page and "<td class=text>the embedded synthetic set</td>" in page
    assert (
        "Not all of them were scored on the same val videos; their scores compare within each group alone: group 1: own "
        "on /d/kubric; group 2: e on the embedded synthetic set." in page
    )
    assert "own (group 1) (train)" in page and "e (group 2) (train)" in page  # the best-so-far curves say it too
    assert "Not all of them were scored" not in build_page([load_experiment(own), load_experiment(own)])
    fewer = write_study_folder(tmp_path / "f", [trial_row("a", 0.3)], settings={"data": "/d/kubric", "val_videos": 50})
    page = build_page([load_experiment(own), load_experiment(fewer)])  # one root, other val videos: not comparable
    assert (
        "<td class=text>/d/kubric (the first 50 val videos)</td>" in page
        and "group 1: own on /d/kubric; group 2: f on /d/kubric (the first 50" in page
    )


def test_side_by_side_sets_each_best_model_against_all_background(tmp_path: Path) -> None:
    """Three studies at 0.1075 read as a tie at a real score: the floor (all background) said beside each."""
    folders = [write_study_folder(tmp_path / n, [trial_row("a", 0.3)]) for n in ("floor", "above")]
    for folder, best in zip(folders, (0.1075, 0.28), strict=True):
        answers = {schema.ANSWER: [schema.ANSWER_BEST, schema.ANSWER_BACKGROUND], schema.IOU: [best, 0.1075]}
        pd.DataFrame({**answers, schema.VIDEOS: 20}).to_parquet(folder / schema.RESULTS_DIR / schema.REFERENCES_FILE)
    page = build_page([load_experiment(f) for f in folders])
    assert "<th class=text>the best model on val</th>" in page
    assert "<td class=text>equal to all background, on 20 val videos</td>" in page  # (read "1.0x": a real score)
    assert "<td class=text>2.6x all background, on 20 val videos</td>" in page


def test_a_stage_shows_the_rules_measured_at_its_best_trials_best_epoch(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "m", [trial_row("a", 0.3), trial_row("b", 0.5)])
    epochs_file = folder / schema.RESULTS_DIR / schema.EPOCHS_FILE
    epochs = pd.read_parquet(epochs_file)
    epochs["val_copy_last_iou"] = [0.11, 0.21]
    epochs["val_extrapolate_iou"] = [0.12, 0.42]
    epochs.to_parquet(epochs_file, index=False)
    page = build_page([load_experiment(folder)])
    assert "Best trial b: val_iou 0.5; the rules on the same masks at its best epoch" in page
    assert f"<li>{schema.REFERENCES['val_copy_last_iou']}: 0.21</li>" in page
    assert f"<li>{schema.REFERENCES['val_extrapolate_iou']}: 0.42</li>" in page
    assert "oracle" not in page  # not reported by this study


def test_a_segmenter_stage_says_its_metric_scores_its_masks_of_true_frames(tmp_path: Path) -> None:
    """mask_space's two stages both report val_iou: the segmenter's (0.8, its masks of frames 11 and 22) read as
    the better model beside the predictor's (0.3, frame 22 predicted). A stage with an oracle is a segmenter."""
    folder = write_study_folder(tmp_path / "s", [trial_row("a", 0.8)])
    epochs_file = folder / schema.RESULTS_DIR / schema.EPOCHS_FILE
    epochs = pd.read_parquet(epochs_file)
    epochs[schema.VAL_ORACLE_IOU] = [0.82]
    epochs.to_parquet(epochs_file, index=False)
    page = build_page([load_experiment(folder)])
    assert (
        "Best trial a: val_iou 0.8 (its masks of the true frames 11 and 22: a segmenter&#x27;s, not a prediction"
        in page
    )


def test_a_stage_without_rules_shows_no_references(tmp_path: Path) -> None:
    page = build_page([load_experiment(write_study_folder(tmp_path / "u", ROWS))])
    assert 'class="references"' not in page


def test_resource_use_shows_the_gpu_share_the_idle_time_and_each_stages_numbers(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "g", TIMED_TRIALS, epochs=TIMED_EPOCHS)
    page = build_page([load_experiment(folder)])
    assert "<h3>Resource use</h3>" in page
    # (10 * 0.5 + 10 * 1.0 + 5 * 0.2 + 10 * 0.8) / 50 s, tests/reports/test_resources.py
    assert "The GPU was busy 48% of the study&#x27;s time (50s," in page
    assert "Time with no trial running: 5s between trials and 10s between stages." in page
    assert 'id="e0-phases"' in page and 'id="e0-s0-gpu"' in page and 'id="e0-s1-gpu"' in page
    assert "<h4>Stage pretrain</h4>" in page and "<h4>Stage finetune</h4>" in page
    assert 'data-value="23s">23s</td><td class="text" data-value="66% of the epochs' in page  # training steps
    assert ">53% of the stage&#x27;s time<" in page  # pretrain's GPU busy
    assert ">2.00 GiB<" in page  # pretrain's peak
    assert NO_TIMINGS not in page


def test_resource_use_of_a_cpu_study_has_no_gpu_share(tmp_path: Path) -> None:
    cpu = [{k: v for k, v in row.items() if k not in (schema.GPU_BUSY, schema.GPU_PEAK_GB)} for row in TIMED_EPOCHS]
    page = build_page([load_experiment(write_study_folder(tmp_path / "c", TIMED_TRIALS, epochs=cpu))])
    assert "No GPU columns in the epochs (the trials ran on CPUs): no GPU-busy share." in page
    assert 'id="e0-phases"' in page and 'id="e0-s0-gpu"' not in page and "GiB" not in page


def test_resource_use_of_an_old_study_says_its_epochs_have_no_timings(tmp_path: Path) -> None:
    page = build_page([load_experiment(write_study_folder(tmp_path / "u", ROWS))])
    assert "<h3>Resource use</h3>" in page and NO_TIMINGS.replace("'", "&#x27;") in page
    assert 'id="e0-phases"' not in page and "GPU was busy" not in page


def test_resource_use_says_how_many_epochs_lack_timings(tmp_path: Path) -> None:
    epochs = [*TIMED_EPOCHS, {schema.TRIAL_ID: "a", schema.SPACE: "unet", schema.STAGE: "pretrain", schema.EPOCH: 3}]
    page = build_page([load_experiment(write_study_folder(tmp_path / "m", TIMED_TRIALS, epochs=epochs))])
    assert "Timings for 5 of 6 epochs; the others were made before segtune recorded them." in page
    assert "The GPU was busy 48%" in page


def test_the_compute_line_counts_asha_apart_from_the_time_budget(tmp_path: Path) -> None:
    page = build_page([load_experiment(write_study_folder(tmp_path / "g", TIMED_TRIALS, epochs=TIMED_EPOCHS))])
    assert "4 epochs run, of the 6 that these 3 trials would have cost at the full budget" in page
    assert "(67%; ASHA saved 1, the time budget cut 1)" in page


def test_the_gallery_has_a_legend_of_the_colours_of_the_classes_its_masks_show() -> None:
    gallery = pd.DataFrame(
        {
            schema.VIDEO_ID: [3, 3],
            schema.ORDER: [0, 1],
            schema.LABEL: ["frame 1", "true mask 22"],
            "data_uri": ["data:,", "data:,"],
            schema.CLASS_IDS: [[], [0, 2]],
        }
    )
    per_class = pd.DataFrame(
        {
            schema.CLASS_ID: [0, 1, 2],
            schema.CLASS_NAME: ["background", "red cube", "blue <cone>"],
            schema.COLOUR: ["#000000", "#ff0000", "#0000ff"],
        }
    )
    page = gallery_html(gallery, per_class)
    legend = re.search(r'<p class="colour-legend">(.*?)</p>', page)
    assert legend is not None and page.index("colour-legend") < page.index('<div class="gallery">')
    assert re.findall(r'background:(#\w+)"></span>([^<]*?) ?(?=<|$)', legend.group(1)) == [
        ("#000000", "background"),
        ("#0000ff", "blue &lt;cone&gt;"),  # the classes shown, not red cube
    ]
    # a study written before the colours were recorded: its gallery without a legend
    assert "colour-legend" not in gallery_html(gallery.drop(columns=schema.CLASS_IDS), per_class)
    assert "colour-legend" not in gallery_html(gallery, per_class.drop(columns=schema.COLOUR))
