"""The results writer (a Ray Tune callback), driven with Ray's own Trial and Checkpoint objects."""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from ray import tune
from ray.train._internal.storage import StorageContext
from ray.train.constants import CHECKPOINT_DIR_NAME
from ray.tune.experiment import Trial

from reports.schema import CHECKPOINT, EPOCH, EPOCHS_FILE, RESTARTS, is_missing, read_results
from tune.search.failures import failure_reason
from tune.search.keys import CHECKPOINT_NAME, FAILED_KEY, TRAINING_ITERATION
from tune.search.results import ResultsWriter


def test_an_epoch_is_on_disk_before_ray_records_its_checkpoint(tmp_path: Path) -> None:
    """Ray calls on_checkpoint before its experiment state holds the checkpoint, and a resume after kill -9 goes on
    from that state with the next epoch: an epoch row still held back by the write throttle would never be written."""
    writer = ResultsWriter(
        tmp_path / "results",
        space="unet",
        stage="main",
        metric="val_iou",
        mode="max",
        max_epochs=4,
        run_values={},
        min_interval_s=3600,  # every write a result asks for is held back, on any machine
    )
    writer.setup()
    trial = Trial("train_trial", config={"lr": 0.1}, stub=True)
    writer.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        writer.on_trial_result(0, [trial], trial, {TRAINING_ITERATION: epoch, "val_iou": 0.1 * epoch})
        (tmp_path / f"ckpt{epoch}").mkdir()
        writer.on_checkpoint(0, [trial], trial, tune.Checkpoint.from_directory(tmp_path / f"ckpt{epoch}"))
        trials, epochs = read_results(tmp_path / "results")
        assert (tmp_path / "results" / EPOCHS_FILE).exists(), f"epoch {epoch} held back"
        assert sorted(epochs[EPOCH]) == list(range(1, epoch + 1)), epochs
        assert trials[CHECKPOINT].iloc[0] == str(tmp_path / f"ckpt{epoch}" / CHECKPOINT_NAME)


def test_a_stop_between_a_result_and_its_checkpoint_leaves_the_best_epoch_its_checkpoint(tmp_path: Path) -> None:
    """The trial writes an epoch's checkpoint before it reports; Ray then asks for it (on_checkpoint) in a later
    step, and a Ctrl-C between ends the study with none. The results name it from the result, so that
    tune.predict and tune.train --from of the interrupted study find the best epoch's checkpoint; a worse epoch's
    does not replace it."""
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="main", trial_dir_name="trial_a")
    writer = ResultsWriter(
        tmp_path / "results", space="unet", stage="main", metric="val_iou", mode="max", max_epochs=4, run_values={}
    )
    writer.setup()
    trial = Trial("train_trial", config={"lr": 0.1}, stub=True, storage=storage)
    writer.on_trial_start(0, [trial], trial)
    for epoch, iou in ((1, 0.2), (2, 0.1)):
        result = {TRAINING_ITERATION: epoch, "val_iou": iou, CHECKPOINT_DIR_NAME: f"checkpoint_00000{epoch - 1}"}
        writer.on_trial_result(0, [trial], trial, result)
    writer.on_experiment_end([trial])  # what Ray calls as an interrupted study ends
    trials, _ = read_results(tmp_path / "results")
    assert trials[CHECKPOINT].iloc[0] == str(tmp_path / "main" / "trial_a" / "checkpoint_000000" / CHECKPOINT_NAME)


