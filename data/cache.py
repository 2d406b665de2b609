"""The decoded cache: every PNG is decoded once into uint8 arrays on disk that later runs memory-map.

One cache folder per split source holds `frames.npy` (N, T, 160, 240, 3), `masks.npy` (N, 22, 160, 240)
for labelled splits, `ids.npy` (N,) and `manifest.json`, which records a fingerprint (name, size,
mtime) of every source file. A changed, added or removed video is noticed on the next load: the cache is
rebuilt, decoding only what changed and copying the rest. Builds happen in a temporary folder and are
renamed into place under a file lock, so concurrent readers (several trials on one machine) decode once
and never see a half-written cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from data.cache_rows import REPAIRED, decode_rows, drop_rows
from data.classes import FRAME_HEIGHT, FRAME_WIDTH, N_FRAMES
from data.files import build_folder, check_free_space, make_folder, reserve_blocks
from data.layout import DataError, VideoEntry, index_split, split_dir

OnError = Literal["raise", "skip"]
CACHE_VERSION, CACHE_ENV = 1, "SEGTUNE_CACHE"  # CACHE_ENV: the decoded cache's folder, where set
_PLAN, _LOG = "plan.json", "decoded.jsonl"  # a build's videos, and the rows it finished (see _carry_on)


@dataclass(frozen=True)
class CacheCheck:
    """A split's cache found current (every file of the split as its manifest records it), for a later reader to
    take without checking again: a study's driver checks each split as it starts, and its trials trust that check
    (listing 13,000 videos' files and reading their manifest took a trial ~2.3 s at the real data's size). Taken only
    while the cache's manifest is the very file that was checked: a cache rebuilt since, or a node's own cache at
    the same path, is checked again."""

    folder: str  # the split's cache folder
    manifest: tuple[int, int, int]  # its manifest's inode, size and modification time (ns)
    videos: int  # in the split's folder, bad ones included
    skipped: tuple[tuple[int, str], ...]
    repaired: tuple[tuple[int, str], ...]

    def holds(self, folder: Path) -> bool:
        return self.folder == str(folder) and self.manifest == _stamp(folder)


@dataclass(frozen=True)
class DecodedSplit:
    """A split held as memory-mapped uint8 arrays, rows in video-id order."""

    split: str
    source: Path  # the split folder the arrays were decoded from
    ids: np.ndarray  # (N,) int64 video ids
    frames: np.ndarray  # (N, T, 160, 240, 3) uint8; T = 22, or 11 for hidden
    masks: np.ndarray | None  # (N, 22, 160, 240) uint8 class ids; None for unlabeled and hidden
    skipped: tuple[tuple[int, str], ...] = ()  # (video id, reason) of bad videos left out
    repaired: tuple[tuple[int, str], ...] = ()  # (video id, frames copied) of broken hidden videos kept
    check: CacheCheck | None = None  # what a later reader of the same cache may trust (decode_split's `trusted`)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[1])

    def head(self, n: int | None) -> DecodedSplit:
        """The first n videos (in id order) as views of the same memory-mapped arrays; None: all."""
        if n is None or n >= len(self):
            return self
        masks = None if self.masks is None else self.masks[:n]
        return dataclasses.replace(self, ids=self.ids[:n], frames=self.frames[:n], masks=masks)

    def after(self, n: int) -> DecodedSplit:
        """The videos after the first n (in id order), as views of the same memory-mapped arrays."""
        if not n:
            return self
        masks = None if self.masks is None else self.masks[n:]
        return dataclasses.replace(self, ids=self.ids[n:], frames=self.frames[n:], masks=masks)


def default_cache_dir() -> Path:
    """$SEGTUNE_CACHE, else ~/.cache/segtune/decoded; absolute (a study's trials run in folders of their own)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).absolute() if env else Path.home() / ".cache" / "segtune" / "decoded"


def decode_split(
    root: str | os.PathLike[str],
    split: str,
    *,
    hidden: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: OnError = "raise",
    workers: int | None = None,
    progress: bool = True,
    trusted: Sequence[CacheCheck] = (),
) -> DecodedSplit:
    """Decode a split once, memory-map it (`workers`: processes, default one per core from 64 videos). `on_error`:
    "raise" fails on the first bad video, naming its file and why; "skip" leaves them out with a warning (all: fail).
    `trusted`: checks made before (DecodedSplit.check), taken for this split's cache where one still holds."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = split_dir(root, split, hidden=hidden).resolve()
    what = "the decoded cache" + (f", ${CACHE_ENV}" if cache_dir is None and os.getenv(CACHE_ENV) else "")
    folder = make_folder(Path(cache_dir or default_cache_dir()), what)  # named so, where it cannot be made
    target = folder / f"{split}-{hashlib.sha1(str(source).encode()).hexdigest()[:16]}"
    check = next((c for c in trusted if c.holds(target)), None)
    if check is None:
        entries = index_split(root, split, hidden=hidden)
        fingerprints = {e.video_id: e.fingerprint() for e in entries}
        found: list[dict] = []  # the manifest of a cache found current: read once (13 MB, 0.4 s, of 13,000 videos)
        build_folder(
            target,
            lambda folder: _is_current(folder, source, fingerprints, found),
            lambda tmp: _build(tmp, target, entries, fingerprints, workers=workers, progress=progress),
            resumable=True,
            what=what,
        )
        manifest = found[-1] if found else _read_manifest(target)
        assert manifest is not None
        bad, fixed = manifest["bad"], manifest.get("repaired", {})
        check = CacheCheck(
            str(target),
            _stamp(target),
            len(entries),
            skipped=tuple((int(vid), reason) for vid, reason in bad.items()),
            repaired=tuple((int(vid), why) for vid, why in fixed.items()),
        )
    skipped, repaired = check.skipped, check.repaired
    if repaired:
        names = "; ".join(f"video {vid}: {why}" for vid, why in repaired[:5])
        how, broken = "each frame that does not decode a copy of the nearest that does", f"{len(repaired)} broken"
        if on_error == "raise":
            raise DataError(f"{broken} video(s) in {source}: {names} (--skip-bad-videos: predicted, {how})")
        warnings.warn(f"predicting {broken} video(s) of {source}, {how}: {names}", stacklevel=1)  # once a process
    if skipped:
        names = ", ".join(f"video {vid}: {reason}" for vid, reason in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        every = " (all of them: none is left to use)" if len(skipped) == check.videos else ""
        if on_error == "raise" or every:
            raise DataError(f"{len(skipped)} bad video(s) in {source}{every}: {names}{more}")
        warnings.warn(
            f"skipping {len(skipped)} bad video(s) of {check.videos} in {source}: {names}{more}", stacklevel=1
        )
    return DecodedSplit(
        split=split,
        source=source,
        ids=np.load(target / "ids.npy"),
        frames=np.load(target / "frames.npy", mmap_mode="r"),
        masks=np.load(target / "masks.npy", mmap_mode="r") if (target / "masks.npy").exists() else None,
        skipped=skipped,
        repaired=repaired,
        check=check,
    )


def _stamp(folder: Path) -> tuple[int, int, int]:
    """Which manifest file `folder` holds now: its inode, size and modification time (ns); zeros where none."""
    try:
        stat = (folder / "manifest.json").stat()
    except OSError:
        return (0, 0, 0)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read_manifest(target: Path) -> dict | None:
    try:
        return json.loads((target / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _is_current(folder: Path, source: Path, fingerprints: dict[int, list], found: list[dict]) -> bool:
    """Whether the cache in `folder` was made from these files and is whole, its arrays as long as their headers say
    (one cut short by a full disk or a copy stopped half-way is rebuilt, not read: "mmap length is greater than file
    size", naming nothing). Its manifest is added to `found`."""
    manifest = _read_manifest(folder)
    if manifest is None or (manifest.get("version"), manifest.get("source")) != (CACHE_VERSION, str(source)):
        return False
    if manifest.get("videos") != {str(k): v for k, v in fingerprints.items()}:
        return False
    try:
        for name in ("ids.npy", "frames.npy", "masks.npy"):
            if name != "masks.npy" or (folder / name).exists():
                np.load(folder / name, mmap_mode="r")
    except (OSError, ValueError):
        return False
    found.append(manifest)
    return True


def _build(
    tmp: Path,
    target: Path,
    entries: Sequence[VideoEntry],
    fingerprints: dict[int, list],
    *,
    workers: int | None,
    progress: bool,
) -> None:
    """Write a fresh cache for `entries` into `tmp`. Rows whose video is unchanged since the old cache in
    `target` are copied from it; the others are decoded in parallel. Each finished row is logged in `tmp`
    (after its bytes are written), so that a build killed half-way carries on where it stopped when `tmp`
    holds the plan of the same videos (`_carry_on`), instead of decoding everything again."""
    old = _read_manifest(target)
    n, t = len(entries), entries[0].n_frames
    labelled = entries[0].has_mask
    source = str(Path(entries[0].path).parent.resolve())
    rows = [[e.video_id, fingerprints[e.video_id]] for e in entries]
    plan = {"version": CACHE_VERSION, "source": source, "rows": rows}
    shapes: dict[str, tuple[int, ...]] = {"frames.npy": (n, t, FRAME_HEIGHT, FRAME_WIDTH, 3)}
    if labelled:
        shapes["masks.npy"] = (n, N_FRAMES, FRAME_HEIGHT, FRAME_WIDTH)
    done = _carry_on(tmp, plan, shapes)
    if done is None:
        for stale in tmp.iterdir():
            stale.unlink()
        (tmp / _PLAN).write_text(json.dumps(plan))
        done = {}
    elif progress:
        print(f"carrying on with the decode of {entries[0].split} that stopped: {len(done)} of {n} videos done")
    video_bytes = FRAME_HEIGHT * FRAME_WIDTH * (3 * t + (N_FRAMES if labelled else 0))
    check_free_space(tmp, video_bytes * (n - len(done)), f"the decoded {entries[0].split} split")
    arrays = {
        n: np.lib.format.open_memmap(tmp / n, "r+" if (tmp / n).exists() else "w+", np.uint8, shape)
        for n, shape in shapes.items()
    }
    reserve_blocks(*(tmp / n for n in arrays), what=f"the decoded {entries[0].split} split")  # no Bus error later
    frames, masks = arrays.pop("frames.npy"), arrays.pop("masks.npy", None)
    with (tmp / _LOG).open("a") as log:
        reusable = _old_rows(target, old, fingerprints)
        copied: list[tuple[int, str | None]] = []
        todo: list[tuple[int, VideoEntry]] = []
        for row, entry in enumerate(entries):
            if entry.video_id in done:
                continue
            if entry.video_id in reusable:
                old_row, old_frames, old_masks = reusable[entry.video_id]
                frames[row] = old_frames[old_row]
                if masks is not None and old_masks is not None:
                    masks[row] = old_masks[old_row]
                copied.append((entry.video_id, None))
            elif (
                old is not None
                and str(entry.video_id) in old.get("bad", {})
                and _unchanged(old, entry.video_id, fingerprints)
            ):
                copied.append((entry.video_id, old["bad"][str(entry.video_id)]))
            else:
                todo.append((row, entry))
        frames.flush()
        del frames, masks

        def record(results: list[tuple[int, str | None]]) -> None:
            """Log finished rows (their bytes already flushed to the arrays)."""
            done.update(results)
            log.write("".join(json.dumps(r) + "\n" for r in results))
            log.flush()

        record(copied)
        decode_rows(tmp, todo, workers=workers, progress=progress, record=record)
    problems = {vid: why for vid, why in done.items() if why is not None}
    repaired = {vid: why[len(REPAIRED) :] for vid, why in problems.items() if why.startswith(REPAIRED)}
    old_repaired = (old or {}).get("repaired", {})  # reused rows of hidden videos repaired before
    repaired.update({vid: old_repaired[str(vid)] for vid in reusable if str(vid) in old_repaired})
    bad = {vid: why for vid, why in problems.items() if vid not in repaired}
    keep = np.array([e.video_id not in bad for e in entries])
    if not keep.all():
        drop_rows(tmp, keep)
    np.save(tmp / "ids.npy", np.array([e.video_id for e in entries], dtype=np.int64)[keep])
    manifest = {
        "version": CACHE_VERSION,
        "source": source,
        "videos": {str(k): v for k, v in fingerprints.items()},
        "bad": {str(k): bad[k] for k in sorted(bad)},
        "repaired": {str(k): repaired[k] for k in sorted(repaired)},
    }
    (tmp / _PLAN).unlink()
    (tmp / _LOG).unlink()
    (tmp / "manifest.json").write_text(json.dumps(manifest))


def _carry_on(tmp: Path, plan: dict, shapes: dict[str, tuple[int, ...]]) -> dict[int, str | None] | None:
    """{video id: None, or why it is bad} of the rows a stopped build in `tmp` finished, when it was building
    the same videos from the same files into arrays of the same shapes; None: start afresh."""
    try:
        if json.loads((tmp / _PLAN).read_text()) != plan:
            return None
        for name, shape in shapes.items():
            if np.load(tmp / name, mmap_mode="r").shape != shape:
                return None
        lines = (tmp / _LOG).read_text().splitlines()
    except (OSError, ValueError):
        return None
    done: dict[int, str | None] = {}
    for line in lines:
        try:
            vid, why = json.loads(line)
        except ValueError:  # the last line, cut by the kill
            continue
        done[int(vid)] = why
    return done


def _unchanged(old: dict, video_id: int, fingerprints: dict[int, list]) -> bool:
    """Whether a video's files are as the old cache recorded them."""
    return old.get("videos", {}).get(str(video_id)) == fingerprints.get(video_id)


def _old_rows(
    target: Path, old: dict | None, fingerprints: dict[int, list]
) -> dict[int, tuple[int, np.ndarray, np.ndarray | None]]:
    """Rows of the old cache that can be copied: the video's files have not changed."""
    if old is None or old.get("version") != CACHE_VERSION or not (target / "ids.npy").exists():
        return {}
    try:
        ids = np.load(target / "ids.npy")
        frames = np.load(target / "frames.npy", mmap_mode="r")
        masks = np.load(target / "masks.npy", mmap_mode="r") if (target / "masks.npy").exists() else None
    except (OSError, ValueError):
        return {}
    return {int(vid): (row, frames, masks) for row, vid in enumerate(ids) if _unchanged(old, int(vid), fingerprints)}
