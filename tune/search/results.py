"""Study results as Parquet, written while the study runs by a Ray Tune callback.

OUT/NAME/results/trials.parquet holds one row per trial (all stages), epochs.parquet one row per trial per epoch;
their columns are named in reports.schema, which the report reads them with. Each write goes to a temporary file
renamed over the old one, so a crash leaves readable files holding everything finished so far; a resumed study
reads them back and updates rows in place, so every trial appears exactly once.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray.train.constants import CHECKPOINT_DIR_NAME
from ray.tune import Callback
from ray.tune.experiment import Trial

from data.files import atomic_write
from reports.schema import (
    BEST_EPOCH,
    BEST_METRIC,
    CHECKPOINT,
    CONFIG_PREFIX,
    CPUS,
    EPOCH,
    EPOCHS,
    EPOCHS_FILE,
    FAILURE,
    GPU_HOURS,
    GPUS,
    LAST_METRIC,
    MAX_EPOCHS,
    METRIC,
    MODE,
    NODE_ID,
    PARENT_TRIAL,
    RESTARTS,
    SPACE,
    STAGE,
    STARTED_AT,
    STATUS,
    TRIAL_ID,
    TRIAL_NUMBER,
    TRIALS_FILE,
    WALL_TIME_S,
    Status,
    config_column,
    is_missing,
    is_number,
    read_results,
)
from tune.search.columns import consistent_columns, integer_columns, plain_number
from tune.search.deadline import Deadline
from tune.search.failures import ENDED_UNDER_IT, error_file, failure_reason, grant_retries
from tune.search.keys import CHECKPOINT_NAME, FAILED_KEY, PARENT_KEY, TRAINING_ITERATION

LOST = "lost: the driver stopped before Ray saved this trial in its experiment state, so it was not resumed"
_TEXT = (TRIAL_ID, SPACE, STAGE, STATUS, FAILURE, METRIC, MODE, CHECKPOINT, PARENT_TRIAL, NODE_ID)
_RESULT_KEYS_KEPT = (NODE_ID,)  # non-numeric result entries copied into the trial row


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one. Text columns are typed as text
    where no row holds one yet (Parquet's null type otherwise: a reader of several studies' files had to unify it)."""
    with atomic_write(path) as tmp:
        frame.astype({column: "str" for column in _TEXT if column in frame}).to_parquet(tmp, index=False)


