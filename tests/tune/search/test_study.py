"""A study as a run sees it: each stage's TPE seed, and the record of what a run ran with (run.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports import schema
from reports.records import read_run
from tune.search.config import SearchConfig
from tune.search.driver import open_study
from tune.search.resources import Cluster, Node
from tune.search.study import Study


def _study(tmp_path: Path, **settings: Any) -> Study:
    cfg = SearchConfig(out=str(tmp_path), name="s", budget="smoke", **settings)
    return open_study(cfg, Cluster((Node(cpus=2, gpus=0),)))


def test_each_stage_after_the_first_has_a_seed_of_its_own(tmp_path: Path) -> None:
    """Every stage of a study seeded TPE with --seed: the mask_space predictor stage's first trials drew the segmenter
    stage's lr, weight decay and batch size again."""
    study = _study(tmp_path, space="mask_space", seed=3)
    first, second = study.space.stages
    assert study.stage_seed(first) == 3  # (a one-stage study's seed is --seed)
    assert study.stage_seed(second) not in (3, study.stage_seed(first))
    other = _study(tmp_path / "o", space="mask_space", seed=4)
    assert other.stage_seed(second) != study.stage_seed(second)


def test_the_run_record_holds_the_trials_a_stage_runs_as_given(tmp_path: Path) -> None:
    study = _study(tmp_path, space="unet", samples=4)
    study.folder.mkdir(parents=True)
    study.record_run(ended=False)
    budget = read_run(study.folder)[schema.RUN_BUDGET]
    assert budget["name"] == "smoke" and budget["samples"] == 4 and "max_concurrent" not in budget  # (not 6, its own)
    assert "trials at once" in read_run(study.folder)[schema.RUN_RESOURCES]
