"""Budget advice from the curve bank: for a number of trials and ASHA's rungs, how often the search keeps the
best configuration it drew, and what it spends.

    python -m benchmarks.advice [--bank benchmarks/results/curve_bank.parquet] [--trials 8 16 24 48 96]
                                [--grace 1 2 4] [--reduction 2 3 4] [--orders 1000]
                                [--html benchmarks/results/advice.html]

For each setting, `--orders` studies: configurations drawn uniformly from the bank (random search: what TPE
does for its first 10 trials, and a floor for what it does after), run one after another, each played
back epoch by epoch through the scheduler class a study uses (tune.search.scheduler.ResumableASHA, that is
Ray's ASHAScheduler, called through its own on_trial_add / on_trial_result / on_trial_complete hooks as Ray
Tune calls them, without the Tune loop: thousands of studies a second; tests/benchmarks/test_replay.py
checks its decisions against a real replayed study). Per setting:

- kept: how often the best configuration drawn was run to the full budget (ASHA did not stop it);
- bank best: how often the bank's best configuration was drawn and run to the full budget;
- regret: median over studies of the bank's best final value minus the best value run to the full budget;
- compute: epochs spent over what the same trials cost at the full budget.

Prints a markdown table and writes an HTML page (plotly, self-contained, like the study report).
"""

from __future__ import annotations

import argparse
import html
import itertools
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from benchmarks.args import asha_reduction, bad_input, count, output_files
from benchmarks.curve_bank import METRIC, read_bank
from benchmarks.curve_bank import OUT as BANK
from benchmarks.replay import curves
from data.files import run_command
from reports.page import figure_html, html_page, table_html
from tune.search.keys import TRAINING_ITERATION
from tune.search.scheduler import ResumableASHA

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class TrialId:
    """What ASHA reads of a trial: its id."""

    trial_id: str


def play(order: Sequence[int], table: dict[int, list[float]], *, grace: int, reduction: int, folder: Path) -> list[int]:
    """Epochs each configuration of `order` ran, one after another, under ResumableASHA(max_t = the bank's
    epochs, grace, reduction), fed as Ray Tune feeds it: a result an epoch, the trial ended when it says STOP
    or reaches max_t. `folder`: where its resume looks for recorded results (none)."""
    max_t = len(next(iter(table.values())))
    asha = ResumableASHA(
        results_dir=folder, stage="advice", metric=METRIC, mode="max", max_t=max_t, grace_period=grace,
        reduction_factor=reduction,
    )  # fmt: skip
    ran = []
    controller: Any = None  # ASHA's hooks do not read Tune's controller
    for number, config in enumerate(order):
        trial: Any = TrialId(f"t{number}")  # ASHA reads a trial's id alone
        asha.on_trial_add(controller, trial)
        for epoch, value in enumerate(table[config], 1):
            result = {TRAINING_ITERATION: epoch, METRIC: value}
            if asha.on_trial_result(controller, trial, result) == "STOP" or epoch == max_t:
                break
        asha.on_trial_complete(controller, trial, result)
        ran.append(epoch)
    return ran


def advise(
    table: dict[int, list[float]], *, trials: int, grace: int, reduction: int, orders: int, seed: int, folder: Path
) -> dict[str, Any]:
    """The measures of one setting over `orders` random studies (see the module's docstring)."""
    finals = {config: values[-1] for config, values in table.items()}
    best_config = max(finals, key=finals.__getitem__)
    max_t = len(next(iter(table.values())))
    rng = np.random.default_rng(seed)
    configs = np.array(sorted(table))
    kept = bank_best = spent = 0
    regrets = []
    for _ in range(orders):
        order = [int(c) for c in rng.choice(configs, size=trials)]
        ran = play(order, table, grace=grace, reduction=reduction, folder=folder)
        full = [config for config, epochs in zip(order, ran, strict=True) if epochs == max_t]
        drawn_best = max(order, key=finals.__getitem__)
        kept += drawn_best in full
        bank_best += best_config in full
        spent += sum(ran)
        regrets.append(finals[best_config] - max((finals[c] for c in full), default=0.0))
    return {
        "trials": trials,
        "grace": grace,
        "reduction": reduction,
        "rungs": ", ".join(str(r) for r in rungs(max_t, grace, reduction)),
        "kept": kept / orders,
        "bank_best": bank_best / orders,
        "regret": float(np.median(regrets)),
        "compute": spent / (orders * trials * max_t),
    }


