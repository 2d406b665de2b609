"""Prediction of mask 22 for a whole split from a checkpoint, through the checkpoint's task, and the
best checkpoint of a finished study (by the results schema's best-trial rule)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from data.cache import decode_split
from data.classes import N_INPUT_FRAMES, TARGET_FRAME
from data.layout import DataError
from data.metric import competition_iou
from reports.schema import CHECKPOINT, RESULTS_DIR, ranked, read_results, stage_order
from tune.training.checkpoints import load_checkpoint, model_from_state
from tune.training.inference import resolve_device
from tune.training.tasks import task_for


def best_checkpoint(experiment: str | os.PathLike[str]) -> Path:
    """The best checkpoint of the last stage of a study (by its metric), from its results."""
    results = Path(experiment) / RESULTS_DIR
    trials, _ = read_results(results)
    if not len(trials):
        raise FileNotFoundError(f"no results in {results}: is {experiment} a study folder?")
    final = stage_order(trials)[-1]
    best = ranked(trials, final, with_checkpoint=True)
    if not len(best):
        raise FileNotFoundError(f"no trial of stage {final!r} in {experiment} left a checkpoint")
    return Path(best.iloc[0][CHECKPOINT])


def predict(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    split: str,
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    """(predicted masks (N, H, W) uint8, video ids (N,), competition IoU for val else None)."""
    dev = resolve_device(device)
    state = load_checkpoint(checkpoint)
    run, model = model_from_state(state, dev)
    decoded = decode_split(data, split, hidden=hidden)
    if decoded.n_frames < N_INPUT_FRAMES:
        raise DataError(
            f"split {split!r} of {data} has {decoded.n_frames} frames per video, fewer than the {N_INPUT_FRAMES} inputs"
        )
    pipeline = dict(state.get("pipeline") or {})
    masks = task_for(run.model).predict(run, model, decoded, dev, pipeline=pipeline, batch_size=batch_size)
    target = torch.from_numpy(np.array(decoded.masks[:, TARGET_FRAME])) if decoded.masks is not None else None
    iou = competition_iou(masks.long(), target.long()) if split != "hidden" and target is not None else None
    return masks, torch.as_tensor(decoded.ids), iou
