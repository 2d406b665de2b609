"""Running a model on uint8 batches: the device, bf16 autocast on CUDA, the float inputs each kind of
model takes, and the input scale (inputs reduced before the model, its full-size outputs brought back to
160x240 for the loss and the metric). Used by the trainer, by evaluation and by prediction alike."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import InputKind, model_entry

Infer = Callable[[torch.Tensor], Any]  # uint8 batch -> the model's output


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: the GPU where torch has one, else the CPU; a named device is checked to exist here (ValueError
    naming it, not torch's assertion deep in the first copy)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's "Expected one of cpu, cuda, ipu, xpu, mkldnn, ... (20 more) ...: gpu"
        raise ValueError(f"device {name!r}: not a device; give auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ValueError(f"device {name!r}: this machine has no CUDA GPU that torch {torch.__version__} can use")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA where enabled; nothing on other devices."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def model_inputs(frames: torch.Tensor, input_kind: InputKind) -> torch.Tensor:
    """uint8 frames -> the float input a model of `input_kind` takes, on the frames' device (class-id
    masks, for a mask model, go in as they are)."""
    if input_kind == "masks":
        return frames.long()  # (B, 11, H, W)
    if input_kind == "tracks":
        return frames.float()  # (B, 11, 49, channels), data.tracks.dense_tracks
    x = frames.float().div_(255)  # (B, T, 3, H, W) or (B, 3, H, W)
    if input_kind == "stacked":
        x = x.flatten(1, 2)  # (B, 33, H, W)
    return x


def reduce_inputs(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Model inputs (..., H, W) at 1/factor of their size: float frames averaged over factor x factor
    blocks, class-id masks sampled at each block's centre (classes are not averaged)."""
    if factor == 1:
        return x
    if not x.is_floating_point():
        return x[..., factor // 2 :: factor, factor // 2 :: factor]
    lead = x.shape[:-2]
    return F.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), factor).reshape(*lead, *(s // factor for s in x.shape[-2:]))


def restore_size(out: Any, reduced: tuple[int, ...], size: tuple[int, ...]) -> Any:
    """A model's output at the reduced input size brought back to `size`: every tensor whose last two
    sides are the reduced input's (logits, a predicted frame; also inside a tuple such as FramePrediction)
    is upsampled bilinearly; others (low-resolution features) are left as they are."""
    if isinstance(out, torch.Tensor):
        if tuple(out.shape[-2:]) != reduced or reduced == size:
            return out
        flat = out.reshape(-1, *out.shape[-3:]) if out.dim() > 4 else out
        up = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
        return up.reshape(*out.shape[:-2], *size)
    if isinstance(out, tuple):
        parts = [restore_size(part, reduced, size) for part in out]
        return type(out)(*parts) if hasattr(out, "_fields") else tuple(parts)
    return out


def class_ids(logits: torch.Tensor) -> torch.Tensor:
    """Each pixel's class, the first of its largest logits: (N, K, H, W) -> (N, H, W) int64. The same answer as
    argmax(1), which took 3x as long on a CPU (49 classes at 160x240: 9.5 against 3.3 ms a frame, measured), a
    third of the time of labelling a frame with the smoke budget's segmenter."""
    return logits.max(1).indices


def scale_factor(input_scale: float) -> int:
    """The integer reduction of an input scale (0.25 -> 4)."""
    factor = round(1 / input_scale)
    if factor < 1 or abs(factor * input_scale - 1) > 1e-6:
        raise ValueError(f"an input scale must be 1 / an integer, got {input_scale}")
    return factor


class ModelRunner:
    """Calls a model (or its compiled form) on uint8 batches: inputs converted for its kind and reduced to
    `input_scale`, under autocast; outputs at full size."""

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        device: torch.device,
        *,
        amp: bool = True,
        channels_last: bool = False,
        forward: Callable[..., Any] | None = None,
        input_scale: float = 1.0,
        input_kind: InputKind | None = None,
    ) -> None:
        self.forward = model if forward is None else forward  # not `or`: a compiled module refuses len()
        self.input_kind = input_kind or model_entry(model_name).input_kind
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.factor = scale_factor(input_scale)
        if self.input_kind == "tracks" and self.factor != 1:
            raise ValueError(f"a tracks model ({model_name}) takes no input scale, got {input_scale}")
        self.full_size = True  # outputs brought back to the input's size (False: at the model's reduced size)
        # the part of the logits a rule computes from the inputs (a mask predictor's prior), made again at full size
        self.prior_of: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None] | None = getattr(
            model, "prior_of", None
        )

    @classmethod
    def of_run(cls, model: nn.Module, run: Any, device: torch.device, **options: Any) -> ModelRunner:
        """The runner of a RunConfig's model: its registered name and its training input scale."""
        return cls(model, run.model, device, input_scale=run.train.input_scale, **options)

    def with_forward(self, forward: Callable[..., Any], input_kind: InputKind) -> ModelRunner:
        """The same runner (device, autocast, scale) calling another entry point of the model."""
        other = copy.copy(self)
        other.forward, other.input_kind, other.prior_of = forward, input_kind, None
        return other

    def at_model_size(self) -> ModelRunner:
        """The same runner with outputs left at the reduced size: training computes its loss there (against
        targets reduced alike, Task.reduce_target), since upsampling 49-class logits to 160x240 and their
        cross-entropy took 3/4 of a CPU training step at scale 0.25 (measured); the metric stays at full size."""
        other = copy.copy(self)
        other.full_size = False
        return other

    def __call__(self, raw: torch.Tensor, **kwargs: Any) -> Any:
        size = tuple(raw.shape[-2:])
        full = model_inputs(raw, self.input_kind)
        x = reduce_inputs(full, self.factor)
        if self.channels_last and x.dim() == 4 and self.input_kind != "tracks":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            out = self.forward(x, **kwargs)
        if not self.full_size:
            return out
        out = restore_size(out, tuple(x.shape[-2:]), size)
        return self._prior_at_full_size(out, full, x) if self.factor > 1 and self.prior_of is not None else out

    def _prior_at_full_size(self, logits: Any, full: torch.Tensor, reduced: torch.Tensor) -> Any:
        """Upsampled logits (B, K, H, W) whose prior (`prior_of`: a class per pixel and a bonus on its logit) was
        computed on the reduced inputs: that prior, upsampled as the logits were, taken out, and the prior of
        the full-size inputs put in. Exact, the upsampling being linear; the logits come back in float32 (bf16
        would round a bonus of 10 to a few hundredths). Other outputs are returned as they are."""
        assert self.prior_of is not None
        if not isinstance(logits, torch.Tensor) or logits.dim() != 4 or logits.shape[-2:] != full.shape[-2:]:
            return logits
        small, large = self.prior_of(reduced), self.prior_of(full)
        if small is None or large is None:
            return logits
        (ids, bonus), (full_ids, _) = small, large
        bonus = bonus.float()
        onehot = F.one_hot(ids, logits.shape[1]).movedim(-1, 1).float() * bonus  # (B, K, h, w)
        out = logits.float() - restore_size(onehot, tuple(reduced.shape[-2:]), tuple(full.shape[-2:]))
        return out.scatter_add_(1, full_ids[:, None], bonus.expand(full_ids[:, None].shape).contiguous())
