"""Replay: the real search engine (Ray Tune, the project's Optuna searcher, its ASHA scheduler) runs many
studies whose trainable plays the curve bank's curves back instead of training.

    python -m benchmarks.replay [--bank benchmarks/results/curve_bank.parquet] [--seeds 50] [--trials 24]
                                [--out benchmarks/results/replay.parquet] [--report benchmarks/results/replay.md]

Strategies, each with the same seeds: `random` (Optuna's RandomSampler) at full budget and with ASHA;
`tpe` (TPESampler, as a study seeds it) at full budget; TPE with ASHA told COMPLETE (Ray's OptunaSearch, its
default) and told PRUNED (tune.search.searcher.PrunedAwareOptunaSearch, what a study uses). ASHA is
tune.search.scheduler.ResumableASHA with rungs from `--grace 2 --reduction 2` over the bank's epochs.
Trials run one at a time, so that a seed gives one sequence. A configuration is the grid's
(benchmarks/bank_space.GRID), suggested by the define-by-run function a real study over the grid uses
(benchmarks/bank_space.py, a plugin).

Output: one row per trial per study (Parquet), and a markdown table: regret (the bank's best final value
minus the best final value among the trials run to the full budget so far) against epochs spent, median
and quartiles over seeds; and the epochs each strategy needs to reach the value that full-budget random
search finds with its whole budget (per seed, median).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from ray import tune

from benchmarks.args import asha_reduction, bad_input, count, output_files
from benchmarks.bank_space import METRIC, STAGE
from benchmarks.curve_bank import OUT as BANK
from benchmarks.curve_bank import config_id, read_bank
from data.files import run_command

STRATEGIES = ("random_full", "random_asha", "tpe_full", "tpe_asha_complete", "tpe_asha_pruned")
RESULTS = Path(__file__).parent / "results"


def final_values(bank: pd.DataFrame) -> pd.Series:
    """Each configuration's value at the bank's last epoch (seed 0), by config_id."""
    first = bank[bank["seed"] == 0]
    return first[first["epoch"] == first["epoch"].max()].set_index("config_id")[METRIC]


def curves(bank: pd.DataFrame) -> dict[int, list[float]]:
    first = bank[bank["seed"] == 0].sort_values("epoch")
    return {int(cid): first.loc[first["config_id"] == cid, METRIC].tolist() for cid in first["config_id"].unique()}


def replay_trial(config: dict[str, Any], *, table: dict[int, list[float]]) -> None:
    """The trainable: the bank's curve of the configuration, one report an epoch."""
    for epoch, value in enumerate(table[config_id(config)], 1):
        tune.report({METRIC: value, "epoch": epoch})


class Seen(tune.Callback):
    """A Ray Tune callback keeping every value each trial reported, in order (Tune's own CSV logger is off)."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.values.setdefault(trial.trial_id, []).append(float(result[METRIC]))


def run_study(
    strategy: str, seed: int, table: dict[int, list[float]], *, trials: int, grace: int, reduction: int, storage: Path
) -> pd.DataFrame:
    """One replayed study: its trials in the order they ran, with the epochs each ran and its values."""
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tune.search.scheduler import ResumableASHA
    from tune.search.searcher import DefineByRun, PrunedAwareOptunaSearch
    from tune.search.spaces import Budget

    max_epochs = len(next(iter(table.values())))
    budget = Budget("replay", trials, max_epochs, grace, reduction, (8,), (8,), (8,), (4,))
    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.RandomSampler(seed=seed)
        if strategy.startswith("random")
        else optuna.samplers.TPESampler(seed=seed)
    )
    space = DefineByRun(STAGE, budget, ())
    if strategy == "tpe_asha_complete":
        searcher: Any = OptunaSearch(space=space, metric=METRIC, mode="max", sampler=sampler)
    else:
        searcher = PrunedAwareOptunaSearch(space=space, metric=METRIC, mode="max", sampler=sampler, max_t=max_epochs)
    scheduler: Any = FIFOScheduler()
    if strategy.endswith(("asha", "complete", "pruned")):
        scheduler = ResumableASHA(
            results_dir=storage / "none",
            stage=STAGE.name,
            metric=METRIC,
            mode="max",
            max_t=max_epochs,
            grace_period=grace,
            reduction_factor=reduction,
        )
    seen = Seen()
    tuner = tune.Tuner(
        tune.with_parameters(replay_trial, table=table),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=trials, max_concurrent_trials=1, reuse_actors=True
        ),
        run_config=tune.RunConfig(name=f"{strategy}-{seed}", storage_path=str(storage), verbose=0, callbacks=[seen]),
    )
    grid = tuner.fit()
    told = searcher._ot_trials  # Ray trial id -> its Optuna trial, in the order suggested (Ray 2.60)
    rows = []
    for index in range(len(grid)):
        result = grid[index]
        assert result.metrics is not None and result.config is not None
        values = seen.values[result.metrics["trial_id"]]
        ot_trial = told[result.metrics["trial_id"]]
        rows.append(
            {
                "strategy": strategy,
                "seed": seed,
                "order": ot_trial.number,
                "config_id": config_id(result.config),
                "epochs": len(values),
                "last_value": values[-1],
                "full_value": values[-1] if len(values) == max_epochs else np.nan,
                "optuna_state": searcher._ot_study.trials[ot_trial.number].state.name,
            }
        )
    frame = pd.DataFrame(rows).sort_values("order", ignore_index=True)
    return frame


def incumbent_curve(study: pd.DataFrame, best: float, budgets: np.ndarray) -> np.ndarray:
    """Regret at each budget (epochs spent): the bank's best minus the best full-budget value so far."""
    spent = study["epochs"].cumsum().to_numpy()
    found = np.fmax.accumulate(study["full_value"].fillna(-np.inf).to_numpy())
    regret = np.full(len(budgets), np.nan)
    for i, b in enumerate(budgets):
        done = spent <= b
        regret[i] = best - (found[done][-1] if done.any() and np.isfinite(found[done][-1]) else 0.0)
    return regret


