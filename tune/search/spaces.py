"""Search spaces: one registry; a space is a sequence of stages, each one Ray Tune experiment with its
own metric, and each stage samples its hyperparameters with an Optuna define-by-run function.

A define-by-run function takes the Optuna trial, the budget and, for a dependent stage, the best trials
of the stage it builds on; it returns the run's flat values (fields of TrainConfig and of the model's
config, dotted for nested ones). Everything sampled is recorded under its name in the trial's config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna

from reports.schema import VAL_FRAME_MSE, VAL_IOU
from tune.search.budget import Budget
from tune.search.keys import PARENT_KEY
from tune.training.config import TrainConfig

Mode = Literal["min", "max"]


Define = Callable[[optuna.Trial, Budget, Sequence[str]], dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    """One Ray Tune experiment of a space."""

    name: str  # unique within the space; also the experiment folder's name
    model: str  # registered model each trial trains
    metric: str  # what ASHA and Optuna optimise, reported every epoch
    mode: Mode  # "max" or "min"
    define: Define  # samples one trial's run values (and may add constants, such as the parent trial)
    parent: str | None = None  # the stage whose best trials this one starts from
    parent_role: Literal["pretrained", "pseudo_labels"] = "pretrained"  # weights to start from, or the
    # segmenter whose masks of every frame (pseudo-labels) this stage trains and is evaluated on
    first: tuple[dict[str, Any], ...] = ()  # partial configurations tried before TPE's own (tune.search.warm_start)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    stages: tuple[Stage, ...]
    description: str = ""

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"space {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}")


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    if space.name in _SPACES:
        raise ValueError(f"search space {space.name!r} is already registered")
    names = [s.name for s in space.stages]
    if len(set(names)) != len(names):
        raise ValueError(f"search space {space.name!r} has duplicate stage names {names}")
    for stage in space.stages:
        if stage.parent is not None and stage.parent not in names[: names.index(stage.name)]:
            raise ValueError(
                f"stage {stage.name!r} of {space.name!r} builds on {stage.parent!r}, which does not come before it"
            )
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    if name not in _SPACES:
        raise KeyError(f"unknown search space {name!r}; valid: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def list_spaces() -> list[str]:
    return sorted(_SPACES)


# ---------------------------------------------------------------- shared pieces (a plugin's space may use them)


def optimisation(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    """What every stage searches about training: lr, weight decay, batch size, schedule, input scale."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 5e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(budget.batch_sizes)),
        "schedule": trial.suggest_categorical("schedule", ["onecycle", "cosine"]),
        # cheap early trials: the model sees its inputs reduced, its logits come back to 160x240 for the metric
        "input_scale": trial.suggest_categorical("input_scale", list(budget.input_scales)),
    }


def segmentation_loss(trial: optuna.Trial) -> dict[str, Any]:
    """The loss of a stage that predicts masks: dice weight and class weighting."""
    return {
        "dice_weight": trial.suggest_float("dice_weight", 0.0, 1.0),
        "class_weighting": trial.suggest_categorical("class_weighting", ["none", "inverse_sqrt"]),
    }


# ---------------------------------------------------------------- unet


