"""Frame prediction (`frame_predictor`, phase 1 of dual_phase): frames 1-11 -> frame 22, MSE or L1
(+ SSIM), scored by val MSE beside copy-last's. Pretraining reads the unlabeled split too."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from data.cache import decode_split
from data.datasets import batch_indices
from models.registry import ModelEntry
from reports.schema import VAL_COPY_LAST_MSE, VAL_FRAME_L1, VAL_FRAME_MSE, VAL_PSNR
from tune.training.config import TrainConfig
from tune.training.inference import Infer, reduce_inputs
from tune.training.losses import frame_loss
from tune.training.tasks.base import LoadOptions, Task, TrainData, hold, register_task


@register_task
class FramePrediction(Task):
    name = "frame_prediction"
    metrics = (VAL_FRAME_MSE, VAL_FRAME_L1, VAL_PSNR, VAL_COPY_LAST_MSE)
    splits = ("unlabeled", "train", "val")

    @staticmethod
    def handles(entry: ModelEntry) -> bool:
        return entry.output == "frame"

    def load(self, root: str | os.PathLike[str], device: torch.device, options: LoadOptions) -> TrainData:
        """Train and val, and the unlabeled videos (where there are) before train's for pretraining."""
        kwargs = options.decode_kwargs()
        splits = [decode_split(root, "train", **kwargs)]
        if (Path(root) / "unlabeled").is_dir() and options.unlabeled != 0:
            splits.insert(0, decode_split(root, "unlabeled", **kwargs).head(options.unlabeled))
        val = hold([options.val(root)], device, self.val_frames, options)
        return TrainData(hold(splits, device, self.train_frames, options), val)

    def read(self, train: Any, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return train.frame_prediction_batch(index)

    def reduce_target(self, target: torch.Tensor, factor: int) -> torch.Tensor:
        """Frame 22 averaged over factor x factor blocks as the input frames are (still on the 0-255 scale)."""
        return reduce_inputs(target.float(), factor) if factor > 1 else target

    def class_counts(self, data: TrainData) -> torch.Tensor | None:
        return None

    def output(self, out: Any) -> torch.Tensor:
        return out.frame

    def loss(
        self, out: torch.Tensor, target: torch.Tensor, cfg: TrainConfig, class_weights: torch.Tensor | None
    ) -> torch.Tensor:
        return frame_loss(out, target, cfg)

    def evaluate(self, infer: Infer, val: Any, batch_size: int) -> dict[str, float]:
        device = val.device
        sq, ab, copy_sq = (torch.zeros((), device=device) for _ in range(3))
        pixels = 0
        for index in batch_indices(len(val), batch_size, shuffle=False, device=device):
            frames, target = val.frame_prediction_batch(index)
            pred = infer(frames).float().clamp(0, 1)
            truth = target.float() / 255
            sq += F.mse_loss(pred, truth, reduction="sum")
            ab += F.l1_loss(pred, truth, reduction="sum")
            copy_sq += F.mse_loss(frames[:, -1].float() / 255, truth, reduction="sum")
            pixels += truth.numel()
        mse = float(sq) / pixels
        return {
            VAL_FRAME_MSE: mse,
            VAL_FRAME_L1: float(ab) / pixels,
            VAL_PSNR: -10 * math.log10(max(mse, 1e-12)),
            VAL_COPY_LAST_MSE: float(copy_sq) / pixels,
        }
