"""Losses and class weights of the training tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data.classes import NUM_CLASSES
from tune.training.config import TrainConfig


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft dice over the classes present in the prediction or target of the batch."""
    probs = logits.float().softmax(dim=1)  # (B, K, H, W)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()  # (B, K, H, W)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = (2 * inter + 1.0) / (total + 1.0)
    return 1 - (dice * present).sum() / present.sum().clamp(min=1)


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Structural similarity per pixel of images in [0, 1] (B, C, H, W), with a uniform window (zero padding)."""
    c1, c2 = 0.01**2, 0.03**2
    pad = window // 2
    mu_x, mu_y = F.avg_pool2d(x, window, 1, pad), F.avg_pool2d(y, window, 1, pad)
    var_x = F.avg_pool2d(x * x, window, 1, pad) - mu_x**2
    var_y = F.avg_pool2d(y * y, window, 1, pad) - mu_y**2
    cov = F.avg_pool2d(x * y, window, 1, pad) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity of images in [0, 1] (B, C, H, W), with a uniform window.

    Kept instead of torchmetrics' SSIM: benchmarks/ssim_speed.py measured torchmetrics 1.3-1.5x slower
    (forward + backward, batch 8 at 160x240, CPU) with the same 7x7 uniform window, and 1.5-1.9x with
    its default Gaussian 11x11; the values agree away from the 3-pixel border (zero vs mirror padding)."""
    return ssim_map(x, y, window).mean()


def inverse_sqrt_class_weights(masks: torch.Tensor) -> torch.Tensor:
    """Class weights (49,) ~ 1 / sqrt(pixel frequency), normalised to mean 1 over present classes."""
    return inverse_sqrt_weights(torch.bincount(masks.reshape(-1).long(), minlength=NUM_CLASSES))


def inverse_sqrt_weights(pixel_counts: torch.Tensor) -> torch.Tensor:
    """inverse_sqrt_class_weights from the pixel count of each class (49,)."""
    counts = pixel_counts.float()
    weights = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))
    return weights * (counts > 0).sum() / weights.sum()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, cfg: TrainConfig, class_weights: torch.Tensor | None
) -> torch.Tensor:
    """Cross-entropy of class logits (B, K, H, W) against class ids (B, H, W), plus the weighted soft dice."""
    target = target.long()
    loss = F.cross_entropy(logits.float(), target, weight=class_weights)
    if cfg.dice_weight:
        loss = loss + cfg.dice_weight * soft_dice_loss(logits, target)
    return loss


def frame_loss(pred: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """MSE or L1 of a predicted frame against a uint8 frame, plus the weighted (1 - SSIM)."""
    truth = target.float() / 255
    pred = pred.float()
    loss = F.mse_loss(pred, truth) if cfg.frame_loss == "mse" else F.l1_loss(pred, truth)
    if cfg.ssim_weight:
        loss = loss + cfg.ssim_weight * (1 - ssim(pred.clamp(0, 1), truth))
    return loss


def masks_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Several masks' logits (B, F, K, H, W) against their class ids (B, F, H, W): each mask's summed
    (class-weighted) cross-entropy (F,) and the summed weight of its pixels (F,), so that any group of masks'
    mean is sums[g].sum() / weights[g].sum(), as F.cross_entropy's mean over that group is. One log-softmax over
    the masks as a batch (a view of the logits): no (B, K, F, H, W) copy of them, and in backward no
    full-size zero gradient for each mask taken apart (for 11 masks of 4 clips at 160x240, 330 MB a copy;
    measured 0.6 GiB off a mask predictor's training step, and 30% of its time, benchmarks/predictor_memory.py)."""
    per_pixel = F.cross_entropy(
        logits.flatten(0, 1).float(), target.flatten(0, 1).long(), weight=class_weights, reduction="none"
    ).unflatten(0, target.shape[:2])
    if class_weights is None:
        weights = torch.full(target.shape[1:2], float(target[:, 0].numel()), device=target.device)
    else:
        weights = class_weights[target.long()].sum((0, 2, 3))
    return per_pixel.sum((0, 2, 3)), weights
