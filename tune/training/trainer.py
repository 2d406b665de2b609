"""The trainer: trains one run epoch by epoch through its task object (tune.training.tasks), with no
Ray and no knowledge of which task it runs.

Data is held on the training device as uint8 and batches are gathered there; metrics are accumulated
on the device and read once per epoch. Checkpoints hold model, optimizer, scheduler, epoch, RNG states
and the full run config, load with `weights_only=True`, and resume to the same result as an
uninterrupted run.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from data.streaming import read_ahead
from models.registry import create_model, pretrained_part
from reports.schema import (
    DATA_WAIT_S,
    EPOCH,
    EVAL_S,
    GPU_BUSY,
    GPU_PEAK_GB,
    MICRO_BATCHES,
    PHASES,
    TRAIN_LOSS,
    TRAIN_S,
)
from tune.plugins import model_plugin
from tune.training.checkpoints import (
    CHECKPOINT_FORMAT,
    checkpoint_run,
    load_checkpoint,
    load_pretrained_part,
    save_checkpoint,
)
from tune.training.config import RUNTIME_FIELDS, RunConfig, TrainConfig
from tune.training.gpu_meter import GpuMeter
from tune.training.inference import ModelRunner
from tune.training.losses import inverse_sqrt_weights
from tune.training.memory import release_freed_memory
from tune.training.tasks import LoadOptions, TrainData, task_for


def load_data(run: RunConfig, root: str | os.PathLike[str], device: torch.device | str, **options: Any) -> TrainData:
    """Decode (once, cached) and move to `device` the splits `run`'s task trains and evaluates on;
    `options` are those of LoadOptions (cache_dir, on_error, progress, pseudo, unlabeled, val_videos)."""
    return task_for(run.model).load(root, torch.device(device), LoadOptions(**options))


# the metrics of an epoch that measure the machine, not the run: they differ between two runs of one seed
TIMING_METRICS = frozenset({"train_samples_per_s", "epoch_seconds", *PHASES, GPU_BUSY, GPU_PEAK_GB})


class Trainer:
    """Trains one run epoch by epoch. `epochs()` yields a metrics dict per epoch; `save()` writes a
    checkpoint that `Trainer.resume()` continues from."""

    def __init__(
        self,
        run: RunConfig,
        data: TrainData,
        device: torch.device | str = "cpu",
        *,
        pretrained: str | os.PathLike[str] | None = None,
        pipeline: dict[str, str] | None = None,
    ) -> None:
        self.run = run
        self.pipeline = dict(pipeline or {})  # other checkpoints this model works with (its segmenter)
        self.pretrained = None if pretrained is None else str(pretrained)  # where its pretrained part came from
        self.cfg = run.train
        self.data = data
        self.device = torch.device(device)
        self.task = task_for(run.model)
        torch.manual_seed(self.cfg.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        self.model = create_model(run.model, run.model_config).to(self.device)
        if pretrained is not None:
            load_pretrained_part(self.model, run, pretrained)
        part = pretrained_part(self.model, run.model)
        self.frozen = [part.eval()] if part is not None and self.cfg.freeze_predictor else []
        for module in self.frozen:
            module.requires_grad_(False)
        fast = self.device.type == "cuda"
        if fast and self.cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.runner = ModelRunner.of_run(
            self.model,
            run,
            self.device,
            amp=self.cfg.amp,
            channels_last=fast and self.cfg.channels_last,
            forward=torch.compile(self.model) if self.cfg.compile else None,
        )
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.steps_per_epoch = math.ceil(self.task.epoch_size(data, self.cfg) / self.cfg.batch_size)
        self.scheduler = _make_schedule(self.optimizer, self.cfg, self.steps_per_epoch * self.cfg.epochs)
        self.class_weights = self._class_weights()
        self.epoch = 0
        self.first_step_at: float | None = None  # wall-clock time of this process's first training step
        self.history: list[dict[str, float]] = []
        self.compile_pending = self.cfg.compile  # the first training step tells whether compiling works here
        self.compile_error: str | None = None  # why the model runs uncompiled although the run asked to compile
        self.micro_batches = 1  # the parts a training batch is taken in: doubled when a batch runs out of GPU memory
        self.eval_batch_size = self.cfg.eval_batch_size  # halved when an evaluation runs out of GPU memory

    # -- public API

    def epochs(self) -> Iterator[dict[str, float]]:
        """Train the remaining epochs, yielding each epoch's metrics, with where its time went (reports.schema's
        PHASES; on CUDA the GPU's busy share and the peak memory allocated)."""
        meter = GpuMeter(self.device) if GpuMeter.readable(self.device) else None
        while self.epoch < self.cfg.epochs:
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            if meter is not None:
                meter.start()
            started = time.perf_counter()
            train_loss, samples, waited = self._train_epoch()
            train_seconds = time.perf_counter() - started
            release_freed_memory()
            evaluating = time.perf_counter()
            metrics = {EPOCH: float(self.epoch + 1), TRAIN_LOSS: train_loss, **self.evaluate()}
            metrics[EVAL_S] = time.perf_counter() - evaluating
            release_freed_memory()
            metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
            metrics["train_samples_per_s"] = samples / max(train_seconds, 1e-9)
            metrics[DATA_WAIT_S], metrics[TRAIN_S] = waited, train_seconds - waited
            if meter is not None:
                metrics[GPU_BUSY] = meter.busy()
            if self.device.type == "cuda":
                metrics[GPU_PEAK_GB] = torch.cuda.max_memory_allocated(self.device) / 2**30
            metrics[MICRO_BATCHES] = float(self.micro_batches)
            metrics["epoch_seconds"] = time.perf_counter() - started
            self.epoch += 1
            self.history.append(metrics)
            yield metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "run": self.run.to_dict(),
            "task": self.task.name,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            "history": self.history,
            "pipeline": self.pipeline,
            "pretrained": self.pretrained,
            "micro_batches": self.micro_batches,
            "eval_batch_size": self.eval_batch_size,
            "plugin": model_plugin(self.run.model),  # a plugin's model: what loads it again (None: the package's)
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically (a crash mid-write leaves the previous one)."""
        return save_checkpoint(self.state_dict(), path)

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike[str],
        data: TrainData,
        device: torch.device | str = "cpu",
        *,
        expect: RunConfig | None = None,
    ) -> Trainer:
        """The run saved at `path`, where it stopped; with `expect`, refused (ValueError) when `expect` asks other
        settings than it has, its runtime ones (RUNTIME_FIELDS: compiling, the evaluation's batch) taken from it."""
        state = load_checkpoint(path)
        run = checkpoint_run(state, path)  # a plugin's model unknown here: the --plugin to pass
        if expect is not None:
            expect.refuse_other(run, path)
            run = replace(run, train=replace(run.train, **{k: getattr(expect.train, k) for k in RUNTIME_FIELDS}))
        trainer = cls(run, data, device, pipeline=state.get("pipeline"))
        trainer.pretrained = state.get("pretrained")  # its weights are in the state: only where they came from
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        trainer.generator.set_state(state["rng"]["generator"])
        trainer.epoch = int(state["epoch"])
        trainer.history = list(state["history"])
        trainer.micro_batches = int(state.get("micro_batches", 1))  # a resumed trial does not run out again
        trainer.eval_batch_size = min(
            trainer.eval_batch_size, int(state.get("eval_batch_size", trainer.eval_batch_size))
        )
        return trainer

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The val metrics. An evaluation that runs out of GPU memory runs again at half the batch (a batch size
        changes no result: RUNTIME_FIELDS), and later ones keep it, down to one sample."""
        self.model.eval()
        try:
            while True:
                try:
                    return self.task.evaluate(self._infer, self.data.val, self.eval_batch_size)
                except RuntimeError as error:
                    if not out_of_memory(error) or self.eval_batch_size == 1:
                        raise
                torch.cuda.empty_cache()
                self.eval_batch_size //= 2
                warnings.warn(f"evaluation ran out of memory: batches of {self.eval_batch_size} now", stacklevel=2)
        finally:
            self._train_mode()

    # -- training

    def _train_mode(self) -> None:
        self.model.train()
        for module in self.frozen:
            module.eval()

    def _infer(self, raw: torch.Tensor) -> torch.Tensor:
        return self.task.output(self.runner(raw))

    def _class_weights(self) -> torch.Tensor | None:
        if self.cfg.class_weighting == "none":
            return None
        counts = self.task.class_counts(self.data)
        return None if counts is None else inverse_sqrt_weights(counts).to(self.device)

    def _train_epoch(self) -> tuple[float, int, float]:
        """The epoch's mean training loss, its samples, and the seconds it waited for batches read in the
        background (a streamed split). A split held on the device is gathered inline, as device work: on CUDA
        that wait is the GPU's (measured on an H200: 4 packed trials, held splits, "waited" 5-8 s of 12 s epochs
        at 97% GPU busy), so it counts as training there."""
        self._train_mode()
        waited = 0.0
        total = torch.zeros((), device=self.device)
        samples = 0
        all_frames = self.task.wants_all_frames(self.cfg)
        train = self.data.train
        indices = self.task.train_indices(self.data, self.cfg, self.generator, self.epoch)
        depth = getattr(train, "read_ahead", 0)
        batches = read_ahead(partial(self.task.read, train), indices, depth)
        while True:
            asked = time.perf_counter()
            step = next(batches, None)
            if depth:
                waited += time.perf_counter() - asked
            if step is None:
                break
            index, read = step
            if self.first_step_at is None:
                self.first_step_at = time.time()
            x, y = self.task.batch(read, index, self.cfg, self.epoch, self.generator)
            if self.cfg.hflip:
                x, y = self.task.augment(x, y, self.generator)
            if self.compile_pending:
                loss = self._first_compiled_step(x, y, index, all_frames)
            else:
                loss = self._step(x, y, index, all_frames)
            total += loss.detach() * len(index)
            samples += len(index)
        mean = float(total) / max(samples, 1)  # the epoch's one host synchronisation
        if not math.isfinite(mean):
            raise FloatingPointError(f"training loss became {mean} in epoch {self.epoch + 1} of {self.run.model}")
        return mean, samples, waited

    def _step(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, all_frames: bool) -> torch.Tensor:
        """One optimisation step on a batch; its loss. A batch that runs out of GPU memory (a packed trial is capped
        at its share) is taken again in twice the parts, their gradients accumulated, and later steps keep the
        split (MICRO_BATCHES, each epoch), down to one sample a part. The step is the mean of its parts' losses:
        the whole batch's for a loss that is a mean over samples (cross-entropy, a frame's error); for one normed
        over the batch (class weights, soft dice, moves of the known objects) the parts' mean, as gradient
        accumulation is elsewhere. A failed try has already moved batch-norm statistics and random draws."""
        while True:
            try:
                loss = self._gradients(x, y, index, all_frames)
                break
            except RuntimeError as error:
                if not out_of_memory(error) or self.micro_batches >= len(index):
                    raise
                why = str(error).strip().split(".")[0]
            # past the except, whose traceback held the failed try's tensors
            self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()  # (nothing where CUDA was never initialised)
            self.micro_batches *= 2
            warnings.warn(
                f"a batch of {len(index)} ran out of memory ({why}): {self.run.model} now takes each batch in "
                f"{self.micro_batches} parts, gradients accumulated",
                stacklevel=2,
            )
        self.optimizer.step()
        self.scheduler.step()
        return loss

    def _gradients(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, all_frames: bool) -> torch.Tensor:
        """The batch's gradients, in `micro_batches` parts (each part's loss weighted by its share); its loss."""
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        parts = min(self.micro_batches, len(index))
        for xs, ys, part in zip(x.tensor_split(parts), y.tensor_split(parts), index.tensor_split(parts), strict=True):
            loss = self._loss(xs, ys, part, all_frames) * (len(part) / len(index))
            loss.backward()
            total += loss.detach()
        return total

    def _loss(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, all_frames: bool) -> torch.Tensor:
        """A batch's loss. The model's outputs are not held past it: backward needs only what autograd saved,
        and a mask predictor's 11 masks of 49-class logits are 330 MB for 4 clips at 160x240 (measured: 0.44 GiB
        off a training step's peak)."""
        runner = self.runner.at_model_size()  # the loss at the model's input scale
        out = runner(x, all_frames=True) if all_frames else self.task.output(runner(x))
        loss = self.task.loss(out, self.task.reduce_target(y, runner.factor), self.cfg, self.class_weights)
        extra = self.task.auxiliary_loss(runner, self.data.train, index, self.cfg, self.generator, self.class_weights)
        return loss if extra is None else loss + extra

    def _first_compiled_step(
        self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, all_frames: bool
    ) -> torch.Tensor:
        """The first step of a compiled model, where torch.compile builds its kernels. Where that fails (no C
        compiler for Triton or for the CPU's C++ kernels, an unsupported GPU, ...) the run goes on uncompiled,
        slower but the same model, with a warning saying why; an error the uncompiled model raises too is raised."""
        self.compile_pending = False
        try:
            return self._step(x, y, index, all_frames)
        except Exception as error:
            if out_of_memory(error):  # a batch of one sample too many: not the compiler's failure
                raise
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            self.runner.forward = self.model
            self.compile_error = reason
            warnings.warn(f"torch.compile failed for {self.run.model}, training it uncompiled: {reason}", stacklevel=2)
            return self._step(x, y, index, all_frames)


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is the GPU running out of memory: torch's OutOfMemoryError, or cuDNN's and cuBLAS's own
    allocation failures (RuntimeErrors naming ..._STATUS_ALLOC_FAILED)."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or "_STATUS_ALLOC_FAILED" in str(error)


def _make_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 1))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
