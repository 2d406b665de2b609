"""The competition layout (../shared/DATA.md): splits, video folders, frames and masks.

Reading here is defensive: every bad input raises `DataError` naming the file and what was expected.
RGBA, palette or grey frames are converted to RGB, not rejected; 16- or 32-bit ones are (converting clips them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.classes import FRAME_HEIGHT, FRAME_WIDTH, N_FRAMES, N_INPUT_FRAMES, NUM_CLASSES

SPLITS = ("train", "val", "unlabeled", "hidden")
LABELLED_SPLITS = ("train", "val")
_VIDEO_DIR = re.compile(r"^video_(\d+)$")
_NPY_MAGIC = b"\x93NUMPY"  # how every .npy file begins


class DataError(ValueError):
    """Bad input data; the message names the file or folder and what was expected."""


@dataclass(frozen=True)
class VideoEntry:
    """One video folder of a split."""

    split: str  # one of SPLITS
    video_id: int  # the global number in the folder name
    path: Path  # the video folder

    @property
    def n_frames(self) -> int:
        return N_INPUT_FRAMES if self.split == "hidden" else N_FRAMES

    @property
    def has_mask(self) -> bool:
        return self.split in LABELLED_SPLITS

    def frame_path(self, t: int) -> Path:
        return self.path / f"image_{t}.png"

    @property
    def mask_path(self) -> Path:
        return self.path / "mask.npy"

    def source_files(self) -> list[Path]:
        """Every file this video is read from."""
        return [self.path / name for name in self.source_names()]

    def source_names(self) -> list[str]:
        """The names of source_files, in its order."""
        return [f"image_{t}.png" for t in range(self.n_frames)] + (["mask.npy"] if self.has_mask else [])

    def fingerprint(self) -> list[list[object]]:
        """(name, size, mtime_ns) of every source file; a missing file is recorded as missing (adding it is noticed).
        (os.stat of strings: a Path a file took as long as its stat, 2 of a current cache's 3 s to open at the real
        unlabeled split's size, 13,000 videos.)"""
        folder = os.path.join(self.path, "")
        prints: list[list[object]] = []
        for name in self.source_names():
            try:
                st = os.stat(folder + name)
                prints.append([name, st.st_size, st.st_mtime_ns])
            except FileNotFoundError:
                prints.append([name, None, None])
        return prints


def split_signature(entries: Sequence[VideoEntry]) -> dict[str, object]:
    """What a split holds: its videos' count, a digest of their ids, and one of their files' names and sizes (not
    their times: a copy of the same data is the same)."""

    def digest(value: object) -> str:
        return hashlib.sha1(json.dumps(value).encode()).hexdigest()[:16]

    files = [[e.video_id, [[name, size] for name, size, _ in e.fingerprint()]] for e in entries]
    return {"videos": len(entries), "ids": digest([e.video_id for e in entries]), "files": digest(files)}


def split_dir(root: str | os.PathLike[str], split: str, *, hidden: str | os.PathLike[str] | None = None) -> Path:
    """The folder of a split: ROOT/SPLIT, or `hidden` for the hidden split when given (it is often
    shipped apart from the rest). A `hidden` path may be the split folder itself or a folder holding
    a `hidden/` folder."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == "hidden" and hidden is not None:
        path = Path(hidden)
        return path / "hidden" if (path / "hidden").is_dir() else path
    return Path(root) / split


def has_split(root: str | os.PathLike[str], split: str, *, hidden: str | os.PathLike[str] | None = None) -> bool:
    """Whether a split is there to read (its folder holds a video_N folder): for the splits a job can do
    without, such as the hidden one a study predicts at its end."""
    folder = split_dir(root, split, hidden=hidden)
    return folder.is_dir() and any(_VIDEO_DIR.match(c.name) and c.is_dir() for c in folder.iterdir())


def index_split(
    root: str | os.PathLike[str], split: str, *, hidden: str | os.PathLike[str] | None = None
) -> list[VideoEntry]:
    """The videos of a split in numeric id order. Accepts padded (`video_00017`) and unpadded
    (`video_17`) folder names; other entries are left out with a warning naming them (hidden ones, such
    as a generator's `.video_N.partial`, silently)."""
    folder = split_dir(root, split, hidden=hidden)
    if not folder.is_dir():
        if folder.parent == Path(root) and not folder.parent.is_dir():  # a mistyped --data: say so, not its split
            what = "is not a folder" if folder.parent.exists() else "does not exist"
            raise DataError(f"data root {root} {what} (expected a folder of train/, val/, unlabeled/ ...)")
        what = "does not exist" if not folder.exists() else "is a file"
        apart = (
            "; a hidden split shipped apart from the data root: --hidden DIR"
            if split == "hidden" and not hidden
            else ""
        )
        raise DataError(f"split folder {folder} {what} (expected {split}/video_N folders{apart})")
    entries: dict[int, VideoEntry] = {}
    others = []
    for child in sorted(folder.iterdir()):
        match = _VIDEO_DIR.match(child.name)
        if not match or not child.is_dir():
            if not child.name.startswith("."):
                others.append(child.name)
            continue
        vid = int(match.group(1))
        if vid in entries:
            raise DataError(f"{folder} holds two folders for video {vid}: {entries[vid].path.name} and {child.name}")
        entries[vid] = VideoEntry(split, vid, child)
    if not entries:
        raise DataError(f"split {split!r} is empty: no video_N folders in {folder}")
    first = entries[min(entries)]
    if split == "hidden":  # --hidden given train/, val/ or unlabeled/: a submission of other videos
        beyond = next((p for p in (first.mask_path, first.frame_path(N_INPUT_FRAMES)) if p.exists()), None)
        if beyond is not None:
            raise DataError(
                f"{folder} is not the hidden split: {first.path.name} holds {beyond.name}, as the other splits' "
                "videos do (hidden ones have 11 frames and no mask); give the hidden split's folder"
            )
    if others:
        more = f" (and {len(others) - 5} more)" if len(others) > 5 else ""
        warnings.warn(
            f"{folder}: left out {len(others)} entries that are not video_N folders: {', '.join(others[:5])}{more}",
            stacklevel=2,
        )
    return [entries[k] for k in sorted(entries)]


def shared_ids(root: str | os.PathLike[str], splits: Sequence[str]) -> dict[int, list[str]]:
    """Video ids that more than one of `splits` of `root` holds (ids are global in the competition
    layout, so one id in two splits is a copy or a mislabelled folder): id -> the splits holding it."""
    holders: dict[int, list[str]] = {}
    for split in splits:
        if split_dir(root, split).is_dir():
            for entry in index_split(root, split):
                holders.setdefault(entry.video_id, []).append(split)
    return {vid: where for vid, where in sorted(holders.items()) if len(where) > 1}


def read_frame(path: str | os.PathLike[str]) -> np.ndarray:
    """One frame as (160, 240, 3) uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing frame {path}")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith(("I", "F")):  # 16/32-bit: PIL's conversion clips every value over 255 to white
                raise ValueError(f"a {image.mode} image (16- or 32-bit); frames are 8-bit RGB")
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            array = np.asarray(rgb, dtype=np.uint8)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, zlib.error... for broken files
        raise DataError(f"cannot decode image {path}: {err}") from err
    if array.shape != (FRAME_HEIGHT, FRAME_WIDTH, 3):
        h, w = array.shape[:2]
        raise DataError(f"expected a {FRAME_WIDTH}x{FRAME_HEIGHT} (WxH) frame, got {w}x{h} in {path}")
    return array


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """A video's masks as (22, 160, 240) uint8 class ids. Any integer dtype is accepted."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing mask {path}")
    with path.open("rb") as handle:
        if handle.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise DataError(f"{path} is not a numpy .npy file (no .npy header); expected masks saved with numpy.save")
    try:
        mask = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"cannot read mask {path}: {err}") from err
    expected = (N_FRAMES, FRAME_HEIGHT, FRAME_WIDTH)
    if not isinstance(mask, np.ndarray) or not np.issubdtype(mask.dtype, np.integer):
        raise DataError(f"expected integer class ids, got dtype {getattr(mask, 'dtype', type(mask))} in {path}")
    if mask.shape != expected:
        raise DataError(f"expected shape {expected}, got {mask.shape} in {path}")
    low, high = int(mask.min()), int(mask.max())
    if low < 0 or high >= NUM_CLASSES:
        raise DataError(f"expected class ids in 0..{NUM_CLASSES - 1}, got values {low}..{high} in {path}")
    return mask.astype(np.uint8, copy=False)


def read_video_repaired(entry: VideoEntry) -> tuple[np.ndarray, str]:
    """A video of the hidden split some of whose frames cannot be read, made whole for prediction: the
    frames that decode, each other one a copy of the nearest that does (the earlier on a tie), and a line
    naming the frames that do not decode. DataError when no frame decodes."""
    frames: list[np.ndarray | None] = []
    errors: dict[int, str] = {}
    for t in range(entry.n_frames):
        try:
            frames.append(read_frame(entry.frame_path(t)))
        except DataError as err:
            frames.append(None)
            errors[t] = str(err)
    good = [t for t, frame in enumerate(frames) if frame is not None]
    if not good:
        raise DataError(f"no frame of {entry.path} decodes: {errors[0]}")
    whole = [frames[t] if t in good else frames[min(good, key=lambda g: (abs(g - t), g))] for t in range(len(frames))]
    first = next(iter(errors.values()), "")
    return np.stack([frame for frame in whole if frame is not None]), f"frames {sorted(errors)} do not decode ({first})"


def read_video(entry: VideoEntry) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames (T, 160, 240, 3) uint8 and, for train and val, masks (22, 160, 240) uint8."""
    frames = np.stack([read_frame(entry.frame_path(t)) for t in range(entry.n_frames)])
    return frames, read_mask(entry.mask_path) if entry.has_mask else None
