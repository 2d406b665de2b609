"""Ray Tune's MLflow callback as a study uses it (--mlflow URI, stages.trackers): one run a trial across resumes.
Imported only by a study with --mlflow: importing Ray's callback imports MLflow (0.7 s of every study's start)."""

from __future__ import annotations

from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

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
