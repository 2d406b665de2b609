"""The product's main job as a user runs it, with the GPU's business sampled from outside the study:

    python -m benchmarks.main_job --out DIR [-- the tune.search flags, e.g. --space dual_phase --gpus-per-trial 0.25 --time-budget 90]

Runs `python -m tune.search` in a child process (its output passes through) while `nvidia-smi` samples the
GPU's utilisation every 0.5 s, then prints: the trials started, finished and failed per stage, and the GPU-busy
share from the first trial's start to the last trial's end, by nvidia-smi's samples and by the study's own
epochs (reports.resources.gpu_busy_share). Without nvidia-smi (the suite's CPU dry run) only the trials.

Stopped by SIGTERM or Ctrl-C (the GPU suite's step limit), it passes the signal on to the study once (which saves
its state, as `--resume` expects), and prints the same figures of what the study has written so far. The study runs
in a session of its own, so a limit's kill does not reach it: `--kill-after S` kills it (its Ray with it) where it
has not ended S seconds after the signal, so that the suite's next step has the GPU to itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from reports.resources import END, START, gpu_busy_share, trial_intervals, with_setup
from reports.schema import FINISHED, RESULTS_DIR, STAGE, STATUS, Status, read_results

SAMPLE_MS = 500
GRACE_S = 5  # how long a stopped job waits for the study to end before it prints what is written


class Stopped(Exception):
    """SIGTERM or SIGINT reached the job."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def sampled_busy(samples: Path, start: float, end: float) -> float | None:
    """The mean utilisation (0-1) of nvidia-smi's samples between two Unix times; None without samples."""
    times, values = [], []
    for line in samples.read_text().splitlines() if samples.exists() else []:
        stamp, _, value = line.partition(",")
        try:
            times.append(datetime.strptime(stamp.strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp())
            values.append(float(value) / 100)
        except ValueError:
            continue
    inside = [v for t, v in zip(times, values, strict=True) if start <= t <= end]
    return float(np.mean(inside)) if inside else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.main_job", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the study's --out; the study is named 'main'")
    parser.add_argument(
        "--kill-after", type=float, default=None, metavar="S", help="stopped: kill the study S seconds after the signal"
    )
    parser.add_argument("search", nargs=argparse.REMAINDER, help="the flags of python -m tune.search, after --")
    args = parser.parse_args(argv)
    flags = [f for f in args.search if f != "--"]
    samples = args.out / "nvidia-smi.csv"
    args.out.mkdir(parents=True, exist_ok=True)
    sampler = None
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=timestamp,utilization.gpu", "--format=csv,noheader,nounits"]
        sampler = subprocess.Popen([*query, "-lms", str(SAMPLE_MS)], stdout=samples.open("w"))
    started = time.time()
    command = [sys.executable, "-m", "tune.search", *flags, "--out", str(args.out), "--name", "main", "--no-dashboard"]
    print("$ " + " ".join(command), flush=True)
    # the study in its own session: a signal to the job's group (timeout's, a terminal's Ctrl-C) reaches it once,
    # passed on below (a second SIGTERM or SIGINT would stop it at once, without saving its state)
    study = subprocess.Popen(command, start_new_session=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    try:
        status = _status(study.wait())
        ended = f"exit {status}"
    except Stopped as stop:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)  # a second signal ends the job at once
        study.send_signal(stop.signum)
        if args.kill_after is not None:  # beside the figures below, which may take a while (not a daemon: awaited)
            threading.Thread(target=end_study, args=(study, time.monotonic() + args.kill_after)).start()
        try:
            status = _status(study.wait(GRACE_S))
        except subprocess.TimeoutExpired:
            status = 128 + stop.signum
        ended = f"stopped by {stop} (the study's results so far)"
    if sampler is not None:
        sampler.terminate()
        sampler.wait()
    print(f"\nmain job: {ended} after {time.time() - started:.0f} s", flush=True)
    figures(args.out, samples, started)
    return status


def _status(returncode: int) -> int:
    """A process's exit status as a shell gives it: 128 + N where signal N ended it (a study stopped by Ctrl-C ends
    by SIGINT, as Python does)."""
    return 128 - returncode if returncode < 0 else returncode


def end_study(study: subprocess.Popen, deadline: float) -> None:
    """Kill the study's process group (its driver, with which its local Ray ends) if it runs past `deadline`
    (time.monotonic)."""
    try:
        study.wait(max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        os.killpg(study.pid, signal.SIGKILL)
        study.wait()
        print("the study had not ended: killed (python -m tune.search --resume goes on from its last checkpoints)")


def figures(out: Path, samples: Path, started: float) -> None:
    """The trials of the study under `out` by stage and status, and its GPU-busy share."""
    trials, epochs = read_results(out / "main" / RESULTS_DIR)
    if trials.empty:
        print("no trials ran")
        return
    counts = trials.groupby([STAGE, STATUS]).size()
    print("trials by stage and status: " + ", ".join(f"{key} {n}" for key, n in counts.items()))
    print(
        f"trials started {len(trials)}, finished {int(trials[STATUS].isin(FINISHED).sum())}, failed {int((trials[STATUS] == Status.FAILED).sum())}"
    )
    epochs = with_setup(epochs, trials)  # each trial from when Ray started it
    spans = trial_intervals(epochs)
    if len(spans):
        first, last = float(spans[START].min()), float(spans[END].max())
        busy = sampled_busy(samples, first, last)
        print(f"first trial start to last trial end: {last - first:.0f} s of the job's {time.time() - started:.0f} s")
        print(f"GPU busy (nvidia-smi, every {SAMPLE_MS} ms): " + ("no samples" if busy is None else f"{busy:.1%}"))
    own = gpu_busy_share(epochs)
    print("GPU busy (the study's epochs, NVML in each trial): " + ("not recorded" if own is None else f"{own:.1%}"))


if __name__ == "__main__":
    raise SystemExit(main())
