"""A study's time budget (`--time-budget 6h`, `--gpu-hours 48`): a deadline for the running stage, after
which the searcher starts no trial and running trials stop at their next epoch (with that epoch's
checkpoint), so the study goes on to its next stage with what finished.

The deadline lives in a file of the study folder, not in the searcher or the stopper: Ray pickles both
with the experiment, and a resumed study must see the deadline of its new budget, not the old one.
`OUT/NAME/budget.json` (reports.schema.BUDGET_FILE) records the budget and the stages it cut, for the
summary and the report.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from ray import tune

from data.files import atomic_write
from reports.records import read_record
from reports.schema import BUDGET_FILE

DEADLINE_FILE = "deadline.json"  # {"at": unix time or null}: the running stage's deadline
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds of "6h", "90m", "1h30m", "45s" or "3600" (seconds)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    elif re.fullmatch(r"(\d+(\.\d+)?[smhd])+", text):
        seconds = sum(float(n) * _UNITS[unit] for n, _, unit in re.findall(r"(\d+(\.\d+)?)([smhd])", text))
    else:
        raise ValueError(f"{text!r} is not a duration: use 6h, 90m, 1h30m, 45s or seconds")
    if seconds <= 0:
        raise ValueError(f"a time budget must be > 0, got {text!r}")
    return seconds


class Deadline:
    """The running stage's deadline, read from the study folder each time it is asked (picklable)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / DEADLINE_FILE

    def set(self, at: float | None) -> None:
        with atomic_write(self.path) as tmp:
            tmp.write_text(json.dumps({"at": at}))

    def at(self) -> float | None:
        try:
            return json.loads(self.path.read_text())["at"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def passed(self) -> bool:
        at = self.at()
        return at is not None and time.time() >= at


class DeadlineStopper(tune.Stopper):
    """Stops each running trial at its first result after the deadline: the epoch it just finished is
    reported and checkpointed, nothing of it is lost."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.deadline.passed()

    def stop_all(self) -> bool:
        return False


def read_budget(folder: Path) -> dict[str, Any]:
    """OUT/NAME/budget.json as the last run wrote it ({} without one, or where it cannot be read)."""
    return read_record(Path(folder) / BUDGET_FILE)


def write_budget(folder: Path, record: dict[str, Any]) -> None:
    """OUT/NAME/budget.json: the budget of the last run and the stages it cut (read by the report)."""
    with atomic_write(Path(folder) / BUDGET_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def reopen_search(stage_dir: Path, concurrent: int) -> None:
    """Before Tuner.restore: clear the 'finished' flag Ray's SearchGenerator saved when the stage ended early
    (the deadline, Ctrl-C), so that a resumed stage goes on suggesting trials up to its number of samples; and
    give its concurrency limiter this run's trials at once (`concurrent`, as its plan says): Ray restored the
    first run's (a study begun on a 1-CPU node ran one trial at a time on 2 CPUs, its plan saying 2).
    Ray keeps both in STAGE/search_gen_state-*.json, a cloudpickle of a dict (Ray 2.60); the stage
    folder is checked as trusted before this reads it."""
    import ray.cloudpickle as cloudpickle

    files = sorted(stage_dir.glob("search_gen_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return
    state = cloudpickle.loads(files[-1].read_bytes())
    if not isinstance(state, dict):
        return
    limiter = state.get("name:ConcurrencyLimiter")
    if state.get("finished") or (isinstance(limiter, dict) and limiter.get("max_concurrent") != concurrent):
        state["finished"] = False
        if isinstance(limiter, dict):
            limiter["max_concurrent"] = concurrent
        with atomic_write(files[-1]) as tmp:
            tmp.write_bytes(cloudpickle.dumps(state))
