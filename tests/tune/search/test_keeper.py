"""The checkpoint keeper on real folders and real Ray Checkpoint objects: the checkpoint a saved
experiment state names is put back after Ray deleted it, and nothing is left over once a stage ends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from ray.tune import Checkpoint

from tune.search.keeper import KEPT_DIR, CheckpointKeeper, drop_kept, restore_kept, resumed_trials


def _report(trial_dir: Path, index: int, keeper: CheckpointKeeper) -> Path:
    """A checkpoint as Ray persists it, handed to the callback before Ray deletes the previous one."""
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(bytes([index]) * 10)
    keeper.on_checkpoint(0, [], None, Checkpoint.from_directory(str(folder)))
    return folder


def test_the_checkpoint_ray_deleted_before_a_kill_is_put_back(tmp_path: Path) -> None:
    """Of the trials a restore runs again; an ended trial's checkpoints Ray deleted as it kept the best one stay
    deleted (a resume of 190 ended trials put back and named 183)."""
    keeper, trial, ended = CheckpointKeeper(), tmp_path / "main" / "trial_a", tmp_path / "main" / "trial_b"
    folders = [_report(trial, k, keeper) for k in range(4)]
    for folder in folders[:3]:  # num_to_keep=1: Ray deleted all but the latest; the saved state names #2
        shutil.rmtree(folder)
    shutil.rmtree(_report(ended, 0, keeper))
    _report(ended, 1, keeper)
    assert sorted(p.name for p in (trial / KEPT_DIR).iterdir()) == ["checkpoint_000002", "checkpoint_000003"]
    assert restore_kept(tmp_path / "main", {"a": {"checkpoint_000003"}}) == []  # the one its state names is there
    assert restore_kept(tmp_path / "main", {"a": {"checkpoint_000002"}}) == [folders[2]]  # deleted: put back
    assert (folders[2] / "checkpoint.pt").read_bytes() == bytes([2]) * 10
    assert not folders[0].exists() and not folders[1].exists()
    assert not (ended / "checkpoint_000000").exists()
    shutil.rmtree(folders[2])
    assert restore_kept(tmp_path / "main", {"a": None}) == [folders[2]]  # names not known: every kept one


def test_the_trials_a_restore_runs_again_are_read_from_rays_saved_state(unet_study: Path, tmp_path: Path) -> None:
    """A real study's state (every trial ended: completed, stopped, the one failed on purpose) names none; a trial
    saved as running or pending is named."""
    state = sorted((unet_study / "main").glob("experiment_state-*.json"))[-1]
    assert resumed_trials(state) == {}
    saved = json.loads(state.read_text())
    first = json.loads(saved["trial_data"][0][0])
    saved["trial_data"][0][0] = json.dumps({**first, "status": "RUNNING"})
    (tmp_path / "state.json").write_text(json.dumps(saved))
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet").set_index("trial_id")
    best = Path(trials.loc[first["trial_id"], "checkpoint"]).parent.name  # the one Ray kept: its state names it
    named = resumed_trials(tmp_path / "state.json")
    assert list(named) == [first["trial_id"]] and best in (named[first["trial_id"]] or ())


def test_a_stage_that_ended_keeps_only_the_best_and_the_latest_checkpoint(tmp_path: Path) -> None:
    keeper, trial = CheckpointKeeper(), tmp_path / "main" / "trial_a"
    folders = [_report(trial, k, keeper) for k in range(4)]  # say a restore put all of them back
    drop_kept(tmp_path / "main", keep={str(folders[1])})
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000001", "checkpoint_000003"]


def test_the_best_checkpoint_so_far_is_kept_beside_the_last_two(tmp_path: Path) -> None:
    """A better checkpoint has Ray delete the best so far too, which the state saved before names: it is kept."""
    from ray.train._internal.session import _TrainingResult
    from ray.tune import CheckpointConfig
    from ray.tune.experiment import Trial

    config = CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_iou", checkpoint_score_order="max")
    trial = Trial("train_trial", stub=True, checkpoint_config=config)
    keeper, folder = CheckpointKeeper(), tmp_path / "main" / "trial_a"
    best = _report(folder, 0, keeper)
    manager = trial.run_metadata.checkpoint_manager
    assert manager is not None
    manager.register_checkpoint(_TrainingResult(Checkpoint.from_directory(str(best)), {"val_iou": 0.9}))
    for index in (1, 2, 3):  # worse ones, as Ray reports them (before it registers each)
        path = folder / f"checkpoint_{index:06d}"
        path.mkdir()
        keeper.on_checkpoint(0, [], trial, Checkpoint.from_directory(str(path)))
    kept = sorted(path.name for path in (folder / KEPT_DIR).iterdir())
    assert kept == ["checkpoint_000000", "checkpoint_000002", "checkpoint_000003"]
