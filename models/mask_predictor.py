"""Mask-sequence predictor, the mask-space approach: masks of frames 1-11 -> logits of mask 22.

SimVP-style (Gao et al., 2022): a spatial encoder applied to each frame's class map (class embedding or
one-hot), a temporal translator over the frames stacked on channels, and a decoder back to full
resolution with the last known frame's full-resolution features as a skip. On the real data this
approach, trained on a per-frame segmenter's masks, reached 0.455 val IoU where RGB frame prediction
reached 0.16-0.24.

One step predicts the next `horizon` masks at once. With horizon 11 a single step reaches frame 22
(masks 12-21 come with it, for an optional loss on them); with fewer the model is rolled out: each step's
predicted class probabilities are encoded like input masks and join the window of the last 11 frames,
so the prediction of frame 22 rests on the model's own earlier predictions, differentiably.
A prior starts the model from a rule's answer: a learned bonus (initially `copy_prior`; fixed with
`learn_prior=False`) on the logit of the class the rule gives each pixel, so training begins from the rule
instead of from all background and the network learns what the rule gets wrong. `prior="copy"`: the last
known mask (on the CPU quality set, 0.263 val IoU against 0.174 without it, same budget; docs/models.md);
`prior="motion"`: each object of the last known mask moved along its track, as far as the frame predicted
(models.motion); `"none"`.
With `motion_input`, each step also sees that rule's masks of the frames it predicts, encoded like the
input masks: beside the window in the translator, and the last one's full-resolution features as a second
skip of the decoder, so the network sees where the rule puts each object at full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from data.classes import FUTURE_FRAMES, N_INPUT_FRAMES, NUM_CLASSES
from models.blocks import class_head, norm_layer, pad_to_multiple
from models.config import check_depth, check_positive, check_prior
from models.motion import RETENTION, TRACK_FRAMES, extrapolate_steps
from models.registry import register_model

PRIORS = ("copy", "motion", "none")
INFER_BYTES = 128 << 20  # without gradients, clips are predicted in groups whose logits of one step stay under this


@dataclass(frozen=True)
class MaskPredictorConfig:
    num_classes: int = NUM_CLASSES  # 49, background included
    embed: int = 16  # channels of the learned class embedding; 0: one-hot input
    hid_s: int = 32  # spatial encoder / decoder channels
    n_s: int = 2  # stride-2 steps of the spatial encoder (at most 4 at 160x240)
    hid_t: int = 128  # temporal translator channels
    n_t: int = 4  # translator blocks
    n_input: int = N_INPUT_FRAMES  # input frames
    background_prior: float = 0.9  # initial probability of class 0
    horizon: int = FUTURE_FRAMES  # masks predicted per step; fewer than 11: rolled out on its own predictions
    copy_prior: float = 10.0  # initial (learned) logit bonus for the class the prior gives a pixel; 0: no prior
    learn_prior: bool = True  # the bonus is learned; False: fixed, the network overturns the rule only where sure
    prior: str = "copy"  # copy (the last known mask) | motion (its objects moved along their tracks) | none
    motion_input: bool = False  # each step also sees the motion rule's masks of the frames it predicts
    motion_retention: float = RETENTION  # the motion rule's share of speed an object keeps a frame (models.motion)
    motion_track_frames: int = TRACK_FRAMES  # the last input masks the motion rule fits each velocity over
    checkpoint_steps: bool = False  # training: each rolled-out step recomputed in backward instead of its
    # 49-class tensors kept (less memory, one more forward pass)

    def __post_init__(self) -> None:
        check_positive(self, "hid_s", "hid_t", "n_t", "n_input")
        if not 1 <= self.horizon <= FUTURE_FRAMES:
            raise ValueError(f"MaskPredictorConfig.horizon must be in 1..{FUTURE_FRAMES}, got {self.horizon}")
        if self.copy_prior < 0:
            raise ValueError(f"MaskPredictorConfig.copy_prior must be >= 0, got {self.copy_prior}")
        if self.prior not in PRIORS:
            raise ValueError(f"MaskPredictorConfig.prior must be one of {PRIORS}, got {self.prior!r}")
        if not 0 < self.motion_retention <= 1:
            raise ValueError(f"MaskPredictorConfig.motion_retention must be in (0, 1], got {self.motion_retention}")
        if not 2 <= self.motion_track_frames <= self.n_input:
            raise ValueError(
                f"MaskPredictorConfig.motion_track_frames must be in 2..{self.n_input}, got {self.motion_track_frames}"
            )
        if self.embed < 0:
            raise ValueError(f"MaskPredictorConfig.embed must be >= 0 (0: one-hot), got {self.embed}")
        check_depth(self, "n_s")
        check_prior(self)


def _conv(c_in: int, c_out: int, *, stride: int = 1, transpose: bool = False) -> nn.Sequential:
    conv = (
        nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        if transpose
        else nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
    )
    return nn.Sequential(conv, norm_layer("group", c_out), nn.SiLU(inplace=True))


class TranslatorBlock(nn.Module):
    """Residual block mixing time (stacked on channels) and space."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            norm_layer("group", channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.body(x))


