"""What a stage prints as it runs, in place of Ray's tables (a configuration table at each trial's start and a result
table at each end: 1,200 lines for 24 trials): a line as a run's first trials start, a line at each trial's end with the
stage's count and best so far, and, where a minute went by without a line, one naming the trials running and their
epochs (and the time to the stage's deadline), and one as that deadline passes. A trial's failure is the results
writer's line; Ray's dashboard shows the rest."""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
from ray.tune import Callback, FailureConfig
from ray.tune.experiment import Trial

from reports.schema import BEST_EPOCH, BEST_METRIC, EPOCHS, STATUS, TRIAL_ID, Status, duration, is_missing, ranked
from tune.search.deadline import Deadline
from tune.search.keys import TRAINING_ITERATION
from tune.search.results import ResultsWriter

SHOWN = 4  # running trials named in the minute's line
LOOK_S = 1.0  # how often the stage's deadline is read (a file; Ray's steps come many times a second)
ENDED_HOW = {
    Status.COMPLETED: str(Status.COMPLETED),
    Status.STOPPED: "stopped by ASHA",
    Status.CUT: "cut at the deadline",
}


def _contained(hook: Callable[..., None]) -> Callable[..., None]:
    """A hook whose error is a warning, once: Ray calls callbacks unguarded, and an error here (a closed pipe) would
    fail the trial that ended, or end the stage, for lines."""

    @functools.wraps(hook)
    def guarded(self: Progress, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except Exception as err:
            if not self._failed:
                self._failed = True
                warnings.warn(f"the stage's progress lines stop: {type(err).__name__}: {err}", stacklevel=2)

    return guarded


def as_resumed(tuner: Any, samples: int, deadline: Deadline | None, retries: int) -> Any:
    """A restored Tuner, set as this run asks: a stage begun before these lines gets Ray's tables off (its older
    engine printed its status table every 5 s at the verbose it was begun with) and the lines on, after its results
    writer; and the resume's --retries, for the trials to come (Ray's saved RunConfig holds the one the stage began
    with) and the results writer (which gives it to each trial of the run, failures.grant_retries). Ray keeps the
    restored RunConfig in its private TunerInternal (Ray 2.60): a Ray without it is left as it is."""
    run_config = getattr(getattr(tuner, "_local_tuner", None), "_run_config", None)
    if run_config is None:
        return tuner
    run_config.verbose = 0
    run_config.failure_config = FailureConfig(max_failures=retries)
    callbacks = run_config.callbacks = list(run_config.callbacks or [])
    writer = next((c for c in callbacks if isinstance(c, ResultsWriter)), None)
    if writer is not None:
        writer.retries = retries
        if not any(isinstance(c, Progress) for c in callbacks):
            callbacks.append(Progress(writer, samples, deadline))
    return tuner


class Progress(Callback):
    """Reads the stage's rows as the results writer (a callback before it) keeps them: the counts and the best are
    the stage's, of this run and the earlier ones."""

    def __init__(
        self, writer: ResultsWriter, samples: int, deadline: Deadline | None = None, quiet_s: float = 60.0
    ) -> None:
        self.writer, self.samples, self.deadline, self.quiet_s = writer, samples, deadline, quiet_s
        self.setup()

    def setup(self, *args: Any, **info: Any) -> None:
        """Each run's (Ray restores this callback from the stage's saved state at a resume)."""
        self._began = self._said = time.monotonic()
        self._starting = self._passed = self._failed = False
        self._looked = -math.inf  # when the deadline was last read
        self._recovered: set[str] = set()  # the trials --retries ran again in this run

    def _say(self, line: str) -> None:
        print(f"stage {self.writer.stage}: {line}", flush=True)
        self._said = time.monotonic()

    @_contained
    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        pending = sum(t.status == Trial.PENDING for t in trials)
        if pending and not self._starting:
            self._starting = True
            self._say(f"{pending} trial(s) starting; {self._counts()}")

    @_contained
    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        running = [t for t in trials if t.status == Trial.RUNNING]
        if not self._passed and self.deadline is not None and time.monotonic() - self._looked >= LOOK_S:
            self._looked = time.monotonic()
            self._passed = self.deadline.passed()
            if self._passed:
                ending = f"the {len(running)} running stop at the end of their epoch"
                self._say(f"the time budget's deadline passed: no trial starts, {ending}")
        if not running or time.monotonic() - self._said < self.quiet_s:
            return
        named = ", ".join(
            f"{t.trial_id} epoch {(t.last_result or {}).get(TRAINING_ITERATION, 0)}/{self.writer.max_epochs}"
            for t in running[:SHOWN]
        )
        more = f" and {len(running) - SHOWN} more" if len(running) > SHOWN else ""
        at = self.deadline.at() if self.deadline is not None else None  # the stage's (its share of the time budget)
        left = f"; the stage's deadline in {duration(max(0.0, at - time.time()))}" if at is not None else ""
        spent = duration(time.monotonic() - self._began)
        self._say(f"{self._counts()}: {named}{more}; {spent} since the stage began in this run{left}")

    @_contained
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """A trial a resume goes on with, from its last checkpoint (Ray's worker said it in its own words, after the
        stop's line where the stop came as the trial restored; that line is filtered, ray_env.filter_ray_noise). One
        --retries runs again is said by the results writer."""
        restored = trial.latest_checkpoint_result
        if restored is not None and trial.trial_id not in self._recovered:
            epoch = (restored.metrics or {}).get(TRAINING_ITERATION, "?")
            self._say(f"trial {trial.trial_id} goes on from its checkpoint of epoch {epoch}")

    @_contained
    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._recovered.add(trial.trial_id)

    @_contained
    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        row = self.writer.rows.get(trial.trial_id)
        if row is None:
            return
        how = ENDED_HOW.get(row[STATUS], str(row[STATUS]))
        value = "" if is_missing(row[BEST_METRIC]) else f", {self.writer.metric} {row[BEST_METRIC]:.4g}"
        at = "" if is_missing(row[BEST_EPOCH]) else f" at epoch {int(row[BEST_EPOCH])}"
        rows = self._rows()
        line = f"trial {trial.trial_id} {how} after {int(row[EPOCHS] or 0)} epoch(s){value}{at}{self._best(rows)}"
        self._say(f"{line}; {self._counts(rows)}")

    def _rows(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.writer.rows.values()))

    def _best(self, rows: pd.DataFrame) -> str:
        finished = ranked(rows, self.writer.stage, statuses=tuple(ENDED_HOW))
        if not len(finished):
            return ""
        best = finished.iloc[0]
        return f"; best so far {best[BEST_METRIC]:.4g} ({best[TRIAL_ID]})"

    def _counts(self, rows: pd.DataFrame | None = None) -> str:
        """'5 of 24 trials ended (3 completed, 1 stopped, 1 failed), 2 running', trials of earlier runs among them."""
        rows = self._rows() if rows is None else rows
        statuses = list(rows[STATUS]) if len(rows) else []
        running = statuses.count(Status.RUNNING)
        how = ", ".join(f"{statuses.count(s)} {s}" for s in (*ENDED_HOW, Status.FAILED) if s in statuses)
        ended = len(statuses) - running
        return f"{ended} of {self.samples} trials ended{f' ({how})' if how else ''}, {running} running"
