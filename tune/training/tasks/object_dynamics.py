"""Object dynamics (`object_dynamics`, the dynamics space's second stage): each object's move from frame 11 to
frame 22 from the tracks of every object of a video (data.tracks), learned on the tracks of a segmenter's masks.

Training videos: the tracks of the segmenter's masks of frames 1-11 (what the model is given at prediction time),
each object's target its true move: its centroid in the true mask 22 less its centroid in the segmenter's mask
11 (so mask 11 moved by it lands where the object is); unlabeled videos: the segmenter's masks of every frame,
inputs and targets. Val: the segmenter's masks of frames 1-11 in, mask 11 moved by the predicted moves
(models.dynamics.draw_moves) scored against the true mask 22 by the competition IoU, beside copy-last and the
rule (extrapolate) on the same masks, as the mask predictor is scored (the two rules once: they do not change).

Tracks are made once per masks file and kept in the cache (data.tracks.write_tracks), then held on the device as
dense arrays (a video's 11 frames x 49 objects x 10 channels: 22 KB, 330 MB for 15,000 videos).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.cache import DecodedSplit, decode_split, default_cache_dir
from data.classes import FRAME_WIDTH, INPUT_FRAMES, LAST_INPUT_FRAME, TARGET_FRAME
from data.datasets import batch_indices
from data.metric import IoUMeter
from data.tracks import dense_tracks, read_tracks, tracks_folder, tracks_table, write_tracks
from models.dynamics import C, draw_moves, rule_moves
from models.registry import ModelEntry
from reports.schema import VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_IOU, VAL_LOSS
from tune.training.config import RunConfig, TrainConfig
from tune.training.inference import Infer, ModelRunner
from tune.training.pseudo_store import has_pseudo, load_pseudo, pseudo_of
from tune.training.tasks.base import LoadOptions, Task, TrainData, register_task
from tune.training.tasks.frame_segmentation import pipeline_segmenter, segment_frames

HUBER_DELTA = 2.0  # pixels: an object's move error counts squared below it, linearly above (a collision's outliers)


class ObjectMoves:
    """Training tracks held on a device: inputs (N, 11, 49, channels) float, each object's target move (N, 49, 2)
    and whether it has one (N, 49) bool: present in mask 11 and in the mask its move is measured to."""

    read_ahead: ClassVar[int] = 0  # held: read when wanted

    def __init__(self, inputs: torch.Tensor, moves: torch.Tensor, known: torch.Tensor) -> None:
        self.inputs, self.target = inputs, torch.cat((moves, known[..., None].float()), -1)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def read(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tracks (B, 11, 49, channels), targets (B, 49, 3): the move's rows and columns, then 1 where known)."""
        return self.inputs[index], self.target[index]

    def head(self, n: int) -> ObjectMoves:
        """The first `n` videos (all where fewer)."""
        return ObjectMoves(self.inputs[:n], self.target[:n, :, :2], self.target[:n, :, 2] > 0)

    @staticmethod
    def concat(parts: list[ObjectMoves]) -> ObjectMoves:
        target = torch.cat([p.target for p in parts])
        return ObjectMoves(torch.cat([p.inputs for p in parts]), target[..., :2], target[..., 2] > 0)


class ObjectVal:
    """Val on a device: the segmenter's tracks of frames 1-11, its mask 11 (N, H, W) uint8 that the moves are
    drawn on, the true mask 22 (N, H, W) uint8, and the true moves for the val loss (ObjectMoves' targets)."""

    def __init__(self, inputs: torch.Tensor, last: torch.Tensor, target: torch.Tensor, moves: torch.Tensor) -> None:
        self.inputs, self.last, self.target, self.moves = inputs, last, target, moves
        self.references: dict[str, float] | None = None  # the rules' scores, measured at the first evaluation

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def device(self) -> torch.device:
        return self.inputs.device


