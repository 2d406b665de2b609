"""The competition metric: multiclass Jaccard index (IoU) over 49 classes, computed once over the whole
stacked set of predictions against targets (../shared/DATA.md).

Macro average over classes, background counted, and a class absent from both prediction and target is
left out of the mean. Averaging per video gives a different, wrong number. Every part of the project
scores with `competition_iou` or, batch by batch, with the `IoUMeter` it wraps.

The competition defines the score as torchmetrics' `MulticlassJaccardIndex(num_classes=49)`; this module
computes the same confusion matrix and the same float32 reduction itself (tests/data/test_metric.py holds
it to torchmetrics, bit for bit), because importing torchmetrics (it pulls scipy.signal) took 1.0 of the
3.6 s every trial's process and every command spent on imports.
"""

from __future__ import annotations

import torch

from data.classes import NUM_CLASSES


def _check(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape:
        raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in shape")
    for name, t in (("predictions", preds), ("targets", target)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must be integer class ids, got dtype {t.dtype}")


def _outside(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How many pixels of either side are not class ids (a tensor on their device: no host synchronisation)."""
    return ((preds < 0) | (preds >= NUM_CLASSES)).sum() + ((target < 0) | (target >= NUM_CLASSES)).sum()


def _refuse_outside(count: int) -> None:
    if count:
        raise ValueError(f"{count} predicted or target pixels are not class ids in 0..{NUM_CLASSES - 1}")


def _confusion(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(49, 49) pixel counts, rows the target's class, columns the prediction's (ids clamped into range:
    the callers count and refuse the ones outside)."""
    index = target.reshape(-1).long().clamp(0, NUM_CLASSES - 1) * NUM_CLASSES
    index += preds.reshape(-1).long().clamp(0, NUM_CLASSES - 1)
    return torch.bincount(index, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def _class_scores(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's IoU (0 where it is absent from both sides) and whether it is present, in torchmetrics'
    float32 arithmetic."""
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    scores = torch.where(present, tp.float() / union.float().clamp(min=1), torch.zeros((), device=tp.device))
    return scores, present


def _macro(confusion: torch.Tensor) -> float:
    scores, present = _class_scores(confusion)
    weights = present.float()
    return float((weights * scores / weights.sum()).sum())


def competition_iou(preds: torch.Tensor, target: torch.Tensor) -> float:
    """IoU of class-id predictions (N, H, W) against targets (N, H, W), as the competition scores it."""
    _check(preds, target)
    _refuse_outside(int(_outside(preds, target)))
    return _macro(_confusion(preds, target))


def per_class_iou(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each class (49,), NaN where a class is absent from both sides."""
    _check(preds, target)
    _refuse_outside(int(_outside(preds, target)))
    scores, present = _class_scores(_confusion(preds, target))
    return torch.where(present, scores, torch.nan)


class IoUMeter:
    """The same metric, accumulated batch by batch on the batches' device (a confusion matrix: no
    host synchronisation until `compute`). Ids outside 0..48 are counted and refused by `compute`."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self._confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long, device=device)
        self._outside = torch.zeros((), dtype=torch.long, device=device)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        _check(preds, target)
        self._outside += _outside(preds, target).to(self._outside.device)
        self._confusion += _confusion(preds, target).to(self._confusion.device)

    def compute(self) -> float:
        _refuse_outside(int(self._outside))
        return _macro(self._confusion)

    def reset(self) -> None:
        self._outside.zero_()
        self._confusion.zero_()
