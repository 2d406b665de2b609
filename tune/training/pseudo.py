"""Pseudo-labels: a per-frame segmenter's masks of the frames the mask-space predictor needs, computed
once per segmenter checkpoint and cached beside the decoded data (layout: tune.training.pseudo_store)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from data.cache import OnError, decode_split
from data.files import build_folder
from tune.training.checkpoints import load_model
from tune.training.pseudo_store import MANIFEST, PSEUDO_FRAMES, pseudo_label_dir
from tune.training.tasks import FrameSegmentation, segment_frames, task_for


@torch.no_grad()
def pseudo_label(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    cache_dir: str | os.PathLike[str] | None = None,
    unlabeled: int | None = None,
    on_error: OnError = "raise",
) -> Path:
    """Label every split of `root` with the segmenter `checkpoint` (once; later calls reuse the files);
    of unlabeled, only the first `unlabeled` videos where given."""

    def build(tmp: Path) -> None:
        run, model = load_model(checkpoint, device)
        if not isinstance(task_for(run.model), FrameSegmentation):
            raise ValueError(f"pseudo-labels need a frame_segmenter checkpoint, {checkpoint} holds {run.model!r}")
        written = {}
        for split, frames in PSEUDO_FRAMES.items():
            source = Path(hidden) if split == "hidden" and hidden else Path(root) / split
            if not source.is_dir() or (split == "unlabeled" and unlabeled == 0):
                continue
            decoded = decode_split(root, split, hidden=hidden, progress=False, on_error=on_error)
            if split == "unlabeled":
                decoded = decoded.head(unlabeled)
            out = np.lib.format.open_memmap(
                tmp / f"{split}.npy", "w+", np.uint8, (len(decoded), len(frames), *decoded.frames.shape[2:4])
            )
            segment_frames(run, model, decoded.frames, frames, device, batch_size=batch_size, out=out)
            out.flush()
            np.save(tmp / f"{split}_ids.npy", decoded.ids)
            written[split] = list(frames)
        (tmp / MANIFEST).write_text(
            json.dumps({"checkpoint": str(checkpoint), "root": str(root), "frames": written}, indent=2)
        )

    folder = pseudo_label_dir(checkpoint, root, cache_dir, unlabeled=unlabeled)
    return build_folder(folder, lambda target: (target / MANIFEST).exists(), build)
