"""What a failed trial's files say: the one line of its reason (that its process ended under it said first), where
its traceback stays, and the signature that tells one error from another across trials (failfast, the summary)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tune.search.keys import FAILED_KEY

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

ENDED_UNDER_IT = "ended under it (its node left the cluster, the system's OOM killer, a crash)"  # failure_reason's
RETRIES_HINT = (
    "; --retries N runs trials whose process ended again, from their last checkpoint (a study's, or a --resume's for "
    "the trials it has left)"
)
_FAILURE_HEAD = re.compile(r"^Failure # \d+ \(occurred at [^)\n]*\)$", flags=re.M)  # Ray's, in a trial's error file


class FailedBefore(RuntimeError):
    """Raised by a trial that failed on its own error and that Ray runs again (--retries is for trials whose process
    ended under them, and Ray's count is of every failure): it fails at once with that error's line, without training
    again to meet it (results.ResultsWriter.on_trial_recover, trainable.train_trial)."""


def error_signature(line: str) -> str:
    """An error line with what differs from trial to trial stripped: paths, hexadecimal ids and addresses,
    numbers (sizes, indices, trial numbers)."""
    text = re.sub(r"(?:[A-Za-z]:)?(?:/[^\s'\",:;()\[\]]+)+", "<path>", line)
    text = re.sub(r"\b(?:0x)?[0-9a-f]*\d[0-9a-f]*(?:_\d+)?\b", "#", text)
    return re.sub(r"\d+", "#", text).strip()


def error_file(trial: Trial) -> str:
    """Where the trial's traceback stays: its folder in the study (Ray copies error.txt there from its
    session's temporary folder, which goes with the session)."""
    if trial.path and trial.error_file:
        return str(Path(trial.path) / Path(trial.error_file).name)
    return trial.error_file or "(no error file)"


def failure_reason(trial: Trial) -> str:
    """The exception line of a failed trial's error file (Ray writes the whole traceback there); for a trial whose
    process ended under it (killed, crashed, its node gone), that said first, where Ray's line (an "RpcError ...
    Socket closed" where a node left) told a user little."""
    path = trial.error_file
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    text = _FAILURE_HEAD.split(text)[-1]  # the last failure's: Ray adds each of a trial run again (--retries)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    at = next((i for i in range(len(lines) - 1, -1, -1) if "Error" in lines[i] or "Exception" in lines[i]), -1)
    line = " ".join(lines[at:])  # with the lines of its message after it (Ray's storage error said why on its next)
    lost = _process_ended(trial)
    if lost is None:  # no exception Ray pickled: its text ("is unavailable": a node gone, its actor's calls cut)
        lost = any(said in text for said in ("The actor died unexpectedly", " is unavailable: "))
    if lost:
        host = re.search(r"^\s*ip: (\S+)$", text, flags=re.M)
        return (
            f"its process{f' on {host[1]}' if host else ''} {ENDED_UNDER_IT}; Ray: "
            f"{line.split(' Some common causes include:')[0]}"
        )[:500]
    before = f"{FailedBefore.__name__}: "  # a trial run again after its own error fails with that error's line
    return line.partition(before)[2][:500] if before in line else line[:500] or "failed (no error file)"


def _process_ended(trial: Trial) -> bool | None:
    """Whether the trial's last failure was its process ending under it, by the exception Ray pickled beside its
    error file: a RayActorError (the actor died, or is unavailable: its node gone), not one of its actor's start
    (that is the trial's own error); None where there is none to read."""
    from ray import cloudpickle
    from ray.exceptions import RayActorError, RayTaskError

    path = getattr(trial, "pickled_error_file", None)
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            error = cloudpickle.load(file)
    except Exception:  # none written, or an exception that does not unpickle here: the text decides
        return None
    if isinstance(error, RayTaskError):
        error = error.as_instanceof_cause()
    return isinstance(error, RayActorError) and not error.actor_init_failed


def grant_retries(trials: Iterable[Trial], retries: int, granted: set[str]) -> None:
    """--retries for the trials' runs under this driver, once a run (`granted`: the trials given it): `retries`
    failures more than each has had (Ray's max_failures counts every failure of a trial's life, and Ray's saved state
    holds the one it began with: a resume grants its --retries anew, changed or not). One marked to fail again at once
    after its own error (on_trial_recover) when the driver stopped is unmarked: the resume follows a fix, and judges
    it afresh."""
    for trial in trials:
        if trial.trial_id not in granted:
            granted.add(trial.trial_id)
            trial.config.pop(FAILED_KEY, None)
            trial.max_failures = trial.num_failures + retries
            trial.invalidate_json_state()
