"""The Ray Tune trainable: one sampled configuration of a stage trained by tune.training's Trainer,
reporting and checkpointing every epoch, resuming from its last checkpoint when Tune restores it."""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from data.cache import CacheCheck, OnError
from data.files import warnings_as_lines
from models.registry import model_entry
from reports.schema import (
    CHECKPOINT_S,
    EPOCH,
    FIRST_STEP_AT,
    NODE_ID,
    REPORTED_AT,
    TORCH_THREADS,
    TRAIN_LOSS,
    TRIAL_DIR,
)
from tune.plugins import load_plugins
from tune.search.failures import FailedBefore
from tune.search.keys import CHECKPOINT_NAME, FAILED_KEY, FAULT_KEY, PARENT_KEY
from tune.search.ray_env import filter_ray_noise
from tune.search.resources import Resources, hold_limit_gb, trial_device
from tune.training.checkpoints import load_checkpoint
from tune.training.config import RunConfig
from tune.training.pseudo import pseudo_label
from tune.training.trainer import Trainer, load_data

filter_ray_noise()  # in each trial's process as Ray imports this module, before it restores a trial there


class TrialPlan(NamedTuple):
    run: RunConfig
    pretrained: str | None  # a checkpoint of the model's pretrained part, whose weights it starts from
    pipeline: dict[str, str]  # other checkpoints the model works with, kept in its checkpoints
    fail: bool  # fault injection: raise instead of training


@dataclass(frozen=True, kw_only=True)
class StageJob:
    """What every trial of a stage needs besides its sampled values; goes in via with_parameters."""

    model: str
    max_epochs: int  # the budget's: the epochs of a trial that ASHA does not stop
    run_values: dict[str, int]  # the budget's other training values (Budget.run_values), after the stage's --set
    data_root: str
    resources: Resources  # each trial's share of the cluster (tune.search.resources)
    parents: dict[str, str] = field(default_factory=dict)  # parent trial id -> its best checkpoint
    parent_role: str = "pretrained"  # what the parent checkpoint is for (see Stage.parent_role)
    pseudo_dir: str | None = None  # the pseudo-label folder, for a stage trained on a segmenter's masks
    unlabeled: int | None = None  # how many unlabeled videos trials train on; None: all
    on_error: OnError = "raise"  # a bad video: "raise", or "skip" it (--skip-bad-videos)
    plugins: tuple[str, ...] = ()  # the study's --plugin files and modules, imported by each trial's process
    metric: str = ""  # the stage's metric, reported right after the epoch
    val_videos: int | None = None  # how many val videos trials are scored on; None: all
    cache_dir: str | None = None  # the driver's decoded cache, where every trial on every node reads and writes
    checked: tuple[CacheCheck, ...] = ()  # its splits as the driver found them current, taken where they still are

    def plan(self, config: dict[str, Any]) -> TrialPlan:
        """What a trial's Ray config asks for: its run and, for a dependent stage, the parent's checkpoint
        as the weights of the model's pretrained part (dual_phase) or as the segmenter it works with
        (mask_space)."""
        values = {**self.run_values, **config}  # a space whose define fixes one itself keeps its own
        values.pop(FAULT_KEY, None)
        parent = values.pop(PARENT_KEY, None)
        pretrained, pipeline = None, {}
        if parent is not None and self.parent_role == "pretrained":
            part = model_entry(self.model).pretrained
            if part is None:
                raise ValueError(f"model {self.model!r} has no pretrained part for parent trial {parent} to fill")
            pretrained = self.parents[parent]
            values[part.attribute] = RunConfig.from_dict(load_checkpoint(pretrained)["run"]).model_config
        elif parent is not None:
            pipeline = {"segmenter": self.parents[parent]}
        if self.resources.compile:
            values.setdefault("compile", True)  # where it pays (resources.compile_pays), unless the space decides
        run = RunConfig.from_values(self.model, values, epochs=self.max_epochs)
        return TrialPlan(run, pretrained, pipeline, bool(config.get(FAULT_KEY)))

    def pseudo_here(self, device: torch.device) -> str | None:
        """The pseudo-label folder on this trial's node. The driver made it in its cache before the stage; a node
        whose cache is its own (the same path, not shared storage) labels the data once itself, as it decodes it:
        the node's first trial does it on its device, under the folder's lock, which the others wait on."""
        if self.pseudo_dir is None:
            return None
        segmenter = next(iter(self.parents.values()))  # the stage's one parent (Stage.parent_role "pseudo_labels")
        folder = pseudo_label(
            segmenter,
            self.data_root,
            device=device,
            cache_dir=self.cache_dir,
            unlabeled=self.unlabeled,
            val=self.val_videos,
            on_error=self.on_error,
            progress=False,
        )
        return str(folder)