def summarise(runs: pd.DataFrame, bank: pd.DataFrame, command: str) -> str:
    finals = final_values(bank)
    best = float(finals.max())
    max_epochs = int(bank["epoch"].max())
    total = runs.groupby(["strategy", "seed"])["epochs"].sum().max()
    budgets = np.unique(np.linspace(max_epochs, total, 8).round().astype(int))
    lines = [
        f"# Replay: {len(finals)} configurations of the curve bank, {runs['seed'].nunique()} seeds a strategy",
        "",
        f"`{command}`; bank: best final {METRIC} {best:.4f}, median {float(finals.median()):.4f}.",
        "",
        "Regret (bank best - best full-budget value found) at epochs spent; median [quartiles] over seeds:",
        "",
        "| strategy | " + " | ".join(f"{b} ep" for b in budgets) + " | epochs to random_full's final best (median) |",
        "| --- | " + " | ".join("---" for _ in budgets) + " | --- |",
    ]
    targets = {
        seed: study["full_value"].max() for seed, study in runs[runs["strategy"] == "random_full"].groupby("seed")
    }
    for strategy in STRATEGIES:
        mine = runs[runs["strategy"] == strategy]
        if not len(mine):
            continue
        regrets = np.array([incumbent_curve(s.sort_values("order"), best, budgets) for _, s in mine.groupby("seed")])
        q1, med, q3 = np.nanpercentile(regrets, [25, 50, 75], axis=0)
        cells = [f"{m:.4f} [{a:.4f}, {c:.4f}]" for a, m, c in zip(q1, med, q3, strict=True)]
        needed = []
        for seed, study in mine.groupby("seed"):
            study = study.sort_values("order")
            reached = study["full_value"].fillna(-np.inf).to_numpy() >= targets.get(seed, np.inf)
            needed.append(study["epochs"].cumsum().to_numpy()[reached.argmax()] if reached.any() else np.inf)
        reach = f"{np.median(needed):.0f}" if targets else "(random_full not run)"  # no target: inf in each row
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {reach} |")
    lines += [
        "",
        "Budget advice: how often ASHA ran its sample's best configuration to the full budget, and the compute:",
        "",
    ]
    lines += ["| strategy | best sampled configuration kept | epochs spent of full budget |", "| --- | --- | --- |"]
    for strategy in STRATEGIES:
        mine = runs[runs["strategy"] == strategy]
        if not len(mine):
            continue
        kept = []
        for _, study in mine.groupby("seed"):
            values = study["config_id"].map(finals).to_numpy()
            kept.append(bool(study["epochs"].to_numpy()[values.argmax()] == max_epochs))
        share = mine["epochs"].sum() / (len(mine) * max_epochs)
        lines.append(f"| {strategy} | {np.mean(kept):.0%} of {len(kept)} seeds | {share:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bank", type=Path, default=BANK)
    parser.add_argument("--seeds", type=count, default=50)
    parser.add_argument("--trials", type=count, default=24)
    parser.add_argument("--grace", type=count, default=2)
    parser.add_argument("--reduction", type=asha_reduction, default=2)
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--out", type=Path, default=RESULTS / "replay.parquet")
    parser.add_argument("--report", type=Path, default=RESULTS / "replay.md")
    args = parser.parse_args(argv)
    output_files(parser, out=args.out, report=args.report)
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TensorBoard files a trial
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with bad_input(parser):
        bank = read_bank(args.bank)
    table = curves(bank)
    if args.grace > (epochs := len(next(iter(table.values())))):
        parser.error(f"--grace {args.grace}: the bank's trials run {epochs} epochs; a grace period must not pass it")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    frames, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as storage:
        for seed in range(args.seeds):
            for strategy in args.strategies:
                frames.append(
                    run_study(
                        strategy,
                        seed,
                        table,
                        trials=args.trials,
                        grace=args.grace,
                        reduction=args.reduction,
                        storage=Path(storage),
                    )
                )
            print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    ray.shutdown()
    runs = pd.concat(frames, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(args.out, index=False)
    command = shlex.join(["python", "-m", "benchmarks.replay", *(sys.argv[1:] if argv is None else argv)])
    args.report.write_text(summarise(runs, bank, command))
    print(args.report.read_text())
    return 0


if __name__ == "__main__":
    run_command(main)
