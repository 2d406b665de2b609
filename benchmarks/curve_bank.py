"""The curve bank: a grid of configurations of one stage, each trained once to the full budget, every
epoch's metrics kept, for the replay benchmark (benchmarks/replay.py) to play back.

    python -m benchmarks.curve_bank [--out benchmarks/results/curve_bank.parquet] [--data DIR]
                                   [--epochs 10] [--epoch-samples 120] [--repeats 4]

The stage is the `mask_space` segmenter (a per-frame U-Net, `frame_segmenter`) at input scale 0.25 (40x60)
on the embedded default synthetic set (60 train, 20 val videos; generated once) on the CPU: U-Net width 8,
the grid GRID (48 configurations), the rest fixed (FIXED); both in benchmarks/bank_space.py, the plugin
that searches the same grid in a real study. `--repeats K` trains the first K configurations again with
another seed, to record the noise. Each finished configuration is appended to the Parquet file at once (a rerun skips
those already there, so a killed build goes on); the file's metadata holds the command that made it.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.args import bad_input, count
from benchmarks.bank_space import FIXED, GRID, METRIC, MODEL
from data.files import atomic_write, run_command

OUT = Path(__file__).parent / "results" / "curve_bank.parquet"


def grid() -> list[dict[str, Any]]:
    """The grid's configurations, in a fixed order (config_id is the index)."""
    return [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]


def config_id(config: dict[str, Any]) -> int:
    """The index of a configuration of the grid (the replay maps a sampled configuration back with it)."""
    return grid().index({name: config[name] for name in GRID})


def train_curve(config: dict[str, Any], root: Path, *, epochs: int, epoch_samples: int, seed: int) -> pd.DataFrame:
    """Train one configuration to the full budget; one row per epoch."""
    from tune.training.config import RunConfig
    from tune.training.trainer import Trainer, load_data

    values = {**FIXED, **config, "epoch_samples": epoch_samples, "seed": seed}
    run = RunConfig.from_values(MODEL, values, epochs=epochs)
    device = torch.device("cpu")
    trainer = Trainer(run, load_data(run, root, device, progress=False), device)
    rows, started = [], time.perf_counter()
    for metrics in trainer.epochs():
        rows.append({**metrics, "elapsed_s": time.perf_counter() - started})
    return pd.DataFrame(rows)


def build(
    out: Path, root: Path, done: pd.DataFrame, *, epochs: int, epoch_samples: int, repeats: int, command: str
) -> pd.DataFrame:
    """The bank at `out`, carried on from `done` (the rows of a bank begun earlier; empty for a new one)."""
    plan = [(i, config, 0) for i, config in enumerate(grid())] + [(i, grid()[i], 1) for i in range(repeats)]
    for index, config, seed in plan:
        if len(done) and ((done["config_id"] == index) & (done["seed"] == seed)).any():
            continue
        curve = train_curve(config, root, epochs=epochs, epoch_samples=epoch_samples, seed=seed)
        curve = curve.assign(config_id=index, seed=seed, **{name: config[name] for name in GRID})
        done = pd.concat([done, curve], ignore_index=True)
        _write(done, out, command)
        last = curve.iloc[-1]
        print(
            f"config {index:2d} seed {seed}: {METRIC} {last[METRIC]:.4f} after {len(curve)} epochs, {last['elapsed_s']:.0f} s"
        )
    return done


def _write(frame: pd.DataFrame, out: Path, command: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"command": command.encode()})
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp)


def read_bank(path: Path) -> pd.DataFrame:
    """A curve bank this command wrote (advice and replay read it): a missing file says how to make it, a file that
    is not one is named."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no curve bank (python -m benchmarks.curve_bank makes it)")
    try:
        bank = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a curve bank ({' '.join(str(err).split())})") from None
    missing = {"config_id", "seed", "epoch", METRIC} - set(bank.columns)
    if missing:
        raise ValueError(f"{path}: not a curve bank (no column {', '.join(sorted(missing))})")
    return bank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.curve_bank",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--data", type=Path, default=None, help="data root (default: the embedded synthetic set)")
    parser.add_argument("--epochs", type=count, default=10)
    parser.add_argument("--epoch-samples", type=count, default=120)
    parser.add_argument("--repeats", type=int, default=4, help="configurations trained twice, for the noise")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.data is None:
        from data.synth.default import default_data_root

        args.data = default_data_root()
    with bad_input(parser):  # before hours of training: the data, and a bank begun earlier
        from data.layout import index_split

        index_split(args.data, "train"), index_split(args.data, "val")
        done = read_bank(args.out) if args.out.exists() else pd.DataFrame()
    command = shlex.join(["python", "-m", "benchmarks.curve_bank", *(sys.argv[1:] if argv is None else argv)])
    bank = build(
        args.out,
        args.data,
        done,
        epochs=args.epochs,
        epoch_samples=args.epoch_samples,
        repeats=args.repeats,
        command=command,
    )
    finals = bank[bank["epoch"] == bank["epoch"].max()]
    print(
        f"{args.out}: {bank['config_id'].nunique()} configurations, {METRIC} at the last epoch "
        f"{finals[METRIC].min():.4f}..{finals[METRIC].max():.4f}"
    )
    return 0


if __name__ == "__main__":
    run_command(main, stopped="the configurations trained in full are in the bank; the same command goes on")
