"""Running a model on uint8 batches: the device, bf16 autocast on CUDA, and the float inputs each kind of
model takes. Used by the trainer, by evaluation and by prediction alike."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from models.registry import model_entry

Infer = Callable[[torch.Tensor], Any]  # uint8 batch -> the model's output


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA where enabled; nothing on other devices."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def model_inputs(frames: torch.Tensor, input_kind: str, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 frames -> the float input a model of `input_kind` takes, on the frames' device (class-id
    masks, for a mask model, go in as they are)."""
    if input_kind == "masks":
        return frames.long()  # (B, 11, H, W)
    x = frames.float().div_(255)  # (B, T, 3, H, W) or (B, 3, H, W)
    if input_kind == "stacked":
        x = x.flatten(1, 2)  # (B, 33, H, W)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class ModelRunner:
    """Calls a model (or its compiled form) on uint8 batches: inputs converted for its kind, under autocast."""

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        device: torch.device,
        *,
        amp: bool = True,
        channels_last: bool = False,
        forward: Callable[..., Any] | None = None,
    ) -> None:
        self.forward = forward or model
        self.input_kind = model_entry(model_name).input_kind
        self.device = device
        self.amp = amp
        self.channels_last = channels_last

    def __call__(self, raw: torch.Tensor, **kwargs: Any) -> Any:
        with autocast(self.device, self.amp):
            return self.forward(model_inputs(raw, self.input_kind, channels_last=self.channels_last), **kwargs)
