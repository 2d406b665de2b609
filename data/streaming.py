"""Splits streamed from the memory-mapped decoded cache instead of held on the device: `StreamSplit`
(DeviceSplit's interface) and `StreamMaskClips` (MaskClips'), for data larger than a trial may hold
(unlabeled + train for pretraining, a segmenter's pseudo-labels of 13,000 videos). A batch is read when
asked, from the operating system's page cache, and copied to the device; `read_ahead` reads the next
batches of a training epoch in background threads while the model trains on the current one."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from data.cache import DecodedSplit
from data.classes import NUM_CLASSES
from data.datasets import _HeldFrames

T = TypeVar("T")
READ_AHEAD = 4  # training batches a streamed split reads ahead of the one the model trains on
READ_THREADS = 2  # of those, how many are read at once
GATHER_THREADS = 4  # threads that gather one large batch together (a U-Net batch of 64 clips is 81 MB)
GATHER_PIECE = 1 << 24  # bytes of a batch one of them gathers at the least: a small batch is gathered by one


def _read_to(
    device: torch.device, arrays: Sequence[np.ndarray], starts: np.ndarray, rows: np.ndarray, *more: np.ndarray
) -> torch.Tensor:
    """`_gather`'s batch on `device`. On CUDA it is gathered straight into pinned host memory, one copy out of
    the page cache (gathering into a fresh array, then pinning it, copied each batch three times and paid a
    fresh array's page faults), and copied to the GPU without blocking, on the caller's current stream. That
    memory comes from torch's caching host allocator, which records an event on the stream of each copy out
    of it and hands it out again only once the event has passed: buffers are reused batch after batch, never
    while a copy still reads one (tests/data/test_streaming_gpu.py)."""
    if device.type != "cuda":
        return torch.from_numpy(_gather(arrays, starts, rows, *more)).to(device)
    shape = (*rows.shape, *arrays[0].shape[1 + len(more) :])
    dtype = torch.from_numpy(np.empty(0, dtype=arrays[0].dtype)).dtype
    host = torch.empty(shape, dtype=dtype, pin_memory=True)
    _gather(arrays, starts, rows, *more, out=host.numpy())
    return host.to(device, non_blocking=True)  # `host` itself, not a view made by numpy: its event is recorded


def _gather(
    arrays: Sequence[np.ndarray], starts: np.ndarray, rows: np.ndarray, *more: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """arrays[part][row - starts[part], *more] for global row numbers over parts joined end to end (`starts`:
    their first rows, and the total); `more` index the next axes alike, all of the shape of `rows`. Written
    into `out` (C-contiguous; default a new array), each item copied once, by several threads at once for a
    large batch (`_in_pieces`): a batch within one contiguous part with np.take, else item by item."""
    lead = 1 + len(more)
    shape = (*rows.shape, *arrays[0].shape[lead:])
    out = np.empty(shape, dtype=arrays[0].dtype) if out is None else out
    if out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous output of shape {shape}, got {out.shape}")
    if rows.size == 0:
        return out
    if rows.min() < 0 or rows.max() >= starts[-1]:
        raise IndexError(f"rows {rows.min()} to {rows.max()} out of range for {starts[-1]} videos")
    part = np.searchsorted(starts, rows, side="right") - 1
    at = (rows - starts[part], *more)
    items = out.reshape(-1, *shape[rows.ndim :])  # a view: out is contiguous
    first = arrays[int(part.flat[0])]
    if (part == part.flat[0]).all() and first.flags.c_contiguous:
        source = first.reshape(-1, *first.shape[lead:])
        flat = np.ravel_multi_index(at, first.shape[:lead]).reshape(-1)  # raises for an index out of range

        def copy(a: int, b: int) -> None:  # mode="clip" changes nothing in range, and spares "raise"'s temporary
            np.take(source, flat[a:b], axis=0, out=items[a:b], mode="clip")

    else:  # parts mixed (or a strided array): item by item, each copy without the GIL too
        which = part.reshape(-1).tolist()
        where = np.stack([np.broadcast_to(a, rows.shape).reshape(-1) for a in at], axis=1).tolist()

        def copy(a: int, b: int) -> None:
            for i in range(a, b):
                items[i] = arrays[which[i]][tuple(where[i])]

    _in_pieces(copy, len(items), out.nbytes)
    return out


def _in_pieces(copy: Callable[[int, int], None], n: int, nbytes: int) -> None:
    """copy(a, b) over consecutive pieces of range(n), of GATHER_PIECE bytes or more, on up to GATHER_THREADS
    threads at once: numpy copies without the GIL, so a large batch (the first of an epoch too, which
    nothing reads ahead of) is gathered several times faster than by one thread."""
    pieces = max(1, min(GATHER_THREADS, n, nbytes // GATHER_PIECE))
    first, *rest = itertools.pairwise(np.linspace(0, n, pieces + 1).astype(int).tolist())
    if not rest:
        copy(*first)
        return
    with ThreadPoolExecutor(len(rest), thread_name_prefix="segtune-gather") as pool:
        others = [pool.submit(copy, a, b) for a, b in rest]
        copy(*first)
        for piece in others:
            piece.result()


def _class_counts(arrays: Sequence[np.ndarray], frames: Sequence[int] | None = None) -> np.ndarray:
    """Pixels of each class (49,) over mask arrays (N, F, H, W), frames `frames` of each (default all), read
    64 videos at a time."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for masks in arrays:
        for start in range(0, len(masks), 64):
            chunk = np.asarray(
                masks[start : start + 64] if frames is None else masks[start : start + 64][:, list(frames)]
            )
            counts += np.bincount(chunk.reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return counts


class StreamSplit(_HeldFrames):
    """DeviceSplit's interface over the memory-mapped decoded cache of one or more splits (unlabeled +
    train for pretraining): a batch is read when asked, its frames from the operating system's page cache
    (which holds the cache once for every trial of a machine), and copied to the device, through pinned
    memory without blocking on CUDA. A trial's memory does not grow with the split. For the same indices
    its batches are those of a DeviceSplit, byte for byte."""

    read_ahead: ClassVar[int] = READ_AHEAD  # training batches read ahead in the background (see `read_ahead`)

    def __init__(
        self, splits: Sequence[DecodedSplit], device: torch.device | str, *, frames: Sequence[int] | None = None
    ) -> None:
        if not splits or len({s.n_frames for s in splits}) != 1:
            raise ValueError("StreamSplit needs one or more splits with the same number of frames")
        self.split = "+".join(s.split for s in splits)
        self.device = torch.device(device)
        self._keep(splits[0].n_frames, frames)
        self._frames = [s.frames for s in splits]
        masks = [s.masks for s in splits]
        self._masks = [m for m in masks if m is not None] if all(m is not None for m in masks) else None
        self._starts = np.cumsum([0, *(len(s) for s in splits)])
        self.ids = torch.as_tensor(np.concatenate([s.ids for s in splits]))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _read(self, arrays: Sequence[np.ndarray], videos: np.ndarray, times: np.ndarray) -> torch.Tensor:
        """arrays[part][video, time] for global video numbers and times of equal shape, on the device."""
        return _read_to(self.device, arrays, self._starts, videos, times)

    def _times(self, times: Sequence[int]) -> np.ndarray:
        return np.array([self.frame_index[self._slot_of(t)] for t in times])

    def gather_frames(self, index: torch.Tensor, times: Sequence[int]) -> torch.Tensor:
        videos = index.cpu().numpy()
        grid = np.broadcast_arrays(videos[:, None], self._times(times)[None, :])
        return self._read(self._frames, grid[0], grid[1]).movedim(-1, -3)

    def gather_masks(self, index: torch.Tensor, t: int) -> torch.Tensor:
        if self._masks is None:
            raise ValueError(f"split {self.split!r} has no masks")
        videos = index.cpu().numpy()
        return self._read(self._masks, videos, np.full_like(videos, self._times([t])[0]))

    def frame_mask_batch(self, flat_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._masks is None:
            raise ValueError(f"split {self.split!r} has no masks")
        flat = flat_index.cpu().numpy()
        videos, times = flat // len(self.frame_index), np.array(self.frame_index)[flat % len(self.frame_index)]
        return self._read(self._frames, videos, times).movedim(-1, -3), self._read(self._masks, videos, times)

    def class_counts(self) -> torch.Tensor:
        """Pixels of each class (49,) over the kept frames' masks, read a few videos at a time."""
        if self._masks is None:
            raise ValueError(f"split {self.split!r} has no masks")
        counts = _class_counts(self._masks, self.frame_index)
        return torch.from_numpy(counts).to(self.device)


class StreamMaskClips:
    """MaskClips' interface over memory-mapped mask arrays (the true masks in the decoded cache, a
    segmenter's pseudo-labels), in parts (train, unlabeled): a batch is read when asked and copied to the
    device, so 13,000 unlabeled videos' pseudo-labels (11 GB) are never held. Each part is (inputs,
    pseudo_inputs, target) arrays of (N, 11, H, W), (N, 11, H, W) and (N, F, H, W) uint8. For the same
    indices its batches are MaskClips.concat's, byte for byte."""

    read_ahead: ClassVar[int] = READ_AHEAD

    def __init__(self, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], device: torch.device | str) -> None:
        for inputs, pseudo_inputs, target in parts:
            if (
                inputs.shape != pseudo_inputs.shape
                or len(inputs) != len(target)
                or inputs.shape[2:] != target.shape[2:]
            ):
                raise ValueError(
                    f"StreamMaskClips: part shapes {inputs.shape}, {pseudo_inputs.shape}, {target.shape} do not match"
                )
        self.parts = list(parts)
        self._device = torch.device(device)
        self._starts = np.cumsum([0, *(len(p[0]) for p in parts)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def device(self) -> torch.device:
        return self._device

    def _read(self, which: int, rows: np.ndarray) -> torch.Tensor:
        return _read_to(self._device, [part[which] for part in self.parts], self._starts, rows)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = index.cpu().numpy()
        return self._read(0, rows), self._read(2, rows)

    def read(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = index.cpu().numpy()
        return self._read(0, rows), self._read(1, rows), self._read(2, rows)

    def class_counts(self) -> torch.Tensor:
        """Pixels of each class (49,) over the targets, read a few videos at a time."""
        counts = _class_counts([target for _, _, target in self.parts])
        return torch.from_numpy(counts).to(self._device)


def read_ahead(
    read: Callable[[torch.Tensor], T],
    indices: Iterable[torch.Tensor],
    depth: int = READ_AHEAD,
    threads: int = READ_THREADS,
) -> Generator[tuple[torch.Tensor, T], None, None]:
    """(index, read(index)) for each index batch, in order, each read started `depth` batches before it is
    wanted, by `threads` background threads (at most `depth`), so that several batches are read at once: a
    streamed batch is gathered from the page cache into pinned memory and copied to the GPU (each thread on
    a CUDA stream of its own) while the model trains on the batches before it. The indices are drawn here,
    in the caller's thread, as they would be without it, so `read` must draw nothing random: a seed gives
    the same batches, byte for byte, at any depth and any number of threads. depth 0: each read when it is
    wanted. A caller that stops (an error, a trial cut short) leaves no thread behind: the reads under way
    are finished and those not started are dropped."""
    batches = iter(indices)
    if depth < 1:
        for index in batches:
            yield index, read(index)
        return
    pool = ThreadPoolExecutor(max(1, min(threads, depth)), thread_name_prefix="segtune-read-ahead")
    pending: deque[tuple[torch.Tensor, Future[tuple[T, Any]]]] = deque()
    sides = threading.local()  # each reader thread's CUDA stream

    def submit() -> None:
        index = next(batches, None)
        if index is None:
            return
        ready = None
        if index.device.type == "cuda":  # the copies wait for the index, made on the caller's stream
            ready = torch.cuda.current_stream(index.device).record_event()
        pending.append((index, pool.submit(_read_on_side, read, index, ready, sides)))

    try:
        for _ in range(depth):
            submit()
        while pending:
            index, future = pending.popleft()
            submit()
            out, done = future.result()
            if done is not None:  # the caller's stream waits for the copies, and owns their memory from here
                stream = torch.cuda.current_stream(index.device)
                stream.wait_event(done)
                for tensor in _tensors(out):
                    tensor.record_stream(stream)
            yield index, out
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_on_side(
    read: Callable[[torch.Tensor], T], index: torch.Tensor, ready: Any, sides: threading.local
) -> tuple[T, Any]:
    if ready is None:
        return read(index), None
    side = getattr(sides, "stream", None)
    if side is None:
        side = sides.stream = torch.cuda.Stream(index.device)
    with torch.cuda.stream(side):
        side.wait_event(ready)
        out = read(index)
        return out, side.record_event()


def _tensors(out: object) -> Iterator[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, tuple | list):
        for part in out:
            yield from _tensors(part)
