"""Frame predictor, phase 1 of the dual-phase approach: frames 1-11 -> frame 22.

A convolutional encoder applied to each frame, a ConvLSTM (or ConvGRU) over the 11 steps at reduced
resolution, and a decoder that predicts frame 22 as a change to frame 11, using frame 11's encoder
features as skips. It also returns the final recurrent state, which phase 2 may feed its segmenter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from models.blocks import NORMS, ConvBlock, conv_norm_relu, pad_to_multiple
from models.config import check_depth, check_positive
from models.registry import register_model

CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class FramePredictorConfig:
    width: int = 32  # encoder channels at full resolution; doubled at each down-sampling step
    downsample: int = 2  # stride-2 steps before the recurrence (2: it runs at 40x60)
    hidden: int = 64  # channels of the recurrent state
    cell: str = "lstm"  # lstm | gru
    kernel: int = 3  # kernel of the recurrent convolutions (odd)
    layers: int = 1  # stacked recurrent layers
    norm: str = "batch"  # batch | group | none, in encoder and decoder

    def __post_init__(self) -> None:
        check_positive(self, "width", "hidden", "layers", "kernel")
        check_depth(self, "downsample", lowest=0)
        if self.cell not in CELLS:
            raise ValueError(f"FramePredictorConfig.cell must be one of {CELLS}, got {self.cell!r}")
        if self.kernel % 2 == 0:
            raise ValueError(f"FramePredictorConfig.kernel must be odd, got {self.kernel}")
        if self.norm not in NORMS:
            raise ValueError(f"FramePredictorConfig.norm must be one of {NORMS}, got {self.norm!r}")


class ConvLSTMCell(nn.Module):
    """Shi et al. (2015): LSTM gates computed by a convolution over [input, hidden]."""

    def __init__(self, c_in: int, c_hidden: int, kernel: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(c_in + c_hidden, 4 * c_hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvGRUCell(nn.Module):
    """Ballas et al. (2016): GRU gates computed by convolutions."""

    def __init__(self, c_in: int, c_hidden: int, kernel: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(c_in + c_hidden, 2 * c_hidden, kernel, padding=kernel // 2)
        self.candidate = nn.Conv2d(c_in + c_hidden, c_hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        (h,) = state
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return ((1 - z) * h + z * n,)


class FramePrediction(NamedTuple):
    frame: torch.Tensor  # (B, 3, H, W), in the input's [0, 1] scale
    features: torch.Tensor  # (B, hidden, H / 2^d, W / 2^d), the final recurrent state


class FramePredictor(nn.Module):
    def __init__(self, cfg: FramePredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**k for k in range(cfg.downsample + 1)]
        # The encoder runs on all 11 frames: one convolution per level keeps it cheap; the capacity sits
        # in the recurrence and the decoder, which run once.
        self.stem = conv_norm_relu(3, widths[0], cfg.norm, stride=1)
        self.down = nn.ModuleList(
            conv_norm_relu(widths[k], widths[k + 1], cfg.norm, stride=2) for k in range(cfg.downsample)
        )
        cell = ConvLSTMCell if cfg.cell == "lstm" else ConvGRUCell
        self.cells = nn.ModuleList(
            cell(widths[-1] if k == 0 else cfg.hidden, cfg.hidden, cfg.kernel) for k in range(cfg.layers)
        )
        self.fuse = ConvBlock(cfg.hidden + widths[-1], widths[-1], cfg.norm)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2) for k in reversed(range(cfg.downsample))
        )
        self.merge = nn.ModuleList(
            ConvBlock(2 * widths[k], widths[k], cfg.norm) for k in reversed(range(cfg.downsample))
        )
        self.head = nn.Conv2d(widths[0], 3, 1, bias=False)
        nn.init.zeros_(self.head.weight)  # start as "copy frame 11"

    def encode(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Per-level features of a batch of frames (N, 3, H, W), full resolution first."""
        levels = [self.stem(frames)]
        for block in self.down:
            levels.append(block(levels[-1]))
        return levels

    def forward(self, frames: torch.Tensor) -> FramePrediction:
        b, t = frames.shape[:2]  # frames: (B, T, 3, H, W) float in [0, 1]; any H, W (padded, cropped back)
        frames, (height, width) = pad_to_multiple(frames, 2**self.cfg.downsample)
        # Frame 11 is encoded apart: the decoder takes its features at every level as skips, and
        # slicing them out of all frames' features would cost a full-size gradient buffer per level.
        last = self.encode(frames[:, -1])  # per level (B, C_k, H_k, W_k)
        earlier = self.encode(frames[:, :-1].flatten(0, 1))[-1].unflatten(0, (b, t - 1))  # (B, T-1, C, h, w)
        steps = [*earlier.unbind(1), last[-1]]
        for cell in self.cells:
            n_state = 2 if isinstance(cell, ConvLSTMCell) else 1
            state: tuple[torch.Tensor, ...] = tuple(
                steps[0].new_zeros(b, self.cfg.hidden, *steps[0].shape[-2:]) for _ in range(n_state)
            )
            outputs = []
            for x in steps:
                state = cell(x, state)
                outputs.append(state[0])
            steps = outputs  # (B, hidden, h, w) per step
        features = steps[-1]  # (B, hidden, h, w): the final recurrent state
        x = self.fuse(torch.cat([features, last[-1]], dim=1))
        for k, (up, merge) in enumerate(zip(self.up, self.merge, strict=True)):
            x = merge(torch.cat([up(x), last[-2 - k]], dim=1))
        return FramePrediction((frames[:, -1] + self.head(x))[..., :height, :width], features)


@register_model("frame_predictor", FramePredictorConfig, input_kind="sequence", output="frame")
def frame_predictor(cfg: FramePredictorConfig) -> FramePredictor:
    return FramePredictor(cfg)
