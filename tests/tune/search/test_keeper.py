"""The checkpoint keeper on real folders and real Ray Checkpoint objects: the checkpoint a saved
experiment state names is put back after Ray deleted it, and nothing is left over once a stage ends."""

from __future__ import annotations

import shutil
from pathlib import Path

from ray.tune import Checkpoint

from tune.search.keeper import KEPT_DIR, CheckpointKeeper, drop_kept, restore_kept


def _report(trial_dir: Path, index: int, keeper: CheckpointKeeper) -> Path:
    """A checkpoint as Ray persists it, handed to the callback before Ray deletes the previous one."""
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(bytes([index]) * 10)
    keeper.on_checkpoint(0, [], None, Checkpoint.from_directory(str(folder)))
    return folder


def test_the_checkpoint_ray_deleted_before_a_kill_is_put_back(tmp_path: Path) -> None:
    keeper, trial = CheckpointKeeper(), tmp_path / "main" / "trial_a"
    folders = [_report(trial, k, keeper) for k in range(4)]
    for folder in folders[:3]:  # num_to_keep=1: Ray deleted all but the latest; the saved state names #2
        shutil.rmtree(folder)
    assert sorted(p.name for p in (trial / KEPT_DIR).iterdir()) == ["checkpoint_000002", "checkpoint_000003"]
    assert restore_kept(tmp_path / "main") == [folders[2]]
    assert (folders[2] / "checkpoint.pt").read_bytes() == bytes([2]) * 10
    assert not folders[0].exists() and not folders[1].exists()


def test_a_stage_that_ended_keeps_only_the_best_and_the_latest_checkpoint(tmp_path: Path) -> None:
    keeper, trial = CheckpointKeeper(), tmp_path / "main" / "trial_a"
    folders = [_report(trial, k, keeper) for k in range(4)]  # say a restore put all of them back
    drop_kept(tmp_path / "main", keep={str(folders[1])})
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000001", "checkpoint_000003"]
