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
from data.progress import Progress
from tune.training.checkpoints import load_model
from tune.training.pseudo_store import MANIFEST, PSEUDO_FRAMES, pseudo_label_dir
from tune.training.tasks import FrameSegmentation, segment_frames, task_for

CHUNK_VIDEOS = 64  # videos labelled between two flushes: what a killed build loses at most, per split


@torch.no_grad()
def pseudo_label(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    cache_dir: str | os.PathLike[str] | None = None,
    unlabeled: int | None = None,
    val: int | None = None,
    on_error: OnError = "raise",
    progress: bool = True,
) -> Path:
    """Label every split of `root` with the segmenter `checkpoint` (once; later calls reuse the files);
    of unlabeled and val, only the first `unlabeled` and `val` videos where given. A killed or failed build is resumed by the
    next call: the videos it had labelled are kept (the folder's key names the checkpoint's exact file)."""

    def build(tmp: Path) -> None:
        run, model = load_model(checkpoint, device)
        if not isinstance(task_for(run.model), FrameSegmentation):
            raise ValueError(f"pseudo-labels need a frame_segmenter checkpoint, {checkpoint} holds {run.model!r}")
        written = {}
        for split, frames in PSEUDO_FRAMES.items():
            first = {"unlabeled": unlabeled, "val": val}.get(split)
            if not (Path(root) / split).is_dir() or first == 0:
                continue
            decoded = decode_split(root, split, progress=False, on_error=on_error).head(first)
            out, done = _open_split(tmp, split, decoded.ids, (len(decoded), len(frames), *decoded.frames.shape[2:4]))
            with Progress(len(decoded), f"pseudo-labels {split}", initial=done, enabled=progress) as bar:
                for start in range(done, len(decoded), CHUNK_VIDEOS):
                    part = slice(start, min(start + CHUNK_VIDEOS, len(decoded)))
                    segment_frames(
                        run, model, decoded.frames[part], frames, device, batch_size=batch_size, out=out[part]
                    )
                    out.flush()
                    (tmp / f"{split}.done").write_text(str(part.stop))
                    bar.update(part.stop - start)
            written[split] = list(frames)
        for marker in tmp.glob("*.done"):
            marker.unlink()
        (tmp / MANIFEST).write_text(
            json.dumps({"checkpoint": str(checkpoint), "root": str(root), "frames": written}, indent=2)
        )

    folder = pseudo_label_dir(checkpoint, root, cache_dir, unlabeled=unlabeled, val=val)
    return build_folder(folder, lambda target: (target / MANIFEST).exists(), build, resumable=True)


def _open_split(tmp: Path, split: str, ids: np.ndarray, shape: tuple[int, ...]) -> tuple[np.memmap, int]:
    """The split's mask file in a build folder, and how many of its videos an earlier build finished (`<split>.done`;
    0, and a new file, where there is none or it was made for other videos)."""
    path, ids_path, done_path = tmp / f"{split}.npy", tmp / f"{split}_ids.npy", tmp / f"{split}.done"
    if path.exists() and ids_path.exists() and done_path.exists():
        out = np.lib.format.open_memmap(path, "r+")
        if out.shape == shape and out.dtype == np.uint8 and np.array_equal(np.load(ids_path), ids):
            return out, min(int(done_path.read_text() or 0), shape[0])
        del out
    done_path.unlink(missing_ok=True)
    np.save(ids_path, ids)
    return np.lib.format.open_memmap(path, "w+", np.uint8, shape), 0
