"""The pseudo-label folder: where a segmenter's masks of a data root are kept, and how they are read.

PSEUDO/<split>.npy holds (N, F, 160, 240) uint8 class ids, rows in the split's video-id order, and
PSEUDO/<split>_ids.npy their video ids: frames 1-11 of train and val (the predictor's inputs), every frame of
unlabeled (inputs and targets). Not hidden: a prediction segments the frames it is given itself
(MaskPrediction.predict), so labelling hidden here (2,000 videos, a third of the work at full size) was never read.
`tune.training.pseudo` builds it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from data.cache import default_cache_dir
from data.classes import INPUT_FRAMES, N_FRAMES

PSEUDO_VERSION = 3  # part of the folder key: a change of what is labelled, or how, makes new folders
PSEUDO_FRAMES = {
    "train": INPUT_FRAMES,
    "val": INPUT_FRAMES,
    "unlabeled": tuple(range(N_FRAMES)),
}
MANIFEST = "manifest.json"


def pseudo_label_dir(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    unlabeled: int | None = None,
    val: int | None = None,
) -> Path:
    stat = Path(checkpoint).stat()
    key = f"{PSEUDO_VERSION}|{Path(checkpoint).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{Path(root).resolve()}"
    if unlabeled is not None:  # a study that uses part of unlabeled labels only that part
        key += f"|unlabeled:{unlabeled}"
    if val is not None:  # a study scored on part of val labels only that part
        key += f"|val:{val}"
    return Path(cache_dir or default_cache_dir()) / f"pseudo-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def has_pseudo(folder: Path, split: str) -> bool:
    return (folder / f"{split}.npy").exists()


def load_pseudo(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(masks (N, F, H, W) uint8 memory-mapped, video ids (N,)) of a split."""
    path = folder / f"{split}.npy"
    if not path.exists():
        raise FileNotFoundError(f"no pseudo-labels for split {split!r} in {folder}")
    return np.load(path, mmap_mode="r"), np.load(folder / f"{split}_ids.npy")


def pseudo_of(folder: Path, split: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A split's pseudo-labels (masks, video ids), checked to begin with the videos `ids` the data holds now (a
    run scored on the first val videos reads the first ones)."""
    masks, labelled = load_pseudo(folder, split)
    if not np.array_equal(ids, labelled[: len(ids)]):
        raise ValueError(f"the pseudo-labels in {folder} were made for other {split} videos than the data holds now")
    return masks, labelled