def rungs(max_t: int, grace: int, reduction: int) -> list[int]:
    """ASHA's milestones below max_t (Ray's rule: grace x reduction^k)."""
    count = int(np.log(max_t / grace) / np.log(reduction) + 1)
    return [grace * reduction**k for k in range(count) if grace * reduction**k < max_t]


def page(advice: pd.DataFrame, command: str, bank_note: str) -> str:
    """The advice as one self-contained HTML page: kept and bank-best against compute, a line per rung setting."""
    figures = []
    for measure, label in (
        ("kept", "best configuration drawn kept to the full budget"),
        ("bank_best", "bank's best found"),
    ):
        fig = go.Figure()
        for (grace, reduction), rows in advice.groupby(["grace", "reduction"]):
            fig.add_trace(
                go.Scatter(
                    x=rows["compute"] * 100,
                    y=rows[measure] * 100,
                    mode="lines+markers+text",
                    text=[f"{t}" for t in rows["trials"]],
                    textposition="top center",
                    name=f"grace {grace}, reduction {reduction} (rungs {rows['rungs'].iloc[0]})",
                )
            )
        fig.update_layout(
            title=f"{label} (% of studies) against compute (% of the same trials at full budget); labels: trials",
            xaxis_title="compute, % of full budget",
            yaxis_title=f"{label}, %",
        )
        figures.append(figure_html(fig, f"advice-{measure}"))
    return html_page(
        "Budget advice",
        f"<p>{html.escape(bank_note)}</p>\n<p><code>{html.escape(command)}</code></p>\n{''.join(figures)}\n{table_html(advice)}",
    )


def markdown(advice: pd.DataFrame) -> str:
    lines = [
        "| trials | grace | reduction | rungs | best drawn kept | bank's best found | median regret | compute |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in advice.to_dict("records"):
        lines.append(
            f"| {row['trials']} | {row['grace']} | {row['reduction']} | {row['rungs']} | {row['kept']:.0%} | "
            f"{row['bank_best']:.0%} | {row['regret']:.4f} | {row['compute']:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.advice", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bank", type=Path, default=BANK)
    parser.add_argument("--trials", type=count, nargs="+", default=[8, 16, 24, 48, 96])
    parser.add_argument("--grace", type=count, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reduction", type=asha_reduction, nargs="+", default=[2, 3, 4])
    parser.add_argument("--orders", type=count, default=1000, help="random studies per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--html", type=Path, default=RESULTS / "advice.html")
    args = parser.parse_args(argv)
    output_files(parser, html=args.html)
    with bad_input(parser):
        bank = read_bank(args.bank)
    table = curves(bank)
    max_t = len(next(iter(table.values())))
    if too_long := [g for g in args.grace if g >= max_t]:  # ASHA would stop no trial before the bank's last epoch
        parser.error(
            f"--grace {' '.join(map(str, too_long))}: the bank's trials run {max_t} epochs; a grace period must be "
            f"below it (1..{max_t - 1})"
        )
    rows = [
        advise(table, trials=t, grace=g, reduction=r, orders=args.orders, seed=args.seed, folder=args.html.parent)
        for g, r, t in itertools.product(args.grace, args.reduction, args.trials)
    ]
    advice = pd.DataFrame(rows)
    command = shlex.join(["python", "-m", "benchmarks.advice", *(sys.argv[1:] if argv is None else argv)])
    finals = [values[-1] for values in table.values()]
    note = (
        f"Bank {args.bank.name}: {len(table)} configurations, {max_t} epochs each, final {METRIC} "
        f"{min(finals):.4f}..{max(finals):.4f}; {args.orders} random studies a setting."
    )
    print(note)
    print(markdown(advice))
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(page(advice, command, note))
    print(f"page: {args.html}")
    return 0


if __name__ == "__main__":
    run_command(main)