@register_task
class ObjectDynamics(Task):
    name = "object_dynamics"
    metrics = (VAL_IOU, VAL_LOSS, VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU)
    needs_segmenter = True
    splits = ("train", "val", "unlabeled")  # unlabeled through the segmenter's pseudo-labels

    @staticmethod
    def handles(entry: ModelEntry) -> bool:
        return entry.input_kind == "tracks"

    def load(self, root: str | os.PathLike[str], device: torch.device, options: LoadOptions) -> TrainData:
        return TrainData(train_moves(root, device, options), val_objects(root, device, options))

    def read(self, train: Any, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return train.read(index)

    def class_counts(self, data: TrainData) -> torch.Tensor | None:
        return None  # a move has no classes to weight

    def augment(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each video mirrored left to right with probability 1/2: its tracks' columns and boxes, and the moves."""
        flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
        mirrored, moved = x.clone(), y.clone()
        present = x[..., C["present"]] > 0
        edge = FRAME_WIDTH - 1
        for to, source in (("col", "col"), ("left", "right"), ("right", "left")):
            mirrored[..., C[to]] = torch.where(present, edge - x[..., C[source]], 0)
        moved[..., 1] = -y[..., 1]
        return torch.where(flip[:, None, None, None], mirrored, x), torch.where(flip[:, None, None], moved, y)

    def reduce_target(self, target: torch.Tensor, factor: int) -> torch.Tensor:
        return target

    def loss(
        self, out: torch.Tensor, target: torch.Tensor, cfg: TrainConfig, class_weights: torch.Tensor | None
    ) -> torch.Tensor:
        """Huber loss (HUBER_DELTA pixels) of the predicted moves (B, 49, 2) over the objects whose move is known."""
        return move_loss(out, target)

    def evaluate(self, infer: Infer, val: Any, batch_size: int) -> dict[str, float]:
        """Competition IoU of mask 22: the segmenter's mask 11 moved by the model, by nothing (copy last) and by
        the rule (extrapolate); the val loss of the moves against the true ones."""
        meter, copy_last, extrapolate = (IoUMeter(val.device) for _ in range(3))
        loss = torch.zeros((), device=val.device)
        for index in batch_indices(len(val), batch_size, shuffle=False, device=val.device):
            tracks, last, target = val.inputs[index], val.last[index], val.target[index]
            moves = infer(tracks).float()
            loss += move_loss(moves, val.moves[index]) * len(index)
            meter.update(draw_moves(last, moves), target)
            if val.references is None:
                copy_last.update(last, target)
                extrapolate.update(draw_moves(last, rule_moves(tracks)), target)
        if val.references is None:
            val.references = {VAL_COPY_LAST_IOU: copy_last.compute(), VAL_EXTRAPOLATE_IOU: extrapolate.compute()}
        return {VAL_IOU: meter.compute(), VAL_LOSS: float(loss) / max(len(val), 1), **val.references}

    def predict(
        self,
        run: RunConfig,
        model: nn.Module,
        decoded: DecodedSplit,
        device: torch.device,
        *,
        pipeline: dict[str, str],
        batch_size: int = 32,
    ) -> torch.Tensor:
        """Its segmenter labels frames 1-11, their tracks go through the model, mask 11 is drawn moved."""
        segmenter_run, segmenter = pipeline_segmenter(run, pipeline, device)
        infer = ModelRunner.of_run(model, run, device)
        out = []
        with torch.no_grad():
            for start in range(0, len(decoded), batch_size):
                part = slice(start, min(start + batch_size, len(decoded)))
                masks = segment_frames(segmenter_run, segmenter, decoded.frames[part], INPUT_FRAMES, device)
                tracks = dense_tracks(
                    tracks_table(decoded.ids[part], masks).to_pandas(), decoded.ids[part], INPUT_FRAMES
                )
                moves = infer(torch.from_numpy(tracks).to(device)).float()
                last = torch.from_numpy(masks[:, LAST_INPUT_FRAME]).to(device)
                out.append(draw_moves(last, moves).to(torch.uint8).cpu())
        return torch.cat(out)


def _where(options: LoadOptions) -> tuple[Path, Path, int]:
    """(the pseudo-label folder, the cache folder, processes making tracks: the trial's CPUs)."""
    if options.pseudo is None:
        raise ValueError("the object-dynamics model needs the pseudo-label folder of a segmenter")
    return Path(options.pseudo), Path(options.cache_dir or default_cache_dir()), max(1, torch.get_num_threads())


def train_moves(root: str | os.PathLike[str], device: torch.device, options: LoadOptions) -> ObjectMoves:
    """The training tracks and moves of a data root: its train videos (the segmenter's tracks, the true moves),
    then the first `options.unlabeled` unlabeled ones (the segmenter's tracks and moves) where it labelled some."""
    pseudo, cache, workers = _where(options)
    train = decode_split(root, "train", **options.decode_kwargs())
    parts = [_labelled(train, _tracks_of(pseudo, "train", train.ids, cache, workers), cache, workers)]
    if has_pseudo(pseudo, "unlabeled"):
        _, ids = load_pseudo(pseudo, "unlabeled")
        first = len(ids) if options.unlabeled is None else min(options.unlabeled, len(ids))
        tracks = dense_tracks(
            _read(ids, pseudo / "unlabeled.npy", cache, workers), ids[:first], (*INPUT_FRAMES, TARGET_FRAME)
        )
        parts.append(_moves(tracks[:, :-1], tracks[:, -1]))
    if not any(known.any() for _, _, known in parts):  # it trained on nothing, its loss 0, and said nothing
        warnings.warn(
            f"object_dynamics: no object of the segmenter's mask 11 has a move to learn in the {len(train)} train "
            f"videos{' and the unlabeled ones' if len(parts) > 1 else ''} (does it find objects?): the model "
            "stays the rule",
            stacklevel=2,
        )
    return ObjectMoves(*(torch.from_numpy(np.concatenate(p)).to(device) for p in zip(*parts, strict=True)))


def val_objects(root: str | os.PathLike[str], device: torch.device, options: LoadOptions) -> ObjectVal:
    """The val videos scored (all, or the first `options.val_videos`): the segmenter's tracks and mask 11, the
    true mask 22 and moves."""
    pseudo, cache, workers = _where(options)
    val = options.val(root)
    val_masks, _ = load_pseudo(pseudo, "val")
    inputs, moves, known = _labelled(val, _tracks_of(pseudo, "val", val.ids, cache, workers), cache, workers)
    assert val.masks is not None
    return ObjectVal(
        torch.from_numpy(inputs).to(device),
        torch.from_numpy(np.array(val_masks[: len(val), LAST_INPUT_FRAME])).to(device),
        torch.from_numpy(np.array(val.masks[:, TARGET_FRAME])).to(device),
        torch.cat((torch.from_numpy(moves), torch.from_numpy(known)[..., None].float()), -1).to(device),
    )


def move_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Huber loss of moves (B, 49, 2) against targets (B, 49, 3: the move, then 1 where known), over the known."""
    known = target[..., 2] > 0
    if not bool(known.any()):
        return out.sum() * 0
    return F.huber_loss(out.float()[known], target[..., :2][known], delta=HUBER_DELTA)


def _moves(inputs: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, moves (N, 49, 2), known (N, 49)): each object's move from the last input frame's tracks to
    `future`'s (N, 49, channels), known where it is present in both."""
    last = inputs[:, -1]
    known = (last[..., C["present"]] > 0) & (future[..., C["present"]] > 0)
    rows, cols = (np.where(known, future[..., C[k]] - last[..., C[k]], 0) for k in ("row", "col"))
    return inputs, np.stack((rows, cols), -1).astype(np.float32), known


def _labelled(
    split: DecodedSplit, segmenter_tracks: np.ndarray, cache: Path, workers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A labelled split's training arrays: the segmenter's tracks of frames 1-11, each object's move from its
    centroid in the segmenter's mask 11 to the one in the true mask 22."""
    if split.masks is None:
        raise ValueError("the object-dynamics model needs labelled train and val splits")
    truth = _read(split.ids, Path(split.masks.filename), cache, workers)  # type: ignore[attr-defined]
    return _moves(segmenter_tracks, dense_tracks(truth, split.ids, (TARGET_FRAME,))[:, 0])


def _tracks_of(pseudo: Path, split: str, ids: np.ndarray, cache: Path, workers: int) -> np.ndarray:
    """Dense tracks of the segmenter's masks of frames 1-11 of a labelled split (its pseudo-labels)."""
    _, labelled = pseudo_of(pseudo, split, ids)
    return dense_tracks(_read(labelled, pseudo / f"{split}.npy", cache, workers), ids, INPUT_FRAMES)


def _read(ids: np.ndarray, masks_file: Path, cache: Path, workers: int) -> Any:
    """The tracks of a masks file, made once into the cache."""
    return read_tracks(write_tracks(ids, masks_file, tracks_folder(cache, masks_file), workers=workers))
