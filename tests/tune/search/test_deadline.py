"""Before a stage's Tuner.restore, its saved search is reopened: a stage that ended early goes on suggesting trials,
and its concurrency limiter takes this run's plan (Ray restored the first run's: a study begun on a 1-CPU node ran
one trial at a time when resumed on 2 CPUs, its plan line saying 2; seen with Ray's "Logical resource usage")."""

from __future__ import annotations

import shutil
from pathlib import Path

import ray.cloudpickle as cloudpickle

from tune.search.deadline import reopen_search

LIMITER = "name:ConcurrencyLimiter"


def test_a_resumed_stage_runs_as_many_trials_at_once_as_its_new_plan_says(unet_study: Path, tmp_path: Path) -> None:
    stage = Path(shutil.copytree(unet_study / "main", tmp_path / "main"))
    (state,) = stage.glob("search_gen_state-*.json")
    saved = cloudpickle.loads(state.read_bytes())
    before = saved[LIMITER]["max_concurrent"]
    assert before >= 1 and not saved["finished"]
    reopen_search(stage, before + 3)
    reopened = cloudpickle.loads(state.read_bytes())
    assert reopened[LIMITER] == {**saved[LIMITER], "max_concurrent": before + 3}
    others = {"counter", "total_samples", "finished"}  # (and Ray's Experiment object, unpickled anew)
    assert {k: reopened[k] for k in others} == {k: saved[k] for k in others} and reopened.keys() == saved.keys()
    mtime = state.stat().st_mtime_ns
    reopen_search(stage, before + 3)  # the same plan: the file is left as it is
    assert state.stat().st_mtime_ns == mtime


def test_a_stage_the_deadline_ended_goes_on_suggesting_trials(unet_study: Path, tmp_path: Path) -> None:
    """A stage cut by the time budget saved its search as finished: reopened, it suggests trials again (with the
    same plan, where only `finished` differs)."""
    stage = Path(shutil.copytree(unet_study / "main", tmp_path / "main"))
    (state,) = stage.glob("search_gen_state-*.json")
    saved = cloudpickle.loads(state.read_bytes())
    state.write_bytes(cloudpickle.dumps({**saved, "finished": True}))
    reopen_search(stage, saved[LIMITER]["max_concurrent"])
    reopened = cloudpickle.loads(state.read_bytes())
    assert reopened["finished"] is False and reopened[LIMITER] == saved[LIMITER]
