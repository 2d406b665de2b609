"""Dual-phase model, phase 2: a U-Net segments the frame predictor's frame 22.

The segmenter sees the predicted frame and, as options, the last real frame (frame 11) and the
predictor's final recurrent state upsampled to full resolution. The predictor is the model's pretrained
part: its registry entry names it (`PretrainedPart("predictor", "frame_predictor")`), so a recipe can load
a `frame_predictor` checkpoint into it; whether it stays frozen during fine-tuning is the recipe's choice,
not the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.frame_predictor import FramePrediction, FramePredictor, FramePredictorConfig
from models.registry import PretrainedPart, register_model
from models.unet import UNet, UNetConfig


@dataclass(frozen=True)
class DualPhaseConfig:
    predictor: FramePredictorConfig = field(default_factory=FramePredictorConfig)  # phase 1's model
    seg_width: int = 32  # segmenter U-Net width
    seg_depth: int = 4  # segmenter U-Net depth
    seg_norm: str = "batch"  # segmenter normalisation: batch | group | none
    seg_dropout: float = 0.0  # segmenter dropout
    use_last_frame: bool = True  # the segmenter also sees frame 11
    use_features: bool = False  # ... and the predictor's recurrent state

    def __post_init__(self) -> None:
        self.segmenter_config()  # validates the seg_* fields, naming them as UNetConfig fields

    def segmenter_config(self) -> UNetConfig:
        channels = 3 + 3 * self.use_last_frame + self.predictor.hidden * self.use_features
        return UNetConfig(
            in_channels=channels,
            width=self.seg_width,
            depth=self.seg_depth,
            norm=self.seg_norm,
            dropout=self.seg_dropout,
        )


class DualPhase(nn.Module):
    def __init__(self, cfg: DualPhaseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.predictor = FramePredictor(cfg.predictor)
        self.segmenter = UNet(cfg.segmenter_config())

    def predict(self, frames: torch.Tensor) -> tuple[torch.Tensor, FramePrediction]:
        """Mask logits (B, 49, H, W) and the predictor's output, from frames (B, 11, 3, H, W)."""
        prediction = self.predictor(frames)
        inputs = [prediction.frame]  # (B, 3, H, W)
        if self.cfg.use_last_frame:
            inputs.append(frames[:, -1])
        if self.cfg.use_features:
            inputs.append(
                F.interpolate(prediction.features, size=frames.shape[-2:], mode="bilinear", align_corners=False)
            )
        return self.segmenter(torch.cat(inputs, dim=1)), prediction

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.predict(frames)[0]

    def segment(self, frame: torch.Tensor) -> torch.Tensor:
        """Mask logits (B, 49, H, W) of real frames (B, 3, H, W), segmented as if each were the predicted frame
        (and the last frame, and no recurrent state): the per-frame supervision of the segmenter that every
        labelled frame gives (TrainConfig.frame_weight)."""
        inputs = [frame, frame] if self.cfg.use_last_frame else [frame]
        if self.cfg.use_features:
            inputs.append(frame.new_zeros(frame.shape[0], self.cfg.predictor.hidden, *frame.shape[-2:]))
        return self.segmenter(torch.cat(inputs, dim=1))


@register_model(
    "dual_phase", DualPhaseConfig, input_kind="sequence", pretrained=PretrainedPart("predictor", "frame_predictor")
)
def dual_phase(cfg: DualPhaseConfig) -> DualPhase:
    return DualPhase(cfg)
