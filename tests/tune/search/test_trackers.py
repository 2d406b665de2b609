"""The trackers a study logs to: Ray's MLflow callback, with real MLflow (a file store, as --mlflow FOLDER makes) and Ray's own Trial objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial

from tune.search.keys import TRAINING_ITERATION
from tune.search.trackers import ResumingMLflowLogger

ROOT = Path(__file__).resolve().parents[3]


def test_a_resumed_trial_logs_on_to_its_mlflow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial running as the driver stopped (Ctrl-C: its run never ended) and resumed by --resume logs on to the run
    it began: Ray's callback began a second one, the first left RUNNING for ever. Another stage's trial of the same
    id has a run of its own."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as a study sets it for --mlflow FOLDER (reach.py)
    uri = (tmp_path / "mlruns").as_uri()

    def logger(stage: str) -> ResumingMLflowLogger:
        made = ResumingMLflowLogger(tracking_uri=uri, experiment_name="s", tags={"segtune.stage": stage})
        made.setup()
        return made

    first = logger("main")
    trial = Trial("train_trial", config={"lr": 0.1}, stub=True)
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, {TRAINING_ITERATION: 1, "val_iou": 0.1})
    resumed = Trial("train_trial", config={"lr": 0.1}, stub=True, trial_id=trial.trial_id)  # as Ray restores it
    again = logger("main")
    again.log_trial_start(resumed)
    again.log_trial_result(2, resumed, {TRAINING_ITERATION: 2, "val_iou": 0.2})
    again.log_trial_end(resumed)
    later = logger("fine")
    later.log_trial_start(Trial("train_trial", config={"lr": 0.2}, stub=True, trial_id=trial.trial_id))
    client = MlflowClient(uri)
    runs = client.search_runs([again.mlflow_util.experiment_id], order_by=["attributes.start_time"])
    assert [(run.data.tags["segtune.stage"], run.info.status) for run in runs] == [
        ("main", "FINISHED"),
        ("fine", "RUNNING"),
    ]
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_iou")] == [1, 2]


def test_a_study_without_mlflow_does_not_import_it() -> None:
    """Ray's MLflow callback imports MLflow: 0.7 s of every study's start, where imported with the stages."""
    code = "import sys, tune.search.cli, tune.search.stages; print('mlflow' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False", ran.stderr[-2000:]
