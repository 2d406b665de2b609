"""Aggregate training throughput of 1, 2 and 4 U-Net trials packed on one GPU, against one trial alone.

    python -m benchmarks.gpu_packing [--trials 1 2 4] [--width 64] [--batch 64] [--videos 256] [--epochs 3]
                                     [--device cuda|cpu] [--no-compile] [--stream-videos 14000 --epoch-samples 2000]

Each trial is a separate process, as a Ray trial is, running the recipe (`Trainer`) on its own
device-resident data with its memory capped at 1/K of the GPU (what `--gpus-per-trial 1/K` does in the
search), compiled unless --no-compile (trials of a study whose first rung is too short for compiling to pay run
so: tune.search.resources.compile_pays). Prints each packing's summed samples/s, its speed-up over one trial and
each trial's peak GPU memory. `--stream-videos N`: the trials pretrain the frame predictor instead, each streaming one shared
memory-mapped split of N videos (14,000: unlabeled + train at full size) as a full-size study's trials do,
with epochs of --epoch-samples. Needs a CUDA GPU;
`--device cpu` runs the same processes on the CPU (one thread each, no compilation): the dry run of
benchmarks/gpu_suite.sh, not a figure.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import torch

from benchmarks.args import count
from benchmarks.train_speed import fake_split
from data.cache import DecodedSplit
from data.classes import FRAME_HEIGHT, FRAME_WIDTH, N_FRAMES
from data.files import run_command
from data.streaming import StreamSplit
from models.registry import model_config
from tune.training.config import RunConfig, TrainConfig
from tune.training.tasks import TrainData, task_for
from tune.training.trainer import Trainer


@dataclass(frozen=True)
class Trial:
    width: int
    batch: int
    videos: int
    epochs: int
    seed: int
    fraction: float  # of the GPU's memory
    device: str
    stream: str | None = None  # a frames.npy of the full-size split: pretrain the frame predictor streaming it
    epoch_samples: int = 0
    compile: bool = True  # on CUDA


def _trial(trial: Trial, queue: mp.Queue) -> None:
    try:
        queue.put(_train(trial))
    except BaseException as error:  # the parent waits for one message per trial: an error is one
        queue.put(f"trial {trial.seed}: {type(error).__name__}: {error}\n{traceback.format_exc()}")
        raise SystemExit(1) from None


def _train(trial: Trial) -> tuple[float, float]:
    if trial.device == "cuda":
        torch.cuda.set_per_process_memory_fraction(trial.fraction)
    else:
        torch.set_num_threads(1)
    from data.datasets import DeviceSplit

    model = "frame_predictor" if trial.stream else "unet"
    train = TrainConfig(
        epochs=trial.epochs,
        batch_size=trial.batch,
        compile=trial.compile and trial.device == "cuda",
        schedule="constant",
        hflip=False,
        epoch_samples=trial.epoch_samples,
        seed=trial.seed,
    )
    run = RunConfig(model, model_config(model, width=trial.width), train)
    task = task_for(run.model)
    val = DeviceSplit(fake_split(2, trial.seed + 100), trial.device, frames=task.val_frames)
    if trial.stream:
        frames = np.load(trial.stream, mmap_mode="r")
        split = DecodedSplit("unlabeled+train", Path(trial.stream), np.arange(len(frames)), frames, None)
        data = TrainData(StreamSplit([split], trial.device, frames=task.train_frames), val)
    else:
        data = TrainData(DeviceSplit(fake_split(trial.videos, trial.seed), trial.device, frames=task.train_frames), val)
    trainer = Trainer(run, data, trial.device)
    rates = [m["train_samples_per_s"] for m in trainer.epochs()]
    peak = torch.cuda.max_memory_allocated() / 2**30 if trial.device == "cuda" else 0.0
    timed = rates[1:] or rates  # the first epoch warms up (and compiles)
    if trainer.compile_error:
        print(f"trial {trial.seed} ran uncompiled: {trainer.compile_error}", flush=True)
    return sum(timed) / len(timed), peak


def sparse_split(path: Path, videos: int) -> Path:
    """A frames.npy of `videos` 22-frame videos as the decoded cache lays it out, made in a moment: a sparse
    file of zeros (read through the page cache as a real one is; its bytes do not matter for speed)."""
    if not path.exists():
        array = np.lib.format.open_memmap(path, "w+", np.uint8, (videos, N_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, 3))
        del array
    return path


def _result(queue: mp.Queue, procs: list[Any]) -> Any:
    """The next trial's message: (samples/s, peak GiB), or a failure's text; a trial process that died
    without a word (killed, out of memory) is a failure too, not a wait for ever."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead and queue.empty():
                return f"trial process {dead[0].pid} died with exit code {dead[0].exitcode} and no result"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_packing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=count, nargs="+", default=[1, 2, 4])
    parser.add_argument("--width", type=count, default=64)
    parser.add_argument("--batch", type=count, default=64)
    parser.add_argument("--videos", type=count, default=256)
    parser.add_argument("--epochs", type=count, default=3)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument(
        "--stream-videos",
        type=count,
        default=0,
        help="pretrain the frame predictor instead, each trial streaming one shared split of this many videos",
    )
    parser.add_argument("--epoch-samples", type=count, default=2000, help="with --stream-videos: samples an epoch")
    parser.add_argument("--no-compile", action="store_true", help="trials uncompiled on CUDA too")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gpu_packing"))
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_packing needs a CUDA GPU (--device cpu: a dry run)")
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (dry run, one thread a trial)"
    model = "frame predictor" if args.stream_videos else "U-Net"
    speed = "float32, no compilation"
    if args.device == "cuda":
        speed = "bf16 + channels_last" + ("" if args.no_compile else " + compile")
    print(f"device: {name}; {model} width {args.width}, batch {args.batch}, 160x240, {speed}")
    stream = None
    if args.stream_videos:
        args.workdir.mkdir(parents=True, exist_ok=True)
        stream = str(sparse_split(args.workdir / f"frames-{args.stream_videos}.npy", args.stream_videos))
        print(f"frame predictor pretraining, streaming {args.stream_videos} videos, epochs of {args.epoch_samples}")
    ctx = mp.get_context("spawn")
    alone = None
    for k in args.trials:
        queue = ctx.Queue()
        started = time.perf_counter()
        procs = [
            ctx.Process(
                target=_trial,
                args=(
                    Trial(
                        args.width,
                        args.batch,
                        args.videos,
                        args.epochs,
                        i,
                        0.95 / k,
                        args.device,
                        stream,
                        args.epoch_samples if stream else 0,
                        not args.no_compile,
                    ),
                    queue,
                ),
            )
            for i in range(k)
        ]
        for p in procs:
            p.start()
        results = []
        for _ in procs:
            result = _result(queue, procs)
            if isinstance(result, str):  # one failed trial fails the packing: stop the others, say why
                for p in procs:
                    p.terminate()
                    p.join()
                raise SystemExit(f"{k} packed trials: {result}")
            results.append(result)
        total = sum(rate for rate, _ in results)
        peaks = ", ".join(f"{peak:.1f}" for _, peak in results)
        for p in procs:
            p.join()
        alone = alone or total
        print(
            f"{k} trial(s): {total:.0f} samples/s in all ({total / alone:.2f}x one trial), {time.perf_counter() - started:.0f}s wall, "
            f"peak GPU GiB a trial: {peaks}"
        )
    return 0


if __name__ == "__main__":
    run_command(main)
