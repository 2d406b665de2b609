"""Prediction of mask 22 for a whole split from a checkpoint, through the checkpoint's task or by a rule
on a per-frame segmenter's masks (copy last, extrapolate). Which checkpoint is a study's best is the results
schema's to say (reports.checkpoints.best_checkpoint)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from data.cache import DecodedSplit, OnError, decode_split
from data.classes import N_INPUT_FRAMES, TARGET_FRAME
from data.layout import DataError
from data.metric import competition_iou
from models.motion import TRACKED, extrapolate_masks
from reports.checkpoints import beside
from reports.schema import RULE_COPY_LAST, RULE_EXTRAPOLATE
from tune.training.checkpoints import load_checkpoint, load_model, model_from_state
from tune.training.config import RunConfig
from tune.training.inference import resolve_device
from tune.training.tasks import FrameSegmentation, segment_frames, task_for

# rules that answer from a per-frame segmenter's masks of the last input frames (frames 9-11), no training
# (their names, and the val metric each is recorded as, are the schema's: RULE_REFERENCES)
RULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    RULE_COPY_LAST: lambda masks: masks[:, -1].long(),
    RULE_EXTRAPOLATE: extrapolate_masks,
}
RULE_FRAMES = TRACKED


def _pipeline(state: dict[str, Any], checkpoint: str | os.PathLike[str]) -> dict[str, str]:
    """The checkpoint's pipeline (its segmenter), found where the study folder is now (a copied or moved study's)."""
    pipeline = dict(state.get("pipeline") or {})
    if pipeline.get("segmenter"):
        pipeline["segmenter"] = str(beside(checkpoint, pipeline["segmenter"]))
    return pipeline


def rule_source(checkpoint: str | os.PathLike[str]) -> str:
    """The segmenter checkpoint a rule answers from (`predict(rule=...)`): `checkpoint` itself, or the one it names."""
    return _pipeline(load_checkpoint(checkpoint), checkpoint).get("segmenter") or str(checkpoint)


def predict(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    split: str,
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    rule: str | None = None,
    on_error: OnError = "raise",
    first: int | None = None,
    skip: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    """(predicted masks (N, H, W) uint8, video ids (N,), competition IoU for val else None), of the split's
    videos or of its `first` ones (by id), or of those after its first `skip`. With `rule`
    (a key of RULES) the answer is that rule's on the segmenter's masks: the checkpoint is a
    frame_segmenter, or a model that names its segmenter (a mask_space predictor, an object_dynamics model)."""
    if rule is not None:
        answers, ids = predict_rules(
            checkpoint, data, split, (rule,), hidden=hidden, device=device, batch_size=batch_size, on_error=on_error,
            first=first, skip=skip,
        )  # fmt: skip
        masks, iou = answers[rule]
        return masks, ids, iou
    dev = resolve_device(device)
    state = load_checkpoint(checkpoint)
    run, model = model_from_state(state, dev, checkpoint)
    task = task_for(run.model)
    if not task.predicts_masks():  # said before the split is decoded
        raise task.no_masks(run)
    decoded = _decoded(data, split, hidden, on_error, first, skip)
    pipeline = _pipeline(state, checkpoint)
    if task.needs_segmenter and not pipeline.get("segmenter"):
        raise ValueError(f"{checkpoint} holds a {run.model} but names no segmenter checkpoint")
    masks = task.predict(run, model, decoded, dev, pipeline=pipeline, batch_size=batch_size)
    return masks, torch.as_tensor(decoded.ids), _scored(masks, decoded, split)


def predict_rules(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    split: str,
    rules: Sequence[str],
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    on_error: OnError = "raise",
    first: int | None = None,
    skip: int = 0,
) -> tuple[dict[str, tuple[torch.Tensor, float | None]], torch.Tensor]:
    """Each rule's answer as `predict(rule=...)` gives it ({rule: (masks, IoU)}, video ids), the segmenter's masks
    of the split made once for them all."""
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown or not rules:  # (none: a rule of '')
        raise ValueError(f"unknown rule {(unknown or [''])[0]!r}; valid: {', '.join(RULES)}")
    dev = resolve_device(device)
    state = load_checkpoint(checkpoint)
    run, model = model_from_state(state, dev, checkpoint)
    if not isinstance(task_for(run.model), FrameSegmentation):
        pipeline = _pipeline(state, checkpoint)
        if not pipeline.get("segmenter"):
            raise ValueError(
                f"--rule {rules[0]}: {checkpoint} is a {run.model} checkpoint; a rule moves the objects of a segmenter's "
                "masks: give a frame_segmenter checkpoint, or one that names its segmenter (a mask_space or "
                "dynamics study's)"
            )
        run, model = load_model(pipeline["segmenter"], dev)
    decoded = _decoded(data, split, hidden, on_error, first, skip)
    answers = _predict_by_rules({rule: RULES[rule] for rule in rules}, run, model, decoded.frames, dev, batch_size)
    scored = {rule: (masks, _scored(masks, decoded, split)) for rule, masks in answers.items()}
    return scored, torch.as_tensor(decoded.ids)


def _decoded(
    data: str | os.PathLike[str],
    split: str,
    hidden: str | os.PathLike[str] | None,
    on_error: OnError,
    first: int | None,
    skip: int,
) -> DecodedSplit:
    """The split's videos to predict (its `first`, after its first `skip`), refused where there are none or they have
    fewer frames than the inputs."""
    whole = decode_split(data, split, hidden=hidden, on_error=on_error)
    decoded = whole.head(first).after(skip)
    if not len(decoded):
        raise DataError(f"split {split!r} of {data}: no videos to predict (of {len(whole)}, after the first {skip})")
    if decoded.n_frames < N_INPUT_FRAMES:
        raise DataError(
            f"split {split!r} of {data} has {decoded.n_frames} frames per video, fewer than the {N_INPUT_FRAMES} inputs"
        )
    return decoded


def _scored(masks: torch.Tensor, decoded: DecodedSplit, split: str) -> float | None:
    """The competition IoU of the masks on the split's mask 22; None for the hidden split, or one without masks."""
    if split == "hidden" or decoded.masks is None:
        return None
    return competition_iou(masks.long(), torch.from_numpy(np.array(decoded.masks[:, TARGET_FRAME])).long())


def _predict_by_rules(
    rules: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    run: RunConfig,
    segmenter: torch.nn.Module,
    frames: np.ndarray,
    device: torch.device,
    batch_size: int,
) -> dict[str, torch.Tensor]:
    """Each rule's mask 22 (N, H, W) uint8 from the segmenter's masks of frames 9-11 (RULE_FRAMES), a chunk at a
    time."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in rules}
    for start in range(0, len(frames), batch_size):
        masks = torch.from_numpy(
            segment_frames(
                run, segmenter, frames[start : start + batch_size], RULE_FRAMES, device, batch_size=batch_size
            )
        ).to(device)
        for name, rule in rules.items():
            out[name].append(rule(masks).to(torch.uint8).cpu())
    return {name: torch.cat(parts) for name, parts in out.items()}
