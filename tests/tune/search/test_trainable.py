"""What a trial does before it trains, on any node of a cluster: the pseudo-labels its stage trains on are
found in its node's cache, or made there once (a node whose cache is not the driver's); and how its process
ends without a traceback in the study's output."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tune.search.resources import Resources
from tune.search.trainable import StageJob, quiet_ray_exit
from tune.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow
CPU = Resources(gpus_per_trial=0, cpus_per_trial=1, concurrent=1, compile=False)


def test_a_node_without_the_drivers_pseudo_labels_makes_them_once_itself(
    mask_study: Path, synth_root: Path, tmp_path: Path
) -> None:
    trials = pd.read_parquet(mask_study / "results" / "trials.parquet")
    predictor = trials[trials["stage"] == "predictor"].iloc[0]
    segmenter = load_checkpoint(predictor["checkpoint"])["pipeline"]["segmenter"]
    cache = mask_study.parent / "decoded"  # the study's driver's cache (tests/conftest.py)
    (made,) = [p for p in cache.glob("pseudo-*") if p.is_dir()]
    job = StageJob(
        model="mask_predictor", max_epochs=1, run_values={}, data_root=str(synth_root), resources=CPU,
        parents={predictor["parent_trial"]: segmenter}, parent_role="pseudo_labels", pseudo_dir=str(made),
        unlabeled=1, val_videos=1, cache_dir=str(cache),
    )  # fmt: skip
    # on the driver's node (or with a cache every node shares): its folder, as the driver left it
    stamp = (made / "manifest.json").stat().st_mtime_ns
    assert job.pseudo_here(torch.device("cpu")) == str(made)
    assert (made / "manifest.json").stat().st_mtime_ns == stamp
    # a node whose cache (the same path) is its own, and holds none yet: labelled there, the same masks
    node = tmp_path / "another-node-cache"
    found = dataclasses.replace(job, cache_dir=str(node)).pseudo_here(torch.device("cpu"))
    assert found is not None and Path(found) == node / made.name
    here = Path(found)
    arrays = sorted(p.name for p in made.glob("*.npy"))
    assert arrays and arrays == sorted(p.name for p in here.glob("*.npy"))
    for name in arrays:
        assert np.array_equal(np.load(made / name), np.load(here / name)), name
    stamp = (here / "manifest.json").stat().st_mtime_ns  # once: a second trial on that node finds them made
    assert dataclasses.replace(job, cache_dir=str(node)).pseudo_here(torch.device("cpu")) == found
    assert (here / "manifest.json").stat().st_mtime_ns == stamp
    # and nothing for a stage that trains on no segmenter's masks
    assert dataclasses.replace(job, pseudo_dir=None).pseudo_here(torch.device("cpu")) is None


class _RaisesWhenFreed:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error  # where Python cannot raise: it goes to sys.unraisablehook


def test_the_exit_ray_raises_in_a_finalizer_is_left_unsaid_and_other_unraisable_errors_are_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = sys.unraisablehook
    sys.unraisablehook = quiet_ray_exit
    try:
        _RaisesWhenFreed(SystemExit(1))  # Ray's SIGTERM handler, run inside a weakref callback
        assert capsys.readouterr().err == ""
        _RaisesWhenFreed(ValueError("a real error"))
        assert "ValueError: a real error" in capsys.readouterr().err
    finally:
        sys.unraisablehook = before
