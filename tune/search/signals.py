"""How the driver stops on a signal. SIGTERM (what a cluster scheduler sends before it kills) stops the study as
Ctrl-C does: it is turned into a SIGINT, which Ray Tune takes as "save the state and end the experiment" while a
stage runs (a second one stops at once).

Sent to the whole process group (`timeout`, Slurm's scancel, `kill -TERM -- -PGID`), SIGTERM also reached the
processes of the Ray the driver started, which block SIGINT but not SIGTERM: Ray then ended the driver itself with
status 1, at once or after waiting 60 s for its GCS, and nothing said how to resume (measured, Ray 2.60). So the
driver starts them in a session of their own (`ray_in_own_session`), where a signal to its group does not reach
them; they still end with the driver (Ray's kernel fate-sharing kills them when it dies, kill -9 included).
"""

from __future__ import annotations

import signal
from typing import Any


class StopSignals:
    """The signals the driver stops on: `received` lists the SIGTERMs (empty: a SIGINT stopped it)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def why(self) -> str:
        return self.received[-1] if self.received else "SIGINT"

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.received.append("SIGTERM")
        signal.raise_signal(signal.SIGINT)


def ray_in_own_session() -> None:
    """Start the processes of a local Ray (its GCS, raylet, dashboard, and through the raylet its workers) each in
    a session of its own, before `ray.init` starts them. Ray's private process class is wrapped where it is found;
    where Ray moved it, nothing changes (a group's SIGTERM then stops Ray as it did)."""
    from ray._private import services

    popen = getattr(services, "ConsolePopen", None)
    if popen is None or getattr(popen, "own_session", False):
        return

    class OwnSession(popen):  # type: ignore[misc, valid-type]
        own_session = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession  # type: ignore[misc]
