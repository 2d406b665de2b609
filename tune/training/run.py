"""One run of one configuration outside any search, as `python -m tune.train` (tune/train.py) makes it and the
benchmarks call it: a RunConfig from the defaults, or from a trained run's (`run_source`: a checkpoint, a study's best),
and `FIELD=VALUE` assignments (`build_run`), trained with its
per-epoch metrics printed and a checkpoint written after every epoch (`train_run`): OUT/checkpoint.pt, and
OUT/pretrain/checkpoint.pt for a model's pretrained part (dual_phase's frame predictor), trained first."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from data.cache import OnError
from data.files import not_a
from models.config import config_to_dict
from models.registry import model_entry
from reports.checkpoints import beside, best_checkpoint, study_of
from reports.records import read_study_settings
from reports.schema import EPOCH
from tune.training.checkpoints import checkpoint_run, load_checkpoint, save_checkpoint
from tune.training.config import RUNTIME_FIELDS, RunConfig, TrainConfig
from tune.training.inference import resolve_device
from tune.training.pseudo import pseudo_label
from tune.training.tasks import task_for
from tune.training.trainer import Trainer, load_data

CHECKPOINT_FILE = "checkpoint.pt"  # a run's checkpoint in its folder, rewritten after every epoch
RUN_LOCK = ".run.lock"  # in a run's folder: locked by the process training it, names it (data.locking.run_lock)
PRETRAIN_DIR = "pretrain"  # the sub-folder of a run holding its pretrained part's run
STOP_AFTER = "stop_after"  # in a checkpoint of a run stopped before its last epoch (a pretrained part, as ASHA
# stopped the study's): the epoch it stops after, which a resume must ask again
SUBSET = ("unlabeled", "val_videos")  # a study's settings that take the first N videos of a split (search.json)


def build_run(
    model: str, assignments: Sequence[str], *, epochs: int | None = None, base: RunConfig | None = None
) -> RunConfig:
    """A RunConfig from the defaults (or from `base`, a run of `model`) and `--set FIELD=VALUE` assignments."""
    values: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set expects FIELD=VALUE, got {assignment!r}")
        values[key] = value
    try:
        if base is not None:
            return base.updated(values, epochs=epochs, from_text=True)
        return RunConfig.from_values(model, values, epochs=epochs, from_text=True)
    except ValueError as err:  # "UNetConfig.width expects int, got 'abc'": the --set it came from named
        text = str(err)  # begun by the field ("UNetConfig.width ..."), a nested one's by its key ("predictor.hidden: ")
        field = re.match(r"\w+Config\.(\w+) ", text)
        for assignment in assignments:
            key = assignment.partition("=")[0]
            if text.startswith(f"{key}: "):
                raise ValueError(f"--set {assignment}: {text.removeprefix(f'{key}: ')}") from None
            if field and key.split(".")[-1] == field.group(1):
                raise ValueError(f"--set {assignment}: {text}") from None
        raise


class Source(NamedTuple):
    """A trained run whose configuration a new run starts from (`tune.train --from`)."""

    checkpoint: Path
    run: RunConfig  # its settings, how it is computed (RUNTIME_FIELDS) left to this machine's defaults
    segmenter: Path | None  # the segmenter it worked with, for a model trained on a segmenter's masks
    pretrain: RunConfig | None  # how its pretrained part was trained (dual_phase's predictor), where recorded
    data: Path | None  # the data root of the study it comes from (None: the embedded set's, or no study's)
    pretrain_stop: int | None  # the epoch its pretrained part was taken at, where before its last: ASHA stopped
    # that trial there, amid its learning-rate schedule
    subset: dict[str, int]  # the study's --unlabeled and --val-videos (LoadOptions' unlabeled, val_videos)


def run_source(source: Path, trial: str | None = None) -> Source:
    """The run of a checkpoint, or of a study folder's best checkpoint (its last stage's best trial; with `trial`,
    that trial's)."""
    if not source.exists():
        raise FileNotFoundError(f"--from {source}: no such study folder or checkpoint")
    if trial is not None and not source.is_dir():
        raise ValueError(f"--trial {trial}: a trial of a study; --from {source} is a checkpoint")
    checkpoint = best_checkpoint(source, trial) if source.is_dir() else source
    state = load_checkpoint(checkpoint)
    # what it names, where its study folder is now (a copied or moved study's own)
    segmenter, pretrained = (
        beside(checkpoint, path) if path else None
        for path in (state.get("pipeline", {}).get("segmenter"), state.get("pretrained"))
    )
    part = load_checkpoint(pretrained) if pretrained and pretrained.is_file() else None
    pretrain = _as_here(part, pretrained) if part and pretrained else None
    stop = int(part.get("epoch", 0)) if part else 0
    study = source if source.is_dir() else study_of(source)  # a trial's checkpoint.pt: its study's too
    settings = read_study_settings(study) if study is not None else {}
    return Source(
        checkpoint,
        _as_here(state, checkpoint),
        segmenter,
        pretrain,
        Path(settings["data"]) if settings.get("data") else None,
        stop if pretrain is not None and 0 < stop < pretrain.train.epochs else None,
        {k: settings[k] for k in SUBSET if isinstance(settings.get(k), int)},
    )


