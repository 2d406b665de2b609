"""Blocks shared by the model files: normalisation layers, convolution blocks and the class head."""

from __future__ import annotations

import math

import torch
from torch import nn

NORMS = ("batch", "group", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """A normalisation layer of one of NORMS; group: gcd(channels, 8) groups."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    return nn.Identity()


def conv_norm_relu(c_in: int, c_out: int, norm: str, *, stride: int = 1) -> nn.Sequential:
    """conv 3x3 -> norm -> ReLU; the convolution has a bias only when there is no norm to absorb it."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none"),
        norm_layer(norm, c_out),
        nn.ReLU(inplace=True),
    )


class ConvBlock(nn.Sequential):
    """(conv 3x3 -> norm -> ReLU) x 2, as one flat sequence."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__(*conv_norm_relu(c_in, c_out, norm), *conv_norm_relu(c_out, c_out, norm))


def class_head(channels: int, num_classes: int, background_prior: float, *, frames: int = 1) -> nn.Conv2d:
    """A 1x1 convolution to class logits whose bias starts from the class prior (Lin et al., 2017):
    background (class 0) with probability `background_prior`, the rest shared evenly. Otherwise the
    first hundreds of steps are spent learning that almost every pixel is background. 0: no prior.
    `frames` > 1: logits of that many masks at once, frame-major on the channels."""
    head = nn.Conv2d(channels, frames * num_classes, 1)
    if background_prior > 0:
        prior = torch.full((num_classes,), math.log((1 - background_prior) / (num_classes - 1)))
        prior[0] = math.log(background_prior)
        head.bias = nn.Parameter(prior.repeat(frames))
    return head


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`x` (..., H, W) zero-padded at the bottom and right to sides divisible by `multiple`, and the original
    (H, W) to crop the output back to: a model with stride-2 steps then takes any input size (frames at a
    reduced input scale, 40x60 at 0.25, are not divisible by 16)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        x = nn.functional.pad(x, (0, pad_w, 0, pad_h))
    return x, (h, w)
