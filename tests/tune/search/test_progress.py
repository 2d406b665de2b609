"""The lines a stage prints as it runs (in place of Ray's tables), driven with Ray's own Trial objects and the real
results writer, whose rows they read."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from ray import tune
from ray.tune.experiment import Trial

from tune.search.deadline import Deadline
from tune.search.keys import TRAINING_ITERATION
from tune.search.progress import Progress, as_resumed
from tune.search.results import ResultsWriter


def test_each_trial_s_end_is_one_line_with_the_stage_s_count_and_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tune.search.progress.LOOK_S", 0.0)  # the deadline read at each step (once a second)
    deadline = Deadline(tmp_path)
    writer = ResultsWriter(
        tmp_path / "results", space="unet", stage="main", metric="val_iou", mode="max", max_epochs=4, run_values={},
        deadline=deadline,
    )  # fmt: skip
    writer.setup()
    progress = Progress(writer, samples=5, deadline=deadline, quiet_s=0)
    trials = [Trial("train_trial", config={"lr": 0.1}, stub=True) for _ in range(3)]
    progress.on_step_begin(0, trials)
    progress.on_step_begin(1, trials)  # (said once)
    assert capsys.readouterr().out == "stage main: 3 trial(s) starting; 0 of 5 trials ended, 0 running\n"

    def run(trial: Trial, values: list[float]) -> None:
        writer.on_trial_start(0, trials, trial)
        trial.set_status(Trial.RUNNING)
        for epoch, value in enumerate(values, start=1):
            result = {TRAINING_ITERATION: epoch, "val_iou": value}
            trial.update_last_result(result)
            writer.on_trial_result(0, trials, trial, result)

    def end(trial: Trial) -> None:
        writer.on_trial_complete(0, trials, trial)
        trial.set_status(Trial.TERMINATED)
        progress.on_trial_complete(0, trials, trial)

    first, second, third = trials
    run(first, [0.2, 0.51234, 0.4, 0.45])
    run(second, [0.003456])
    run(third, [0.1, 0.2])
    end(first)
    end(second)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"stage main: trial {first.trial_id} completed after 4 epoch(s), val_iou 0.5123 at epoch 2; best so far "
        f"0.5123 ({first.trial_id}); 1 of 5 trials ended (1 completed), 2 running",
        f"stage main: trial {second.trial_id} stopped by ASHA after 1 epoch(s), val_iou 0.003456 at epoch 1; best so "
        f"far 0.5123 ({first.trial_id}); 2 of 5 trials ended (1 completed, 1 stopped), 1 running",
    ]
    progress.on_step_end(0, trials)  # quiet for long enough (0 s here): the trials running and their epochs
    assert capsys.readouterr().out.startswith(
        f"stage main: 2 of 5 trials ended (1 completed, 1 stopped), 1 running: {third.trial_id} epoch 2/4; "
    )
    deadline.set(0.0)  # passed: said once; a trial ended now was cut by the time budget, whose line says none is left
    progress.on_step_end(0, trials)
    progress.on_step_end(0, trials)
    passed, *quiet = capsys.readouterr().out.splitlines()
    assert passed == (
        "stage main: the time budget's deadline passed: no trial starts, the 1 running stop at the end of their epoch"
    )
    assert len(quiet) == 2 and quiet[0].endswith(
        " since the stage began in this run; the stage's deadline in 0s"
    )  # (quiet: 0 s)
    assert not any("deadline passed" in line for line in quiet)
    end(third)
    assert f"trial {third.trial_id} cut at the deadline after 2 epoch(s)" in capsys.readouterr().out


def _writer(tmp_path: Path) -> ResultsWriter:
    writer = ResultsWriter(
        tmp_path / "results", space="unet", stage="main", metric="val_iou", mode="max", max_epochs=4, run_values={}
    )
    writer.setup()
    return writer


def test_an_error_in_the_lines_is_one_warning_and_fails_no_trial(tmp_path: Path) -> None:
    """Ray calls callbacks unguarded: an error in a line (here a closed stdout) would turn the trial that ended into
    a failed one, or end the stage."""
    progress = Progress(_writer(tmp_path), samples=2)
    trial = Trial("train_trial", config={"lr": 0.1}, stub=True)
    progress.writer.on_trial_start(0, [trial], trial)
    with pytest.MonkeyPatch.context() as patch, pytest.warns(UserWarning) as warned:
        patch.setattr("sys.stdout", io.StringIO())
        sys.stdout.close()
        progress.on_step_begin(0, [trial])
        progress.on_trial_complete(0, [trial], trial)
    said = [str(w.message) for w in warned if "progress lines stop" in str(w.message)]
    assert len(said) == 1 and "ValueError" in said[0], said  # warned once, not at each line


def test_a_stage_begun_before_the_lines_takes_them_at_its_resume(tmp_path: Path) -> None:
    """A stage's saved state holds its callbacks and Ray's verbose as it began: one begun before these lines was
    resumed with Ray's tables (its older engine's status table every 5 s) and no lines. Ray keeps the RunConfig a
    Tuner runs with in its TunerInternal, restored or not: this fails where a Ray release moves it."""
    writer = _writer(tmp_path)
    run_config = tune.RunConfig(name="main", storage_path=str(tmp_path), callbacks=[writer], verbose=1)
    tuner = tune.Tuner(lambda config: None, run_config=run_config)
    for _ in range(2):  # (once)
        as_resumed(tuner, 5, None, retries=2)
    used = tuner._local_tuner.get_run_config()  # type: ignore[union-attr]
    assert used.verbose == 0 and [type(c) for c in used.callbacks or []] == [ResultsWriter, Progress]
    assert (
        used.failure_config is not None and used.failure_config.max_failures == 2 and writer.retries == 2
    )  # a resume's --retries


def test_a_trial_a_resume_goes_on_with_is_said_with_the_epoch_of_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ray's worker said it in its own words ("(train_trial pid=...) Restored on IP from checkpoint: ..."), a stop as
    trials restored leaving that line after the stop's; a trial that --retries runs again is said by the writer."""
    from ray.train._internal.session import _TrainingResult

    writer = ResultsWriter(
        tmp_path / "results", space="unet", stage="main", metric="val_iou", mode="max", max_epochs=4, run_values={}
    )
    writer.setup()
    progress = Progress(writer, samples=3)
    fresh, restored, retried = (Trial("train_trial", config={"lr": 0.1}, stub=True) for _ in range(3))
    (tmp_path / "checkpoint").mkdir()
    for trial in (restored, retried):
        checkpoint = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint"))
        manager = trial.run_metadata.checkpoint_manager  # as Ray restores it from the stage's state
        assert manager is not None
        manager.register_checkpoint(_TrainingResult(checkpoint, {TRAINING_ITERATION: 2, "val_iou": 0.3}))
    progress.on_trial_recover(0, [], retried)
    for trial in (fresh, restored, retried):
        progress.on_trial_start(0, [], trial)
    assert capsys.readouterr().out == f"stage main: trial {restored.trial_id} goes on from its checkpoint of epoch 2\n"
