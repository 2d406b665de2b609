"""What a training task is: the object the trainer, prediction and pseudo-labelling call, so that none
of them asks which task it runs. One registry picks the task of a model from the model's interface."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from data.cache import CacheCheck, DecodedSplit, decode_split
from data.classes import FRAME_HEIGHT, FRAME_WIDTH, INPUT_FRAMES, NUM_CLASSES, TARGET_FRAME
from data.datasets import DeviceSplit, batch_indices, concat_splits, stream_batches
from data.streaming import StreamSplit
from models.registry import ModelEntry, list_models, model_entry
from tune.training.config import RunConfig, TrainConfig
from tune.training.inference import Infer, ModelRunner, class_ids, reduce_inputs
from tune.training.losses import segmentation_loss

CLIP = (*INPUT_FRAMES, TARGET_FRAME)  # the frames a clip task holds on the device
HOLD_ENV = "SEGTUNE_HOLD_GB"
# Above these, a split streams. On a GPU the real train or val split's 12 clip frames (1.4 GB) are held, gathered
# on the device; on a CPU streaming from the page cache measured no slower than held (benchmarks/train_speed.py
# --stream), and each held copy is a trial's own, so only small splits (the embedded default's) are held there.
HOLD_LIMIT_GB = {"cuda": 2.0, "cpu": 0.25}


def hold_env_gb(default: float) -> float:
    """$SEGTUNE_HOLD_GB where set (GiB of a split held on the device, above which it streams), else `default`."""
    raw = os.environ.get(HOLD_ENV)
    if raw is None:
        return default
    try:
        gb = float(raw)
    except ValueError:
        gb = math.nan
    if not gb >= 0:  # (NaN too)
        raise ValueError(f"${HOLD_ENV}={raw!r}: expected GiB, a number >= 0 (0: every split streamed)")
    return gb


@dataclass
class TrainData:
    """The device-resident splits a run trains and evaluates on (mask sequences for mask prediction)."""

    train: Any  # DeviceSplit, or MaskClips for mask prediction
    val: Any


@dataclass(frozen=True)
class LoadOptions:
    """How a task reads its splits (see data.cache.decode_split)."""

    cache_dir: str | os.PathLike[str] | None = None
    on_error: Literal["raise", "skip"] = "raise"
    progress: bool = True
    pseudo: str | os.PathLike[str] | None = None  # the pseudo-label folder of a segmenter (mask prediction)
    unlabeled: int | None = None  # how many unlabeled videos to train on (the first, by id); None: all
    val_videos: int | None = None  # how many val videos to evaluate on (the first, by id); None: all
    checked: tuple[CacheCheck, ...] = ()  # caches found current before (a study's driver's), trusted where they hold
    hold_limit_gb: float | None = None  # a split whose kept frames are larger streams from the cache (see
    # `hold`); None: $SEGTUNE_HOLD_GB, else HOLD_LIMIT_GB of the device

    def hold_limit(self, device: torch.device) -> float:
        """Bytes of kept frames (and masks) above which a split is streamed instead of held on `device`."""
        gb = self.hold_limit_gb
        if gb is None:
            gb = hold_env_gb(HOLD_LIMIT_GB["cuda" if device.type == "cuda" else "cpu"])
        return gb * 2**30

    def decode_kwargs(self) -> dict[str, Any]:
        return {
            "cache_dir": self.cache_dir,
            "on_error": self.on_error,
            "progress": self.progress,
            "trusted": self.checked,
        }

    def val(self, root: str | os.PathLike[str]) -> DecodedSplit:
        """The val videos evaluated on: all of `root`'s, or the first `val_videos`."""
        return decode_split(root, "val", **self.decode_kwargs()).head(self.val_videos)


class NoMasks(ValueError):
    """A model asked for masks of frame 22 that it does not predict (a frame predictor, a per-frame segmenter); `rule`:
    the tune.predict --rule that answers from its masks, if one does."""

    def __init__(self, message: str, model: str, rule: str | None) -> None:
        super().__init__(message)
        self.model, self.rule = model, rule


