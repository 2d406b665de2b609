"""The curve bank's grid as a search space, for real studies over the configurations the bank holds.

    python -m tune.search --plugin benchmarks/bank_space.py --space curve_bank --max-concurrent 1 [--seed S]

A plugin (docs/plugin_example.py): one stage that trains the bank's model with the bank's fixed settings
and searches the bank's grid. The replay (benchmarks/replay.py) asks Optuna the same questions through
the same define-by-run function, so a replayed study and a real one see the same space; with trials one
at a time, a seed and the same metrics they run the same trials and stop them at the same epochs
(tests/benchmarks/test_replay.py checks it). The bank (benchmarks/curve_bank.py) trains these
configurations, so GRID, FIXED, MODEL and METRIC live here, in a file that imports only the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from reports.schema import VAL_IOU
from tune.search.spaces import Budget, SearchSpace, Stage, register_space

GRID: dict[str, tuple[Any, ...]] = {
    "lr": (3e-4, 1e-3, 3e-3),
    "batch_size": (4, 8),
    "dice_weight": (0.0, 0.5),
    "depth": (3, 4),
    "class_weighting": ("none", "inverse_sqrt"),
}
FIXED: dict[str, Any] = {
    "width": 8,
    "norm": "batch",
    "dropout": 0.0,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "input_scale": 0.25,
    "frames_per_video": 4,
    "epoch_samples": 120,  # frames an epoch
}
MODEL = "frame_segmenter"  # the mask_space segmenter stage: learns within minutes on a CPU
METRIC = VAL_IOU


def define_grid(trial: optuna.Trial, budget: Budget, parents: Sequence[str]) -> dict[str, Any]:
    """One choice per axis of the grid, in GRID's order, and the fixed settings as constants (they do not
    change what Optuna suggests). The epochs are the budget's (the bank trained 10)."""
    return {**{name: trial.suggest_categorical(name, list(values)) for name, values in GRID.items()}, **FIXED}


STAGE = Stage("main", MODEL, METRIC, "max", define_grid)
register_space(SearchSpace("curve_bank", (STAGE,), f"the curve bank's grid of {MODEL} configurations"))
