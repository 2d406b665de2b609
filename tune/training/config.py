"""Run configs: how to train (TrainConfig) and which model with which config (RunConfig). Both are
frozen and travel whole into every checkpoint."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, replace
from typing import Any

from models.config import config_from_dict, config_to_dict, dotted_values, with_values
from models.registry import model_entry

SCHEDULES = ("onecycle", "cosine", "constant")
INPUT_SCALES = (1.0, 0.5, 0.25)  # 160x240, 80x120, 40x60


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # training epochs: passes over the training set, or of epoch_samples samples each
    epoch_samples: int = 0  # samples (clips; frames for a per-frame segmenter) in an epoch; 0: one pass over
    # the training split (frames_per_video frames a video for a per-frame segmenter). A study sets it so that
    # an epoch, its fidelity unit, means the same on 60 videos or 14,000
    batch_size: int = 16  # samples per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 1e-4  # AdamW weight decay
    schedule: str = "onecycle"  # onecycle | cosine | constant, stepped per batch
    hflip: bool = True  # flip each training clip horizontally with probability 1/2
    dice_weight: float = 0.0  # segmentation: weight of a soft dice term added to cross-entropy
    class_weighting: str = "none"  # segmentation: none | inverse_sqrt (of the train target pixel counts)
    frame_loss: str = "mse"  # frame prediction: mse | l1
    ssim_weight: float = 0.0  # frame prediction: weight of a (1 - SSIM) term
    freeze_predictor: bool = True  # a model with a pretrained part (dual_phase's predictor): keep it fixed
    frames_per_video: int = 4  # per-frame segmentation: frames drawn from each video per epoch (its one default:
    # the studies' stages take it from here too)
    frame_weight: float = 0.0  # a model with a segmenter part (dual_phase): weight of a per-frame segmentation
    # loss on the true frames and masks each training clip holds (frames 1-11 and 22), beside mask 22's
    input_scale: float = 1.0  # the model sees its inputs at this scale (1, 0.5, 0.25); logits come back to 160x240
    pseudo_input_start: float = 0.0  # mask prediction, scheduled sampling: chance that a training clip gets
    pseudo_input_end: float = 0.5  # ... the segmenter's input masks instead of its own, first to last epoch
    future_weight: float = 0.0  # mask prediction: weight of the mean loss on the predicted masks 12-21 (beside 22's)
    amp: bool = True  # bf16 autocast on CUDA (no effect on CPU)
    channels_last: bool = True  # channels-last memory format on CUDA (no effect on CPU)
    compile: bool = False  # torch.compile the model
    eval_batch_size: int = 32  # samples per evaluation step
    seed: int = 0  # initialisation, shuffling, augmentation and dropout

    def __post_init__(self) -> None:
        if self.epoch_samples < 0:
            raise ValueError(f"TrainConfig.epoch_samples must be >= 0 (0: one pass), got {self.epoch_samples}")
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
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(f"TrainConfig.input_scale must be one of {INPUT_SCALES}, got {self.input_scale}")
        for name in ("dice_weight", "ssim_weight", "future_weight", "frame_weight"):
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_config": config_to_dict(self.model_config),
            "train": config_to_dict(self.train),
        }

    def differences(self, other: RunConfig) -> list[str]:
        """The settings `other` has other values of, as "NAME MINE (the checkpoint has OTHERS)", NAME as --set
        takes it; RUNTIME_FIELDS aside (how a run is computed, not what it computes). Another model: that alone (its
        settings are another model's: each differs)."""
        if self.model != other.model:
            return [f"model {self.model!r} (the checkpoint is of a {other.model!r} run)"]
        mine, theirs = (
            {"model": run.model, **dotted_values(run.model_config), **dotted_values(run.train)} for run in (self, other)
        )
        return [
            f"{name} {mine.get(name)!r} (the checkpoint has {theirs.get(name)!r})"
            for name in sorted(mine.keys() | theirs.keys())
            if mine.get(name) != theirs.get(name) and name not in RUNTIME_FIELDS
        ]

    def refuse_other(self, saved: RunConfig, path: str | os.PathLike[str]) -> None:
        """A resume of the checkpoint at `path` (of the run `saved`) asking these settings: a ValueError where they
        differ (differences), naming each."""
        if differ := self.differences(saved):
            raise ValueError(
                f"{path} holds a run with other settings than those given: {'; '.join(differ)}. Give its "
                "settings to resume it, or another --out for a new run"
            )

    def with_epochs(self, epochs: int) -> RunConfig:
        return replace(self, train=replace(self.train, epochs=epochs))

    def updated(self, values: dict[str, Any], *, epochs: int | None = None, from_text: bool = False) -> RunConfig:
        """This run with flat `values` applied, each a field of TrainConfig or of the model's config (dotted for
        nested ones, `predictor.hidden`); strings parsed by type with `from_text`."""
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        train_values = {k: v for k, v in values.items() if k in train_fields}
        model_values = {k: v for k, v in values.items() if k not in train_fields}
        model_fields = {f.name for f in dataclasses.fields(self.model_config)}
        if unknown := [k for k in model_values if k.partition(".")[0] not in model_fields]:
            raise ValueError(
                f"a {self.model} run has no setting {unknown[0]!r}: its model's are {', '.join(sorted(model_fields))}; "
                f"its training's are {', '.join(sorted(train_fields))}"
            )
        train = with_values(self.train, train_values, from_text=from_text)
        if epochs is not None:
            train = replace(train, epochs=epochs)
        return replace(
            self, model_config=with_values(self.model_config, model_values, from_text=from_text), train=train
        )

    @classmethod
    def from_values(
        cls, model: str, values: dict[str, Any], *, epochs: int | None = None, from_text: bool = False
    ) -> RunConfig:
        """A run from the defaults and flat `values` (see `updated`)."""
        return cls(model, model_entry(model).config_class()).updated(values, epochs=epochs, from_text=from_text)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        entry = model_entry(values["model"])
        return cls(
            values["model"],
            config_from_dict(entry.config_class, values["model_config"]),
            config_from_dict(TrainConfig, values["train"]),
        )


RUNTIME_FIELDS = ("compile", "eval_batch_size")  # a resumed run may set these otherwise: they change no result
