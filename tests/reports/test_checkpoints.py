"""Which checkpoint of a study: the best-trial rule's, a trial's, and one a checkpoint names, each found where the
study folder is now (a copied or moved study reads its own checkpoints, not the original's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from reports import schema
from reports.checkpoints import beside, best_checkpoint, study_of
from tests.reports.study_files import trial_row, write_study_folder


def test_the_best_checkpoint_is_the_best_trial_with_one_of_the_last_stage(tmp_path: Path) -> None:
    rows = [
        trial_row("a", 0.9, stage="first"),  # better, of an earlier stage
        trial_row("b", 0.8, stage="last", checkpoint=None),  # better, without a checkpoint
        trial_row("c", 0.3, stage="last"),
        trial_row("d", 0.5, stage="last"),
    ]
    assert best_checkpoint(write_study_folder(tmp_path, rows)) == Path("/ckpt/d/checkpoint.pt")


def test_the_best_checkpoint_is_the_summarys_a_finished_trials_else_a_running_ones_never_a_failed_ones(
    tmp_path: Path,
) -> None:
    rows = [
        trial_row("f", 0.9, status="failed"),  # failed after a good epoch: no summary names it
        trial_row("r", 0.7, status="running"),
        trial_row("c", 0.5, status="cut"),
    ]
    folder = write_study_folder(tmp_path / "s", rows)
    best = best_checkpoint(folder)
    assert (
        best
        == Path("/ckpt/c/checkpoint.pt")
        == Path(schema.finished_trials(pd.DataFrame(rows), "train").iloc[0][schema.CHECKPOINT])
    )
    write_study_folder(tmp_path / "s", rows[:2])  # a study still running
    assert best_checkpoint(folder) == Path("/ckpt/r/checkpoint.pt")
    write_study_folder(tmp_path / "s", rows[:1])
    with pytest.raises(
        FileNotFoundError, match=r"no finished or running trial of stage 'train' in .* left a checkpoint"
    ):
        best_checkpoint(folder)
    assert best_checkpoint(folder, "f") == Path("/ckpt/f/checkpoint.pt")  # named: any trial's


def test_of_trials_that_tie_the_best_is_the_one_trained_longer(tmp_path: Path) -> None:
    """On small data, a trial the budget cut after 1 epoch tied a whole 4-epoch one (every pixel background, say),
    and the earlier started was the best: its checkpoint the submission's."""
    rows = [
        trial_row("cut", 0.5, status="cut", epochs=1),
        trial_row("whole", 0.5, epochs=4),
        trial_row("two", 0.5, status="stopped", epochs=2),
        trial_row("worse", 0.4, epochs=4),
    ]
    assert list(schema.finished_trials(pd.DataFrame(rows), "train")[schema.TRIAL_ID]) == [
        "whole",
        "two",
        "cut",
        "worse",
    ]
    assert best_checkpoint(write_study_folder(tmp_path / "s", rows)) == Path("/ckpt/whole/checkpoint.pt")


def test_the_best_checkpoint_of_a_folder_without_one_says_why(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"is .* a study folder"):
        best_checkpoint(tmp_path)
    write_study_folder(tmp_path / "s", [trial_row("a", 0.5, checkpoint=None)])
    with pytest.raises(
        FileNotFoundError, match=r"no finished or running trial of stage 'train' in .* left a checkpoint"
    ):
        best_checkpoint(tmp_path / "s")
    (tmp_path / "t").mkdir()  # a study whose time budget ended before any trial reported
    (tmp_path / "t" / schema.STUDY_FILE).write_text("{}")
    with pytest.raises(FileNotFoundError, match=rf"^no trial of the study {tmp_path / 't'} has reported a result yet$"):
        best_checkpoint(tmp_path / "t")


def _trial_checkpoint(study: Path, stage: str, trial: str) -> Path:
    path = study / stage / f"trial_{trial}" / "checkpoint_000001" / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(trial.encode())
    return path


def test_a_copied_or_moved_study_reads_its_own_checkpoints_not_the_originals(tmp_path: Path) -> None:
    study = tmp_path / "runs" / "s"
    rows = [
        trial_row("a", 0.9, stage="seg", checkpoint=str(_trial_checkpoint(study, "seg", "a"))),
        trial_row("b", 0.5, stage="pred", checkpoint=str(_trial_checkpoint(study, "pred", "b"))),
    ]
    write_study_folder(study, rows)
    assert best_checkpoint(study) == study / "pred" / "trial_b" / "checkpoint_000001" / "checkpoint.pt"
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(study, copy)
    (copy / "pred" / "trial_b" / "checkpoint_000001" / "checkpoint.pt").write_bytes(b"the copy's")
    best = best_checkpoint(copy)
    assert (
        best == copy / "pred" / "trial_b" / "checkpoint_000001" / "checkpoint.pt" and best.read_bytes() == b"the copy's"
    )
    assert best_checkpoint(copy, "a") == copy / "seg" / "trial_a" / "checkpoint_000001" / "checkpoint.pt"
    # a checkpoint the best one names (its segmenter), recorded where the study ran: the copy's
    assert study_of(best) == copy and beside(best, rows[0][schema.CHECKPOINT]) == best_checkpoint(copy, "a")
    shutil.rmtree(study)  # moved: the recorded paths are gone, the files are in the folder
    assert best_checkpoint(copy).read_bytes() == b"the copy's"
    # results copied without their checkpoints: the recorded paths, for the error that names them
    shutil.rmtree(copy / "pred")
    assert best_checkpoint(copy) == Path(rows[1][schema.CHECKPOINT])


def test_a_checkpoint_of_no_study_names_its_files_as_recorded(tmp_path: Path) -> None:
    lone = tmp_path / "run" / "checkpoint.pt"  # tune.train's
    assert study_of(lone) is None and beside(lone, "/old/seg/trial_a/checkpoint_000001/checkpoint.pt") == Path(
        "/old/seg/trial_a/checkpoint_000001/checkpoint.pt"
    )
