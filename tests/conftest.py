"""Shared fixtures: one small synthetic data root, generated once per test session with the real
MuJoCo generator, helpers to lay out malformed copies of it, one local Ray for the tests' studies and the
studies several tests read."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from data.synth.generate import SynthSpec, generate

TINY = SynthSpec(train=4, val=2, unlabeled=2, hidden=2, seed=7)


@pytest.fixture(scope="session", autouse=True)
def _session_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's decoded cache and embedded set in a folder of its own, never the user's ~/.cache/segtune: each
    session's data roots are new, so what it decoded there was never read again and only piled up."""
    home = tmp_path_factory.mktemp("segtune")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGTUNE_CACHE", str(home / "decoded"))
        patch.setenv("SEGTUNE_SYNTH", str(home / "synth"))
        yield


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated data root: train 0-3, val 4-5, unlabeled 6-7, hidden 8-9. Read-only by convention:
    tests that alter files work on a copy (`copy_root`)."""
    root = tmp_path_factory.mktemp("synth") / "root"
    generate(root, TINY, workers=2, progress=False)
    return root


@pytest.fixture
def copy_root(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy of the generated root, free to damage."""
    return Path(shutil.copytree(synth_root, tmp_path / "root"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A decoded cache of the test's own, where every command and trial it runs finds it ($SEGTUNE_CACHE)."""
    monkeypatch.setenv("SEGTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def shared_ray() -> None:
    """The suite's one local Ray of 2 CPUs, started by the first test that needs it and kept for the next ones
    (a start and a stop cost ~4 s each time). The trials read the decoded cache their driver names, so tests
    keep their own caches on it. A test that needs a Ray of another size stops it first (`own_ray`)."""
    import logging

    import ray

    if not ray.is_initialized():
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)


@pytest.fixture
def local_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared local Ray, with a decoded cache of the test's own."""
    monkeypatch.setenv("SEGTUNE_CACHE", str(tmp_path / "decoded"))
    shared_ray()


@pytest.fixture
def own_ray() -> Iterator[None]:
    """For a test that starts a Ray of its own (another size, a cluster, a GPU study's): none is running before
    it, and none after."""
    from tune.search.ray_env import stop_local_ray

    stop_local_ray()  # (as a study stops its own: Ray's ray.shutdown() waits a second more for its monitor)
    yield
    stop_local_ray()


@pytest.fixture(scope="session", autouse=True)
def _no_ray_left() -> Iterator[None]:
    """Ray's session folders (its logs and sockets, 1-6 MB each start, some 30 starts a run, the drivers run as
    commands among them) in a folder of the suite's, removed at its end: Ray leaves them in /tmp/ray, where they
    piled up run after run. And no Ray left running."""
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # a short path: Ray's socket paths must stay under 108 bytes
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", folder)
        yield
    if "ray" in sys.modules:
        from tune.search.ray_env import stop_local_ray

        stop_local_ray()
    shutil.rmtree(folder, ignore_errors=True)


def _study(tmp_path_factory: pytest.TempPathFactory, synth_root: Path, **settings: object) -> Path:
    """Run a real smoke study on the shared local Ray and return its folder."""
    from tune.search.config import SearchConfig
    from tune.search.driver import run_search

    out = tmp_path_factory.mktemp("studies")
    shared_ray()
    cfg = SearchConfig(data=str(synth_root), budget="smoke", out=str(out), dashboard=False, **settings)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:  # the driver's cache, which its trials use; the suite's after it
        patch.setenv("SEGTUNE_CACHE", str(out / "decoded"))
        assert run_search(cfg) == 0
    return out / str(settings["name"])


@pytest.fixture(scope="session")
def unet_study(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A finished unet smoke study of 8 trials, the third failing on purpose."""
    return _study(tmp_path_factory, synth_root, space="unet", samples=8, name="u", fail_trials=(3,))


@pytest.fixture(scope="session")
def dual_study(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A finished dual_phase smoke study of 4 trials per stage, inputs at scale 0.25 (a fine-tune at 1 takes most of
    the study's time on a CPU; the study takes 18 s at 0.25, 26 s at 0.5, its trials as far apart at both)."""
    return _study(
        tmp_path_factory, synth_root, space="dual_phase", samples=4, name="d", overrides=("set input_scale=0.25",)
    )


@pytest.fixture(scope="session")
def mask_study(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A finished mask_space smoke study of 4 trials per stage, on the first of the 2 unlabeled videos and
    scored on the first of the 2 val videos; its mask predictors at input scale 0.25 (at 1 they take most of the
    study's time on a CPU; the study takes 24 s at 0.25, 44 s at 0.5, and its predictors score alike at both)."""
    return _study(
        tmp_path_factory,
        synth_root,
        space="mask_space",
        samples=4,
        name="m",
        unlabeled=1,
        val_videos=1,
        overrides=("set predictor.input_scale=0.25",),
    )


@pytest.fixture(scope="session")
def dynamics_study(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A finished dynamics smoke study of 2 segmenters (scale 0.5) and 3 object-dynamics models on their best one's
    pseudo-labels, on the first unlabeled video, scored on both val videos."""
    return _study(
        tmp_path_factory,
        synth_root,
        space="dynamics",
        samples=3,
        name="o",
        unlabeled=1,
        overrides=("set segmenter.input_scale=0.5",),
    )
