"""Budgets: how big a study is (trials, epochs, ASHA's rungs, the model sizes searched), and the named ones sized
to the machine (`budget_for`). The search spaces' define functions read them (tune/search/spaces.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How big a study is: trials, epochs, ASHA's rungs and the model sizes searched."""

    name: str
    samples: int  # trials per stage
    max_epochs: int  # epochs of a trial that ASHA never stops
    grace_period: int  # epochs before ASHA's first rung
    reduction_factor: int  # ASHA keeps 1 / reduction_factor of the trials at each rung
    widths: tuple[int, ...]  # U-Net widths searched
    predictor_widths: tuple[int, ...]  # frame-predictor encoder widths searched
    hidden: tuple[int, ...]  # frame-predictor recurrent channels searched
    batch_sizes: tuple[int, ...]  # batch sizes searched
    input_scales: tuple[float, ...] = (1.0,)  # input scales searched (TrainConfig.input_scale)
    # training samples in an epoch, the fidelity unit; a constant of the budget that every trial's run takes (see
    # run_values); None: the run's own default (TrainConfig's: one pass over the split)
    epoch_samples: int | None = None
    top_k: int = 3  # fine-tuning chooses its pretrained predictor among this many best pretraining trials
    max_concurrent: int = 0  # trials at once; 0: as many as the resources allow

    def __post_init__(self) -> None:
        if self.samples < 1 or self.max_epochs < 1 or self.grace_period < 1 or self.top_k < 1:
            raise ValueError(f"Budget {self.name!r}: samples, max_epochs, grace_period and top_k must be >= 1")
        if self.grace_period > self.max_epochs:
            raise ValueError(
                f"Budget {self.name!r}: grace_period ({self.grace_period}) exceeds max_epochs ({self.max_epochs})"
            )
        if self.reduction_factor < 2:
            raise ValueError(f"Budget {self.name!r}: reduction_factor must be >= 2, got {self.reduction_factor}")

    def run_values(self) -> dict[str, int]:
        """The training values (fields of TrainConfig) every trial's run takes from the budget, as it takes its epochs
        from max_epochs: constants of the budget, not hyperparameters, so they travel on the stage's job
        (tune/search/trainable.py, StageJob), not in Optuna's config; `--set` fixes them (tune/search/overrides.py).
        Those the budget leaves None are the run's own."""
        values = {"epoch_samples": self.epoch_samples}
        return {name: value for name, value in values.items() if value is not None}


BUDGETS = ("smoke", "default")  # the names budget_for knows: --budget's choices


def budget_for(name: str, *, gpu: bool) -> Budget:
    """The named budget, sized to the machine: the CPU versions search small models only."""
    if name == "smoke":  # the tests' budget: seconds per trial, still enough epochs for ASHA to stop some
        return Budget(
            "smoke",
            samples=6,
            max_epochs=4,
            grace_period=1,
            reduction_factor=2,
            widths=(4,),
            predictor_widths=(4,),
            hidden=(4,),
            batch_sizes=(2, 4),
            input_scales=(0.5, 1.0),  # both paths tested; at 0.25 tiny models all score the same, leaving no spread
            epoch_samples=4,  # seconds an epoch on any data: the tests' 4 train videos or the full 14,000 clips
            top_k=2,
        )
    if name == "default" and gpu:
        return Budget(
            "default",
            samples=32,
            max_epochs=40,
            grace_period=4,
            reduction_factor=3,
            widths=(32, 64),
            predictor_widths=(32, 64),
            hidden=(64, 128),
            batch_sizes=(16, 32, 64),
            input_scales=(0.5, 1.0),
            epoch_samples=2000,  # 2 passes of 1,000 train videos; 1/7 of unlabeled + train for pretraining
            top_k=3,
        )
    if name == "default":  # a CPU machine: the embedded default finishes in minutes and shows learning
        return Budget(
            "default",
            samples=4,
            max_epochs=8,
            grace_period=2,
            reduction_factor=2,
            widths=(16,),
            predictor_widths=(4,),
            hidden=(8,),
            batch_sizes=(4, 8),
            input_scales=(0.25,),  # 40x60: a CPU trial learns in minutes (docs/search.md)
            epoch_samples=240,
            top_k=2,
        )
    raise ValueError(f"unknown budget {name!r}; valid: {', '.join(BUDGETS)}")
