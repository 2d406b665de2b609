"""Small study folders written directly, as the search writes them (real Parquet tables, a real Optuna
journal told through ask/report/tell), so that report tests need no search run."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from reports import schema

DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "width": CategoricalDistribution([8, 16, 32]),
    "warp": CategoricalDistribution([True, False]),  # conditional: asked only in some trials
}
# six trials where width decides the score and lr barely moves it
SPREAD = [
    ({"lr": 1e-3, "width": 8}, [0.10, 0.20], "complete"),
    ({"lr": 1e-2, "width": 8}, [0.10, 0.21], "complete"),
    ({"lr": 1e-3, "width": 16}, [0.30, 0.50], "complete"),
    ({"lr": 1e-2, "width": 16}, [0.30, 0.52], "complete"),
    ({"lr": 1e-4, "width": 32}, [0.60, 0.80], "complete"),
    ({"lr": 3e-2, "width": 32}, [0.60, 0.79], "complete"),
]
TOLD = {"pruned": optuna.trial.TrialState.PRUNED, "fail": optuna.trial.TrialState.FAIL}  # told without a value


def write_journal(
    path: Path,
    study_name: str,
    trials: Sequence[tuple[dict[str, Any], Sequence[float], str]],
) -> optuna.Study:
    """One Optuna study in the journal at `path`: per trial (params, value per epoch, "complete" |
    "pruned" | "fail"). A pruned trial is told without a value, as the search tells ASHA's stops:
    Optuna then keeps its last reported value."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True)
    for params, curve, state in trials:
        study.enqueue_trial(params)
        trial = study.ask({name: DISTRIBUTIONS[name] for name in params})
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        if state == "complete":
            study.tell(trial, curve[-1])
        else:
            study.tell(trial, state=TOLD[state])
    return study


def trial_row(
    trial_id: str, best_metric: float = math.nan, *, params: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A trials-table row with the search's defaults, `fields` (column=value) and `params` set."""
    row: dict[str, Any] = {
        schema.TRIAL_ID: trial_id,
        schema.SPACE: "unet",
        schema.STAGE: "train",
        schema.STATUS: "completed",
        schema.FAILURE: None,
        schema.METRIC: "val_iou",
        schema.MODE: "max",
        schema.BEST_METRIC: best_metric,
        schema.LAST_METRIC: best_metric,
        schema.BEST_EPOCH: 1,
        schema.EPOCHS: 1,
        schema.MAX_EPOCHS: 4,
        schema.WALL_TIME_S: 60.0,
        schema.GPU_HOURS: 0.0,
        schema.CHECKPOINT: f"/ckpt/{trial_id}/checkpoint.pt",
        schema.PARENT_TRIAL: None,
    }
    row.update({schema.config_column(name): value for name, value in (params or {}).items()})
    return {**row, **fields}


def timed_epoch(
    trial_id: str, stage: str, epoch: int, end: float, seconds: float, gpu_busy: float | None = None
) -> dict[str, Any]:
    """An epochs-table row with the timing columns, as segtune records them: the epoch ended at Unix second
    `end` after `seconds`: 1 s waiting for data, 1 s of evaluation, 0.5 s writing its checkpoint, 0.5 s
    else, training the rest. With `gpu_busy`, as on CUDA: that busy share and a peak of 1 GiB per epoch."""
    row: dict[str, Any] = {
        schema.TRIAL_ID: trial_id,
        schema.SPACE: "unet",
        schema.STAGE: stage,
        schema.EPOCH: epoch,
        "val_iou": 0.1 * epoch,
        schema.EPOCH_END: end,
        schema.EPOCH_SECONDS: seconds,
        schema.DATA_WAIT_S: 1.0,
        schema.TRAIN_S: seconds - 3.0,
        schema.EVAL_S: 1.0,
        schema.CHECKPOINT_S: 0.5,
    }
    if gpu_busy is not None:
        row.update({schema.GPU_BUSY: gpu_busy, schema.GPU_PEAK_GB: float(epoch)})
    return row


# a staged GPU study's epochs, Unix seconds from 1000: pretrain's a and b packed on the GPU, d after a 5 s
# gap; 10 s with no trial between the stages; then finetune's c
TIMED_EPOCHS = [
    timed_epoch("a", "pretrain", 1, 1010.0, 10.0, 0.5),
    timed_epoch("b", "pretrain", 1, 1015.0, 10.0, 1.0),
    timed_epoch("a", "pretrain", 2, 1020.0, 10.0, 0.5),
    timed_epoch("d", "pretrain", 1, 1030.0, 5.0, 0.2),
    timed_epoch("c", "finetune", 1, 1050.0, 10.0, 0.8),
]


def write_study_folder(
    folder: Path,
    rows: Sequence[dict[str, Any]],
    *,
    settings: dict[str, Any] | None = None,
    epochs: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """OUT/NAME with search.json (if `settings`) and results/trials.parquet (started a minute apart,
    in row order) and epochs.parquet (`epochs` if given, else one epoch per trial at its best value, without
    the timing columns, as studies made before segtune recorded them)."""
    results = folder / schema.RESULTS_DIR
    results.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (folder / schema.STUDY_FILE).write_text(json.dumps(settings))
    trials = pd.DataFrame(list(rows))
    trials[schema.STARTED_AT] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(range(len(trials)), unit="min")
    trials.to_parquet(results / schema.TRIALS_FILE, index=False)
    table = pd.DataFrame(
        {
            schema.TRIAL_ID: trials[schema.TRIAL_ID],
            schema.SPACE: trials[schema.SPACE],
            schema.STAGE: trials[schema.STAGE],
            schema.EPOCH: 1,
            "val_iou": trials[schema.BEST_METRIC],
        }
    )
    (pd.DataFrame(list(epochs)) if epochs is not None else table).to_parquet(results / schema.EPOCHS_FILE, index=False)
    return folder


# the trials of TIMED_EPOCHS: a completed, b stopped by ASHA, d cut by the time budget; c completed
TIMED_TRIALS = [
    trial_row("a", 0.2, stage="pretrain", epochs=2, max_epochs=2),
    trial_row("b", 0.1, stage="pretrain", status="stopped", epochs=1, max_epochs=2),
    trial_row("d", 0.1, stage="pretrain", status="cut", epochs=1, max_epochs=2),
    trial_row("c", 0.1, stage="finetune", epochs=1, max_epochs=1, parent_trial="a"),
]