def define_unet(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    return {
        **optimisation(trial, budget),
        **segmentation_loss(trial),
        "width": trial.suggest_categorical("width", list(budget.widths)),
        "depth": trial.suggest_int("depth", 3, 4),
        "norm": trial.suggest_categorical("norm", ["batch", "group"]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
    }


register_space(
    SearchSpace(
        "unet",
        (Stage("main", "unet", VAL_IOU, "max", define_unet),),
        "frames 1-11 stacked as 33 channels, a U-Net to the mask of frame 22",
    )
)


# ---------------------------------------------------------------- dual_phase


def define_pretrain(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    values = {
        **optimisation(trial, budget),
        "width": trial.suggest_categorical("width", list(budget.predictor_widths)),
        "hidden": trial.suggest_categorical("hidden", list(budget.hidden)),
        "cell": trial.suggest_categorical("cell", ["lstm", "gru"]),
        "layers": trial.suggest_int("layers", 1, 2),
        "frame_loss": trial.suggest_categorical("frame_loss", ["mse", "l1"]),
        "ssim_weight": trial.suggest_float("ssim_weight", 0.0, 0.5),
    }
    return values


def define_finetune(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    if not parents:
        raise ValueError("the finetune stage needs completed pretraining trials to start from")
    return {
        PARENT_KEY: trial.suggest_categorical(PARENT_KEY, list(parents)),
        **optimisation(trial, budget),
        **segmentation_loss(trial),
        "seg_width": trial.suggest_categorical("seg_width", list(budget.widths)),
        "seg_depth": trial.suggest_int("seg_depth", 3, 4),
        "seg_norm": trial.suggest_categorical("seg_norm", ["batch", "group"]),
        "use_last_frame": trial.suggest_categorical("use_last_frame", [True, False]),
        # the segmenter also learns to segment the true frames the clips hold (1-11, 22), all labelled
        "frame_weight": trial.suggest_float("frame_weight", 4.0, 64.0, log=True),
        "frames_per_video": TrainConfig.frames_per_video,  # recorded with the trial; --set changes it
        "use_features": trial.suggest_categorical("use_features", [False, True]),
        "freeze_predictor": trial.suggest_categorical("freeze_predictor", [True, False]),
    }


register_space(
    SearchSpace(
        "dual_phase",
        (
            Stage("pretrain", "frame_predictor", VAL_FRAME_MSE, "min", define_pretrain),
            Stage("finetune", "dual_phase", VAL_IOU, "max", define_finetune, parent="pretrain"),
        ),
        "self-supervised frame prediction (encoder + ConvLSTM), then a U-Net segmenting the predicted frame 22",
    )
)


# ---------------------------------------------------------------- mask_space


def define_segmenter(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    return {
        **optimisation(trial, budget),
        **segmentation_loss(trial),
        "width": trial.suggest_categorical("width", list(budget.widths)),
        "depth": trial.suggest_int("depth", 3, 4),
        "norm": trial.suggest_categorical("norm", ["batch", "group"]),
        "frames_per_video": TrainConfig.frames_per_video,  # recorded with the trial; --set changes it
    }


def define_mask_predictor(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    if not parents:
        raise ValueError("the predictor stage needs a finished segmenter trial for its pseudo-labels")
    return {
        **optimisation(trial, budget),
        **segmentation_loss(trial),
        "embed": trial.suggest_categorical("embed", [0, 16]),
        "hid_s": trial.suggest_categorical("hid_s", list(budget.widths)),
        "hid_t": trial.suggest_categorical("hid_t", [4 * w for w in budget.widths]),
        "n_s": trial.suggest_int("n_s", 2, 4),  # the real-data record used 4 spatial steps and 8 blocks
        "n_t": trial.suggest_int("n_t", 2, 8),
        "pseudo_input_start": trial.suggest_float("pseudo_input_start", 0.0, 0.5),
        "pseudo_input_end": trial.suggest_float("pseudo_input_end", 0.0, 1.0),
        # one step to frame 22, or rolled out on its own predictions; masks 12-21 as extra targets
        "horizon": trial.suggest_categorical("horizon", [1, 4, 11]),
        "future_weight": trial.suggest_float("future_weight", 0.0, 1.0),
        # start from a rule's answer: nothing, copy-last, or each object moved along its track (models.motion)
        **motion_rule(trial),
        PARENT_KEY: parents[0],  # the segmenter that made the pseudo-labels (a constant, not searched)
    }


def motion_rule(trial: optuna.Trial) -> dict[str, Any]:
    """How the mask predictor uses a rule (models.motion): its prior, the rule's masks as input, and the share
    of its speed an object keeps a frame in the motion rule (0.97 fits the synthetic sets; the real data's
    physics may differ) and how many frames it fits velocities over (more is steadier on noisy masks, fewer
    follows changes sooner). Always suggested, so that `--set motion_retention=...` is a name the space knows;
    they change nothing in a trial with neither the motion prior nor the motion input."""
    return {
        "prior": trial.suggest_categorical("prior", ["none", "copy", "motion"]),
        "learn_prior": trial.suggest_categorical("learn_prior", [True, False]),  # False: the rule's bonus is fixed
        "motion_input": trial.suggest_categorical("motion_input", [False, True]),  # the rule's masks as input too
        "motion_retention": trial.suggest_float("motion_retention", 0.9, 1.0),
        "motion_track_frames": trial.suggest_int("motion_track_frames", 2, 5),  # 2: the move from frame 10 to 11
    }


register_space(
    SearchSpace(
        "mask_space",
        (
            Stage("segmenter", "frame_segmenter", VAL_IOU, "max", define_segmenter),
            Stage(
                "predictor",
                "mask_predictor",
                VAL_IOU,
                "max",
                define_mask_predictor,
                parent="segmenter",
                parent_role="pseudo_labels",
                # the motion rule beats copy-last by 1.7x on a segmenter's masks (docs/models.md): tried first
                first=({"prior": "motion"},),
            ),
        ),
        "a per-frame U-Net segments every frame (pseudo-labels), a SimVP-style model predicts mask 22 from the masks of frames 1-11",
    )
)


# ---------------------------------------------------------------- dynamics

TRACK_EPOCH = (
    8  # a dynamics epoch is this many of the budget's epochs of clips: a video's tracks cost ~1/1000 of its frames
)


def define_dynamics(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    """The object-dynamics model (models.dynamics) on the tracks of the segmenter's masks: its size, how many
    rounds of messages between objects, how much of each track it sees, the motion rule it corrects (as mask_space
    searches its own: the speed an object keeps a frame, the frames its velocity is fitted over), and its training."""
    if not parents:
        raise ValueError("the dynamics stage needs a finished segmenter trial for its pseudo-labels")
    return {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        "schedule": trial.suggest_categorical("schedule", ["onecycle", "cosine"]),
        "width": trial.suggest_categorical("width", [32, 64, 128]),
        "rounds": trial.suggest_int("rounds", 0, 2),  # 0: each object alone
        "history": trial.suggest_int("history", 2, 6),
        "dropout": trial.suggest_float("dropout", 0.0, 0.2),
        "retention": trial.suggest_float("retention", 0.9, 1.0),  # the rule corrected: 0.97 measured (models.motion)
        "track_frames": trial.suggest_int("track_frames", 2, 5),  # 3 on a segmenter's noisy masks (models.motion)
        "epoch_samples": TRACK_EPOCH * (budget.epoch_samples or 0),  # 0: one pass over the tracks
        PARENT_KEY: parents[0],  # the segmenter that made the pseudo-labels (a constant, not searched)
    }


register_space(
    SearchSpace(
        "dynamics",
        (
            Stage("segmenter", "frame_segmenter", VAL_IOU, "max", define_segmenter),
            Stage(
                "dynamics",
                "object_dynamics",
                VAL_IOU,
                "max",
                define_dynamics,
                parent="segmenter",
                parent_role="pseudo_labels",
                # measured on 3,000 videos' true tracks (docs/models.md): width 64, one round, lr 2e-3 (0.60 against
                # the rule's 0.50): tried first
                first=(
                    {"width": 64, "rounds": 1, "history": 5, "lr": 2e-3, "batch_size": 64, "dropout": 0.0}
                    | {"retention": 0.97, "track_frames": 3},  # the rule as models.motion measured it
                ),
            ),
        ),
        "a per-frame U-Net segments every frame (pseudo-labels); an interaction network over the tracks of every "
        "object moves each object of mask 11 to frame 22, learning what the motion rule gets wrong",
    )
)