def test_an_epoch_run_again_after_a_resume_replaces_the_lost_one_and_the_best_is_that_of_the_epochs_kept(
    tmp_path: Path,
) -> None:
    """Ctrl-C after epoch 3's result, before Ray saved its checkpoint: Ray resumes the trial from epoch 2's and runs
    epoch 3 again (into the same checkpoint folder), which scores lower this time. The lost run's 0.6 was still the
    trial's best, its checkpoint named: Ray then deleted that folder (neither its best nor its latest) and the study's
    next stage, evaluation and tune.predict failed on it; and the epoch Ray kept as the best, not named, was removed
    as the stage ended."""
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="main", trial_dir_name="trial_a")
    trial = Trial("train_trial", config={"lr": 0.1}, stub=True, storage=storage)

    def writer() -> ResultsWriter:  # one a driver's run: the resume reads back what the stopped run wrote
        made = ResultsWriter(
            tmp_path / "results", space="unet", stage="main", metric="val_iou", mode="max", max_epochs=5, run_values={}
        )
        made.setup()
        return made

    def report(to: ResultsWriter, epoch: int, iou: float) -> None:
        result = {TRAINING_ITERATION: epoch, "val_iou": iou, CHECKPOINT_DIR_NAME: f"checkpoint_{epoch - 1:06d}"}
        to.on_trial_result(0, [trial], trial, result)

    def path(epoch: int) -> str:
        return str(tmp_path / "main" / "trial_a" / f"checkpoint_{epoch - 1:06d}" / CHECKPOINT_NAME)

    first = writer()
    first.on_trial_start(0, [trial], trial)
    for epoch, iou in ((1, 0.5), (2, 0.3), (3, 0.6)):
        report(first, epoch, iou)
    first.on_experiment_end([trial])  # stopped
    trials, _ = read_results(tmp_path / "results")
    assert trials[CHECKPOINT].iloc[0] == path(3)
    again = writer()
    report(again, 3, 0.4)  # epoch 3 again, from epoch 2's checkpoint
    again.on_experiment_end([trial])
    trials, epochs = read_results(tmp_path / "results")
    assert (trials["best_metric"].iloc[0], trials["best_epoch"].iloc[0]) == (0.5, 1)
    assert trials[CHECKPOINT].iloc[0] == path(1)
    assert sorted(zip(epochs[EPOCH], epochs["val_iou"], strict=True)) == [(1, 0.5), (2, 0.3), (3, 0.4)]
    assert list(epochs.sort_values(EPOCH)[CHECKPOINT]) == [path(1), path(2), path(3)]
    report(again, 4, 0.7)
    again.on_experiment_end([trial])
    trials, _ = read_results(tmp_path / "results")
    assert (trials["best_metric"].iloc[0], trials["best_epoch"].iloc[0], trials[CHECKPOINT].iloc[0]) == (
        0.7,
        4,
        path(4),
    )


def test_an_integer_hyperparameter_of_one_stage_of_two_stays_an_integer(tmp_path: Path) -> None:
    """Each stage's writer adds its rows to those of the stages before it, where a hyperparameter of the other stage
    has no value: an integer one (a width, a batch size) stays an integer column, also after a resume reads the
    table back and writes it again, a float one a float column."""
    configs = {"pretrain": {"width": 32, "lr": 0.1}, "finetune": {"lr": 0.01, "frozen_epochs": 2}}
    for stage in ("pretrain", "finetune", "finetune"):  # the last: the finetune stage resumed
        writer = ResultsWriter(
            tmp_path / "results", space="s", stage=stage, metric="val_iou", mode="max", max_epochs=2, run_values={}
        )
        writer.setup()
        trial = Trial("train_trial", config=configs[stage], stub=True, trial_id=f"{stage}_1")
        writer.on_trial_start(0, [trial], trial)
        writer.on_trial_result(0, [trial], trial, {TRAINING_ITERATION: 1, "val_iou": 0.5})
        writer.on_trial_complete(0, [trial], trial)
        trials, _ = read_results(tmp_path / "results")
        assert len(trials) == 1 + (stage == "finetune"), trials
        for column, values in (("config/width", [32, None]), ("config/frozen_epochs", [None, 2]))[: len(trials)]:
            assert pd.api.types.is_integer_dtype(trials[column]), (stage, trials.dtypes)
            assert [None if is_missing(v) else v for v in trials[column]] == values[: len(trials)]
        assert pd.api.types.is_float_dtype(trials["config/lr"]), trials.dtypes