class Task:
    """One training task: its data, batches, loss, evaluation and prediction. Subclasses override what
    differs; the defaults are those of a task trained on whole clips, one sample per video."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]  # what `evaluate` reports, named in reports.schema; a stage's metric is one
    needs_segmenter: ClassVar[bool] = False  # whether it trains on a per-frame segmenter's pseudo-labels
    splits: ClassVar[tuple[str, ...]] = ("train", "val")  # the splits it reads (unlabeled where it exists)
    train_frames: ClassVar[tuple[int, ...] | None] = CLIP  # frames of a training video held on the device (None: all)
    val_frames: ClassVar[tuple[int, ...]] = CLIP  # frames of a val video held on the device
    answer_rule: ClassVar[str | None] = None  # where it predicts no mask 22: the tune.predict --rule that answers

    @staticmethod
    def handles(entry: ModelEntry) -> bool:
        """Whether this task trains models with `entry`'s interface."""
        raise NotImplementedError

    def load(self, root: str | os.PathLike[str], device: torch.device, options: LoadOptions) -> TrainData:
        """Decode (once, cached) train and val and hold the task's frames of them on `device`."""
        kwargs = options.decode_kwargs()
        train = hold([decode_split(root, "train", **kwargs)], device, self.train_frames, options)
        val = hold([options.val(root)], device, self.val_frames, options)
        return TrainData(train, val)

    def items(self, data: TrainData) -> int:
        """How many training items `batch` indexes (videos; frames of videos for a per-frame task)."""
        return len(data.train)

    def epoch_size(self, data: TrainData, cfg: TrainConfig) -> int:
        """Training samples in an epoch: epoch_samples where set, else one pass."""
        return cfg.epoch_samples or self.pass_size(data, cfg)

    def pass_size(self, data: TrainData, cfg: TrainConfig) -> int:
        return len(data.train)

    def train_indices(
        self, data: TrainData, cfg: TrainConfig, generator: torch.Generator, epoch: int
    ) -> Iterator[torch.Tensor]:
        """Index batches of training epoch `epoch` (from 0), on the device: with epoch_samples, that many from a
        stream of seeded permutations (data.datasets.stream_batches), else one pass drawn with `generator`."""
        if cfg.epoch_samples:
            return stream_batches(
                self.items(data), cfg.epoch_samples, epoch, cfg.batch_size, seed=cfg.seed, device=generator.device
            )
        return self.one_pass(data, cfg, generator)

    def one_pass(self, data: TrainData, cfg: TrainConfig, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Index batches of one pass over the training split, drawn on the device with `generator`."""
        return batch_indices(
            len(data.train), cfg.batch_size, shuffle=True, device=generator.device, generator=generator
        )

    def read(self, train: Any, index: torch.Tensor) -> Any:
        """What one training batch reads of `train` for `index`, on the device. It draws nothing random, so a
        streamed split's reads may run ahead of training in a background thread (data.streaming.read_ahead)."""
        raise NotImplementedError

    def batch(
        self, read: Any, index: torch.Tensor, cfg: TrainConfig, epoch: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of one training batch, uint8 on the device, from what `read` returned (and
        this batch's random draws with `generator`, in the trainer's thread)."""
        return read

    def augment(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch (inputs, targets) augmented where the run's `hflip` is on: each sample flipped
        horizontally with probability 1/2 (random_hflip)."""
        return random_hflip(x, y, generator)

    def reduce_target(self, target: torch.Tensor, factor: int) -> torch.Tensor:
        """A training target at 1/factor of its size, as the model's reduced output is: class ids sampled at
        each block's centre, as the inputs' masks are."""
        return reduce_inputs(target, factor)

    def class_counts(self, data: TrainData) -> torch.Tensor | None:
        """Pixels of each class (49,) in the training targets, which weight the loss (None: no class weighting)."""
        return data.train.class_counts()

    def output(self, out: Any) -> torch.Tensor:
        """The tensor of the model's output the loss and the metrics read."""
        return out

    def wants_all_frames(self, cfg: TrainConfig) -> bool:
        """Whether training asks the model for all its predicted frames (a mask model's 12-22)."""
        return False

    def loss(
        self, out: torch.Tensor, target: torch.Tensor, cfg: TrainConfig, class_weights: torch.Tensor | None
    ) -> torch.Tensor:
        """By default, class logits (B, K, H, W) against class ids (B, H, W): cross-entropy (+ dice)."""
        return segmentation_loss(out, target, cfg, class_weights)

    def auxiliary_loss(
        self,
        runner: ModelRunner,
        train: Any,
        index: torch.Tensor,
        cfg: TrainConfig,
        generator: torch.Generator,
        class_weights: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """A second loss of the training batch `index`, already weighted (None: none), added to `loss`."""
        return None

    def evaluate(self, infer: Infer, val: Any, batch_size: int) -> dict[str, float]:
        """The val metrics (a stage picks the one the search optimises); `infer` maps a uint8 batch to
        the model's output as `output` reads it."""
        raise NotImplementedError

    def predict(
        self,
        run: RunConfig,
        model: nn.Module,
        decoded: DecodedSplit,
        device: torch.device,
        *,
        pipeline: dict[str, str],
        batch_size: int = 32,
    ) -> torch.Tensor:
        """Class ids of mask 22, (N, H, W) uint8 on the CPU, for every video of a decoded split in its row order."""
        raise self.no_masks(run)

    def no_masks(self, run: RunConfig) -> NoMasks:
        """The error of a model of this task asked for masks of frame 22 it does not predict."""
        instead = f"; it answers with a rule on its masks (tune.predict --rule {self.answer_rule})"
        return NoMasks(
            f"a {run.model!r} checkpoint ({self.name}) does not predict masks of frame 22; use one of "
            f"{', '.join(answering_models())}{instead if self.answer_rule else ''}",
            run.model,
            self.answer_rule,
        )

    @classmethod
    def predicts_masks(cls) -> bool:
        """Whether its models answer the task (mask 22 of every video of a split: `predict`)."""
        return cls.predict is not Task.predict


def hold(
    splits: list[DecodedSplit], device: torch.device, frames: tuple[int, ...] | None, options: LoadOptions
) -> DeviceSplit | StreamSplit:
    """The decoded splits (one, or unlabeled + train) as one split of `frames` of each video: held on the
    device (gathered there, fastest) when they fit the options' hold limit, else streamed from the
    memory-mapped cache (StreamSplit: a trial's memory does not grow with the data)."""
    kept = len(frames) if frames is not None else splits[0].n_frames
    per_frame = FRAME_HEIGHT * FRAME_WIDTH * (3 + all(s.masks is not None for s in splits))
    if sum(len(s) for s in splits) * kept * per_frame > options.hold_limit(device):
        return StreamSplit(splits, device, frames=frames)
    held = [DeviceSplit(s, device, frames=frames) for s in splits]
    return held[0] if len(held) == 1 else concat_splits(held)


def random_hflip(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample of a batch (inputs x, targets y, both ending in H, W) flipped horizontally with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
    y = torch.where(flip.view(-1, *[1] * (y.dim() - 1)), y.flip(-1), y)
    return x, y


def predict_in_batches(
    run: RunConfig,
    model: nn.Module,
    n: int,
    inputs: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
) -> torch.Tensor:
    """Argmax class ids (N, H, W) uint8 on the CPU of `run`'s mask-22 model over n videos, `inputs(index)`
    giving each batch's uint8 inputs; refuses a model whose classes or size do not fit the data."""
    infer = ModelRunner.of_run(model, run, device)
    out = []
    with torch.no_grad():
        for index in batch_indices(n, batch_size, shuffle=False, device=device):
            x = inputs(index)
            logits = infer(x)
            if logits.shape[1] != NUM_CLASSES or logits.shape[-2:] != x.shape[-2:]:
                raise ValueError(
                    f"the checkpoint's model gives {tuple(logits.shape[1:])} (classes, H, W); the data needs "
                    f"({NUM_CLASSES}, {x.shape[-2]}, {x.shape[-1]})"
                )
            out.append(class_ids(logits).to(torch.uint8).cpu())
    return torch.cat(out)


def on_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A (memory-mapped) array copied to a tensor on `device`."""
    return torch.from_numpy(np.array(array)).to(device)


_TASKS: list[Task] = []


def register_task(cls: type[Task]) -> type[Task]:
    if any(type(t).name == cls.name for t in _TASKS):
        raise ValueError(f"task {cls.name!r} is already registered")
    _TASKS.append(cls())
    return cls


def answering_models() -> list[str]:
    """The registered models whose task predicts mask 22 (what tune.predict and a submission need)."""
    found = []
    for name in list_models():
        try:
            if task_for(name).predicts_masks():
                found.append(name)
        except ValueError:  # a model no task trains
            continue
    return found


def task_for(model: str) -> Task:
    """The task that trains the registered model `model`, chosen by the model's interface."""
    entry = model_entry(model)
    found = [task for task in _TASKS if task.handles(entry)]
    if len(found) != 1:
        raise ValueError(
            f"model {model!r} (input {entry.input_kind}, output {entry.output}) matches {len(found)} training "
            f"tasks of {[t.name for t in _TASKS]}; it must match exactly one"
        )
    return found[0]
