"""Ray Tune's own logger callbacks, as a study sets them up: TensorBoard event files in every trial's folder
(`tensorboard --logdir OUT/NAME`), and with --mlflow URI each trial as an MLflow run (the study's name is the
MLflow experiment, each run tagged with the space, the stage and the study), one run a trial across resumes."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback

from tune.search.spaces import Stage
from tune.search.study import Study

STAGE_TAG = "segtune.stage"


class ResumingMLflowLogger(MLflowLoggerCallback):
    """Ray's MLflow callback, whose trials resumed by --resume (after Ctrl-C, SIGTERM, kill -9) log on to the runs they
    began: Ray's started a second run for each (its map of trials to runs starts empty at each setup), leaving the
    first RUNNING for ever and the trial's curve in two halves."""

    def log_trial_start(self, trial: Any) -> None:
        if trial not in self._trial_runs:
            from mlflow.tracking import MlflowClient

            stage = (self.tags or {}).get(STAGE_TAG)  # (trial ids are a stage's own)
            where = f"tags.trial_name = '{trial}'" + (f" and tags.`{STAGE_TAG}` = '{stage}'" if stage else "")
            found = MlflowClient(self.tracking_uri).search_runs(
                [self.mlflow_util.experiment_id], filter_string=where, max_results=1
            )
            if found:
                self._trial_runs[trial] = found[0].info.run_id
        super().log_trial_start(trial)


def trackers(study: Study, stage: Stage) -> list[tune.Callback]:
    """The stage's logger callbacks: TensorBoard's, and MLflow's with --mlflow."""
    from ray.tune.logger import TBXLoggerCallback

    found: list[tune.Callback] = [TBXLoggerCallback()]
    if study.cfg.mlflow:
        tags = {"segtune.space": study.space.name, STAGE_TAG: stage.name, "segtune.study": str(study.cfg.name)}
        found.append(ResumingMLflowLogger(tracking_uri=study.cfg.mlflow, experiment_name=study.cfg.name, tags=tags))
    return found
