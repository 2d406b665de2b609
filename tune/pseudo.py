"""Pseudo-labels: a per-frame segmenter's masks of the frames the mask-space predictor needs, computed
once per segmenter checkpoint and cached beside the decoded data.

PSEUDO/<split>.npy holds (N, F, 160, 240) uint8 class ids, rows in the split's video-id order: frames 1-11
of train, val and hidden (the predictor's inputs), every frame of unlabeled (inputs and targets).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from data.cache import decode_split, default_cache_dir
from data.classes import N_FRAMES
from data.datasets import INPUT_FRAMES
from data.locking import file_lock
from tune.recipes import load_model, model_inputs

PSEUDO_VERSION = 2  # part of the folder key: a change of what is labelled makes new folders
PSEUDO_FRAMES = {
    "train": INPUT_FRAMES,
    "val": INPUT_FRAMES,
    "hidden": INPUT_FRAMES,
    "unlabeled": tuple(range(N_FRAMES)),
}


def pseudo_label_dir(
    checkpoint: str | os.PathLike[str], root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    stat = Path(checkpoint).stat()
    key = f"{PSEUDO_VERSION}|{Path(checkpoint).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{Path(root).resolve()}"
    return Path(cache_dir or default_cache_dir()) / f"pseudo-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


@torch.no_grad()
def pseudo_label(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Label every split of `root` with the segmenter `checkpoint` (once; later calls reuse the files)."""
    folder = pseudo_label_dir(checkpoint, root, cache_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.with_suffix(".lock")):
        if (folder / "manifest.json").exists():
            return folder
        run, model = load_model(checkpoint, device)
        if run.task != "frame_segmentation":
            raise ValueError(f"pseudo-labels need a frame_segmenter checkpoint, {checkpoint} holds {run.model!r}")
        for stale in folder.parent.glob(folder.name + ".building-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.with_name(folder.name + f".building-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        written = {}
        for split, frames in PSEUDO_FRAMES.items():
            source = Path(hidden) if split == "hidden" and hidden else Path(root) / split
            if not source.is_dir():
                continue
            decoded = decode_split(root, split, hidden=hidden, progress=False)
            out = np.lib.format.open_memmap(
                tmp / f"{split}.npy", "w+", np.uint8, (len(decoded), len(frames), *decoded.frames.shape[2:4])
            )
            segment_frames(model, decoded.frames, frames, device, batch_size=batch_size, out=out)
            out.flush()
            np.save(tmp / f"{split}_ids.npy", decoded.ids)
            written[split] = list(frames)
        (tmp / "manifest.json").write_text(
            json.dumps({"checkpoint": str(checkpoint), "root": str(root), "frames": written}, indent=2)
        )
        tmp.rename(folder)
    return folder


@torch.no_grad()
def segment_frames(
    model: torch.nn.Module,
    frames: np.ndarray,
    times: tuple[int, ...],
    device: str | torch.device,
    *,
    batch_size: int = 32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """A per-frame segmenter's class ids (N, len(times), H, W) uint8 for frames `times` of videos (N, T, H, W, 3)."""
    if out is None:
        out = np.empty((len(frames), len(times), *frames.shape[2:4]), dtype=np.uint8)
    step = max(1, batch_size // len(times))
    for start in range(0, len(frames), step):
        chunk = torch.from_numpy(np.array(frames[start : start + step][:, list(times)])).to(device)
        x = model_inputs(chunk.movedim(-1, -3).flatten(0, 1), "frame")  # (B * F, 3, H, W)
        out[start : start + len(chunk)] = (
            model(x).argmax(1).unflatten(0, (len(chunk), len(times))).to(torch.uint8).cpu().numpy()
        )
    return out


def load_pseudo(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(masks (N, F, H, W) uint8 memory-mapped, video ids (N,)) of a split."""
    path = folder / f"{split}.npy"
    if not path.exists():
        raise FileNotFoundError(f"no pseudo-labels for split {split!r} in {folder}")
    return np.load(path, mmap_mode="r"), np.load(folder / f"{split}_ids.npy")
