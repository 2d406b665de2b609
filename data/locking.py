"""An exclusive file lock, so that processes on one machine (several trials) build a thing once, a try at it
that does not wait (removing a cache entry nobody is building), and the lock of a run that one process at a time
may run (a study's driver, a training run)."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the duration of the block."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def try_lock(path: Path, patience: float = 0.0) -> Iterator[IO[str] | None]:
    """Take the exclusive lock on `path` if nobody holds it, or lets it go within `patience` seconds: yields the
    locked file, open (held for the block), or None where it was not taken."""
    with open(path, "a+") as handle:
        give_up = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    yield None
                    return
                time.sleep(0.05)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def run_lock(path: Path, what: str) -> Iterator[None]:
    """Held by the one process that runs `what` ("the study in runs/x") for the block, its pid, host and start
    written in `path`: another process asking meanwhile gets a FileExistsError naming it, before it writes
    anything. The kernel lets the lock go when its holder dies, kill -9 included: a resume after a crash finds it
    free, where a file left behind would refuse it. A reader that looks who holds it (reports.load) holds it for an
    instant: the run waits a second for it before it refuses."""
    with try_lock(path, patience=1.0) as held:
        if held is None:
            holder = path.read_text().strip() or "another process"
            raise FileExistsError(
                f"{what} is running ({holder}): wait for it to end, or stop it (Ctrl-C) and resume it with --resume"
            )
        held.truncate(0)
        held.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        held.flush()
        try:
            yield
        finally:  # a run that ended names no pid as if it ran (a kill -9 leaves its line); the file it holds, even
            held.truncate(0)  # where the run removed it (a refused start's folder)
