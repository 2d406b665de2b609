"""Memory a process has freed, handed back to the system: glibc keeps a training step's large freed CPU tensors in
the process, so packed trials added up each other's past peaks."""

from __future__ import annotations

import ctypes
import os


def release_freed_memory() -> None:
    """Hand the memory freed on the heap back to the system (glibc's malloc_trim; elsewhere nothing). A training
    step's large CPU tensors (a mask predictor's 49-class logits: tens of MB each) are freed to the heap, and
    glibc keeps such freed memory in the process: measured, a process that had trained and evaluated mask
    predictors held 2.19 GiB after them, 0.36 GiB once trimmed, so two packed trials added up each other's
    past peaks. Called between an epoch's training and its evaluation, and after it, in a process over
    TRIM_ABOVE_BYTES resident: a small one is not worth the time (trimming every epoch of the test suite's tiny
    trials made one study test 78 -> 93 s: the next epoch faults the pages back in)."""
    if _LIBC is not None and _resident_bytes() > TRIM_ABOVE_BYTES:
        _LIBC.malloc_trim(0)


TRIM_ABOVE_BYTES = 2**30


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator is left as it is
        return None


_LIBC = _glibc()
