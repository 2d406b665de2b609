"""Study results as Parquet, written while the study runs.

OUT/NAME/results/trials.parquet holds one row per trial (all stages), epochs.parquet one row per trial
per epoch. Each write goes to a temporary file that is renamed over the old one, so a crash leaves
readable files holding everything finished so far; a resumed study reads them back and updates rows
in place, so every trial appears exactly once.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback
from ray.tune.experiment import Trial

TRIALS = "trials.parquet"
EPOCHS = "epochs.parquet"
STATUSES = ("running", "completed", "stopped", "failed")
LOST = "lost: the driver stopped before Ray saved this trial in its experiment state, so it was not resumed"
_RESULT_KEYS_KEPT = ("node_id",)  # non-numeric result entries copied into the trial row


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def read_results(folder: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) of a results folder; empty frames where a file is missing."""
    folder = Path(folder)
    trials = pd.read_parquet(folder / TRIALS) if (folder / TRIALS).exists() else pd.DataFrame()
    epochs = pd.read_parquet(folder / EPOCHS) if (folder / EPOCHS).exists() else pd.DataFrame()
    return trials, epochs


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
        gpus_per_trial: float,
        min_interval_s: float = 2.0,
    ) -> None:
        self.folder = Path(folder)
        self.space, self.stage, self.metric, self.mode = space, stage, metric, mode
        self.max_epochs = max_epochs
        self.gpus_per_trial = gpus_per_trial
        self.min_interval_s = min_interval_s
        self._trials: dict[str, dict[str, Any]] = {}
        self._epochs: dict[tuple[str, int], dict[str, Any]] = {}
        self._others = pd.DataFrame()  # rows of other stages, kept as they are
        self._other_epochs = pd.DataFrame()
        self._last_write = 0.0
        self._reconciled = False

    # -- Ray's hooks

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        """Read back what an earlier (crashed) run of this study wrote."""
        self.folder.mkdir(parents=True, exist_ok=True)
        trials, epochs = read_results(self.folder)
        if len(trials):
            mine = trials["stage"] == self.stage
            self._others = trials[~mine]
            self._trials = {
                str(row["trial_id"]): {str(k): v for k, v in row.items()} for row in trials[mine].to_dict("records")
            }
        if len(epochs):
            mine = epochs["stage"] == self.stage
            self._other_epochs = epochs[~mine]
            self._epochs = {
                (str(r["trial_id"]), int(r["epoch"])): {str(k): v for k, v in r.items()}
                for r in epochs[mine].to_dict("records")
            }

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Once per (re)start: a row left 'running' by a killed driver whose trial Ray's saved state
        does not hold will never be resumed; say so instead of leaving it running forever."""
        if self._reconciled:
            return
        self._reconciled = True
        known = {t.trial_id for t in trials}
        lost = [row for trial_id, row in self._trials.items() if row["status"] == "running" and trial_id not in known]
        for row in lost:
            row["status"] = "failed"
            row["failure"] = LOST
        if lost:
            self._write()

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        row = self._row(trial)
        row["status"] = "running"
        self._write()

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        epoch = int(result.get("training_iteration", 0))
        numeric = {k: float(v) for k, v in result.items() if _is_number(v) and not k.startswith("config/")}
        self._epochs[(trial.trial_id, epoch)] = {
            "trial_id": trial.trial_id,
            "space": self.space,
            "stage": self.stage,
            "epoch": epoch,
            **numeric,
        }
        row = self._row(trial)
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and _is_number(value):
            row["last_metric"] = float(value)
            best = row.get("best_metric")
            # ties go to the later epoch, as in Ray's checkpoint manager, so that the checkpoint we
            # name is the one it keeps
            if best is None or is_nan(best) or (value >= best if self.mode == "max" else value <= best):
                row["best_metric"] = float(value)
                row["best_epoch"] = epoch
        row["epochs"] = epoch
        row["wall_time_s"] = float(result.get("time_total_s", row.get("wall_time_s") or 0.0))
        row["gpu_hours"] = row["wall_time_s"] * self.gpus_per_trial / 3600
        for key in _RESULT_KEYS_KEPT:
            if key in result:
                row[key] = str(result[key])
        self._write(throttle=True)

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: Any, **info: Any) -> None:
        row = self._row(trial)
        if row.get("best_epoch") == row.get("epochs"):  # this checkpoint holds the best epoch so far
            row["checkpoint"] = str(Path(checkpoint.path) / "checkpoint.pt")

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        row = self._row(trial)
        row["status"] = "completed" if (row.get("epochs") or 0) >= self.max_epochs else "stopped"
        row["failure"] = None
        self._write()

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        row = self._row(trial)
        row["status"] = "failed"
        row["failure"] = _failure_reason(trial)
        self._write()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._write()

    # -- rows and files

    def _row(self, trial: Trial) -> dict[str, Any]:
        row = self._trials.get(trial.trial_id)
        if row is None:
            row = {
                "trial_id": trial.trial_id,
                "space": self.space,
                "stage": self.stage,
                "status": "running",
                "failure": None,
                "metric": self.metric,
                "mode": self.mode,
                "best_metric": math.nan,
                "last_metric": math.nan,
                "best_epoch": None,
                "epochs": 0,
                "max_epochs": self.max_epochs,
                "wall_time_s": 0.0,
                "gpu_hours": 0.0,
                "checkpoint": None,
                "parent_trial": None,
                "started_at": pd.Timestamp.now(tz="UTC"),
            }
            self._trials[trial.trial_id] = row
        for key, value in trial.config.items():
            row[f"config/{key}"] = value
        if "parent_trial" in trial.config:
            row["parent_trial"] = trial.config["parent_trial"]
        return row

    def _write(self, *, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._last_write < self.min_interval_s:
            return
        self._last_write = now
        trials = pd.concat([self._others, pd.DataFrame(list(self._trials.values()))], ignore_index=True)
        epochs = pd.concat([self._other_epochs, pd.DataFrame(list(self._epochs.values()))], ignore_index=True)
        write_parquet(_consistent(trials), self.folder / TRIALS)
        if len(epochs):
            write_parquet(epochs.sort_values(["stage", "trial_id", "epoch"]), self.folder / EPOCHS)


def _consistent(trials: pd.DataFrame) -> pd.DataFrame:
    """Columns whose values mix types across stages (a config value that is a bool in one stage and
    absent in another) are stored as strings, so that Parquet accepts them."""
    for column in trials.columns:
        kinds = {type(v) for v in trials[column] if v is not None and not is_nan(v)}
        if len(kinds) > 1 and not kinds <= {int, float}:
            trials[column] = trials[column].map(lambda v: None if v is None or is_nan(v) else str(v))
    return trials


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _failure_reason(trial: Trial) -> str:
    """The exception line of a failed trial's error file (Ray writes the whole traceback there)."""
    path = trial.error_file
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line[:500]
    return lines[-1][:500] if lines else "failed (no error file)"
