"""The lock of a run one process at a time may run (a study's driver, a training run)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from data.locking import run_lock


def test_a_run_waits_an_instant_for_a_reader_and_is_refused_by_a_holder(tmp_path: Path) -> None:
    """A report looking who runs a study holds the lock for an instant: a driver starting then waits for it, where
    a second driver is refused, named."""
    lock = tmp_path / ".driver.lock"
    looking = threading.Event()

    def look() -> None:
        with open(lock, "a+") as reader:
            fcntl.flock(reader, fcntl.LOCK_SH)
            looking.set()
            time.sleep(0.3)  # closing lets the lock go

    reader = threading.Thread(target=look)
    reader.start()
    assert looking.wait(timeout=60), "the reader never took its lock"
    with run_lock(lock, "the study in runs/x"):
        assert lock.read_text().startswith(f"pid {os.getpid()} on ")
        again = rf"the study in runs/x is running \(pid {os.getpid()} on "
        with pytest.raises(FileExistsError, match=again), run_lock(lock, "the study in runs/x"):
            pass
        assert lock.read_text().startswith(f"pid {os.getpid()} on ")  # the refused one left the holder's line
    assert lock.read_text() == ""  # ended: no pid named as if it still ran
    reader.join()
