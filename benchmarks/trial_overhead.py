"""Per-trial overhead of the search: from the moment Tune starts a trial to its first training step.

    python -m benchmarks.trial_overhead [--trials 8] [--data DIR] [--cpus-per-trial 1]

Runs a `unet` smoke study (tiny models, so that the overhead, not the training, is what shows) on a local
Ray and reads the results: the driver's trial start time (trials.parquet, `started_at`) against the
trial's first training step (epochs.parquet, `first_step_at`). Trials that reuse a warm actor skip the
process start and imports; both kinds are reported.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from data.synth.generate import SynthSpec, generate
from reports.schema import EPOCH, FIRST_STEP_AT, RESULTS_DIR, STARTED_AT, TRIAL_ID, read_results
from tune.search.config import SearchConfig
from tune.search.driver import run_search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trial_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--data", type=Path, default=None, help="data root (default: a tiny generated one)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            root = Path(tmp) / "data"
            generate(root, SynthSpec(train=4, val=2, seed=0), progress=False)
        cfg = SearchConfig(
            space="unet",
            data=str(root),
            budget="smoke",
            samples=args.trials,
            out=tmp,
            name="overhead",
            cpus_per_trial=args.cpus_per_trial,
            dashboard=False,
        )
        run_search(cfg)
        trials, epochs = read_results(Path(tmp) / "overhead" / RESULTS_DIR)
    first = epochs[epochs[EPOCH] == 1].set_index(TRIAL_ID)[FIRST_STEP_AT]
    started = trials.set_index(TRIAL_ID)[STARTED_AT].map(lambda t: t.timestamp())
    overhead = (first - started).dropna().sort_values()
    print(f"trials: {len(overhead)}; seconds from trial start to first training step:")
    print(f"  all:    median {overhead.median():.2f}, min {overhead.min():.2f}, max {overhead.max():.2f}")
    print(f"  per trial: {', '.join(f'{v:.2f}' for v in overhead)}")
    print("  (the slowest are the first trial of each actor: process start and imports)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
