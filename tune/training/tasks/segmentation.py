"""Segmentation (`unet`, `dual_phase`): frames 1-11 -> mask 22, cross-entropy (+ dice, class weights),
scored with the competition IoU on val."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from data.cache import DecodedSplit
from data.classes import INPUT_FRAMES
from data.datasets import DeviceSplit, batch_indices
from data.metric import IoUMeter
from models.registry import ModelEntry
from reports.schema import VAL_IOU, VAL_LOSS
from tune.training.config import RunConfig, TrainConfig
from tune.training.inference import Infer, ModelRunner, class_ids
from tune.training.losses import segmentation_loss
from tune.training.tasks.base import Task, predict_in_batches, random_hflip, register_task


@register_task
class Segmentation(Task):
    name = "segmentation"
    metrics = (VAL_IOU, VAL_LOSS)

    @staticmethod
    def handles(entry: ModelEntry) -> bool:
        return entry.output == "mask" and entry.input_kind in ("stacked", "sequence")

    def read(self, train: Any, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return train.segmentation_batch(index)

    def auxiliary_loss(
        self,
        runner: ModelRunner,
        train: Any,
        index: torch.Tensor,
        cfg: TrainConfig,
        generator: torch.Generator,
        class_weights: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """With frame_weight, for a model with a segmenter part (one that has `segment`, dual_phase): the
        segmentation loss of `frames_per_video` random held frames of each clip (of frames 1-11 and 22, all
        labelled) against their true masks, so the segmenter learns from up to 12 masks a video, not one."""
        segment = getattr(runner.forward, "segment", None)
        if cfg.frame_weight == 0 or segment is None:
            return None
        slots = len(train.frame_index)
        scores = torch.rand(len(index), slots, device=index.device, generator=generator)
        picks = scores.argsort(dim=1)[:, : min(cfg.frames_per_video, slots)]
        frames, masks = train.frame_mask_batch((index[:, None] * slots + picks).reshape(-1))
        if cfg.hflip:
            frames, masks = random_hflip(frames, masks, generator)
        logits = runner.with_forward(segment, "frame")(frames)
        masks = self.reduce_target(masks, runner.factor) if not runner.full_size else masks
        return cfg.frame_weight * segmentation_loss(logits, masks, cfg, class_weights)

    def evaluate(self, infer: Infer, val: Any, batch_size: int) -> dict[str, float]:
        """Competition IoU of mask 22 on val, predicted from frames 1-11."""
        meter, loss = IoUMeter(val.device), torch.zeros((), device=val.device)
        for index in batch_indices(len(val), batch_size, shuffle=False, device=val.device):
            frames, target = val.segmentation_batch(index)
            logits = infer(frames)
            loss += F.cross_entropy(logits.float(), target.long(), reduction="sum") / target[0].numel()
            meter.update(class_ids(logits), target)
        return {VAL_IOU: meter.compute(), VAL_LOSS: float(loss) / len(val)}

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
        held = DeviceSplit(decoded, device, frames=INPUT_FRAMES)
        return predict_in_batches(
            run, model, len(held), lambda index: held.gather_frames(index, INPUT_FRAMES), device, batch_size
        )
