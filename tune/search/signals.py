"""How the driver stops on a signal. SIGTERM (what a cluster scheduler sends before it kills) stops the study as
Ctrl-C does: it is turned into a SIGINT, which Ray Tune takes as "save the state and end the experiment" while a
stage runs (a second one stops at once; so a SIGTERM within seconds of the first is not passed on: GNU `timeout`
sends one to the command, then one to its group).

Sent to the whole process group (`timeout`, `kill -TERM -- -PGID`), SIGTERM also reached the processes of the Ray
the driver started, which block SIGINT but not SIGTERM: Ray then ended the driver itself with status 1, at once or
after waiting 60 s for its GCS, and nothing said how to resume (measured, Ray 2.60). So on Linux, where Ray ties its
processes' lives to the driver's in the kernel (PR_SET_PDEATHSIG: they end with it, kill -9 included), the driver
starts them in sessions of their own (`ray_in_own_session`), which a signal to its group does not reach. A signal to
every process of a cgroup (Slurm's scancel and time limit under proctrack/cgroup) still reaches them: there, have
Slurm signal the batch shell alone (`#SBATCH --signal=B:TERM@120`) and `exec python -m tune.search ...` in it.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

REPEAT_S = 5.0  # a SIGTERM this soon after one passed on is the same stop (`timeout` sends two)


class StopSignals:
    """The signals the driver stops on: `received` lists the SIGTERMs (empty: a SIGINT stopped it)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._passed_at = -math.inf  # when a SIGTERM was last passed on as a SIGINT
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def why(self) -> str:
        return self.received[-1] if self.received else "SIGINT"

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.received.append("SIGTERM")
        if time.monotonic() - self._passed_at > REPEAT_S:  # `timeout`'s second copy would stop the study at once
            self._passed_at = time.monotonic()
            signal.raise_signal(signal.SIGINT)


def ray_in_own_session() -> None:
    """Start the processes of a local Ray (its GCS, raylet, dashboard, and through the raylet its workers) each in
    a session of its own, before `ray.init` starts them, on Linux with Ray's kernel fate-sharing. Ray's private
    process class is wrapped where it is found; where Ray moved it, nothing changes (a group's SIGTERM then stops Ray
    as it did)."""
    from ray._private import services, utils

    if not sys.platform.startswith("linux") or not utils.detect_fate_sharing_support():
        return  # Ray's reaper then ends them, as their group's: they stay in the driver's
    popen = getattr(services, "ConsolePopen", None)
    if popen is None or getattr(popen, "own_session", False):
        return

    class OwnSession(popen):  # type: ignore[misc, valid-type]
        own_session = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession  # type: ignore[misc]


@contextlib.contextmanager
def sigterm_kept() -> Iterator[None]:
    """Inside: a study, whose Ray start and StopSignals replace the SIGTERM handler; after it, the caller's again (a
    notebook's kernel ends on SIGTERM again). One not set from Python (getsignal's None) cannot be set back."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
