"""A stage whose first trials all fail with the same error stops at once, instead of running every trial of
it into that error (a GPU run once failed 32 trials in a row on one bad call, for 2 minutes, then ended with
"no trial succeeded").

`SystematicFailure`, a Ray Tune callback, watches the stage's trials: when its first `first` failures share
one error (its exception type and message, the trial's own details stripped: paths, ids, numbers) before any
trial of this run has reported a result, it writes STAGE/systematic_failure.json and stops the experiment as
Ctrl-C does (run_stage then tells why). One configuration running out of memory while others train is
recorded as failed and the stage goes on: some trial has reported. --resume after the fix judges afresh.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from data.files import atomic_write
from tune.search.failures import error_file, error_signature, failure_reason

SYSTEMATIC_FILE = "systematic_failure.json"  # in a stage's folder, while its stop is pending or being told
FIRST_FAILURES = 3  # how many failures, at the least, make an error systematic


class SystematicFailure(tune.Callback):
    """Decides that a stage's trials fail systematically (see the module's docstring)."""

    def __init__(self, stage_dir: Path, first: int) -> None:
        self.path = Path(stage_dir) / SYSTEMATIC_FILE
        self.first = first
        self._failures: list[dict[str, str]] = []
        self._reported = False

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        """Each run of the stage (a resume too) judges its own trials."""
        self._failures, self._reported = [], False

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        self._reported = True

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self._reported or len(self._failures) >= self.first:
            return
        reason = failure_reason(trial)
        self._failures.append(
            {
                "trial": trial.trial_id,
                "error": reason,
                "signature": error_signature(reason),
                "file": error_file(trial),
            }
        )
        if len(self._failures) == self.first and len({f["signature"] for f in self._failures}) == 1:
            with atomic_write(self.path) as tmp:
                tmp.write_text(json.dumps(self._failures, indent=2))
            # Stop as Ctrl-C does (Ray's SIGINT handler): the experiment's state is saved, trials still running
            # are resumed by --resume, where Ray's stop-all would end them for good.
            signal.raise_signal(signal.SIGINT)


def systematic_failure(stage_dir: Path) -> list[dict[str, str]] | None:
    """The failures that stopped a stage, if SystematicFailure stopped it."""
    path = Path(stage_dir) / SYSTEMATIC_FILE
    return json.loads(path.read_text()) if path.exists() else None


def first_failures(samples: int, concurrent: int) -> int:
    """How many first failures with one error stop a stage: at least FIRST_FAILURES, and all the trials that
    start together, so that one bad configuration among the first wave cannot stop it alone."""
    return min(samples, max(FIRST_FAILURES, concurrent))
