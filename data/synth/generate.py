"""Write a synthetic data root in the competition layout, videos in parallel across cores.

Video ids are global offsets in the order train, val, unlabeled, hidden; folder names are unpadded.
Each video is drawn from its own seed (the data set seed and the video id), so the files do not depend
on the number of workers, and the same seed writes byte-identical files.
"""

from __future__ import annotations

import json
import multiprocessing.util
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data.classes import N_INPUT_FRAMES
from data.files import atomic_write, check_free_space, process_pool
from data.progress import Progress
from data.synth.scene import SceneConfig, sample_scene

SPLIT_ORDER = ("train", "val", "unlabeled", "hidden")
MANIFEST = "synth.json"
# about what a video of each split takes on disk (measured: 22 PNGs of 160x240 ~110 kB, mask.npy 845 kB)
VIDEO_BYTES = {"train": 1_000_000, "val": 1_000_000, "unlabeled": 120_000, "hidden": 60_000}


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. Travels whole into OUT/synth.json."""

    train: int = 0  # labelled videos, 22 frames + mask.npy
    val: int = 0  # labelled videos, 22 frames + mask.npy
    unlabeled: int = 0  # 22 frames, no mask
    hidden: int = 0  # 11 frames, no mask
    seed: int = 0  # data set seed; video k is drawn from (seed, k)
    scene: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        for split in SPLIT_ORDER:
            if getattr(self, split) < 0:
                raise ValueError(f"--{split} must be >= 0 (videos), got {getattr(self, split)}")
        if self.seed < 0:  # numpy's seeds are non-negative
            raise ValueError(f"--seed must be >= 0, got {self.seed}")

    def videos(self) -> Iterator[tuple[str, int]]:
        """(split, video id) of every video, ids as global offsets in split order."""
        offset = 0
        for split in SPLIT_ORDER:
            for k in range(getattr(self, split)):
                yield split, offset + k
            offset += getattr(self, split)


@dataclass(frozen=True)
class SynthReport:
    written: int  # videos drawn by this call
    skipped: int  # videos already complete in OUT from an earlier call with the same spec
    seconds: float  # wall time
    workers: int

    @property
    def videos_per_minute_per_core(self) -> float:
        return 60.0 * self.written / max(self.seconds, 1e-9) / self.workers


def generate(
    out: str | os.PathLike[str], spec: SynthSpec, *, workers: int | None = None, progress: bool = True
) -> SynthReport:
    """Write the data set `spec` under `out`. An interrupted call is finished by calling again with the
    same spec: complete videos are kept, a half-written one is never visible under its final name."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1 (leave it out for one per core), got {workers}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    _check_space(root, spec)
    _check_manifest(root, spec)
    todo = []
    for split, vid in spec.videos():
        folder = root / split / f"video_{vid}"
        if not _whole_video(folder, split, spec.scene.n_frames):
            shutil.rmtree(folder, ignore_errors=True)  # a file of it deleted since: drawn again, whole
            todo.append((split, vid))
    for split in SPLIT_ORDER:
        if getattr(spec, split):
            (root / split).mkdir(exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    started = time.perf_counter()
    jobs = [(str(root), split, vid) for split, vid in todo]
    with Progress(len(jobs), "generating", enabled=progress) as bar:  # closed on an error too: how far it got
        if workers == 1:
            _init_worker(spec.seed, spec.scene)
            for job in jobs:
                _write_video(job)
                bar.update()
            _close_worker()
        else:
            # closed whole at the end: the workers' finalizers close their GL contexts
            with process_pool(workers, _init_worker, (spec.seed, spec.scene)) as pool:
                for _ in pool.imap_unordered(_write_video, jobs, chunksize=1):
                    bar.update()
    return SynthReport(len(jobs), sum(1 for _ in spec.videos()) - len(jobs), time.perf_counter() - started, workers)


def _whole_video(folder: Path, split: str, n_frames: int) -> bool:
    """Whether a video folder holds every file _write_video renamed into place: its frames and, labelled, its masks
    (one listing a video: a frame deleted since is drawn again)."""
    n = N_INPUT_FRAMES if split == "hidden" else n_frames
    wanted = {f"image_{t}.png" for t in range(n)} | ({"mask.npy"} if split in ("train", "val") else set())
    try:
        return wanted <= set(os.listdir(folder))
    except OSError:  # not there yet (or not a folder)
        return False


def _check_space(root: Path, spec: SynthSpec) -> None:
    """Refused before anything is written where the videos not yet there would not fit on the disk."""
    needed = 0
    for split in SPLIT_ORDER:
        folder = root / split
        there = sum(1 for _ in os.scandir(folder)) if folder.is_dir() else 0
        needed += max(0, getattr(spec, split) - there) * VIDEO_BYTES[split]
    check_free_space(root, needed, "the data set", "generate fewer videos")


def _check_manifest(root: Path, spec: SynthSpec) -> None:
    path = root / MANIFEST
    wanted = json.loads(json.dumps(asdict(spec)))  # tuples as lists, as they read back
    if path.exists():
        found = json.loads(path.read_text())
        if found != wanted:
            has, asks = _flat(found), _flat(wanted)
            differ = [key for key in sorted(has.keys() | asks.keys()) if has.get(key) != asks.get(key)]
            raise FileExistsError(
                f"{path} records a data set generated with other settings: "
                f"{', '.join(f'{key} {has.get(key)}' for key in differ)} "
                f"(this command: {', '.join(f'{key} {asks.get(key)}' for key in differ)}); use another OUT or delete it"
            )
    elif any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty and holds no {MANIFEST}; refusing to write a data set into it")
    else:
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=2) + "\n")


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A manifest's settings by dotted name (`scene.friction`), to name the ones that differ."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return flat


_worker: dict[str, object] = {}


def _init_worker(seed: int, scene: SceneConfig) -> None:
    from data.synth.render import SceneRenderer  # imports mujoco, which sets up GL: only in workers

    renderer = SceneRenderer(scene)
    _worker.update(seed=seed, scene=scene, renderer=renderer)
    multiprocessing.util.Finalize(renderer, renderer.close, exitpriority=10)


def _close_worker() -> None:
    renderer = _worker.pop("renderer", None)
    if renderer is not None:
        renderer.close()  # type: ignore[attr-defined]


def draw_video(seed: int, video_id: int, scene: SceneConfig, renderer: object) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) and masks (T, H, W) of one video, from (seed, video id) alone."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, video_id]))
    return renderer.simulate(sample_scene(rng, scene))  # type: ignore[attr-defined]


def _write_video(job: tuple[str, str, int]) -> None:
    root, split, vid = job
    frames, masks = draw_video(_worker["seed"], vid, _worker["scene"], _worker["renderer"])  # type: ignore[arg-type]
    final = Path(root) / split / f"video_{vid}"
    tmp = Path(root) / split / f".video_{vid}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    n = N_INPUT_FRAMES if split == "hidden" else len(frames)
    for t in range(n):
        Image.fromarray(frames[t]).save(tmp / f"image_{t}.png", compress_level=6)
    if split in ("train", "val"):
        np.save(tmp / "mask.npy", masks)
    tmp.rename(final)