def test_a_trial_run_again_fails_with_its_last_failure_and_its_first_error_line(tmp_path: Path) -> None:
    """Ray adds each failure of a trial run again (--retries) to its error file: the reason is the last one's, and a
    run that failed at once after the trial's own error (trainable.FailedBefore) gives that error's line."""
    died = "Failure # 1 (occurred at 2026-12-07_09-00-00)\nray.exceptions.ActorDiedError: The actor died unexpectedly\n"
    raised = "Failure # 2 (occurred at 2026-12-07_09-00-05)\nTraceback (most recent call last):\nValueError: width 3\n"
    again = "Failure # 3 (occurred at 2026-12-07_09-00-09)\ntune.search.trainable.FailedBefore: ValueError: width 3\n"
    error_file = tmp_path / "error.txt"
    for text, reason in [
        (died, "its process ended under it (its node left the cluster, the system's OOM killer, a crash); Ray: "
               "ray.exceptions.ActorDiedError: The actor died unexpectedly"),
        (died + raised, "ValueError: width 3"),
        (died + raised + again, "ValueError: width 3"),
        (raised.replace("# 2", "# 1") + died.replace("# 1", "# 2"), "its process ended under it"),
    ]:  # fmt: skip
        error_file.write_text(text)
        assert failure_reason(SimpleNamespace(error_file=str(error_file))).startswith(reason), text  # type: ignore[arg-type]


def test_a_trial_whose_node_left_is_told_by_the_exception_ray_pickled(tmp_path: Path) -> None:
    """Ray pickles a trial's last exception beside its error file: an actor unavailable (its node gone, its calls
    cut) is the process ending under the trial, which --retries runs again; its text was not known to the check of
    the error file's words, and the trial's own error (--retries does not run it again) was assumed. An actor whose
    start failed (its own __init__) is the trial's own error."""
    from ray import cloudpickle
    from ray.exceptions import ActorUnavailableError, RayActorError

    for error, lost in [
        (ActorUnavailableError("RpcError: Socket closed", None), True),
        (RayActorError("ffff", "The actor died because of an error raised in its creation task", True), False),
    ]:
        said = f"ray.exceptions.{type(error).__name__}: as another release of Ray words it"  # the pickle decides
        (tmp_path / "error.txt").write_text(f"Failure # 1 (occurred at 2026-12-07_09-00-00)\n{said}\n")
        (tmp_path / "error.pkl").write_bytes(cloudpickle.dumps(error))
        trial = SimpleNamespace(error_file=str(tmp_path / "error.txt"), pickled_error_file=str(tmp_path / "error.pkl"))
        reason = failure_reason(trial)  # type: ignore[arg-type]
        assert reason.startswith("its process ended under it (") == lost and reason.endswith(said), reason


def test_a_resume_runs_a_trial_marked_to_fail_again_at_once_as_any_other(tmp_path: Path) -> None:
    """A trial that failed on its own error is marked to fail again at once on the run Ray gives it (--retries); a
    driver stopped before that run leaves the mark in Ray's saved state, and the --resume that follows the user's
    fix failed it at once with the old error (and counted it for the systematic-failure stop). And each run grants
    its trials its --retries once (a resume may change it): Ray's saved state holds the one each began with, and
    made the trials new in a resumed stage with it too."""
    writer = ResultsWriter(
        tmp_path, space="unet", stage="main", metric="val_iou", mode="max", max_epochs=4, run_values={}, retries=2
    )
    writer.setup()
    marked = Trial("train_trial", config={"lr": 0.1, FAILED_KEY: "ValueError: width 3"}, stub=True)
    marked.run_metadata.num_failures, marked.max_failures = 1, 1
    pending, ended, new = (Trial("train_trial", config={"lr": 0.2}, stub=True, max_failures=0) for _ in range(3))
    pending.run_metadata.num_failures, ended.status = 1, Trial.TERMINATED
    writer.on_step_begin(0, [marked, pending, ended])
    assert marked.config == {"lr": 0.1} and marked.max_failures == 3
    assert (pending.max_failures, ended.max_failures) == (3, 0)  # 2 more than it has had; an ended one's kept
    for _ in range(2):  # once a run: a trial that starts again after a failure has what is left of it
        writer.on_trial_start(0, [new], new)
        new.run_metadata.num_failures += 1
    assert new.max_failures == 2


