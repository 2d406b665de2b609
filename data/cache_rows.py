"""The rows of a decoded cache being built (data.cache): videos decoded in parallel into their rows of the arrays,
each finished chunk passed on to be logged, and the rows of bad videos dropped at the end."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from data.files import process_pool
from data.layout import DataError, VideoEntry, read_video, read_video_repaired
from data.progress import Progress

REPAIRED = "repaired: "  # a decoding result's prefix for a hidden video kept with frames copied (read_video_repaired)
_CHUNK = 8  # videos per decoding job, at most
_POOL_FROM = 64  # fewer videos decode in this process (~50 ms each): a spawned worker re-imports torch and Ray (~5 s)


def decode_rows(
    folder: Path,
    todo: list[tuple[int, VideoEntry]],
    *,
    workers: int | None,
    progress: bool,
    record: Callable[[list[tuple[int, str | None]]], None],
) -> None:
    """Decode videos into their rows of the arrays in `folder`, passing each finished chunk's (video id,
    None or why it is bad) to `record` once its rows are written."""
    if not todo:
        return
    auto = os.cpu_count() if len(todo) >= _POOL_FROM else 1
    workers = max(1, min(workers or auto or 1, len(todo)))
    size = max(1, min(_CHUNK, len(todo) // (4 * workers)))  # several chunks per worker keep all busy
    chunks = [(str(folder), todo[i : i + size]) for i in range(0, len(todo), size)]
    with Progress(len(todo), f"decoding {todo[0][1].split}", enabled=progress) as bar:
        if workers == 1:
            results: Iterator[list[tuple[int, str | None]]] = map(_decode_chunk, chunks)
            for result in results:
                record(result)
                bar.update(len(result))
        else:
            with process_pool(workers) as pool:
                for result in pool.imap_unordered(_decode_chunk, chunks):
                    record(result)
                    bar.update(len(result))


def _decode_chunk(job: tuple[str, list[tuple[int, VideoEntry]]]) -> list[tuple[int, str | None]]:
    folder, rows = job
    frames = np.load(Path(folder) / "frames.npy", mmap_mode="r+")
    masks = np.load(Path(folder) / "masks.npy", mmap_mode="r+") if (Path(folder) / "masks.npy").exists() else None
    results: list[tuple[int, str | None]] = []
    for row, entry in rows:
        try:
            video_frames, video_masks = read_video(entry)
        except DataError as err:
            if entry.split != "hidden":  # a bad training or val video is left out
                results.append((entry.video_id, str(err)))
                continue
            try:  # a submission needs a row for every hidden video: made whole from the frames that decode
                video_frames, why = read_video_repaired(entry)
            except DataError as worse:
                results.append((entry.video_id, str(worse)))
                continue
            frames[row] = video_frames
            results.append((entry.video_id, REPAIRED + why))
            continue
        frames[row] = video_frames
        if masks is not None and video_masks is not None:
            masks[row] = video_masks
        results.append((entry.video_id, None))
    frames.flush()
    if masks is not None:
        masks.flush()
    return results


def drop_rows(folder: Path, keep: np.ndarray) -> None:
    """Rewrite the arrays in `folder` without the rows of bad videos."""
    for name in ("frames.npy", "masks.npy"):
        path = folder / name
        if not path.exists():
            continue
        old = np.load(path, mmap_mode="r")
        new = np.lib.format.open_memmap(folder / f"kept-{name}", "w+", old.dtype, (int(keep.sum()), *old.shape[1:]))
        for dst, src in enumerate(np.flatnonzero(keep)):
            new[dst] = old[src]
        new.flush()
        del old, new
        (folder / f"kept-{name}").replace(path)
