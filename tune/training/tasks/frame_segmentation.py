"""Per-frame segmentation (`frame_segmenter`): frame -> its mask, over every frame of every training
video; scored per frame on val frames 11 and 22, and as the two references: "copy last" (its mask of
frame 11 given as the answer for frame 22), "extrapolate" (its masks of frames 9-11, each object
moved along its track to frame 22, models.motion) and "oracle" (its mask of the true frame 22). Its
masks are the inputs of the mask-space predictor (`segment_frames`, the pseudo-labels). Its class ids
become masks with one shape per object (models.objects), in scoring as in the pipelines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from data.classes import LAST_INPUT_FRAME, TARGET_FRAME
from data.datasets import batch_indices
from data.metric import IoUMeter
from models.motion import TRACKED, extrapolate_masks
from models.objects import one_shape_per_object
from models.registry import ModelEntry
from reports.schema import RULE_EXTRAPOLATE, VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_IOU, VAL_ORACLE_IOU
from tune.training.checkpoints import load_model
from tune.training.config import RunConfig, TrainConfig
from tune.training.inference import Infer, ModelRunner, class_ids
from tune.training.tasks.base import Task, TrainData, register_task

SCORED = (LAST_INPUT_FRAME, TARGET_FRAME)  # the val frames a segmenter is scored on


@register_task
class FrameSegmentation(Task):
    name = "frame_segmentation"
    metrics = (VAL_IOU, VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_ORACLE_IOU)
    train_frames = None  # every frame of every training video
    val_frames = (*TRACKED[:-1], *SCORED)  # the frames its extrapolation starts from, up to 11, and 22
    answer_rule = RULE_EXTRAPOLATE  # the motion rule on its masks of frames 9-11

    @staticmethod
    def handles(entry: ModelEntry) -> bool:
        return entry.output == "mask" and entry.input_kind == "frame"

    def items(self, data: TrainData) -> int:
        return len(data.train) * len(data.train.frame_index)  # flat: frame k % T of video k // T

    def pass_size(self, data: TrainData, cfg: TrainConfig) -> int:
        return len(data.train) * min(cfg.frames_per_video, len(data.train.frame_index))

    def one_pass(self, data: TrainData, cfg: TrainConfig, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """`frames_per_video` distinct frames of every video, shuffled together (flat indices)."""
        device = generator.device
        n, t = len(data.train), len(data.train.frame_index)
        k = min(cfg.frames_per_video, t)
        scores = torch.rand(n, t, device=device, generator=generator)
        frames = scores.argsort(dim=1)[:, :k]  # (n, k)
        flat = (torch.arange(n, device=device)[:, None] * t + frames).reshape(-1)
        order = torch.randperm(len(flat), device=device, generator=generator)
        for start in range(0, len(flat), cfg.batch_size):
            yield flat[order[start : start + cfg.batch_size]]

    def read(self, train: Any, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return train.frame_mask_batch(index)

    def evaluate(self, infer: Infer, val: Any, batch_size: int) -> dict[str, float]:
        per_frame, copy_last, oracle, extrapolate = (IoUMeter(val.device) for _ in range(4))
        for index in batch_indices(len(val), batch_size, shuffle=False, device=val.device):
            frames = val.gather_frames(index, self.val_frames)  # (B, F, 3, H, W): frames 9, 10, 11 and 22
            pred = segmenter_masks(infer(frames.flatten(0, 1))).unflatten(0, (len(index), len(self.val_frames)))
            tracked, pred_future = pred[:, :-1], pred[:, -1]
            pred_last = tracked[:, -1]
            mask_last, mask_future = (val.gather_masks(index, t) for t in SCORED)
            per_frame.update(torch.stack([pred_last, pred_future], dim=1), torch.stack([mask_last, mask_future], dim=1))
            copy_last.update(pred_last, mask_future)
            extrapolate.update(extrapolate_masks(tracked), mask_future)
            oracle.update(pred_future, mask_future)
        return {
            VAL_IOU: per_frame.compute(),
            VAL_COPY_LAST_IOU: copy_last.compute(),
            VAL_EXTRAPOLATE_IOU: extrapolate.compute(),
            VAL_ORACLE_IOU: oracle.compute(),
        }


def pipeline_segmenter(
    run: RunConfig, pipeline: dict[str, str], device: torch.device
) -> tuple[RunConfig, torch.nn.Module]:
    """The segmenter a checkpoint's pipeline names (a model that predicts from its masks), loaded on `device`."""
    path = pipeline.get("segmenter")
    if not path:
        raise ValueError(f"a {run.model!r} checkpoint predicts from masks but names no segmenter checkpoint")
    return load_model(path, device)


@torch.no_grad()
def segment_frames(
    run: RunConfig,
    model: torch.nn.Module,
    frames: np.ndarray,
    times: tuple[int, ...],
    device: str | torch.device,
    *,
    batch_size: int = 32,
    out: np.ndarray | None = None,
    one_shape: bool = True,
) -> np.ndarray:
    """A per-frame segmenter's (`run`'s `model`) class ids (N, len(times), H, W) uint8 for frames `times` of
    videos (N, T, H, W, 3), one shape per object unless not `one_shape` (`segmenter_masks`)."""
    infer = ModelRunner.of_run(model, run, torch.device(device))
    if out is None:
        out = np.empty((len(frames), len(times), *frames.shape[2:4]), dtype=np.uint8)
    step = max(1, batch_size // len(times))
    for start in range(0, len(frames), step):
        chunk = torch.from_numpy(np.array(frames[start : start + step][:, list(times)])).to(device)
        logits = infer(chunk.movedim(-1, -3).flatten(0, 1))  # (B * F, K, H, W)
        out[start : start + len(chunk)] = (
            segmenter_masks(logits, one_shape).unflatten(0, (len(chunk), len(times))).to(torch.uint8).cpu().numpy()
        )
    return out


def segmenter_masks(logits: torch.Tensor, one_shape: bool = True) -> torch.Tensor:
    """A per-frame segmenter's masks from its logits (B, K, H, W): class ids (B, H, W), one shape per object
    (`one_shape`; else each pixel's most likely class)."""
    ids = class_ids(logits)
    return one_shape_per_object(ids) if one_shape else ids
