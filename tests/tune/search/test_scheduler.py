"""ASHA after a resume (ray#30838): the scheduler rebuilt from epochs.parquet makes the decisions an
uninterrupted one makes, where Ray's restored, empty ASHA lets a weak trial run to the end."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from reports.schema import EPOCH, EPOCHS_FILE, STAGE, TRIAL_ID
from tune.search.scheduler import ResumableASHA

ASHA: dict[str, Any] = {"metric": "val_iou", "mode": "max", "max_t": 8, "grace_period": 1, "reduction_factor": 2}
# (trial, epoch, val_iou) in the order a study reports them; rungs at epochs 1, 2, 4
HISTORY = [
    ("a", 1, 0.30), ("b", 1, 0.50), ("a", 2, 0.40), ("c", 1, 0.20), ("b", 2, 0.55), ("d", 1, 0.45),
    ("b", 3, 0.60), ("d", 2, 0.35), ("b", 4, 0.62), ("f", 1, 0.10), ("e", 1, 0.52), ("e", 2, 0.58),
    ("e", 3, 0.59), ("e", 4, 0.61), ("f", 2, 0.70),
]  # fmt: skip


def _decisions(scheduler: ASHAScheduler, history: list[tuple[str, int, float]]) -> list[str]:
    trials: dict[str, SimpleNamespace] = {}
    out = []
    for trial_id, epoch, value in history:
        if trial_id not in trials:
            trials[trial_id] = SimpleNamespace(trial_id=trial_id)
            scheduler.on_trial_add(None, trials[trial_id])  # type: ignore[arg-type]
        result = {"training_iteration": epoch, "val_iou": value}
        out.append(scheduler.on_trial_result(None, trials[trial_id], result))  # type: ignore[arg-type]
    return out


def _write_epochs(folder: Path, rows: list[tuple[str, int, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{TRIAL_ID: t, STAGE: "main", EPOCH: e, "val_iou": v} for t, e, v in rows])
    other = pd.DataFrame([{TRIAL_ID: "z", STAGE: "other", EPOCH: 1, "val_iou": 0.99}])  # another stage's
    pd.concat([frame, other]).to_parquet(folder / EPOCHS_FILE)


def test_a_resumed_asha_decides_as_an_uninterrupted_one(tmp_path: Path) -> None:
    straight = _decisions(ResumableASHA(results_dir=tmp_path / "none", stage="main", **ASHA), HISTORY)
    assert straight == _decisions(ASHAScheduler(**ASHA), HISTORY)  # the subclass is ASHA when nothing resumes
    assert TrialScheduler.STOP in straight

    cut = 9  # the driver is killed after 9 results; they are in epochs.parquet
    scheduler = ResumableASHA(results_dir=tmp_path / "results", stage="main", **ASHA)
    first = _decisions(scheduler, HISTORY[:cut])
    _write_epochs(tmp_path / "results", HISTORY[:cut])
    restored = pickle.loads(pickle.dumps(ResumableASHA(results_dir=tmp_path / "results", stage="main", **ASHA)))
    assert first + _decisions(restored, HISTORY[cut:]) == straight

    # Ray's own restored scheduler, empty, lets trial f, below the rung-1 cutoff, go on
    empty = _decisions(ASHAScheduler(**ASHA), HISTORY[cut:])
    assert empty[HISTORY[cut:].index(("f", 1, 0.10))] == TrialScheduler.CONTINUE
    assert straight[HISTORY.index(("f", 1, 0.10))] == TrialScheduler.STOP


def test_rebuild_reads_only_its_stage_and_counts_rung_values(tmp_path: Path) -> None:
    _write_epochs(tmp_path, HISTORY[:9])
    scheduler = ResumableASHA(results_dir=tmp_path, stage="main", **ASHA)
    assert scheduler.rebuild_rungs() == 4 + 3 + 1  # rung 1: a b c d; rung 2: a b d; rung 4: b
    recorded = {milestone: dict(values) for milestone, values in scheduler._brackets[0]._rungs}
    assert recorded[1] == {"a": 0.30, "b": 0.50, "c": 0.20, "d": 0.45}
    assert "z" not in recorded[1]
