"""Datasets and batch gathering over decoded splits (the mask sequences of mask prediction: `MaskClips`):

- segmentation: frames 1-11 -> mask 22;
- frame prediction: frames 1-11 -> frame 22;
- per-frame pairs: frame t -> mask t, over every frame of every video.

Samples are uint8 tensors, frames channels-first (T, 3, H, W); scaling to float is the training task's job,
on the device. `DeviceSplit` holds a split whole on a (GPU) device as uint8, so that batches are
gathered there by index with no host round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from data.cache import DecodedSplit
from data.classes import INPUT_FRAMES, N_INPUT_FRAMES, NUM_CLASSES, TARGET_FRAME


def _chw(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 array -> (..., 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(frames)).movedim(-1, -3)  # a copy: memmaps are read-only


def _require_masks(split: DecodedSplit, what: str) -> np.ndarray:
    if split.masks is None:
        raise ValueError(f"{what} needs masks, but split {split.split!r} ({split.source}) has none")
    return split.masks


def _require_frames(split: DecodedSplit, count: int, what: str) -> None:
    if split.n_frames < count:
        raise ValueError(f"{what} needs {count} frames per video, but split {split.split!r} has {split.n_frames}")


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(frames 1-11 (11, 3, H, W) uint8, mask of frame 22 (H, W) uint8)."""

    def __init__(self, split: DecodedSplit) -> None:
        self.masks = _require_masks(split, "SegmentationDataset")
        self.frames = split.frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _chw(self.frames[index, :N_INPUT_FRAMES]), torch.from_numpy(np.array(self.masks[index, TARGET_FRAME]))


class FramePredictionDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(frames 1-11 (11, 3, H, W) uint8, frame 22 (3, H, W) uint8). Needs 22-frame videos."""

    def __init__(self, split: DecodedSplit) -> None:
        _require_frames(split, TARGET_FRAME + 1, "FramePredictionDataset")
        self.frames = split.frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _chw(self.frames[index, :N_INPUT_FRAMES]), _chw(self.frames[index, TARGET_FRAME])


class FrameMaskDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Every (frame (3, H, W) uint8, its mask (H, W) uint8) pair; item k is frame k % T of video k // T."""

    def __init__(self, split: DecodedSplit) -> None:
        self.masks = _require_masks(split, "FrameMaskDataset")
        self.frames = split.frames

    def __len__(self) -> int:
        return self.frames.shape[0] * self.frames.shape[1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, t = divmod(index, self.frames.shape[1])
        return _chw(self.frames[video, t]), torch.from_numpy(np.array(self.masks[video, t]))


class _HeldFrames:
    """What DeviceSplit and StreamSplit share: the frames kept of each video, and the batches built from
    `gather_frames` / `gather_masks`."""

    split: str
    device: torch.device
    frame_index: tuple[int, ...]
    _slot: dict[int, int]

    def _keep(self, n_frames: int, frames: Sequence[int] | None) -> None:
        self.frame_index = tuple(range(n_frames)) if frames is None else tuple(frames)
        if any(not 0 <= t < n_frames for t in self.frame_index):
            raise ValueError(f"frames {self.frame_index} out of range for {n_frames}-frame split {self.split!r}")
        self._slot = {t: k for k, t in enumerate(self.frame_index)}

    def gather_frames(self, index: torch.Tensor, times: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def gather_masks(self, index: torch.Tensor, t: int) -> torch.Tensor:
        raise NotImplementedError

    def segmentation_batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gather_frames(index, INPUT_FRAMES), self.gather_masks(index, TARGET_FRAME)

    def frame_prediction_batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gather_frames(index, INPUT_FRAMES), self.gather_frames(index, (TARGET_FRAME,))[:, 0]

    def _slot_of(self, t: int) -> int:
        if t not in self._slot:
            raise ValueError(f"frame {t} is not held on the device (kept frames: {self.frame_index})")
        return self._slot[t]


class DeviceSplit(_HeldFrames):
    """A split held whole on a device as uint8 tensors; batches are gathered there by index.

    Only the frames named in `frames` are kept (default: all), and masks only where kept frames have
    them, to save device memory: 1,000 videos of 22 frames are 2.5 GB; their 11 inputs and target 1.4 GB.
    """

    read_ahead: ClassVar[int] = 0  # gathered on the device: read when wanted

    def __init__(self, split: DecodedSplit, device: torch.device | str, *, frames: Sequence[int] | None = None) -> None:
        self.split = split.split
        self.device = torch.device(device)
        self._keep(split.n_frames, frames)
        self.frames = _stack_to_device(split.frames, self.frame_index, self.device)  # (N, F, H, W, 3) uint8
        self.masks = _stack_to_device(split.masks, self.frame_index, self.device) if split.masks is not None else None
        self.ids = torch.as_tensor(split.ids)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def gather_frames(self, index: torch.Tensor, times: Sequence[int]) -> torch.Tensor:
        """Frames `times` of videos `index`: (B, len(times), 3, H, W) uint8, channels-last in memory."""
        slots = [self._slot_of(t) for t in times]
        return self.frames[index][:, slots].movedim(-1, -3)

    def gather_masks(self, index: torch.Tensor, t: int) -> torch.Tensor:
        """Mask of frame t of videos `index`: (B, H, W) uint8."""
        if self.masks is None:
            raise ValueError(f"split {self.split!r} has no masks")
        return self.masks[index, self._slot_of(t)]

    def frame_mask_batch(self, flat_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame pairs over the kept frames: item k is kept frame k % F of video k // F."""
        if self.masks is None:
            raise ValueError(f"split {self.split!r} has no masks")
        video, slot = flat_index // len(self.frame_index), flat_index % len(self.frame_index)
        return self.frames[video, slot].movedim(-1, -3), self.masks[video, slot]

    def class_counts(self) -> torch.Tensor:
        """Pixels of each class (49,) over the held masks."""
        if self.masks is None:
            raise ValueError(f"split {self.split!r} has no masks")
        return torch.bincount(self.masks.reshape(-1).long(), minlength=NUM_CLASSES)


def _stack_to_device(array: np.ndarray, times: tuple[int, ...], device: torch.device) -> torch.Tensor:
    out = torch.empty((array.shape[0], len(times), *array.shape[2:]), dtype=torch.uint8, device=device)
    step = 64  # videos per host->device copy, to bound host memory
    for start in range(0, array.shape[0], step):
        chunk = np.ascontiguousarray(array[start : start + step][:, list(times)])
        out[start : start + step] = torch.from_numpy(chunk).to(device, non_blocking=False)
    return out


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[torch.Tensor]:
    """Index tensors on `device` for one epoch over n items; drawn on the device, so no host sync."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, device=device, generator=generator) if shuffle else torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def stream_batches(
    n: int, samples: int, epoch: int, batch_size: int, *, seed: int, device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """Index batches of epoch `epoch` (from 0) when an epoch is a fixed `samples` items, whatever n is: the
    epochs walk one endless stream of seeded permutations of the n items, so every item comes once per pass
    and a pass may span epochs (or an epoch several passes). Stateless: an epoch's batches depend only on
    (n, samples, epoch, seed), so a resumed run draws the same ones."""
    if n < 1 or samples < 1 or batch_size < 1:
        raise ValueError(f"stream_batches needs n, samples and batch_size >= 1, got {n}, {samples}, {batch_size}")
    start, stop = epoch * samples, (epoch + 1) * samples
    parts = []
    for k in range(start // n, (stop - 1) // n + 1):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + k))
        parts.append(perm[max(start - k * n, 0) : min(stop - k * n, n)])
    order = torch.cat(parts).to(device)
    for first in range(0, samples, batch_size):
        yield order[first : first + batch_size]


def concat_splits(splits: Sequence[DeviceSplit]) -> DeviceSplit:
    """One DeviceSplit over several (e.g. unlabeled + train for pretraining). Masks are kept only if
    every part has them; all parts must hold the same frames."""
    if not splits:
        raise ValueError("concat_splits needs at least one split")
    first = splits[0]
    if any(s.frame_index != first.frame_index or s.device != first.device for s in splits):
        raise ValueError("concat_splits needs splits that hold the same frames on the same device")
    joined = object.__new__(DeviceSplit)
    joined.split = "+".join(s.split for s in splits)
    joined.device = first.device
    joined.frame_index = first.frame_index
    joined._slot = dict(first._slot)
    joined.frames = torch.cat([s.frames for s in splits])
    masks = [s.masks for s in splits]
    joined.masks = torch.cat(masks) if all(m is not None for m in masks) else None  # type: ignore[arg-type]
    joined.ids = torch.cat([s.ids for s in splits])
    return joined


def with_pseudo(
    clips: tuple[torch.Tensor, torch.Tensor, torch.Tensor], use_pseudo: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input masks, target masks) of read (inputs, pseudo inputs, target) clips: the segmenter's masks where
    `use_pseudo` (B,) is true, the clip's own elsewhere (scheduled sampling)."""
    inputs, pseudo_inputs, target = clips
    return torch.where(use_pseudo.view(-1, 1, 1, 1), pseudo_inputs, inputs), target


class MaskClips:
    """Mask sequences held on a device, for predicting mask 22 from the masks of frames 1-11.

    `inputs` are the masks a clip is normally given (ground truth for labelled training videos, a
    segmenter's masks elsewhere), `pseudo_inputs` a segmenter's masks of the same frames, `target` the
    masks of the last F frames up to 22 (N, F, H, W): frames 12-22 where they are known for training
    (ground truth, or the segmenter's for unlabeled videos), frame 22 alone (F = 1) for scoring. All
    uint8 class ids.
    """

    def __init__(self, inputs: torch.Tensor, pseudo_inputs: torch.Tensor, target: torch.Tensor) -> None:
        if (
            inputs.shape != pseudo_inputs.shape
            or target.dim() != 4
            or inputs.shape[0] != target.shape[0]
            or inputs.shape[2:] != target.shape[2:]
        ):
            raise ValueError(
                f"MaskClips: inputs {tuple(inputs.shape)}, pseudo inputs {tuple(pseudo_inputs.shape)} and target {tuple(target.shape)} do not match"
            )
        self.inputs, self.pseudo_inputs, self.target = inputs, pseudo_inputs, target

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def device(self) -> torch.device:
        return self.target.device

    read_ahead: ClassVar[int] = 0  # held on the device: read when wanted

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(masks of frames 1-11 (B, 11, H, W), target masks (B, F, H, W), the last of them mask 22): the
        clips' own inputs (scoring)."""
        return self.inputs[index], self.target[index]

    def read(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, pseudo inputs, target) of clips `index`, for `with_pseudo` to choose from (training with
        scheduled sampling)."""
        return self.inputs[index], self.pseudo_inputs[index], self.target[index]

    def class_counts(self) -> torch.Tensor:
        """Pixels of each class (49,) over the targets."""
        return torch.bincount(self.target.reshape(-1).long(), minlength=NUM_CLASSES)

    @staticmethod
    def concat(parts: Sequence[MaskClips]) -> MaskClips:
        return MaskClips(
            *(torch.cat([getattr(p, name) for p in parts]) for name in ("inputs", "pseudo_inputs", "target"))
        )