class MaskPredictor(nn.Module):
    def __init__(self, cfg: MaskPredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        channels_in = cfg.embed or cfg.num_classes
        self.embedding = nn.Embedding(cfg.num_classes, cfg.embed) if cfg.embed else None
        self.stem = _conv(channels_in, cfg.hid_s)
        self.down = nn.Sequential(*[_conv(cfg.hid_s, cfg.hid_s, stride=2) for _ in range(cfg.n_s)])
        extra = cfg.horizon if cfg.motion_input else 0  # the rule's masks of the frames a step predicts
        self.translate_in = nn.Conv2d((cfg.n_input + extra) * cfg.hid_s, cfg.hid_t, 1)
        self.translator = nn.Sequential(*[TranslatorBlock(cfg.hid_t) for _ in range(cfg.n_t)])
        self.translate_out = nn.Conv2d(cfg.hid_t, cfg.hid_s, 1)
        self.up = nn.Sequential(*[_conv(cfg.hid_s, cfg.hid_s, transpose=True) for _ in range(cfg.n_s)])
        self.merge = _conv((3 if cfg.motion_input else 2) * cfg.hid_s, cfg.hid_s)
        self.head = class_head(cfg.hid_s, cfg.num_classes, cfg.background_prior, frames=cfg.horizon)
        with_prior = cfg.copy_prior and cfg.prior != "none"
        bonus = torch.tensor(float(cfg.copy_prior))
        self.copy_scale = nn.Parameter(bonus, requires_grad=cfg.learn_prior) if with_prior else None
        self.steps = math.ceil(FUTURE_FRAMES / cfg.horizon)

    def encode_classes(self, masks: torch.Tensor) -> torch.Tensor:
        """(N, H, W) class ids -> (N, C, H, W) float."""
        if self.embedding is not None:
            return self.embedding(masks).movedim(-1, 1)
        return F.one_hot(masks, self.cfg.num_classes).movedim(-1, 1).float()

    def stem_classes(self, masks: torch.Tensor) -> torch.Tensor:
        """(N, H, W) class ids -> (N, hid_s, H, W): `stem(encode_classes(masks))` without the encoded input.

        The stem's 3x3 convolution of a one-hot (or embedded) class map is, at each of its 9 offsets, a
        lookup of the class there in a (classes, hid_s) table (the embedding times that offset's weights).
        So no (N, classes, H, W) tensor is made: for 11 frames of 32 clips at 160x240 the one-hot alone is
        2.6 GB (5.3 GB more as integers on the way), the largest thing a mask-space trial held (docs/search.md).
        The border reads an extra all-zero row, the convolution's zero padding."""
        conv = self.stem[0]
        assert isinstance(conv, nn.Conv2d)
        tables = conv.weight.permute(2, 3, 1, 0)  # (3, 3, C, hid_s)
        if self.embedding is not None:
            tables = self.embedding.weight @ tables  # (3, 3, classes, hid_s)
        tables = F.pad(tables, (0, 0, 0, 1))  # class `classes`: outside the picture
        height, width = masks.shape[-2:]
        padded = F.pad(masks.long(), (1, 1, 1, 1), value=self.cfg.num_classes)
        out = sum(
            F.embedding(padded[:, dy : dy + height, dx : dx + width], tables[dy, dx])
            for dy in range(3)
            for dx in range(3)
        )
        assert isinstance(out, torch.Tensor) and conv.bias is not None
        return self.stem[1:]((out + conv.bias).movedim(-1, 1))  # norm and activation

    def encode_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """(N, num_classes, H, W) class probabilities -> (N, C, H, W): the expected input encoding."""
        if self.embedding is not None:
            return torch.einsum("nkhw,kc->nchw", probs, self.embedding.weight)
        return probs

    def _add_motion_prior(self, logits: torch.Tensor, rule: torch.Tensor, ahead: list[int]) -> torch.Tensor:
        """logits (B, F, K, H, W) of the frames `ahead` of the last input (1-based), plus the learned bonus on
        the class of each pixel of the motion rule's masks of those frames (`rule`: (B, 11, H, W), frames 12-22)."""
        assert self.copy_scale is not None
        rule = rule[:, [a - 1 for a in ahead if a <= FUTURE_FRAMES]]  # a rolled-out step may run past frame 22
        rule = rule.unsqueeze(2)  # (B, F', 1, H, W) class ids
        bonus = self.copy_scale.to(logits.dtype).expand(rule.shape)
        head, tail = logits[:, : rule.shape[1]], logits[:, rule.shape[1] :]
        return torch.cat([head.scatter_add(2, rule, bonus), tail], dim=1)

    def _motion_inputs(self, rule: torch.Tensor, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The motion rule's masks (`rule`: (B, 11, H, W), frames 12-22) of the frames step `step` predicts
        (past frame 22: frame 22's), encoded like input masks: per frame, full-resolution (B, hid_s, H, W) and
        low-resolution features."""
        horizon = self.cfg.horizon
        ahead = [min(a, FUTURE_FRAMES) for a in range(step * horizon + 1, (step + 1) * horizon + 1)]
        b = rule.shape[0]
        full = self.stem_classes(rule[:, [a - 1 for a in ahead]].flatten(0, 1))  # (B * horizon, hid_s, H, W)
        return list(full.unflatten(0, (b, horizon)).unbind(1)), list(
            self.down(full).unflatten(0, (b, horizon)).unbind(1)
        )

    def _step(
        self,
        step: int,
        final: bool,
        all_frames: bool,
        window: list[torch.Tensor],
        skips: list[torch.Tensor],
        rule: torch.Tensor,
        last: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One rolled-out step: its logits (B, horizon or 1, K, H, W), and unless it is the last, the full-resolution
        features of its predicted masks (B * horizon, hid_s, H, W) and the probabilities of its last one (the copy
        prior's next `last`); empty tensors where not needed."""
        k, horizon = self.cfg.num_classes, self.cfg.horizon
        if self.cfg.motion_input:  # the rule's answer for the frames of this step, beside the window
            rule_full, rule_low = self._motion_inputs(rule, step)
            window, skips = window + rule_low, skips + rule_full[-1:]
        z = self.translate_in(torch.cat(window, dim=1))  # (B, hid_t, h, w)
        z = self.translate_out(self.translator(z))  # (B, hid_s, h, w)
        h = self.merge(torch.cat([self.up(z), *skips], dim=1))  # (B, hid_s, H, W)
        if final and not all_frames:  # only frame 22's logits of this step
            i = FUTURE_FRAMES - 1 - step * horizon
            rows, bias = slice(i * k, (i + 1) * k), self.head.bias
            logits = F.conv2d(h, self.head.weight[rows], None if bias is None else bias[rows]).unsqueeze(1)
        else:
            logits = self.head(h).unflatten(1, (horizon, k))  # (B, horizon, K, H, W)
        if last is not None and self.copy_scale is not None:
            logits = logits + self.copy_scale * last.unsqueeze(1).to(logits.dtype)
        elif self.copy_scale is not None:  # motion: frames step * horizon + 1 .. on, or frame 22 alone
            only_22 = final and not all_frames
            ahead = [FUTURE_FRAMES] if only_22 else list(range(step * horizon + 1, (step + 1) * horizon + 1))
            logits = self._add_motion_prior(logits, rule, ahead)
        none = logits.new_zeros(0)
        if final:
            return logits, none, none
        probs = logits.float().softmax(dim=2)
        full = self.stem(self.encode_probs(probs.flatten(0, 1)))
        return logits, full, probs[:, -1] if last is not None else none

    def prior_of(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The part of mask 22's logits that a rule computes from the input masks alone: the class the prior
        gives each pixel (B, H, W) and the bonus added to that class's logit (a scalar tensor). None without a
        prior, or when it rests on the model's own predictions (the copy prior of a rolled-out model).

        The logits are `forward`'s network part plus this, so a caller that gave the model reduced masks can
        put the prior back at full size: on the CPU quality set a motion-prior predictor at input scale 0.5
        scored 0.245 with its prior computed on 80x120 masks and upsampled, 0.256 with it computed on the
        160x240 masks (the rule itself: 0.256; docs/models.md)."""
        if self.copy_scale is None:
            return None
        if self.cfg.prior == "copy":
            return (masks[:, -1].long(), self.copy_scale) if self.steps == 1 else None
        padded, (height, width) = pad_to_multiple(masks, 2**self.cfg.n_s)  # as forward extrapolates them
        rule = extrapolate_steps(
            padded, (FUTURE_FRAMES,), retention=self.cfg.motion_retention, track_frames=self.cfg.motion_track_frames
        )
        return rule[:, 0, :height, :width], self.copy_scale

    def forward(self, masks: torch.Tensor, all_frames: bool = False) -> torch.Tensor:
        """Masks of frames 1-11 (B, T, H, W) class ids -> logits of mask 22 (B, num_classes, H, W), or with
        `all_frames` those of masks 12-22 (B, 11, num_classes, H, W).

        Without gradients (evaluation, prediction) the clips go through in groups, so that memory does not
        grow with the batch: a rolled-out step's logits and probabilities of 32 clips at 160x240 are ~1 GB each."""
        b, t = masks.shape[:2]
        group = max(1, INFER_BYTES // (self.cfg.horizon * self.cfg.num_classes * masks[0, 0].numel() * 4))
        if b > group and not torch.is_grad_enabled():
            return torch.cat([self(part, all_frames) for part in masks.split(group)])
        masks, (height, width) = pad_to_multiple(masks, 2**self.cfg.n_s)  # any H, W: background added, cropped back
        k, horizon = self.cfg.num_classes, self.cfg.horizon
        full = self.stem_classes(masks.flatten(0, 1))  # (B * T, hid_s, H, W)
        fulls = list(full.unflatten(0, (b, t)).unbind(1))  # per frame (B, hid_s, H, W)
        lows = list(self.down(full).unflatten(0, (b, t)).unbind(1))  # per frame (B, hid_s, h, w)
        copy = self.copy_scale is not None and self.cfg.prior == "copy"
        last = F.one_hot(masks[:, -1].long(), k).movedim(-1, 1).float() if copy else None
        motion = self.cfg.motion_input or (self.copy_scale is not None and not copy)
        # the rule's masks of frames 12-22, once
        rule = (
            extrapolate_steps(
                masks,
                range(1, FUTURE_FRAMES + 1),
                retention=self.cfg.motion_retention,
                track_frames=self.cfg.motion_track_frames,
            )
            if motion
            else masks
        )
        outputs: list[torch.Tensor] = []
        for step in range(self.steps):
            final = step == self.steps - 1
            args = (step, final, all_frames, lows[-self.cfg.n_input :], [fulls[-1]], rule, last)
            if self.cfg.checkpoint_steps and torch.is_grad_enabled():  # recomputed in backward, not kept
                logits, full, new_last = checkpoint(self._step, *args, use_reentrant=False)
            else:
                logits, full, new_last = self._step(*args)
            if all_frames or final:  # 11 rolled-out steps of 32 clips' logits are 2.6 GB at 160x240
                outputs.append(logits)
            if not final:  # the predicted masks join the window as class probabilities
                fulls += full.unflatten(0, (b, horizon)).unbind(1)
                lows += self.down(full).unflatten(0, (b, horizon)).unbind(1)
                if copy:  # the copy prior copies the model's own last prediction
                    last = new_last
        if not all_frames:
            return outputs[-1][:, 0, :, :height, :width]
        return torch.cat(outputs, dim=1)[:, :FUTURE_FRAMES, :, :height, :width]


@register_model("mask_predictor", MaskPredictorConfig, input_kind="masks")
def mask_predictor(cfg: MaskPredictorConfig) -> MaskPredictor:
    return MaskPredictor(cfg)