class _TrialIn(Trial):
    """A Ray trial whose folder is `folder` (a real one's is its Ray session's)."""

    def __init__(self, folder: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder

    @property
    def local_path(self) -> str:
        return str(self.folder)

    @property
    def path(self) -> str:
        return str(self.folder)


def test_the_last_failure_of_a_trial_whose_process_ended_says_its_retries_are_used_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --retries, a trial whose process ended under it once more than they allow fails for good: its line says
    so (it ran again each time before); without, and for a trial's own error, nothing is said of them."""
    for retries, error, used in (
        (2, "ray.exceptions.RayActorError: The actor died unexpectedly before finishing this task.", True),
        (0, "ray.exceptions.RayActorError: The actor died unexpectedly before finishing this task.", False),
        (2, "ValueError: width 3", False),
    ):
        writer = _writer_of(tmp_path, retries=retries)
        trial = _TrialIn(tmp_path, "train_trial", config={"lr": 0.1}, stub=True)
        (tmp_path / "error.txt").write_text(f"Failure # 3 (occurred at now)\nTraceback\n{error}\n")
        trial.run_metadata.error_filename = "error.txt"  # type: ignore[assignment]  # (Ray types it None)
        writer.on_trial_error(0, [trial], trial)
        line = capsys.readouterr().err
        assert line.startswith(f"trial {trial.trial_id} failed: ") and line.endswith(f"{tmp_path / 'error.txt'})\n")
        assert ("; --retries 2 used up (traceback: " in line) == used, line


def test_a_trial_run_again_after_its_process_ended_counts_its_restarts(tmp_path: Path) -> None:
    """Each run again is counted in its row, also where the row came from a study before the column (NaN there)."""
    writer = _writer_of(tmp_path)
    trial = _TrialIn(tmp_path, "train_trial", config={"lr": 0.1}, stub=True)
    (tmp_path / "error.txt").write_text("Traceback\nray.exceptions.RayActorError: The actor died unexpectedly.\n")
    trial.run_metadata.error_filename = "error.txt"  # type: ignore[assignment]  # (Ray types it None)
    writer.on_trial_start(0, [trial], trial)
    writer._row(trial)[RESTARTS] = math.nan  # as read back from an older study's results
    for _ in range(2):
        writer.on_trial_recover(0, [trial], trial)
    trials, _ = read_results(tmp_path / "results")
    assert trials[RESTARTS].tolist() == [2]


def test_a_trial_launched_again_by_a_resume_before_its_first_epoch_counts_its_setup_from_then(tmp_path: Path) -> None:
    """A driver stopped as a trial launched; the resume 40 s later launched it again: the report counted the 40 s
    between the runs as the trial's setup (its process, data and model). A trial with epochs keeps its launch."""
    first = _writer_of(tmp_path)
    trial, began = Trial("train_trial", config={"lr": 0.1}, stub=True), Trial("train_trial", config={}, stub=True)
    for one in (trial, began):
        first.on_step_begin(0, [trial, began])
        first.on_trial_start(0, [trial, began], one)
    first.on_trial_result(0, [began], began, {TRAINING_ITERATION: 1, "val_iou": 0.1})
    first.on_experiment_end([trial, began])
    before = read_results(tmp_path / "results")[0].set_index("trial_id")["started_at"]
    time.sleep(0.01)
    second = _writer_of(tmp_path)  # the resume's
    second.on_step_begin(0, [trial, began])
    for one in (trial, began):
        second.on_trial_start(0, [trial, began], one)
    after = read_results(tmp_path / "results")[0].set_index("trial_id")["started_at"]
    assert after[trial.trial_id] > before[trial.trial_id] and after[began.trial_id] == before[began.trial_id]


def _writer_of(tmp_path: Path, retries: int = 0) -> ResultsWriter:
    """A unet stage's writer, set up (what an earlier run wrote, read back)."""
    writer = ResultsWriter(
        tmp_path / "results", space="unet", stage="main", metric="val_iou", mode="max", max_epochs=4, run_values={},
        retries=retries,
    )  # fmt: skip
    writer.setup()
    return writer
