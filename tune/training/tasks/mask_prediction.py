"""Mask prediction (`mask_predictor`, the second stage of mask_space): the masks of frames 1-11 -> mask
22 (and, rolled out, 12-21). Trained on the true masks of train and a segmenter's masks of unlabeled
(its pseudo-labels), with scheduled sampling of the segmenter's input masks; scored on val from the
segmenter's masks, never the ground truth, beside copy-last and the motion rule (extrapolate) from the
same masks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.cache import DecodedSplit, decode_split
from data.classes import FUTURE, INPUT_FRAMES, N_INPUT_FRAMES, TARGET_FRAME
from data.datasets import MaskClips, batch_indices, with_pseudo
from data.metric import IoUMeter
from data.streaming import StreamMaskClips
from models.motion import extrapolate_masks
from models.registry import ModelEntry
from reports.schema import VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_IOU, VAL_LOSS
from tune.training.config import RunConfig, TrainConfig
from tune.training.inference import Infer, class_ids
from tune.training.losses import masks_cross_entropy, segmentation_loss, soft_dice_loss
from tune.training.pseudo_store import has_pseudo, load_pseudo, pseudo_of
from tune.training.tasks.base import LoadOptions, Task, TrainData, on_device, predict_in_batches, register_task
from tune.training.tasks.frame_segmentation import pipeline_segmenter, segment_frames


@register_task
class MaskPrediction(Task):
    name = "mask_prediction"
    metrics = (VAL_IOU, VAL_LOSS, VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU)
    needs_segmenter = True
    splits = ("train", "val", "unlabeled")  # unlabeled through the segmenter's pseudo-labels

    @staticmethod
    def handles(entry: ModelEntry) -> bool:
        return entry.input_kind == "masks"

    def load(self, root: str | os.PathLike[str], device: torch.device, options: LoadOptions) -> TrainData:
        """Inputs from the pseudo-label folder `options.pseudo` (see tune.training.pseudo), targets from the
        true masks."""
        if options.pseudo is None:
            raise ValueError("mask prediction needs the pseudo-label folder of a segmenter")
        pseudo, kwargs = Path(options.pseudo), options.decode_kwargs()
        train = decode_split(root, "train", **kwargs)
        train_pseudo = _pseudo_of(pseudo, "train", train.ids)
        assert train.masks is not None
        # (inputs, the segmenter's inputs, targets) of each part, views of the memory-mapped files
        parts = [(train.masks[:, :N_INPUT_FRAMES], train_pseudo, train.masks[:, FUTURE])]
        if has_pseudo(pseudo, "unlabeled"):
            unlabeled, _ = load_pseudo(pseudo, "unlabeled")  # every frame, all the segmenter's
            unlabeled = unlabeled[: options.unlabeled]  # the first ones, where a study uses part
            inputs = unlabeled[:, :N_INPUT_FRAMES]
            parts.append((inputs, inputs, unlabeled[:, FUTURE]))  # its own inputs are the segmenter's
        val = options.val(root)
        val_inputs = on_device(_pseudo_of(pseudo, "val", val.ids), device)  # the segmenter's, never the truth
        assert val.masks is not None
        val_target = on_device(val.masks[:, TARGET_FRAME : TARGET_FRAME + 1], device)  # mask 22 alone
        held = sum(a.nbytes + c.nbytes + (b.nbytes if b is not a else 0) for a, b, c in parts)
        if held > options.hold_limit(device):  # streamed from the files: a trial's memory does not grow with them
            train_clips: MaskClips | StreamMaskClips = StreamMaskClips(parts, device)
        else:
            held_parts = []
            for a, b, c in parts:
                held_inputs = on_device(a, device)
                pseudo_inputs = held_inputs if b is a else on_device(b, device)
                held_parts.append(MaskClips(held_inputs, pseudo_inputs, on_device(c, device)))
            train_clips = MaskClips.concat(held_parts)
        return TrainData(train_clips, MaskClips(val_inputs, val_inputs, val_target))

    def read(self, train: Any, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return train.read(index)

    def batch(
        self, read: Any, index: torch.Tensor, cfg: TrainConfig, epoch: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scheduled sampling: a clip gets the segmenter's input masks with a chance that goes from
        pseudo_input_start at the first epoch to pseudo_input_end at the last."""
        progress = epoch / max(1, cfg.epochs - 1)
        chance = cfg.pseudo_input_start + (cfg.pseudo_input_end - cfg.pseudo_input_start) * progress
        use_pseudo = torch.rand(len(index), device=generator.device, generator=generator) < chance
        return with_pseudo(read, use_pseudo)

    def class_counts(self, data: TrainData) -> torch.Tensor | None:
        return data.train.class_counts()

    def wants_all_frames(self, cfg: TrainConfig) -> bool:
        return cfg.future_weight > 0

    def loss(
        self, out: torch.Tensor, target: torch.Tensor, cfg: TrainConfig, class_weights: torch.Tensor | None
    ) -> torch.Tensor:
        """target: masks 12-22 (B, 11, H, W), or 22 alone (B, 1, H, W); out: the logits of mask 22, or of
        masks 12-22 (B, 11, K, H, W), whose mean loss on 12-21 is added with future_weight."""
        if out.dim() == 4:
            return segmentation_loss(out, target[:, -1], cfg, class_weights)
        sums, weights = masks_cross_entropy(out, target, class_weights)
        loss = sums[-1] / weights[-1] + cfg.future_weight * sums[:-1].sum() / weights[:-1].sum()
        if cfg.dice_weight:  # as segmentation_loss adds it to mask 22's
            loss = loss + cfg.dice_weight * soft_dice_loss(out[:, -1], target[:, -1].long())
        return loss

    def evaluate(self, infer: Infer, val: Any, batch_size: int) -> dict[str, float]:
        """Competition IoU of mask 22 on val from the segmenter's masks of frames 1-11, and two rules on the
        same masks: its mask of frame 11 as the answer (copy last), and that mask's objects moved along
        their tracks (extrapolate)."""
        meter, copy_last, extrapolate = (IoUMeter(val.device) for _ in range(3))
        loss = torch.zeros((), device=val.device)
        for index in batch_indices(len(val), batch_size, shuffle=False, device=val.device):
            inputs, target = val.batch(index)
            target = target[:, -1]  # mask 22
            logits = infer(inputs)
            loss += F.cross_entropy(logits.float(), target.long(), reduction="sum") / target[0].numel()
            meter.update(class_ids(logits), target)
            copy_last.update(inputs[:, -1], target)
            extrapolate.update(extrapolate_masks(inputs), target)
        return {
            VAL_IOU: meter.compute(),
            VAL_LOSS: float(loss) / len(val),
            VAL_COPY_LAST_IOU: copy_last.compute(),
            VAL_EXTRAPOLATE_IOU: extrapolate.compute(),
        }

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
        """The mask-space pipeline: its segmenter labels the input frames, the predictor takes those masks."""
        segmenter_run, segmenter = pipeline_segmenter(run, pipeline, device)
        inputs = torch.from_numpy(segment_frames(segmenter_run, segmenter, decoded.frames, INPUT_FRAMES, device)).to(
            device
        )
        return predict_in_batches(run, model, len(inputs), lambda index: inputs[index], device, batch_size)


def _pseudo_of(pseudo: Path, split: str, ids: np.ndarray) -> np.ndarray:
    """A split's pseudo-labels of the videos `ids`, checked to be theirs."""
    return pseudo_of(pseudo, split, ids)[0][: len(ids)]
