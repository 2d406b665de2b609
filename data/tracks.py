"""Object tracks as data: each object's track over every frame of a video, from any class-id masks (the true
ones, or a segmenter's of unlabeled videos), one Parquet row per object and frame.

A video holds one object per class (docs/data.md), so an object is its class id. For each object present in
any frame of a video, and each frame, a row holds:

    video_id, object      the video and the object's class id
    frame                 0-based (frame 22 is 21)
    present               whether the object has a pixel in the frame
    area                  its pixels
    row, col              its centroid (NaN where absent)
    top, bottom, left, right   its bounding box, inclusive (-1 where absent)
    visible               area / the object's largest area in the video: its share in view, occlusion and the
                          picture's edges taken together
    edge                  its box touches the picture's border: it is entering or leaving the view

`write_tracks` writes a split's tracks once, in parallel (chunks of videos, each a part file, in a build
folder that a killed run resumes from, as the decoded cache does), and `read_tracks` reads them with pandas.
`python -m data.tracks ROOT --split train` makes those of a split's true masks.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.classes import NUM_CLASSES, TRACK_CHANNELS
from data.files import atomic_write, build_folder, error_line, process_pool, run_command
from data.progress import Progress

_PART, _PARTS = "part-{:05d}.parquet", "part-*.parquet"  # a tracks folder's part files: _CHUNK videos each
_DONE = "done.json"  # in a tracks folder: the parts it holds and the source it was made from
_CHUNK = 256  # videos a part file holds
COLUMNS = (
    *("video_id", "object", "frame", "present", "area", "row", "col"),
    *("top", "bottom", "left", "right", "visible", "edge"),
)


def video_tracks(masks: np.ndarray, video_id: int = 0) -> dict[str, np.ndarray]:
    """The track columns (COLUMNS) of one video's masks (F, H, W) of class ids: a row per object present in
    any frame, per frame, objects by class id, then frames in order."""
    frames, height, width = masks.shape
    flat = masks.reshape(frames, -1).astype(np.int64)
    offsets = (np.arange(frames) * NUM_CLASSES)[:, None]
    counts = np.bincount((flat + offsets).ravel(), minlength=frames * NUM_CLASSES).reshape(frames, NUM_CLASSES)
    rows = np.repeat(np.arange(height), width)
    cols = np.tile(np.arange(width), height)
    row_sum = np.bincount((flat + offsets).ravel(), np.tile(rows, frames), frames * NUM_CLASSES)
    col_sum = np.bincount((flat + offsets).ravel(), np.tile(cols, frames), frames * NUM_CLASSES)
    objects = np.flatnonzero(counts[:, 1:].sum(axis=0)) + 1  # background (0) is no object
    area = counts[:, objects]  # (F, K)
    present = area > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        row = (row_sum.reshape(frames, NUM_CLASSES)[:, objects] / area).astype(np.float32)
        col = (col_sum.reshape(frames, NUM_CLASSES)[:, objects] / area).astype(np.float32)
    top, bottom = _extent(masks, objects, axis=2)  # rows holding the object
    left, right = _extent(masks, objects, axis=1)  # columns holding it
    largest = area.max(axis=0, keepdims=True)
    edge = present & ((top == 0) | (left == 0) | (bottom == height - 1) | (right == width - 1))
    k, f = len(objects), frames
    return {
        "video_id": np.full(k * f, video_id, dtype=np.int64),
        "object": np.repeat(objects, f).astype(np.int16),
        "frame": np.tile(np.arange(f), k).astype(np.int16),
        "present": present.T.ravel(),
        "area": area.T.ravel().astype(np.int32),
        "row": row.T.ravel(),
        "col": col.T.ravel(),
        "top": top.T.ravel(),
        "bottom": bottom.T.ravel(),
        "left": left.T.ravel(),
        "right": right.T.ravel(),
        "visible": (area / np.maximum(largest, 1)).T.ravel().astype(np.float32),
        "edge": edge.T.ravel(),
    }


def _extent(masks: np.ndarray, objects: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and last line (rows for axis=2, columns for axis=1) holding each object in each frame,
    (F, K) int16 each, -1 where it is absent."""
    frames, height, width = masks.shape
    lines = height if axis == 2 else width
    holds = np.zeros((frames, lines, NUM_CLASSES), dtype=bool)
    line = np.arange(height)[None, :, None] if axis == 2 else np.arange(width)[None, None, :]
    holds[np.arange(frames)[:, None, None], line, masks.astype(np.int64)] = True
    holds = holds[:, :, objects]  # (F, lines, K)
    anywhere = holds.any(axis=1)
    first = np.where(anywhere, holds.argmax(axis=1), -1)
    last = np.where(anywhere, lines - 1 - holds[:, ::-1].argmax(axis=1), -1)
    return first.astype(np.int16), last.astype(np.int16)


def tracks_table(ids: Sequence[int] | np.ndarray, masks: np.ndarray) -> pa.Table:
    """The tracks of videos `ids` whose masks are (N, F, H, W) class ids (a memory-mapped array is read a
    video at a time)."""
    parts = [video_tracks(np.asarray(masks[k]), int(vid)) for k, vid in enumerate(ids)]
    columns = {name: np.concatenate([p[name] for p in parts]) if parts else np.array([]) for name in COLUMNS}
    return pa.table(columns)


def _write_part(job: tuple[str, int, list[int], str, int, int]) -> int:
    """Write one part file; its videos."""
    folder, part, ids, path, start, stop = job
    masks = np.load(path, mmap_mode="r")
    out = Path(folder) / _PART.format(part)
    try:
        with atomic_write(out) as tmp:  # a write cut short (a full disk, a kill) leaves no part that a resume keeps
            pq.write_table(tracks_table(ids, masks[start:stop]), tmp)
    except OSError as err:  # pyarrow's names no file
        raise OSError(err.errno or errno.EIO, err.strerror or str(err), str(out)) from None
    return len(ids)


