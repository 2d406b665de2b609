"""The competition metric: multiclass Jaccard index (IoU) over 49 classes, computed once over the whole
stacked set of predictions against targets (../shared/DATA.md).

Macro average over classes, background counted, and a class absent from both prediction and target is
left out of the mean. Averaging per video gives a different, wrong number. Every part of the project
scores with `competition_iou` or, batch by batch, with the `IoUMeter` it wraps.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.functional.classification import multiclass_jaccard_index

from data.classes import NUM_CLASSES


def _check(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape:
        raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in shape")
    for name, t in (("predictions", preds), ("targets", target)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must be integer class ids, got dtype {t.dtype}")


def competition_iou(preds: torch.Tensor, target: torch.Tensor) -> float:
    """IoU of class-id predictions (N, H, W) against targets (N, H, W), as the competition scores it."""
    _check(preds, target)
    return float(multiclass_jaccard_index(preds.long(), target.long(), num_classes=NUM_CLASSES, average="macro"))


def per_class_iou(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each class (49,), NaN where a class is absent from both sides."""
    _check(preds, target)
    scores = multiclass_jaccard_index(preds.long(), target.long(), num_classes=NUM_CLASSES, average="none")
    present = torch.bincount(preds.reshape(-1).long(), minlength=NUM_CLASSES) + torch.bincount(
        target.reshape(-1).long(), minlength=NUM_CLASSES
    )
    return torch.where(present > 0, scores, torch.nan)


class IoUMeter:
    """The same metric, accumulated batch by batch on the batches' device (a confusion matrix: no
    host synchronisation until `compute`)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        # torchmetrics' own check of the ids is a torch.unique of every pixel (0.24 s for a batch of 32 masks on a CPU:
        # half of an object-dynamics evaluation, measured); ids outside 0..48 are counted here and refused by compute
        self._metric = MulticlassJaccardIndex(num_classes=NUM_CLASSES, average="macro", validate_args=False).to(device)
        self._outside = torch.zeros((), dtype=torch.long, device=device)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        _check(preds, target)
        ids = [t.long() for t in (preds, target)]
        for t in ids:
            self._outside += ((t < 0) | (t >= NUM_CLASSES)).sum()
        self._metric.update(*(t.clamp(0, NUM_CLASSES - 1) for t in ids))  # counted above: compute refuses them

    def compute(self) -> float:
        if int(self._outside):
            raise ValueError(
                f"{int(self._outside)} predicted or target pixels are not class ids in 0..{NUM_CLASSES - 1}"
            )
        return float(self._metric.compute())

    def reset(self) -> None:
        self._outside.zero_()
        self._metric.reset()
