"""Training recipes: plain functions and one Trainer, no Ray.

Three tasks, chosen by the registered model's interface:
- segmentation (`unet`, `dual_phase`): frames 1-11 -> mask 22, cross-entropy (+ dice, class weights),
  scored with the competition IoU on val;
- frame prediction (`frame_predictor`, phase 1 of dual_phase): frames 1-11 -> frame 22, MSE or L1
  (+ SSIM), scored by val MSE;
- per-frame segmentation (`frame_segmenter`): frame -> its mask; scored per frame on val frames 11 and 22,
  and as the two references: "copy last" (its mask of frame 11 given as the answer for frame 22) and
  "oracle" (its mask of the true frame 22).

Data is held on the training device as uint8 (`DeviceSplit`) and batches are gathered there; metrics
are accumulated on the device and read once per epoch. Checkpoints hold model, optimizer, scheduler,
epoch, RNG states and the full run config, load with `weights_only=True`, and resume to the same result
as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.cache import decode_split
from data.classes import N_INPUT_FRAMES, NUM_CLASSES, TARGET_FRAME
from data.datasets import INPUT_FRAMES, DeviceSplit, MaskClips, batch_indices, concat_splits
from data.metric import IoUMeter
from models.config import config_from_dict, config_to_dict, with_values
from models.registry import create_model, model_entry

Task = Literal["segmentation", "frame_prediction", "frame_segmentation", "mask_prediction"]
SCHEDULES = ("onecycle", "cosine", "constant")
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training set
    batch_size: int = 16  # samples per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 1e-4  # AdamW weight decay
    schedule: str = "onecycle"  # onecycle | cosine | constant, stepped per batch
    hflip: bool = True  # flip each training clip horizontally with probability 1/2
    dice_weight: float = 0.0  # segmentation: weight of a soft dice term added to cross-entropy
    class_weighting: str = "none"  # segmentation: none | inverse_sqrt (of the train target pixel counts)
    frame_loss: str = "mse"  # frame prediction: mse | l1
    ssim_weight: float = 0.0  # frame prediction: weight of a (1 - SSIM) term
    freeze_predictor: bool = True  # dual_phase fine-tune: keep the pretrained frame predictor fixed
    frames_per_video: int = 22  # per-frame segmentation: frames drawn from each video per epoch
    pseudo_input_start: float = 0.0  # mask prediction, scheduled sampling: chance that a training clip gets
    pseudo_input_end: float = 0.5  # ... the segmenter's input masks instead of its own, first to last epoch
    future_weight: float = 0.0  # mask prediction: weight of the mean loss on the predicted masks 12-21 (beside 22's)
    amp: bool = True  # bf16 autocast on CUDA (no effect on CPU)
    channels_last: bool = True  # channels-last memory format on CUDA (no effect on CPU)
    compile: bool = False  # torch.compile the model
    eval_batch_size: int = 32  # samples per evaluation step
    seed: int = 0  # initialisation, shuffling, augmentation and dropout

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "frames_per_video"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        for name, value, allowed in (
            ("schedule", self.schedule, SCHEDULES),
            ("class_weighting", self.class_weighting, ("none", "inverse_sqrt")),
            ("frame_loss", self.frame_loss, ("mse", "l1")),
        ):
            if value not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {value!r}")
        for name in ("dice_weight", "ssim_weight", "future_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("pseudo_input_start", "pseudo_input_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class RunConfig:
    """One training run: which model, its config, and how to train it. Travels whole into checkpoints."""

    model: str  # a registered model name
    model_config: Any  # that model's config dataclass
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        entry = model_entry(self.model)
        if not isinstance(self.model_config, entry.config_class):
            raise TypeError(
                f"model {self.model!r} takes a {entry.config_class.__name__}, got {type(self.model_config).__name__}"
            )

    @property
    def task(self) -> Task:
        entry = model_entry(self.model)
        if entry.output == "frame":
            return "frame_prediction"
        if entry.input_kind == "masks":
            return "mask_prediction"
        return "frame_segmentation" if entry.input_kind == "frame" else "segmentation"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_config": config_to_dict(self.model_config),
            "train": config_to_dict(self.train),
        }

    @classmethod
    def from_values(
        cls, model: str, values: dict[str, Any], *, epochs: int | None = None, from_text: bool = False
    ) -> RunConfig:
        """A run from the defaults and flat `values`, each a field of TrainConfig or of the model's
        config (dotted for nested ones, `predictor.hidden`); strings parsed by type with `from_text`."""
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        train_values = {k: v for k, v in values.items() if k in train_fields}
        model_values = {k: v for k, v in values.items() if k not in train_fields}
        train = with_values(TrainConfig(), train_values, from_text=from_text)
        if epochs is not None:
            train = replace(train, epochs=epochs)
        return cls(model, with_values(model_entry(model).config_class(), model_values, from_text=from_text), train)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        entry = model_entry(values["model"])
        return cls(
            values["model"],
            config_from_dict(entry.config_class, values["model_config"]),
            config_from_dict(TrainConfig, values["train"]),
        )


@dataclass
class TrainData:
    """The device-resident splits a run trains and evaluates on (mask sequences for mask prediction)."""

    train: Any  # DeviceSplit, or MaskClips for mask prediction
    val: Any


def frames_needed(task: Task) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    """Frames to hold on the device for (train, val); None: all."""
    if task == "frame_segmentation":
        return None, (N_INPUT_FRAMES - 1, TARGET_FRAME)
    clip = (*INPUT_FRAMES, TARGET_FRAME)
    return clip, clip


def load_data(
    task: Task,
    root: str | os.PathLike[str],
    device: torch.device | str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    progress: bool = True,
    pseudo: str | os.PathLike[str] | None = None,
) -> TrainData:
    """Decode (once, cached) and move to `device` the splits a task needs: train + unlabeled frames for
    frame prediction, train for the others; val for all. Mask prediction takes its inputs from the
    pseudo-label folder `pseudo` (see tune.pseudo) and its targets from the true masks."""
    kwargs: dict[str, Any] = {"cache_dir": cache_dir, "on_error": on_error, "progress": progress}
    if task == "mask_prediction":
        if pseudo is None:
            raise ValueError("mask prediction needs the pseudo-label folder of a segmenter")
        return _load_mask_data(Path(root), Path(pseudo), torch.device(device), kwargs)
    train_frames, val_frames = frames_needed(task)
    train = DeviceSplit(decode_split(root, "train", **kwargs), device, frames=train_frames)
    if task == "frame_prediction" and (Path(root) / "unlabeled").is_dir():
        unlabeled = DeviceSplit(decode_split(root, "unlabeled", **kwargs), device, frames=train_frames)
        train = concat_splits([unlabeled, train])
    val = DeviceSplit(decode_split(root, "val", **kwargs), device, frames=val_frames)
    return TrainData(train, val)


FUTURE = slice(N_INPUT_FRAMES, TARGET_FRAME + 1)  # frames 12-22, the masks a mask model's training targets


def _load_mask_data(root: Path, pseudo: Path, device: torch.device, kwargs: dict[str, Any]) -> TrainData:
    from tune.pseudo import load_pseudo

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array)).to(device)

    parts = []
    train = decode_split(root, "train", **kwargs)
    train_pseudo, train_ids = load_pseudo(pseudo, "train")
    _same_ids(train.ids, train_ids, pseudo, "train")
    assert train.masks is not None
    parts.append(
        MaskClips(
            on_device(train.masks[:, :N_INPUT_FRAMES]), on_device(train_pseudo), on_device(train.masks[:, FUTURE])
        )
    )
    if (pseudo / "unlabeled.npy").exists():
        unlabeled, _ = load_pseudo(pseudo, "unlabeled")  # every frame, all the segmenter's
        inputs = on_device(unlabeled[:, :N_INPUT_FRAMES])
        parts.append(MaskClips(inputs, inputs, on_device(unlabeled[:, FUTURE])))
    val = decode_split(root, "val", **kwargs)
    val_pseudo, val_ids = load_pseudo(pseudo, "val")
    _same_ids(val.ids, val_ids, pseudo, "val")
    assert val.masks is not None
    val_inputs = on_device(val_pseudo)  # val inputs are the segmenter's masks, never the ground truth
    val_target = on_device(val.masks[:, TARGET_FRAME : TARGET_FRAME + 1])  # mask 22 alone
    return TrainData(MaskClips.concat(parts), MaskClips(val_inputs, val_inputs, val_target))


def _same_ids(decoded: np.ndarray, labelled: np.ndarray, pseudo: Path, split: str) -> None:
    if not np.array_equal(decoded, labelled):
        raise ValueError(f"the pseudo-labels in {pseudo} were made for other {split} videos than the data holds now")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---------------------------------------------------------------- losses


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft dice over the classes present in the prediction or target of the batch."""
    probs = logits.float().softmax(dim=1)  # (B, K, H, W)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()  # (B, K, H, W)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = (2 * inter + 1.0) / (total + 1.0)
    return 1 - (dice * present).sum() / present.sum().clamp(min=1)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity of images in [0, 1] (B, C, H, W), with a uniform window."""
    c1, c2 = 0.01**2, 0.03**2
    pad = window // 2
    mu_x, mu_y = F.avg_pool2d(x, window, 1, pad), F.avg_pool2d(y, window, 1, pad)
    var_x = F.avg_pool2d(x * x, window, 1, pad) - mu_x**2
    var_y = F.avg_pool2d(y * y, window, 1, pad) - mu_y**2
    cov = F.avg_pool2d(x * y, window, 1, pad) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.mean()


def inverse_sqrt_class_weights(masks: torch.Tensor) -> torch.Tensor:
    """Class weights (49,) ~ 1 / sqrt(pixel frequency), normalised to mean 1 over present classes."""
    counts = torch.bincount(masks.reshape(-1).long(), minlength=NUM_CLASSES).float()
    weights = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))
    return weights * (counts > 0).sum() / weights.sum()


# ---------------------------------------------------------------- the trainer


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
        self.cfg = run.train
        self.data = data
        self.device = torch.device(device)
        self.task = run.task
        self.input_kind = model_entry(run.model).input_kind
        torch.manual_seed(self.cfg.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        self.model = create_model(run.model, run.model_config).to(self.device)
        if pretrained is not None:
            load_pretrained_predictor(self.model, pretrained)
        self.frozen = self._frozen_modules()
        for module in self.frozen:
            module.requires_grad_(False)
        self.fast = self.device.type == "cuda"
        if self.fast and self.cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.forward = torch.compile(self.model) if self.cfg.compile else self.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.steps_per_epoch = math.ceil(self._epoch_size() / self.cfg.batch_size)
        self.scheduler = _make_schedule(self.optimizer, self.cfg, self.steps_per_epoch * self.cfg.epochs)
        self.class_weights = self._class_weights()
        self.epoch = 0
        self.first_step_at: float | None = None  # wall-clock time of this process's first training step
        self.history: list[dict[str, float]] = []
        self._copy_last_mse: float | None = None

    # -- public API

    def epochs(self) -> Iterator[dict[str, float]]:
        """Train the remaining epochs, yielding each epoch's metrics."""
        while self.epoch < self.cfg.epochs:
            started = time.perf_counter()
            train_loss, samples = self._train_epoch()
            train_seconds = time.perf_counter() - started
            metrics = {"epoch": float(self.epoch + 1), "train_loss": train_loss, **self.evaluate()}
            metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
            metrics["train_samples_per_s"] = samples / max(train_seconds, 1e-9)
            metrics["epoch_seconds"] = time.perf_counter() - started
            self.epoch += 1
            self.history.append(metrics)
            yield metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "run": self.run.to_dict(),
            "task": self.task,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            "history": self.history,
            "pipeline": self.pipeline,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically (a crash mid-write leaves the previous one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    @classmethod
    def resume(cls, path: str | os.PathLike[str], data: TrainData, device: torch.device | str = "cpu") -> Trainer:
        state = load_checkpoint(path)
        trainer = cls(RunConfig.from_dict(state["run"]), data, device, pipeline=state.get("pipeline"))
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        trainer.generator.set_state(state["rng"]["generator"])
        trainer.epoch = int(state["epoch"])
        trainer.history = list(state["history"])
        return trainer

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        try:
            if self.task == "frame_prediction":
                return self._evaluate_frames()
            if self.task == "frame_segmentation":
                return self._evaluate_per_frame()
            return self._evaluate_segmentation()
        finally:
            self.model.train()
            for module in self.frozen:
                module.eval()

    # -- training

    def _frozen_modules(self) -> list[nn.Module]:
        predictor = getattr(self.model, "predictor", None)
        if self.run.model == "dual_phase" and self.cfg.freeze_predictor and isinstance(predictor, nn.Module):
            return [predictor.eval()]
        return []

    def _epoch_size(self) -> int:
        n = len(self.data.train)
        if self.task == "frame_segmentation":
            return n * min(self.cfg.frames_per_video, len(self.data.train.frame_index))
        return n

    def _class_weights(self) -> torch.Tensor | None:
        if self.task == "frame_prediction" or self.cfg.class_weighting == "none":
            return None
        masks = self.data.train.target if self.task == "mask_prediction" else self.data.train.masks
        return None if masks is None else inverse_sqrt_class_weights(masks).to(self.device)

    def _train_indices(self) -> Iterator[torch.Tensor]:
        if self.task != "frame_segmentation":
            yield from batch_indices(
                len(self.data.train), self.cfg.batch_size, shuffle=True, device=self.device, generator=self.generator
            )
            return
        # per-frame: `frames_per_video` distinct frames of every video, shuffled together
        n, t = len(self.data.train), len(self.data.train.frame_index)
        k = min(self.cfg.frames_per_video, t)
        scores = torch.rand(n, t, device=self.device, generator=self.generator)
        frames = scores.argsort(dim=1)[:, :k]  # (n, k)
        flat = (torch.arange(n, device=self.device)[:, None] * t + frames).reshape(-1)
        order = torch.randperm(len(flat), device=self.device, generator=self.generator)
        for start in range(0, len(flat), self.cfg.batch_size):
            yield flat[order[start : start + self.cfg.batch_size]]

    def _batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        split = self.data.train
        if self.task == "mask_prediction":
            use_pseudo = (
                torch.rand(len(index), device=self.device, generator=self.generator) < self._pseudo_input_chance()
            )
            return split.batch(index, use_pseudo)
        if self.task == "frame_prediction":
            return split.frame_prediction_batch(index)
        if self.task == "frame_segmentation":
            return split.frame_mask_batch(index)
        return split.segmentation_batch(index)

    def _pseudo_input_chance(self) -> float:
        """Scheduled sampling: from pseudo_input_start at the first epoch to pseudo_input_end at the last."""
        progress = self.epoch / max(1, self.cfg.epochs - 1)
        return self.cfg.pseudo_input_start + (self.cfg.pseudo_input_end - self.cfg.pseudo_input_start) * progress

    def _flip(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flip = torch.rand(x.shape[0], device=self.device, generator=self.generator) < 0.5
        x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
        y = torch.where(flip.view(-1, *[1] * (y.dim() - 1)), y.flip(-1), y)
        return x, y

    def _train_epoch(self) -> tuple[float, int]:
        self.model.train()
        for module in self.frozen:
            module.eval()
        total = torch.zeros((), device=self.device)
        samples = 0
        for index in self._train_indices():
            if self.first_step_at is None:
                self.first_step_at = time.time()
            x, y = self._batch(index)
            if self.cfg.hflip:
                x, y = self._flip(x, y)
            with self._autocast():
                out = self._logits(self._inputs(x), all_frames=self._future_loss)
            loss = self._loss(out, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += loss.detach() * len(index)
            samples += len(index)
        mean = float(total) / max(samples, 1)  # the epoch's one host synchronisation
        if not math.isfinite(mean):
            raise FloatingPointError(f"training loss became {mean} in epoch {self.epoch + 1} of {self.run.model}")
        return mean, samples

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.fast and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _inputs(self, frames: torch.Tensor) -> torch.Tensor:
        return model_inputs(frames, self.input_kind, channels_last=self.fast and self.cfg.channels_last)

    def _logits(self, x: torch.Tensor, *, all_frames: bool = False) -> torch.Tensor:
        if all_frames:  # a mask model's logits of masks 12-22, (B, 11, K, H, W)
            return self.forward(x, all_frames=True)
        out = self.forward(x)
        return out.frame if self.task == "frame_prediction" else out

    @property
    def _future_loss(self) -> bool:
        return self.task == "mask_prediction" and self.cfg.future_weight > 0

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "frame_prediction":
            target = y.float() / 255
            pred = out.float()
            loss = F.mse_loss(pred, target) if self.cfg.frame_loss == "mse" else F.l1_loss(pred, target)
            if self.cfg.ssim_weight:
                loss = loss + self.cfg.ssim_weight * (1 - ssim(pred.clamp(0, 1), target))
            return loss
        future = None
        if self.task == "mask_prediction":  # y: masks 12-22 (B, 11, H, W), or 22 alone (B, 1, H, W)
            if out.dim() == 5:  # logits of masks 12-22: their mean loss on 12-21, weighted, beside 22's
                future = F.cross_entropy(out[:, :-1].movedim(2, 1).float(), y[:, :-1].long(), weight=self.class_weights)
                out = out[:, -1]
            y = y[:, -1]
        target = y.long()
        loss = F.cross_entropy(out.float(), target, weight=self.class_weights)
        if self.cfg.dice_weight:
            loss = loss + self.cfg.dice_weight * soft_dice_loss(out, target)
        if future is not None:
            loss = loss + self.cfg.future_weight * future
        return loss

    # -- evaluation

    def _eval_batches(self, split: DeviceSplit) -> Iterator[torch.Tensor]:
        return batch_indices(len(split), self.cfg.eval_batch_size, shuffle=False, device=self.device)

    def _evaluate_segmentation(self) -> dict[str, float]:
        """Competition IoU of mask 22 on val, predicted from frames 1-11 or, for a mask model, from the
        segmenter's masks of frames 1-11; for the latter also that segmenter's mask of frame 11 scored as
        the answer (copy last)."""
        from_masks = self.task == "mask_prediction"
        meter, copy_last, val = IoUMeter(self.device), IoUMeter(self.device), self.data.val
        loss = torch.zeros((), device=self.device)
        for index in self._eval_batches(val):
            inputs, target = val.batch(index) if from_masks else val.segmentation_batch(index)
            if from_masks:
                target = target[:, -1]  # mask 22
            with self._autocast():
                logits = self._logits(self._inputs(inputs))
            loss += F.cross_entropy(logits.float(), target.long(), reduction="sum") / target[0].numel()
            meter.update(logits.argmax(1), target)
            if from_masks:
                copy_last.update(inputs[:, -1], target)
        metrics = {"val_iou": meter.compute(), "val_loss": float(loss) / len(val)}
        if from_masks:
            metrics["val_copy_last_iou"] = copy_last.compute()
        return metrics

    def _evaluate_frames(self) -> dict[str, float]:
        val = self.data.val
        sq, ab = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
        copy_sq = torch.zeros((), device=self.device)
        for index in self._eval_batches(val):
            frames, target = val.frame_prediction_batch(index)
            with self._autocast():
                pred = self._logits(self._inputs(frames)).float().clamp(0, 1)
            truth = target.float() / 255
            sq += F.mse_loss(pred, truth, reduction="sum")
            ab += F.l1_loss(pred, truth, reduction="sum")
            copy_sq += F.mse_loss(frames[:, -1].float() / 255, truth, reduction="sum")
        pixels = len(val) * val.frames[0, 0].numel()
        mse = float(sq) / pixels
        return {
            "val_frame_mse": mse,
            "val_frame_l1": float(ab) / pixels,
            "val_psnr": -10 * math.log10(max(mse, 1e-12)),
            "val_copy_last_mse": float(copy_sq) / pixels,
        }

    def _evaluate_per_frame(self) -> dict[str, float]:
        val = self.data.val
        per_frame, copy_last, oracle = IoUMeter(self.device), IoUMeter(self.device), IoUMeter(self.device)
        last, future = N_INPUT_FRAMES - 1, TARGET_FRAME
        for index in self._eval_batches(val):
            frames = val.gather_frames(index, (last, future))  # (B, 2, 3, H, W)
            with self._autocast():
                pred = self._logits(self._inputs(frames.flatten(0, 1))).argmax(1).unflatten(0, (len(index), 2))
            mask_last, mask_future = val.gather_masks(index, last), val.gather_masks(index, future)
            per_frame.update(pred, torch.stack([mask_last, mask_future], dim=1))
            copy_last.update(pred[:, 0], mask_future)
            oracle.update(pred[:, 1], mask_future)
        return {
            "val_iou": per_frame.compute(),
            "val_copy_last_iou": copy_last.compute(),
            "val_oracle_iou": oracle.compute(),
        }


def model_inputs(frames: torch.Tensor, input_kind: str, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 frames -> the float input a model of `input_kind` takes, on the frames' device (class-id
    masks, for a mask model, go in as they are)."""
    if input_kind == "masks":
        return frames.long()  # (B, 11, H, W)
    x = frames.float().div_(255)  # (B, T, 3, H, W) or (B, 3, H, W)
    if input_kind == "stacked":
        x = x.flatten(1, 2)  # (B, 33, H, W)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> tuple[RunConfig, nn.Module]:
    """The run config and the trained model (in eval mode, on `device`) of a checkpoint."""
    state = load_checkpoint(path)
    run = RunConfig.from_dict(state["run"])
    model = create_model(run.model, run.model_config)
    model.load_state_dict(state["model"])
    return run, model.to(device).eval()


@torch.no_grad()
def predict_masks(
    run: RunConfig, model: nn.Module, split: DeviceSplit | MaskClips, *, batch_size: int = 32
) -> torch.Tensor:
    """Class ids of mask 22, (N, H, W) uint8 on the CPU, for every video of a split in its row order:
    from its frames (a DeviceSplit) or, for a mask model, from its input masks (MaskClips)."""
    if run.task not in ("segmentation", "mask_prediction"):
        raise ValueError(
            f"a {run.model!r} checkpoint ({run.task}) does not predict masks of frame 22; use a unet, dual_phase or mask_predictor one"
        )
    device = split.device
    kind = model_entry(run.model).input_kind
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    out = []
    for index in batch_indices(len(split), batch_size, shuffle=False, device=device):
        inputs = split.batch(index)[0] if isinstance(split, MaskClips) else split.gather_frames(index, INPUT_FRAMES)
        with autocast:
            logits = model(model_inputs(inputs, kind))
        if logits.shape[1] != NUM_CLASSES or logits.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(
                f"the checkpoint's model gives {tuple(logits.shape[1:])} (classes, H, W); the data needs "
                f"({NUM_CLASSES}, {inputs.shape[-2]}, {inputs.shape[-1]})"
            )
        out.append(logits.argmax(1).to(torch.uint8).cpu())
    return torch.cat(out)


def _make_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 1))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint written by Trainer.save, loaded with weights_only=True; clear errors for files that
    are missing or not checkpoints of this project."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot load checkpoint {path}: {err}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "run" not in state:
        raise ValueError(f"{path} is not a checkpoint of this project (format {CHECKPOINT_FORMAT})")
    return state


def load_pretrained_predictor(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Put a phase-1 frame predictor's weights into a dual_phase model; its config must match."""
    state = load_checkpoint(path)
    run = RunConfig.from_dict(state["run"])
    predictor = getattr(model, "predictor", None)
    if run.model != "frame_predictor" or not isinstance(predictor, nn.Module):
        raise ValueError(f"{path} holds a {run.model!r} checkpoint; a dual_phase model needs a frame_predictor one")
    expected = getattr(model, "cfg").predictor  # noqa: B009
    if run.model_config != expected:
        raise ValueError(f"{path} holds a frame predictor with config {run.model_config}, the model expects {expected}")
    predictor.load_state_dict(state["model"])


def with_epochs(run: RunConfig, epochs: int) -> RunConfig:
    return replace(run, train=replace(run.train, epochs=epochs))
