"""Training throughput inside the recipe against a bare training loop of the same model and settings.

    python -m benchmarks.train_speed [--model unet] [--width 64] [--batch 64] [--videos 512] [--steps 30]
                                     [--device auto] [--no-compile] [--no-amp] [--no-channels-last]

Both loops train the same model on the same device-resident uint8 data (random frames and masks at
160x240), with the same optimizer, bf16 autocast, channels-last and torch.compile settings (the last
three take effect on CUDA only). The recipe runs `Trainer` epochs (the first one warms up and compiles;
its later epochs are timed, evaluation excluded); the bare loop runs `--steps` steps after a warm-up.
Prints samples/s of both and their ratio (target: recipe >= 0.9 x bare). `--model frame_predictor`
measures the phase-1 frame predictor instead (`--width` is then its encoder width).

`--stream` also times the recipe with the training split streamed from a memory-mapped file (StreamSplit,
what a trial uses for a split over the hold limit: batches read from the page cache) against the same
split held in memory (DeviceSplit), and prints their ratio (target: streamed >= 0.95 x held).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.args import bad_input, count
from data.cache import DecodedSplit
from data.classes import FRAME_HEIGHT, FRAME_WIDTH, INPUT_FRAMES, N_FRAMES
from data.datasets import DeviceSplit
from data.files import run_command
from data.streaming import StreamSplit
from models.registry import create_model, model_config, model_entry
from tune.training.config import RunConfig, TrainConfig
from tune.training.inference import resolve_device
from tune.training.tasks import TrainData, task_for
from tune.training.trainer import Trainer


def fake_split(n: int, seed: int) -> DecodedSplit:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, N_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    masks = rng.integers(0, 49, (n, N_FRAMES, FRAME_HEIGHT, FRAME_WIDTH), dtype=np.uint8)
    return DecodedSplit("train", Path("."), np.arange(n), frames, masks)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(run: RunConfig, split: DeviceSplit, device: torch.device, steps: int) -> float:
    """Samples/s of the plainest loop with the same model, optimizer and speed settings. Prints its first step's
    seconds: with compile, a cold compile of the training graph (the recipe after it finds inductor's caches warm)."""
    cfg = run.train
    fast = device.type == "cuda"
    torch.manual_seed(0)
    model = create_model(run.model, run.model_config).to(device)
    if fast and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    forward = torch.compile(model) if cfg.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    frame_task = model_entry(run.model).output == "frame"
    stacked = model_entry(run.model).input_kind == "stacked"
    gen = torch.Generator(device=device).manual_seed(0)

    def step(index: torch.Tensor) -> None:
        frames = split.gather_frames(index, INPUT_FRAMES).float() / 255
        x = frames.flatten(1, 2) if stacked else frames
        if fast and cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast and cfg.amp):
            out = forward(x)
        if frame_task:
            loss = F.mse_loss(out.frame.float(), split.gather_frames(index, (21,))[:, 0].float() / 255)
        else:
            loss = F.cross_entropy(out.float(), split.gather_masks(index, 21).long())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def in_order(k: int) -> torch.Tensor:  # the k-th batch of the split in order, wrapping round
        return torch.arange(k * cfg.batch_size, (k + 1) * cfg.batch_size, device=device) % len(split)

    first = time.perf_counter()
    try:
        step(in_order(0))  # compilation
        sync(device)
        print(f"bare loop's first step: {time.perf_counter() - first:.1f} s (with compile: a cold compile)")
    except Exception as error:  # as the recipe does (Trainer._first_compiled_step): go on uncompiled
        print(f"bare loop ran uncompiled: {type(error).__name__}: {str(error).strip()[:300]}")
        forward = model
    for k in (1, 2):  # warm-up
        step(in_order(k))
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(torch.randint(0, len(split), (cfg.batch_size,), device=device, generator=gen))
    sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - started)


