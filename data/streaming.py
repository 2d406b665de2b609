"""Splits streamed from the memory-mapped decoded cache instead of held on the device: `StreamSplit`
(DeviceSplit's interface) and `StreamMaskClips` (MaskClips'), for data larger than a trial may hold
(unlabeled + train for pretraining, a segmenter's pseudo-labels of 13,000 videos). A batch is read when
asked, from the operating system's page cache, and copied to the device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from data.cache import DecodedSplit
from data.classes import NUM_CLASSES
from data.datasets import _HeldFrames


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A batch read from the cache on `device`: through pinned memory, without blocking, on CUDA."""
    tensor = torch.from_numpy(array)
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)


class StreamSplit(_HeldFrames):
    """DeviceSplit's interface over the memory-mapped decoded cache of one or more splits (unlabeled +
    train for pretraining): a batch is read when asked, its frames from the operating system's page cache
    (which holds the cache once for every trial of a machine), and copied to the device, through pinned
    memory without blocking on CUDA. A trial's memory does not grow with the split. For the same indices
    its batches are those of a DeviceSplit, byte for byte."""

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
        """arrays[part][video, time] for global video numbers and times of equal shape, from each part."""
        part = np.searchsorted(self._starts, videos, side="right") - 1
        first = arrays[0]
        out = np.empty((*videos.shape, *first.shape[2:]), dtype=first.dtype)
        for k, array in enumerate(arrays):
            rows = part == k
            if rows.any():
                out[rows] = array[videos[rows] - self._starts[k], times[rows]]
        return _to_device(out, self.device)

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
        counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        for masks in self._masks:
            for start in range(0, len(masks), 64):
                chunk = np.asarray(masks[start : start + 64][:, list(self.frame_index)])
                counts += np.bincount(chunk.reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES]
        return torch.from_numpy(counts).to(self.device)


class StreamMaskClips:
    """MaskClips' interface over memory-mapped mask arrays (the true masks in the decoded cache, a
    segmenter's pseudo-labels), in parts (train, unlabeled): a batch is read when asked and copied to the
    device, so 13,000 unlabeled videos' pseudo-labels (11 GB) are never held. Each part is (inputs,
    pseudo_inputs, target) arrays of (N, 11, H, W), (N, 11, H, W) and (N, F, H, W) uint8. For the same
    indices its batches are MaskClips.concat's, byte for byte."""

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
        part = np.searchsorted(self._starts, rows, side="right") - 1
        first = self.parts[0][which]
        out = np.empty((len(rows), *first.shape[1:]), dtype=first.dtype)
        for k, arrays in enumerate(self.parts):
            mine = part == k
            if mine.any():
                out[mine] = arrays[which][rows[mine] - self._starts[k]]
        return _to_device(out, self._device)

    def batch(self, index: torch.Tensor, use_pseudo: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = index.cpu().numpy()
        x = self._read(0, rows)
        if use_pseudo is not None:
            x = torch.where(use_pseudo.view(-1, 1, 1, 1), self._read(1, rows), x)
        return x, self._read(2, rows)

    def class_counts(self) -> torch.Tensor:
        """Pixels of each class (49,) over the targets, read a few videos at a time."""
        counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        for _, _, target in self.parts:
            for start in range(0, len(target), 64):
                counts += np.bincount(np.asarray(target[start : start + 64]).reshape(-1), minlength=NUM_CLASSES)[
                    :NUM_CLASSES
                ]
        return torch.from_numpy(counts).to(self._device)