def write_tracks(
    ids: Sequence[int] | np.ndarray,
    masks_file: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Write the tracks of the videos `ids` whose masks `masks_file` holds (a .npy of (N, F, H, W) class ids, in
    the order of `ids`) to the folder `target`, once: a folder made from the same masks file (path, size,
    modification time) is kept as it is. Chunks of videos are written in parallel (`workers` processes, default
    one per core) as part files; a killed run carries on from the parts it finished; `progress` shows their
    videos (data.progress). Returns `target`."""
    source = Path(masks_file).resolve()
    info = source.stat()
    stamp = {"masks": str(source), "size": info.st_size, "mtime": info.st_mtime_ns, "videos": len(ids)}
    chunks = [
        (k, list(ids[s : s + _CHUNK]), s, min(s + _CHUNK, len(ids))) for k, s in enumerate(range(0, len(ids), _CHUNK))
    ]

    def current(folder: Path) -> bool:
        done = folder / _DONE
        return done.exists() and json.loads(done.read_text()) == stamp

    def build(tmp: Path) -> None:
        todo = [(str(tmp), k, part_ids, str(source), start, stop) for k, part_ids, start, stop in chunks]
        todo = [job for job in todo if not (tmp / _PART.format(job[1])).exists()]  # resumed
        processes = min(workers or os.cpu_count() or 1, len(todo))
        done = len(ids) - sum(len(job[2]) for job in todo)
        with Progress(len(ids), "tracks", initial=done, enabled=progress) as bar:
            if processes > 1:
                with process_pool(processes) as pool:
                    for videos in pool.imap_unordered(_write_part, todo, chunksize=1):
                        bar.update(videos)
            else:
                for job in todo:
                    bar.update(_write_part(job))
        (tmp / _DONE).write_text(json.dumps(stamp))

    return build_folder(Path(target), current, build, resumable=True)


def dense_tracks(tracks: pd.DataFrame, ids: Sequence[int] | np.ndarray, frames: Sequence[int]) -> np.ndarray:
    """The tracks of videos `ids` at `frames` as one array (len(ids), len(frames), NUM_CLASSES, len(TRACK_CHANNELS))
    float32, a slot per object (its class id): a model's input, in the order of `ids`. An absent object's slot
    is all 0 (present 0); videos of `ids` the tracks do not hold (no object at all) too."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.zeros((len(ids), len(frames), NUM_CLASSES, len(TRACK_CHANNELS)), dtype=np.float32)
    slot = np.full(max(frames) + 1, -1, dtype=np.int64)
    slot[list(frames)] = np.arange(len(frames))
    frame = tracks["frame"].to_numpy(np.int64)
    rows = tracks[(frame < len(slot)) & (slot[np.minimum(frame, len(slot) - 1)] >= 0)]
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids[order], rows["video_id"].to_numpy(np.int64)), max(len(ids) - 1, 0))
    video = order[at] if len(ids) else at
    known = ids[video] == rows["video_id"].to_numpy(np.int64) if len(ids) else np.zeros(len(rows), dtype=bool)
    rows, video = rows[known], video[known]
    values = np.stack([rows[name].to_numpy(np.float32) for name in TRACK_CHANNELS], axis=-1)
    values = np.where(values[:, :1] > 0, np.nan_to_num(values), 0)  # absent: every channel 0
    out[video, slot[rows["frame"].to_numpy(np.int64)], rows["object"].to_numpy(np.int64)] = values
    return out


def read_tracks(folder: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A tracks folder as one DataFrame (COLUMNS), rows by video, object and frame."""
    parts = sorted(Path(folder).glob(_PARTS))
    if not parts:
        raise FileNotFoundError(f"{folder} holds no tracks ({_PARTS})")
    return pq.ParquetDataset([str(p) for p in parts]).read(columns=list(columns) if columns else None).to_pandas()


def tracks_folder(cache_dir: str | os.PathLike[str], masks_file: str | os.PathLike[str]) -> Path:
    """Where the tracks of a masks file live in a cache folder: one folder per masks file."""
    key = hashlib.sha1(str(Path(masks_file).resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / "tracks" / f"{Path(masks_file).parent.name}-{key}"


def main(argv: list[str] | None = None) -> int:
    from data.cache import decode_split, default_cache_dir
    from data.layout import DataError

    parser = argparse.ArgumentParser(prog="python -m data.tracks", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="a data root in the competition layout")
    parser.add_argument(
        "--split",
        default="train",
        choices=["train", "val"],
        help="a labelled split (default: %(default)s); the tracks go to the decoded cache, $SEGTUNE_CACHE or "
        "~/.cache/segtune/decoded, under tracks/ (the path printed at the end)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    args = parser.parse_args(argv)
    try:
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be >= 1 (leave it out for one per core), got {args.workers}")
        split = decode_split(args.root, args.split)
        if split.masks is None:
            raise DataError(f"split {args.split!r} of {args.root} has no masks to make tracks of")
        started = time.perf_counter()
        masks_file = Path(split.masks.filename)  # type: ignore[attr-defined]
        folder = write_tracks(
            split.ids, masks_file, tracks_folder(default_cache_dir(), masks_file), workers=args.workers, progress=True
        )
        tracks = read_tracks(folder, ["video_id", "object", "present"])
    except (DataError, OSError, ValueError) as err:  # bad input; a cache that cannot be written: the path named
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    objects = tracks.groupby(["video_id", "object"]).ngroups
    print(
        f"{folder}: {len(tracks)} rows, {objects} objects of {len(split)} videos "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    run_command(main, stopped="the parts written are kept; the same command goes on from them")