def quiet_ray_exit(unraisable: Any) -> None:
    """The trial process's `sys.unraisablehook`. Ray ends a trial's actor with SIGTERM, which its handler turns
    into SystemExit wherever Python is; inside a weakref callback (a tensor freed) Python cannot raise it and
    prints "Exception ignored in ... SystemExit: 1" with a traceback, which reached the study's output as if a
    trial had failed. That one is left unsaid; any other unraisable exception is printed as Python prints it."""
    if isinstance(unraisable.exc_value, SystemExit):
        return
    sys.__unraisablehook__(unraisable)


def train_trial(config: dict[str, Any], *, job: StageJob) -> None:
    """The Ray Tune trainable."""
    import ray
    from ray import tune

    if FAILED_KEY in config:
        raise FailedBefore(config[FAILED_KEY])
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a "checkpoint created" line per epoch
    sys.unraisablehook = quiet_ray_exit
    warnings_as_lines(again=True)  # a batch split for memory: one line a trial (a worker runs several)
    # the bad videos each trial's decoding meets again: the driver said them as it decoded the splits first
    warnings.filterwarnings("ignore", message=r"(skipping|predicting) \d+ (bad|broken) video", category=UserWarning)
    load_plugins(job.plugins)
    plan = job.plan(config)
    if plan.fail:
        raise RuntimeError("this trial fails on purpose (fault injection, --fail-trials)")
    device = trial_device(job.resources)
    torch.set_num_threads(job.resources.threads)
    data = load_data(
        plan.run,
        job.data_root,
        device,
        progress=False,
        pseudo=job.pseudo_here(device),
        unlabeled=job.unlabeled,
        val_videos=job.val_videos,
        on_error=job.on_error,
        cache_dir=job.cache_dir,
        checked=job.checked,
        hold_limit_gb=hold_limit_gb(job.resources, device),
    )
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer = Trainer.resume(Path(folder) / CHECKPOINT_NAME, data, device)
    else:
        trainer = Trainer(plan.run, data, device, pretrained=plan.pretrained, pipeline=plan.pipeline)
    node_id = ray.get_runtime_context().get_node_id()
    for metrics in trainer.epochs():
        with tempfile.TemporaryDirectory() as folder:
            saving = time.perf_counter()
            trainer.save(Path(folder) / CHECKPOINT_NAME)
            extra = {
                NODE_ID: node_id,
                FIRST_STEP_AT: trainer.first_step_at or math.nan,
                CHECKPOINT_S: time.perf_counter() - saving,
                TORCH_THREADS: torch.get_num_threads(),
            }
            # Ray's live trial table shows the first 4 metrics of a result: the epoch, the stage's metric first
            first = {key: metrics[key] for key in (EPOCH, job.metric, TRAIN_LOSS) if key in metrics}
            extra[REPORTED_AT] = time.time()  # (Ray's timestamp is whole seconds: epochs would seem to overlap)
            tune.report({**first, **metrics, **extra}, checkpoint=tune.Checkpoint.from_directory(folder))


def trial_dirname(trial: Any) -> str:
    """Short trial folders (Ray's default name carries every hyperparameter)."""
    return TRIAL_DIR.format(trial.trial_id)
