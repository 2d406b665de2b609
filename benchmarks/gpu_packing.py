"""Aggregate training throughput of 1, 2 and 4 U-Net trials packed on one GPU, against one trial alone.

    python benchmarks/gpu_packing.py [--trials 1 2 4] [--width 64] [--batch 64] [--videos 256] [--epochs 3]

Each trial is a separate process, as a Ray trial is, running the recipe (`Trainer`) on its own
device-resident data with its memory capped at 1/K of the GPU (what `--gpus-per-trial 1/K` does in the
search). Prints each packing's summed samples/s and its speed-up over one trial. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from benchmarks.train_speed import fake_split
from models.registry import model_config
from tune.training.config import RunConfig, TrainConfig
from tune.training.tasks import TrainData, task_for
from tune.training.trainer import Trainer


def _trial(args: tuple[int, int, int, int, int, float], queue: mp.Queue) -> None:
    width, batch, videos, epochs, seed, fraction = args
    torch.cuda.set_per_process_memory_fraction(fraction)
    from data.datasets import DeviceSplit

    run = RunConfig(
        "unet",
        model_config("unet", width=width),
        TrainConfig(epochs=epochs, batch_size=batch, compile=True, schedule="constant", hflip=False),
    )
    task = task_for(run.model)
    data = TrainData(
        DeviceSplit(fake_split(videos, seed), "cuda", frames=task.train_frames),
        DeviceSplit(fake_split(2, seed + 100), "cuda", frames=task.val_frames),
    )
    trainer = Trainer(run, data, "cuda")
    rates = [m["train_samples_per_s"] for m in trainer.epochs()]
    queue.put(sum(rates[1:]) / max(1, len(rates) - 1))  # the first epoch compiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--videos", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_packing needs a CUDA GPU")
    print(
        f"device: {torch.cuda.get_device_name()}; U-Net width {args.width}, batch {args.batch}, 160x240, bf16 + channels_last + compile"
    )
    ctx = mp.get_context("spawn")
    alone = None
    for k in args.trials:
        queue = ctx.Queue()
        started = time.perf_counter()
        procs = [
            ctx.Process(target=_trial, args=((args.width, args.batch, args.videos, args.epochs, i, 0.95 / k), queue))
            for i in range(k)
        ]
        for p in procs:
            p.start()
        total = sum(queue.get() for _ in procs)
        for p in procs:
            p.join()
        alone = alone or total
        print(
            f"{k} trial(s): {total:.0f} samples/s in all ({total / alone:.2f}x one trial), {time.perf_counter() - started:.0f}s wall"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
