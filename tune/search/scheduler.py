"""ASHA that survives a resume: Ray pickles the scheduler into tuner.pkl when the Tuner is built and restores
that empty copy (ray#30838), so a resumed study would compare later trials against no one. This subclass
rebuilds its rungs from the recorded results (epochs.parquet holds every trial's metric at every epoch)
before it sees the first trial after a start or a restore, so a resumed study stops exactly the trials an
uninterrupted one would, given the same results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from reports.schema import EPOCH, STAGE, TRIAL_ID, read_results


class ResumableASHA(ASHAScheduler):
    """ASHAScheduler(metric, mode, max_t, grace_period, reduction_factor) whose rungs are rebuilt from the
    results in `results_dir` of stage `stage` on its first trial after being built or unpickled."""

    def __init__(self, *, results_dir: str | Path, stage: str, **asha: Any) -> None:
        super().__init__(**asha)
        self.results_dir = str(results_dir)
        self.stage = stage
        self._rebuilt = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rebuilt = False  # unpickled by a restore: what it holds may predate the last results

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if not self._rebuilt:
            self.rebuild_rungs()
        super().on_trial_add(tune_controller, trial)

    def rebuild_rungs(self) -> int:
        """Record every trial's metric at every rung it reached, from epochs.parquet; returns how many
        values were recorded. Values already held are replaced by the recorded ones (the same numbers)."""
        self._rebuilt = True
        _, epochs = read_results(Path(self.results_dir))
        if not len(epochs) or self._metric not in epochs:
            return 0
        sign = self._metric_op or 1.0  # +1 for max, -1 for min (set with the mode)
        mine = epochs[epochs[STAGE] == self.stage].dropna(subset=[self._metric])
        at = {(row[TRIAL_ID], int(row[EPOCH])): float(row[self._metric]) for row in mine.to_dict("records")}
        count = 0
        for bracket in self._brackets:
            for milestone, recorded in bracket._rungs:
                for (trial_id, epoch), value in at.items():
                    if epoch == milestone:
                        recorded[trial_id] = sign * value
                        count += 1
        return count
