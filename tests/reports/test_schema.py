"""The results schema: names, the best-trial rule, reading a results folder."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from reports import schema
from tests.reports.study_files import trial_row, write_study_folder


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def ids(frame: pd.DataFrame) -> list[str]:
    return list(frame[schema.TRIAL_ID])


def test_ranked_puts_the_highest_first_when_the_mode_is_max() -> None:
    trials = table(trial_row("a", 0.2), trial_row("b", 0.5), trial_row("c", 0.3))
    assert ids(schema.ranked(trials, "train")) == ["b", "c", "a"]


def test_ranked_puts_the_lowest_first_when_the_mode_is_min() -> None:
    trials = table(*(trial_row(t, v, mode="min") for t, v in [("a", 0.2), ("b", 0.5), ("c", 0.3)]))
    assert ids(schema.ranked(trials, "train")) == ["a", "c", "b"]


def test_ranked_keeps_ties_in_table_order() -> None:
    trials = table(*(trial_row(t, 0.4) for t in "edcba"), trial_row("top", 0.9))
    assert ids(schema.ranked(trials, "train")) == ["top", "e", "d", "c", "b", "a"]  # (results without trial numbers)


def test_ranked_puts_of_tied_trials_the_one_the_searcher_made_first_first() -> None:
    """Trials started together end in either order (their rows too): a run of the same seed picked another best."""
    tied = [trial_row(t, 0.4, trial_number=n) for t, n in [("c", 3), ("a", 1), ("b", 2)]]
    trials = table(*tied, trial_row("d", 0.4, trial_number=4, epochs=4), trial_row("old", 0.4))  # (an older row)
    assert ids(schema.ranked(trials, "train")) == ["d", "a", "b", "c", "old"]  # more epochs first, as before


def test_ranked_leaves_out_other_stages_and_trials_without_a_value() -> None:
    trials = table(trial_row("a", 0.2), trial_row("b", status="failed"), trial_row("c", 0.9, stage="other"))
    assert ids(schema.ranked(trials, "train")) == ["a"]


def test_ranked_keeps_only_the_statuses_asked_for() -> None:
    trials = table(trial_row("a", 0.9, status="running"), trial_row("b", 0.5, status="stopped"), trial_row("c", 0.1))
    assert ids(schema.ranked(trials, "train", statuses=schema.FINISHED)) == ["b", "c"]


def test_ranked_keeps_only_trials_with_a_checkpoint_when_asked() -> None:
    trials = table(trial_row("a", 0.9, checkpoint=None), trial_row("b", 0.5))
    assert ids(schema.ranked(trials, "train", with_checkpoint=True)) == ["b"]
    assert ids(schema.ranked(trials, "train")) == ["a", "b"]


def test_ranked_of_an_empty_table_is_empty() -> None:
    assert schema.ranked(pd.DataFrame(), "train").empty


def test_ranked_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="got 'maximize'"):
        schema.ranked(table(trial_row("a", 0.2, mode="maximize")), "train")


@pytest.mark.parametrize(("mode", "best"), [("max", 0.5), ("min", 0.2)])
def test_best_value_follows_the_mode(mode: str, best: float) -> None:
    trials = table(trial_row("a", 0.2, mode=mode), trial_row("b", 0.5, mode=mode), trial_row("c", mode=mode))
    assert schema.best_value(trials, "train") == best


def test_best_value_of_a_stage_without_values_is_nan() -> None:
    assert math.isnan(schema.best_value(table(trial_row("a", status="failed")), "train"))


def test_best_value_is_a_standing_trials_not_a_failed_ones() -> None:
    """The report's best, as the summary's and the submission's: a trial that failed after a good epoch left no
    model that answers."""
    trials = table(trial_row("f", 0.9, status="failed"), trial_row("r", 0.4, status="running"), trial_row("c", 0.3))
    assert schema.best_value(trials, "train") == 0.4


def test_param_name_and_config_column_round_trip() -> None:
    assert schema.config_column("width") == "config/width"
    assert schema.param_name(schema.config_column("lr")) == "lr"


def test_param_name_rejects_a_column_that_is_not_a_hyperparameter() -> None:
    with pytest.raises(ValueError, match="got 'best_metric'"):
        schema.param_name(schema.BEST_METRIC)


def test_param_columns_are_those_set_in_some_trial() -> None:
    trials = table(
        trial_row("a", params={"width": 8, "warp": None}), trial_row("b", params={"width": 16, "warp": None})
    )
    trials[schema.config_column("lr")] = [None, 0.01]
    assert schema.param_columns(trials) == ["config/width", "config/lr"]


def test_stage_order_is_the_order_stages_ran() -> None:
    trials = table(trial_row("a", stage="phase_b"), trial_row("b", stage="phase_a"), trial_row("c", stage="phase_b"))
    assert schema.stage_order(trials) == ["phase_b", "phase_a"]
    assert schema.stage_order(pd.DataFrame()) == []


def test_optuna_study_name_joins_study_and_stage() -> None:
    assert schema.optuna_study_name("u", "train") == "u/train"


def test_read_results_of_a_missing_folder_is_two_empty_frames(tmp_path: Path) -> None:
    trials, epochs = schema.read_results(tmp_path / "nope" / schema.RESULTS_DIR)
    assert trials.empty and epochs.empty


def test_a_results_file_that_is_no_parquet_is_named(tmp_path: Path) -> None:
    (tmp_path / schema.TRIALS_FILE).write_bytes(b"PAR1 cut short")
    with pytest.raises(ValueError, match=f"^{tmp_path / schema.TRIALS_FILE}: not a Parquet file that can be read"):
        schema.read_results(tmp_path)


def test_read_results_reads_what_the_search_wrote(tmp_path: Path) -> None:
    write_study_folder(tmp_path, [trial_row("a", 0.2), trial_row("b", 0.4)])
    trials, epochs = schema.read_results(tmp_path / schema.RESULTS_DIR)
    assert ids(trials) == ["a", "b"] and list(epochs[schema.EPOCH]) == [1, 1]
    study_folder = schema.read_results(tmp_path)  # the study's folder: its results (it was two empty frames)
    assert ids(study_folder[0]) == ["a", "b"] and len(study_folder[1]) == 2


def test_results_read_while_a_study_rewrites_them_are_never_half_files(tmp_path: Path) -> None:
    """A running study replaces its results atomically (a new file renamed over the old one, as
    tune.search.results.write_parquet does), and a reader (the report, a user's pandas) reads meanwhile: each read
    gets one whole file. Read by its path, pyarrow opened the file again after its footer: 1 read in 3 failed here."""
    folder = tmp_path / schema.RESULTS_DIR
    folder.mkdir()
    path, done = folder / schema.TRIALS_FILE, threading.Event()

    def write(rows: int) -> None:
        pd.DataFrame([trial_row(f"t{i}") for i in range(rows)]).to_parquet(f"{path}.tmp", index=False)
        os.replace(f"{path}.tmp", path)

    def rewrite() -> None:
        rows = 1
        while not done.is_set():
            rows = rows % 400 + 37  # files of other lengths: the footer of one with the data of another fails
            write(rows)

    write(1)
    writer = threading.Thread(target=rewrite)
    writer.start()
    lengths = set()
    try:
        ends = time.monotonic() + 2
        while time.monotonic() < ends:
            trials, _ = schema.read_results(folder)
            assert list(trials[schema.TRIAL_ID]) == [f"t{i}" for i in range(len(trials))]
            lengths.add(len(trials))
    finally:
        done.set()
        writer.join()
    assert len(lengths) > 1  # the reads met several versions of the file


def test_status_text_counts_each_stage_in_the_order_they_ran() -> None:
    trials = table(
        trial_row("a", stage="pretrain", status="stopped"),
        trial_row("b", stage="pretrain"),
        trial_row("c", stage="finetune", status="failed"),
        trial_row("d", stage="pretrain", status="stopped"),
        trial_row("e", stage="finetune"),
    )
    assert schema.status_text(trials) == "pretrain: 1 completed, 2 stopped; finetune: 1 completed, 1 failed"
    assert schema.status_text(trials.iloc[:0]) == ""


def test_trials_without_a_number_are_numbered_after_those_with_one_and_ranked_so() -> None:
    """The leaderboard's # and the rule's tie-break are one: a row without a number (an older study's) fell back to
    start order for every trial in #, while the rule put it last."""
    rows = table(
        trial_row("a", 0.4, started_at=5.0),
        trial_row("b", 0.4, trial_number=2, started_at=1.0),
        trial_row("c", 0.4, trial_number=3, started_at=2.0),
        trial_row("e", 0.4, started_at=0.0),
    )
    assert list(schema.trial_numbers(rows)) == [5, 2, 3, 4]  # e started before a
    assert ids(schema.ranked(rows, "train")) == ["b", "c", "e", "a"]
    assert list(schema.trial_numbers(rows.drop(columns=schema.TRIAL_NUMBER))) == [4, 2, 3, 1]  # by their start
