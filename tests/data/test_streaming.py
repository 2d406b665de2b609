"""read_ahead: the next training batches read by background threads, several at once, in order, the indices
drawn by the caller; and the streamed batches it reads, byte for byte those of a held split at any depth and
number of threads (the streamed splits' other batches are compared with held ones in test_datasets.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from data import streaming
from data.cache import DecodedSplit
from data.datasets import DeviceSplit, concat_splits
from data.streaming import READ_AHEAD, READ_THREADS, StreamSplit, _gather, read_ahead


def memory_mapped_split(folder: Path, name: str, n: int, seed: int, size: tuple[int, int] = (8, 12)) -> DecodedSplit:
    """A split of n random videos of 22 frames, its arrays written to .npy files and memory-mapped back, as
    the decoded cache holds them."""
    rng = np.random.default_rng(seed)
    arrays = {
        "frames": rng.integers(0, 256, (n, 22, *size, 3), dtype=np.uint8),
        "masks": rng.integers(0, 49, (n, 22, *size), dtype=np.uint8),
    }
    for key, array in arrays.items():
        np.save(folder / f"{name}_{key}.npy", array)
        arrays[key] = np.load(folder / f"{name}_{key}.npy", mmap_mode="r")
    return DecodedSplit(name, folder, np.arange(n) + 100 * seed, arrays["frames"], arrays["masks"])


def random_batches(n: int, count: int, batch: int, seed: int) -> Iterator[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield torch.randint(0, n, (batch,), generator=generator)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("segtune-read-ahead", "segtune-gather"))]


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
    background = dict(readers)  # the depth-0 run below reads in the caller's thread, over the same keys
    want = list(read_ahead(read, _indices([]), depth=0))
    assert len(got) == len(want) == 7
    for (index, (doubled, (plus,))), (index0, (doubled0, (plus0,))) in zip(got, want, strict=True):
        assert torch.equal(index, index0) and torch.equal(doubled, doubled0) and torch.equal(plus, plus0)
    assert set(drawn) == {threading.current_thread().name}  # the indices (and their random draws): the caller's
    assert len(background) == 7 and all(name.startswith("segtune-read-ahead") for name in background.values())
    assert set(readers.values()) == {threading.current_thread().name}  # depth 0: read inline


def test_the_defaults_read_several_batches_ahead_and_at_once() -> None:
    assert READ_AHEAD >= 2 and READ_THREADS >= 2 and StreamSplit.read_ahead == READ_AHEAD


def test_threads_read_batches_at_once() -> None:
    both_reading = threading.Barrier(2, timeout=10)  # broken (and the read fails) unless reads 0 and 1 overlap

    def read(index: torch.Tensor) -> torch.Tensor:
        if int(index[0]) < 2:
            both_reading.wait()
        return index

    assert [int(i[0]) for i, _ in read_ahead(read, _indices([]), depth=3, threads=2)] == list(range(7))


def test_batches_come_in_order_when_later_reads_finish_first() -> None:
    finished: list[int] = []

    def read(index: torch.Tensor) -> torch.Tensor:
        time.sleep(0.05 * (6 - int(index[0])) / 6)  # each batch takes longer to read than the one after it
        finished.append(int(index[0]))
        return index * 3

    got = [(int(i[0]), int(out[0])) for i, out in read_ahead(read, _indices([]), depth=4, threads=4)]
    assert got == [(k, 3 * k) for k in range(7)]
    assert finished != sorted(finished)  # the reads did finish out of order


@pytest.mark.parametrize(
    ("depth", "threads", "piece"), [(1, 1, 1 << 24), (2, 1, 1), (2, 2, 1 << 24), (4, 2, 1), (3, 8, 1)]
)
def test_streamed_training_batches_are_the_held_ones_at_any_depth_and_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth: int, threads: int, piece: int
) -> None:
    monkeypatch.setattr(streaming, "GATHER_PIECE", piece)  # 1: each batch gathered by GATHER_THREADS threads
    parts = [memory_mapped_split(tmp_path, "unlabeled", 5, 1), memory_mapped_split(tmp_path, "train", 4, 2)]
    held = concat_splits([DeviceSplit(s, "cpu") for s in parts])
    streamed = StreamSplit(parts, "cpu")
    index_batches = [*random_batches(9, 12, 6, seed=3), torch.tensor([1, 4, 0]), torch.tensor([7, 5, 8, 5])]
    got = list(read_ahead(streamed.segmentation_batch, iter(index_batches), depth, threads))
    assert [index for index, _ in got] == index_batches  # in the order drawn, none dropped or repeated
    for index, batch in got:  # batches within one part and across both
        for a, b in zip(held.segmentation_batch(index), batch, strict=True):
            assert a.dtype == b.dtype == torch.uint8 and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("piece", [1 << 24, 1])
def test_a_gather_from_a_strided_array_or_out_of_range_is_numpys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int
) -> None:
    monkeypatch.setattr(streaming, "GATHER_PIECE", piece)
    split = memory_mapped_split(tmp_path, "train", 6, 4)
    strided = split.frames[::2]  # no longer contiguous: gathered item by item
    starts = np.array([0, len(strided)])
    rows, times = np.array([[2, 0, 1], [1, 1, 0]]), np.array([[21, 3, 4], [0, 7, 7]])
    assert np.array_equal(_gather([strided], starts, rows, times), strided[rows, times])
    assert np.array_equal(_gather([split.frames], np.array([0, 6]), rows, times), split.frames[rows, times])
    for bad in (np.array([[2, 3]]), np.array([[-1, 0]])):
        with pytest.raises(IndexError):
            _gather([strided], starts, bad, np.zeros_like(bad))
    with pytest.raises(ValueError, match="C-contiguous output"):
        _gather([strided], starts, rows, times, out=np.empty((2, 2, 8, 12, 3), np.uint8)[:, ::-1])


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
    assert not reader_threads()


def test_a_caller_that_stops_early_leaves_no_reader_behind() -> None:
    batches = read_ahead(lambda index: index, _indices([]), depth=3)
    next(batches)
    batches.close()  # as when training stops (an error, a trial cut at its epoch)
    assert not reader_threads()


def test_an_error_in_the_caller_leaves_no_reader_behind(tmp_path: Path) -> None:
    streamed = StreamSplit([memory_mapped_split(tmp_path, "train", 4, 5)], "cpu")
    with pytest.raises(FloatingPointError, match="training loss"):  # as the trainer raises, with reads under way
        for _ in read_ahead(streamed.segmentation_batch, random_batches(4, 50, 3, seed=0), depth=4, threads=3):
            raise FloatingPointError("training loss became nan")
    assert not reader_threads()