def _as_here(state: dict[str, Any], source: Path) -> RunConfig:
    """A checkpoint's run, computed as this machine's defaults say (RUNTIME_FIELDS: compiling, the evaluation's
    batch)."""
    run = checkpoint_run(state, source)
    return replace(run, train=replace(run.train, **{k: getattr(TrainConfig(), k) for k in RUNTIME_FIELDS}))


def _stops(epoch: int, run: RunConfig) -> str:
    epochs = run.train.epochs
    return f"stops after epoch {epoch} of {epochs}" if epoch < epochs else f"trains all {epochs} epochs"


def run_checkpoints(out: Path) -> list[Path]:
    """The checkpoints a run left in `out` (its own; its pretrained part's), for a new run to refuse to overwrite."""
    return [path for path in (out / CHECKPOINT_FILE, out / PRETRAIN_DIR / CHECKPOINT_FILE) if path.exists()]


def _print_epoch(phase: str, epochs: int, metrics: dict[str, float]) -> None:
    shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != EPOCH)
    print(f"[{phase}] epoch {int(metrics[EPOCH])}/{epochs}  {shown}", flush=True)


def train_run(
    run: RunConfig,
    data_root: Path,
    out: Path,
    *,
    device: str = "auto",
    pretrain_epochs: int | None = None,
    resume: bool = False,
    progress: bool = True,
    segmenter: Path | None = None,
    on_error: OnError = "raise",
    pseudo: Path | None = None,
    pretrain: RunConfig | None = None,
    pretrain_stop: int | None = None,
    subset: dict[str, int] | None = None,
) -> dict[str, float]:
    """Train one run (its pretrained part first, for dual_phase: with `pretrain`'s training settings and epochs
    where given, else with the run's, stopped after epoch `pretrain_stop` where given, as ASHA stopped it; on
    `segmenter`'s pseudo-labels for mask_predictor, or on the pseudo-label folder `pseudo`:
    benchmarks/true_masks.py gives one holding the true masks); on the first `subset["unlabeled"]` unlabeled and
    `subset["val_videos"]` val videos where given; returns the final epoch's metrics."""
    part = model_entry(run.model).pretrained
    if pretrain_epochs is not None and (part is None or pretrain_epochs < 1):
        raise ValueError(
            f"--pretrain-epochs {pretrain_epochs}: "
            + ("must be >= 1 (leave it out for --epochs)" if part else f"{run.model} has no pretrained part")
        )
    if segmenter is not None and not task_for(run.model).needs_segmenter:
        raise ValueError(f"--segmenter {segmenter}: {run.model} does not train on a segmenter's masks")
    if segmenter is not None and not Path(segmenter).is_file():
        raise FileNotFoundError(f"--segmenter {segmenter}: {not_a('file', segmenter)}")
    part_run = None
    if part is not None:
        train = run.train if pretrain is None else pretrain.train
        part_run = RunConfig(part.model, getattr(run.model_config, part.attribute), train)
        part_run = part_run.with_epochs(pretrain_epochs or train.epochs)
    if resume:  # before any data is read or epoch trained
        _check_resumable(out, {out / CHECKPOINT_FILE: run, out / PRETRAIN_DIR / CHECKPOINT_FILE: part_run})
    dev = resolve_device(device)
    pretrained = None
    subset = subset or {}

    def phase(name: str, phase_run: RunConfig, checkpoint: Path, **extra: Any) -> dict[str, float]:
        return _train_phase(
            name,
            phase_run,
            data_root,
            checkpoint,
            dev,
            resume=resume,
            progress=progress,
            on_error=on_error,
            subset=subset,
            **extra,
        )

    if task_for(run.model).needs_segmenter:
        if pseudo is not None:
            return phase(run.model, run, out / CHECKPOINT_FILE, pseudo=pseudo)
        if segmenter is None:
            raise ValueError(f"{run.model} trains on a per-frame segmenter's masks: pass --segmenter CHECKPOINT")
        pseudo = pseudo_label(
            segmenter,
            data_root,
            device=dev,
            on_error=on_error,
            progress=progress,
            unlabeled=subset.get("unlabeled"),
            val=subset.get("val_videos"),
        )
        return phase(run.model, run, out / CHECKPOINT_FILE, pseudo=pseudo, pipeline={"segmenter": str(segmenter)})
    if part_run is not None:
        pretrained = out / PRETRAIN_DIR / CHECKPOINT_FILE
        phase("pretrain", part_run, pretrained, stop=None if pretrain_epochs else pretrain_stop)
    return phase(run.model, run, out / CHECKPOINT_FILE, pretrained=pretrained)


