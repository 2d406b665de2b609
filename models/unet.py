"""U-Net (Ronneberger et al., 2015) for 160x240 frames.

Registered as `unet` (frames 1-11 stacked as 33 channels -> 49-class logits of mask 22) and
`frame_segmenter` (one frame -> its 49-class logits; the per-frame segmenter of the references).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from data.classes import N_INPUT_FRAMES, NUM_CLASSES
from models.blocks import NORMS, ConvBlock, class_head, pad_to_multiple
from models.config import check_depth, check_positive, check_prior
from models.registry import register_model


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3 * N_INPUT_FRAMES  # 33: frames 1-11 stacked
    num_classes: int = NUM_CLASSES  # 49, background included
    width: int = 32  # channels at full resolution; doubled at each level down
    depth: int = 4  # down-sampling steps; at most 4 at 160x240
    norm: str = "batch"  # batch | group | none
    dropout: float = 0.0  # dropout at the bottleneck and before the head
    background_prior: float = 0.9  # initial probability of class 0 (background covers most pixels); 0: no prior

    def __post_init__(self) -> None:
        check_positive(self, "in_channels", "width")
        check_prior(self)
        if self.num_classes < 2:
            raise ValueError(f"UNetConfig.num_classes must be >= 2, got {self.num_classes}")
        check_depth(self, "depth")
        if self.norm not in NORMS:
            raise ValueError(f"UNetConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**k for k in range(cfg.depth + 1)]
        self.stem = ConvBlock(cfg.in_channels, widths[0], cfg.norm)
        self.down = nn.ModuleList(ConvBlock(widths[k], widths[k + 1], cfg.norm) for k in range(cfg.depth))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck_dropout = nn.Dropout2d(cfg.dropout)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2) for k in reversed(range(cfg.depth))
        )
        self.merge = nn.ModuleList(ConvBlock(2 * widths[k], widths[k], cfg.norm) for k in reversed(range(cfg.depth)))
        self.head_dropout = nn.Dropout2d(cfg.dropout)
        self.head = class_head(widths[0], cfg.num_classes, cfg.background_prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W) float; any H, W (padded to a multiple of 2^depth, cropped back)
        x, (height, width) = pad_to_multiple(x, 2**self.cfg.depth)
        skips = [self.stem(x)]  # (B, w, H, W)
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))  # (B, w * 2^k, H / 2^k, W / 2^k)
        h = self.bottleneck_dropout(skips.pop())
        for up, merge in zip(self.up, self.merge, strict=True):
            h = merge(torch.cat([up(h), skips.pop()], dim=1))
        return self.head(self.head_dropout(h))[..., :height, :width]  # (B, num_classes, H, W)


@register_model("unet", UNetConfig, input_kind="stacked")
def unet(cfg: UNetConfig) -> UNet:
    return UNet(cfg)


@dataclass(frozen=True)
class FrameSegmenterConfig(UNetConfig):
    in_channels: int = 3  # one RGB frame


@register_model("frame_segmenter", FrameSegmenterConfig, input_kind="frame")
def frame_segmenter(cfg: FrameSegmenterConfig) -> UNet:
    return UNet(cfg)
