"""The 1x1 class head shared by the segmentation models."""

from __future__ import annotations

import math

import torch
from torch import nn


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