def _check_resumable(out: Path, phases: dict[Path, RunConfig | None]) -> None:
    """--resume: `out` holds a run whose checkpoints (its own, its pretrained part's) have the settings given."""
    held = {path: run for path, run in phases.items() if run is not None and path.exists()}
    if not held:
        raise FileNotFoundError(
            f"--resume: {out} holds no run to resume (no {CHECKPOINT_FILE}); leave --resume out to start one there"
        )
    for path, run in held.items():
        run.refuse_other(checkpoint_run(load_checkpoint(path), path), path)


def _train_phase(
    phase: str,
    run: RunConfig,
    data_root: Path,
    checkpoint: Path,
    device: Any,
    *,
    resume: bool,
    progress: bool,
    pretrained: Path | None = None,
    pseudo: Path | None = None,
    pipeline: dict[str, str] | None = None,
    on_error: OnError = "raise",
    subset: dict[str, int],
    stop: int | None = None,
) -> dict[str, float]:
    data = load_data(run, data_root, device, progress=progress, pseudo=pseudo, on_error=on_error, **subset)
    last = run.train.epochs if stop is None else min(stop, run.train.epochs)
    if resume and checkpoint.exists():
        trainer = Trainer.resume(checkpoint, data, device, expect=run)
        if (was := int(load_checkpoint(checkpoint).get(STOP_AFTER, run.train.epochs))) != last:
            raise ValueError(
                f"{checkpoint} is of a run that {_stops(was, run)}, and this one {_stops(last, run)}: resume it as "
                "it was started (--pretrain-epochs), or give another --out"
            )
        print(f"[{phase}] resuming {checkpoint} after epoch {trainer.epoch}")
    else:
        if resume:
            print(f"[{phase}] nothing to resume at {checkpoint}: training from the start")
        trainer = Trainer(run, data, device, pretrained=pretrained, pipeline=pipeline)
        print(f"[{phase}] {run.model} on {device}: {json.dumps(config_to_dict(run.model_config))}")
    for metrics in itertools.islice(trainer.epochs(), max(0, last - trainer.epoch)):  # no epoch past `stop` begun
        state = trainer.state_dict()
        save_checkpoint(state if last == run.train.epochs else {**state, STOP_AFTER: last}, checkpoint)
        _print_epoch(phase, run.train.epochs, metrics)
    if trainer.epoch == last < run.train.epochs:
        print(
            f"[{phase}] stopped after epoch {last} of {run.train.epochs}: the study went on from that epoch's checkpoint"
        )
    print(f"[{phase}] checkpoint: {checkpoint}")
    return trainer.history[-1] if trainer.history else {}
