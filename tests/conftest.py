"""Shared fixtures: one small synthetic data root, generated once per test session with the real
MuJoCo generator, and helpers to lay out malformed copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from data.synth.generate import SynthSpec, generate

TINY = SynthSpec(train=4, val=2, unlabeled=2, hidden=2, seed=7)


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