class ResultsWriter(Callback):
    """A Ray Tune callback that keeps trials.parquet and epochs.parquet up to date for one stage."""

    def __init__(
        self,
        folder: Path,
        *,
        space: str,
        stage: str,
        metric: str,
        mode: str,
        max_epochs: int,
        run_values: dict[str, int],
        deadline: Deadline | None = None,
        retries: int = 0,
        min_interval_s: float = 2.0,
    ) -> None:
        self.folder = Path(folder)
        self.retries = retries  # --retries (Ray's FailureConfig.max_failures)
        self.space, self.stage, self.metric, self.mode = space, stage, metric, mode
        self.max_epochs = max_epochs
        self.run_values = run_values  # the budget's training values of the stage's trials (StageJob.run_values)
        self.deadline = deadline
        self.min_interval_s = min_interval_s
        self._trials: dict[str, dict[str, Any]] = {}
        self._epochs: dict[tuple[str, int], dict[str, Any]] = {}
        self._others = pd.DataFrame()  # rows of other stages, kept as they are
        self._other_epochs = pd.DataFrame()
        self._last_write = 0.0
        self._reconciled = False
        self._launched: dict[str, pd.Timestamp] = {}  # trial id -> when this run's driver first saw it
        self._granted: set[str] = set()  # the trials given this run's --retries (grant_retries)

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        """This stage's trial rows by trial id, as last updated (progress.Progress reads them)."""
        return self._trials

    # -- Ray's hooks

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        """Read back what an earlier (crashed) run of this study wrote."""
        self._launched = {}  # also for a writer unpickled from a study made before it had one
        self._granted = set()  # (each run's)
        # a writer unpickled from a study made before the budget's values left the trials' config, which holds them
        self.run_values = getattr(self, "run_values", {})
        self.folder.mkdir(parents=True, exist_ok=True)
        trials, epochs = read_results(self.folder)
        if len(trials):
            mine = trials[STAGE] == self.stage
            self._others = integer_columns(trials[~mine])  # read once: beside this stage's rows at each write
            self._trials = {
                str(row[TRIAL_ID]): {str(k): v for k, v in row.items()} for row in trials[mine].to_dict("records")
            }
        if len(epochs):
            mine = epochs[STAGE] == self.stage
            self._other_epochs = epochs[~mine]
            self._epochs = {
                (str(r[TRIAL_ID]), int(r[EPOCH])): {str(k): v for k, v in r.items()}
                for r in epochs[mine].to_dict("records")
            }

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Notes when each trial was launched (Ray calls on_trial_start once its process is up: seconds later,
        a time the resource-use section counts as the trial's setup). Once per (re)start: a row left 'running'
        by a killed driver whose trial Ray's saved state does not hold will never be resumed; say so instead
        of leaving it running forever. And a trial marked to fail again at once after its own error is unmarked,
        with --retries runs again: the resume follows a fix; the other unfinished ones take a --retries the resume
        changed."""
        for trial in trials:
            self._launched.setdefault(trial.trial_id, pd.Timestamp.now(tz="UTC"))
        if self._reconciled:
            return
        self._reconciled = True
        # the trials this run goes on with, before any starts (a mark is in the config a trial is given)
        grant_retries([t for t in trials if t.status == Trial.PENDING], getattr(self, "retries", 0), self._granted)
        known = {t.trial_id for t in trials}
        lost = [
            row for trial_id, row in self._trials.items() if row[STATUS] == Status.RUNNING and trial_id not in known
        ]
        for row in lost:
            row[STATUS] = Status.FAILED
            row[FAILURE] = LOST
        if lost:
            self._write()

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        # a trial new in this run: a restored stage's new ones were made with the --retries the stage began with
        grant_retries([trial], getattr(self, "retries", 0), self._granted)
        row = self._row(trial)
        row[STATUS] = Status.RUNNING
        if not row.get(EPOCHS):  # launched again by a resume before its first epoch: its setup is this run's, not
            row[STARTED_AT] = self._launched.get(trial.trial_id, row[STARTED_AT])  # the time between the runs
        self._write()

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        epoch = int(result.get(TRAINING_ITERATION, 0))
        row = self._row(trial)
        if epoch <= (row.get(EPOCHS) or 0):  # an epoch again: restored from an earlier checkpoint than its last
            self._rewind(trial.trial_id, row, epoch)  # result's (a stop before Ray saved that one, a kill -9)
        numeric = {k: plain_number(v) for k, v in result.items() if is_number(v) and not k.startswith(CONFIG_PREFIX)}
        # the trial wrote this epoch's checkpoint before it reported: named now, as a stop (Ctrl-C, SIGTERM) before
        # Ray's on_checkpoint would leave the epoch without its checkpoint
        folder, trial_dir = result.get(CHECKPOINT_DIR_NAME), trial.path if trial.storage else None
        saved = str(Path(trial_dir) / str(folder) / CHECKPOINT_NAME) if folder and trial_dir else None
        self._epochs[(trial.trial_id, epoch)] = {
            TRIAL_ID: trial.trial_id,
            SPACE: self.space,
            STAGE: self.stage,
            **numeric,
            EPOCH: epoch,  # a whole number, not the float of the trial's own "epoch" metric
            CHECKPOINT: saved,
        }
        value = result.get(self.metric)
        if is_number(value):
            row[LAST_METRIC] = float(value)
            if self._better(float(value), row.get(BEST_METRIC)):
                row[BEST_METRIC], row[BEST_EPOCH] = float(value), epoch
                if saved is not None:
                    row[CHECKPOINT] = saved
        row[EPOCHS] = epoch
        row[WALL_TIME_S] = float(result.get("time_total_s", row.get(WALL_TIME_S) or 0.0))
        row[GPU_HOURS] = row[WALL_TIME_S] * row[GPUS] / 3600
        for key in _RESULT_KEYS_KEPT:
            if key in result:
                row[key] = str(result[key])
        self._write(throttle=True)

    def _better(self, value: float, best: Any) -> bool:
        """Whether `value` is the trial's best so far: ties go to the later epoch, as in Ray's checkpoint manager,
        so that the checkpoint named is the one it keeps."""
        return best is None or math.isnan(best) or (value >= best if self.mode == "max" else value <= best)

    def _rewind(self, trial_id: str, row: dict[str, Any], epoch: int) -> None:
        """A trial restored from the checkpoint before `epoch`: its epochs from `epoch` on ran in a run that was
        lost (Ray deletes their checkpoints, or the new run's overwrite them), so they are forgotten, and its best
        is the best of those before, with that epoch's checkpoint (where an earlier version recorded none: the
        one named so far)."""
        for key in [k for k in self._epochs if k[0] == trial_id and k[1] >= epoch]:
            del self._epochs[key]
        row[BEST_METRIC], row[BEST_EPOCH] = math.nan, None
        for before in sorted(e for t, e in self._epochs if t == trial_id):
            earlier = self._epochs[(trial_id, before)]
            value = earlier.get(self.metric)
            if is_number(value) and self._better(float(value), row[BEST_METRIC]):
                row[BEST_METRIC], row[BEST_EPOCH] = float(value), before
                if not is_missing(earlier.get(CHECKPOINT)):
                    row[CHECKPOINT] = earlier[CHECKPOINT]

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: Any, **info: Any) -> None:
        """Written at once, whatever the throttle: Ray calls this before it records the checkpoint in its experiment
        state, from which a resume after kill -9 goes on with the epoch after it; a row still held here would be lost
        (seen: a trial resumed from its epoch 2 had epochs 1, 3 and 4 in the results)."""
        row = self._row(trial)
        if row.get(BEST_EPOCH) == row.get(EPOCHS):  # this checkpoint holds the best epoch so far
            row[CHECKPOINT] = str(Path(checkpoint.path) / CHECKPOINT_NAME)
        self._write()

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        row = self._row(trial)
        if (row.get(EPOCHS) or 0) >= self.max_epochs:
            row[STATUS] = Status.COMPLETED
        else:  # stopped early: by ASHA, or by the time budget's deadline
            row[STATUS] = Status.CUT if self.deadline is not None and self.deadline.passed() else Status.STOPPED
        row[FAILURE] = None
        self._write()

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """Ray runs a failed trial again while --retries allows (Ray's FailureConfig.max_failures; a trial on a node
        the cloud reclaimed with notice, whatever it is). Where its process ended under it, from its last checkpoint,
        said in one line; where it failed on its own error, which would only come again, it fails again at once
        (trainable.FailedBefore) and for good."""
        reason = failure_reason(trial)
        if ENDED_UNDER_IT in reason:
            row = self._row(trial)
            before = row.get(RESTARTS)  # (NaN in a row from before the column: its count starts here)
            row[RESTARTS] = 1 + (0 if before is None or is_missing(before) else int(before))
            self._write()
            where = "its last checkpoint" if trial.checkpoint is not None else "its start (it had no checkpoint yet)"
            retries = getattr(self, "retries", 0)  # none: Ray runs a trial of a node it drained again, uncounted
            used = retries - trial.max_failures + trial.num_failures  # (this run's: grant_retries)
            count = f"--retries {retries}, {used} used" if retries else "its node was drained"
            print(f"trial {trial.trial_id} failed: {reason}; it runs again from {where} ({count})", file=sys.stderr)
            return
        trial.config[FAILED_KEY] = reason
        trial.max_failures = trial.num_failures  # its next failure is its last
        trial.invalidate_json_state()

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        row = self._row(trial)
        row[STATUS] = Status.FAILED
        row[FAILURE] = failure_reason(trial)
        self._write()
        # one line, where Ray logged the traceback of its own call stack around it (TUNE_PRINT_ALL_TRIAL_ERRORS=0)
        retries = getattr(self, "retries", 0)  # (as on_step_begin)
        used = f"; --retries {retries} used up" * bool(retries and ENDED_UNDER_IT in row[FAILURE])
        print(f"trial {trial.trial_id} failed: {row[FAILURE]}{used} (traceback: {error_file(trial)})", file=sys.stderr)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._write()

    # -- rows and files

    def _row(self, trial: Trial) -> dict[str, Any]:
        row = self._trials.get(trial.trial_id)
        if row is None:
            row = {
                TRIAL_ID: trial.trial_id,
                TRIAL_NUMBER: int(tag) if (tag := trial.experiment_tag.split("_", 1)[0]).isdigit() else None,
                SPACE: self.space,
                STAGE: self.stage,
                STATUS: Status.RUNNING,
                FAILURE: None,
                METRIC: self.metric,
                MODE: self.mode,
                BEST_METRIC: math.nan,
                LAST_METRIC: math.nan,
                BEST_EPOCH: None,
                EPOCHS: 0,
                MAX_EPOCHS: self.max_epochs,
                WALL_TIME_S: 0.0,
                GPU_HOURS: 0.0,
                CHECKPOINT: None,
                PARENT_TRIAL: None,
                STARTED_AT: self._launched.get(trial.trial_id, pd.Timestamp.now(tz="UTC")),
                RESTARTS: 0,
            }
            self._trials[trial.trial_id] = row
        reserved: dict[str, float] = (
            trial.placement_group_factory.required_resources if trial.placement_group_factory else {}
        )
        row[CPUS], row[GPUS] = float(reserved.get("CPU", 0)), float(reserved.get("GPU", 0))
        for key, value in trial.config.items():
            if key != FAILED_KEY:
                row[config_column(key)] = value
        for name, value in self.run_values.items():  # recorded as when they rode in the config; a define's own wins
            row[config_column(name)] = trial.config.get(name, value)
        if PARENT_KEY in trial.config:
            row[PARENT_TRIAL] = trial.config[PARENT_KEY]
        return row

    def _write(self, *, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._last_write < self.min_interval_s:
            return
        self._last_write = now
        trials = pd.concat(
            [self._others, integer_columns(pd.DataFrame(list(self._trials.values())))], ignore_index=True
        )
        epochs = pd.concat([self._other_epochs, pd.DataFrame(list(self._epochs.values()))], ignore_index=True)
        write_parquet(consistent_columns(trials), self.folder / TRIALS_FILE)
        if len(epochs):
            write_parquet(epochs.sort_values([STAGE, TRIAL_ID, EPOCH]), self.folder / EPOCHS_FILE)
