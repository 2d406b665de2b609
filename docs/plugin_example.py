"""An example plugin: your own model and search space, without editing the package.

    python -m tune.search --plugin docs/plugin_example.py --space shallow_unet --budget smoke
    python -m tune.predict --experiment runs/NAME --data DIR --split val --out val.pt

A plugin is a Python file (or an importable module) that registers models with `@register_model`
(models/registry.py) and spaces with `register_space` (tune/search/spaces.py), as the built-in ones do.
The study records it in search.json, and every process that needs it imports it again: the trials'
workers, `--resume`, and `tune.predict --experiment`. Keep the file where it is while the study lives.

Here: a U-Net with a single level down (frames 1-11 stacked as 33 channels -> the 49-class logits of
mask 22, like the built-in `unet`, so the same training task trains it), and a one-stage space that
searches its width, its kernel size and the usual training settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from torch import nn

from data.classes import N_INPUT_FRAMES, NUM_CLASSES
from models.blocks import class_head, norm_layer, pad_to_multiple
from models.registry import register_model
from tune.search.spaces import Budget, SearchSpace, Stage, optimisation, register_space, segmentation_loss


@dataclass(frozen=True)
class ShallowUNetConfig:
    in_channels: int = 3 * N_INPUT_FRAMES
    num_classes: int = NUM_CLASSES
    width: int = 16
    kernel: int = 3  # 3 or 5
    background_prior: float = 0.9  # the starting probability of the background class

    def __post_init__(self) -> None:
        if self.width < 1 or self.kernel not in (3, 5):
            raise ValueError(f"ShallowUNetConfig: width >= 1 and kernel 3 or 5, got {self.width}, {self.kernel}")


def _block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        norm_layer("group", c_out),
        nn.ReLU(inplace=True),
    )


class ShallowUNet(nn.Module):
    def __init__(self, cfg: ShallowUNetConfig) -> None:
        super().__init__()
        self.top = _block(cfg.in_channels, cfg.width, cfg.kernel)
        self.down = nn.Sequential(nn.MaxPool2d(2), _block(cfg.width, 2 * cfg.width, cfg.kernel))
        self.up = nn.ConvTranspose2d(2 * cfg.width, cfg.width, 2, stride=2)
        self.merge = _block(2 * cfg.width, cfg.width, cfg.kernel)
        self.head = class_head(cfg.width, cfg.num_classes, cfg.background_prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (height, width) = pad_to_multiple(x, 2)
        top = self.top(x)
        out = self.head(self.merge(torch.cat([top, self.up(self.down(top))], dim=1)))
        return out[..., :height, :width]


@register_model("shallow_unet", ShallowUNetConfig, input_kind="stacked")
def build_shallow_unet(cfg: ShallowUNetConfig) -> nn.Module:
    return ShallowUNet(cfg)


def define_shallow(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    return {
        **optimisation(trial, budget),  # lr, weight decay, batch size, schedule, input scale
        **segmentation_loss(trial),  # dice weight, class weighting
        "width": trial.suggest_categorical("width", list(budget.widths)),
        "kernel": trial.suggest_categorical("kernel", [3, 5]),
    }


register_space(
    SearchSpace(
        "shallow_unet",
        (Stage("main", "shallow_unet", "val_iou", "max", define_shallow),),
        "an example plugin: frames 1-11 stacked, a one-level U-Net to the mask of frame 22",
    )
)
