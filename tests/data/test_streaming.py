"""read_ahead: the next training batches read in a background thread, in order, the indices drawn by the
caller (the streamed splits themselves are compared with held ones in test_datasets.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import torch

from data.streaming import read_ahead


def _indices(threads: list[str]) -> Iterator[torch.Tensor]:
    for k in range(7):
        threads.append(threading.current_thread().name)
        yield torch.tensor([k, 10 + k])


def test_read_ahead_gives_the_batches_of_reading_when_wanted_read_in_the_background() -> None:
    readers: dict[int, str] = {}
    third_read = threading.Event()

    def read(index: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        readers[int(index[0])] = threading.current_thread().name
        if int(index[0]) == 2:
            third_read.set()
        return index * 2, (index + 1,)

    drawn: list[str] = []
    got = []
    for index, out in read_ahead(read, _indices(drawn), depth=2):
        if int(index[0]) == 0:  # batches 1 and 2 are read while batch 0 is still in use
            assert third_read.wait(timeout=10)
        got.append((index, out))
    want = list(read_ahead(read, _indices([]), depth=0))
    assert len(got) == len(want) == 7
    for (index, (doubled, (plus,))), (index0, (doubled0, (plus0,))) in zip(got, want, strict=True):
        assert torch.equal(index, index0) and torch.equal(doubled, doubled0) and torch.equal(plus, plus0)
    assert set(drawn) == {threading.current_thread().name}  # the indices (and their random draws): the caller's
    assert len(readers) == 7


def test_a_failed_read_reaches_the_caller_after_the_batches_before_it() -> None:
    def read(index: torch.Tensor) -> torch.Tensor:
        if int(index[0]) == 3:
            raise OSError("frames.npy: Input/output error")
        return index

    got = []
    with pytest.raises(OSError, match="Input/output error"):
        for index, _ in read_ahead(read, _indices([]), depth=2):
            got.append(int(index[0]))
    assert got == [0, 1, 2]


def test_a_caller_that_stops_early_leaves_no_reader_behind() -> None:
    batches = read_ahead(lambda index: index, _indices([]), depth=3)
    next(batches)
    batches.close()  # as when training stops (an error, a trial cut at its epoch)
    assert not [t for t in threading.enumerate() if t.name.startswith("segtune-read-ahead")]