def recipe_loop(run: RunConfig, data: TrainData, device: torch.device, timings: list[float] | None = None) -> float:
    """The recipe's samples/s (the median of the epochs after the first); `timings` gets each epoch's seconds."""
    trainer = Trainer(run, data, device)
    epochs = list(trainer.epochs())
    if trainer.compile_error:
        print(f"recipe ran uncompiled: {trainer.compile_error}")
    if timings is not None:
        timings.extend(m["epoch_seconds"] for m in epochs)
    rates = [m["train_samples_per_s"] for m in epochs]
    return float(np.median(rates[1:])) if len(rates) > 1 else rates[0]


def compile_cost(run: RunConfig, data: TrainData, device: torch.device, compiled: float, seconds: list[float]) -> None:
    """What compiling costs and buys (tune.search.resources.compile_pays): the compiled recipe's first epoch
    against its next ones, and the same recipe uncompiled."""
    plain = recipe_loop(replace(run, train=replace(run.train, compile=False)), data, device)
    later = float(np.median(seconds[1:])) if len(seconds) > 1 else math.nan
    print(f"compiled recipe epochs: {', '.join(f'{s:.2f}' for s in seconds)} s")
    print(
        f"compile and warm-up: {seconds[0] - later:.1f} s (first epoch against the median of the next; inductor's caches"
        " warm from the bare loop: its first step above is the cold figure)"
    )
    print(f"uncompiled recipe: {plain:.1f} samples/s; compiled / uncompiled: {compiled / plain:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="unet", choices=["unet", "frame_predictor"])
    parser.add_argument("--width", type=count, default=64)
    parser.add_argument("--batch", type=count, default=64)
    parser.add_argument("--videos", type=count, default=512, help="videos held on the device")
    parser.add_argument("--steps", type=count, default=30, help="timed steps of the bare loop")
    parser.add_argument("--epochs", type=count, default=3, help="recipe epochs (the first is warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--stream", action="store_true", help="also time the split streamed from a memory-mapped file")
    parser.add_argument(
        "--compile-cost", action="store_true", help="also time compiling: the first epoch, and the recipe uncompiled"
    )
    args = parser.parse_args(argv)
    with bad_input(parser):
        device = resolve_device(args.device)
    train = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch,
        hflip=False,
        compile=not args.no_compile,
        amp=not args.no_amp,
        channels_last=not args.no_channels_last,
        schedule="constant",
        eval_batch_size=args.batch,
    )
    run = RunConfig(args.model, model_config(args.model, width=args.width), train)
    task = task_for(run.model)
    split = DeviceSplit(fake_split(args.videos, 0), device, frames=task.train_frames)
    data = TrainData(split, DeviceSplit(fake_split(2, 1), device, frames=task.val_frames))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; {args.model} width {args.width}, batch {args.batch}, 160x240")
    print(
        f"settings: bf16 autocast {train.amp}, channels_last {train.channels_last}, compile {train.compile} (CUDA only: the first two)"
    )
    bare = bare_loop(run, split, device, args.steps)
    seconds: list[float] = []
    recipe = recipe_loop(replace(run, train=train), data, device, seconds)
    print(f"bare loop: {bare:.1f} samples/s")
    print(f"recipe:    {recipe:.1f} samples/s")
    print(f"ratio:     {recipe / bare:.2f}")
    if args.compile_cost and train.compile:
        compile_cost(replace(run, train=train), data, device, recipe, seconds)
    if args.stream:
        with tempfile.TemporaryDirectory() as folder:
            streamed_split = StreamSplit(
                [on_disk(fake_split(args.videos, 0), Path(folder))], device, frames=task.train_frames
            )
            streamed = recipe_loop(replace(run, train=train), TrainData(streamed_split, data.val), device)
        print(f"recipe, split held in memory:           {recipe:.1f} samples/s (the recipe's figure above)")
        print(f"recipe, split streamed from the cache:  {streamed:.1f} samples/s")
        print(f"streamed / held: {streamed / recipe:.3f}")
    return 0


def on_disk(split: DecodedSplit, folder: Path) -> DecodedSplit:
    """The split's arrays written to .npy files and memory-mapped back, as the decoded cache holds them."""
    arrays = {}
    for name in ("frames", "masks"):
        np.save(folder / f"{name}.npy", getattr(split, name))
        arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    return replace(split, frames=arrays["frames"], masks=arrays["masks"])


if __name__ == "__main__":
    run_command(main)
