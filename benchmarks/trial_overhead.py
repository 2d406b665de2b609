"""Per-trial overhead of the search: from the moment Tune starts a trial to its first training step.

    python -m benchmarks.trial_overhead [--trials 8] [--data DIR] [--cpus-per-trial 1] [--out DIR]

Runs a `unet` smoke study (tiny models, so that the overhead, not the training, is what shows) on a local
Ray and reads the results: the driver's trial start time (trials.parquet, `started_at`) against the
trial's first training step (epochs.parquet, `first_step_at`). Trials that reuse a warm actor skip the
process start and imports; both kinds are reported. The study (and the paths and commands its summary prints) is
kept only with --out: by default it is made in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchmarks.args import bad_input, count
from data.files import run_command
from data.synth.generate import SynthSpec, generate
from reports.schema import EPOCH, FIRST_STEP_AT, STARTED_AT, TRIAL_ID, read_results
from tune.search.config import SearchConfig, named
from tune.search.driver import run_search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trial_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=count, default=8)
    parser.add_argument("--data", type=Path, default=None, help="data root (default: a tiny generated one)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None, help="keep the study here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            root = Path(tmp) / "data"
            generate(root, SynthSpec(train=4, val=2, seed=0), progress=False)
        out = args.out or Path(tmp)
        cfg = named(  # a new name in --out each run: space and time
            SearchConfig(
                space="unet",
                data=str(root),
                budget="smoke",
                samples=args.trials,
                out=str(out),
                cpus_per_trial=args.cpus_per_trial,
                dashboard=False,
            ),
            resume=False,
        )
        with bad_input(parser):  # a data root that is not one, a share no node has: before any trial
            status = run_search(cfg)
        if args.out is None:
            print(f"(the study above was in {tmp}, removed now: --out DIR keeps it)")
        trials, epochs = read_results(out / str(cfg.name))
    if status:
        print("the study failed (above): no figures", file=sys.stderr)
        return status
    first = epochs[epochs[EPOCH] == 1].set_index(TRIAL_ID)[FIRST_STEP_AT]
    started = trials.set_index(TRIAL_ID)[STARTED_AT].map(lambda t: t.timestamp())
    overhead = (first - started).dropna().sort_values()
    print(f"trials: {len(overhead)}; seconds from trial start to first training step:")
    print(f"  all:    median {overhead.median():.2f}, min {overhead.min():.2f}, max {overhead.max():.2f}")
    print(f"  per trial: {', '.join(f'{v:.2f}' for v in overhead)}")
    print("  (the slowest are the first trial of each actor: process start and imports)")
    return 0


if __name__ == "__main__":
    run_command(main)
