"""The real data set's size on this machine: a full-size layout, decoded, and smoke studies on it, with
their wall time and peak memory beside the same at a tenth of the size.

    python -m benchmarks.full_scale [--out /tmp/full_scale] [--fraction 1.0] [--spaces dual_phase mask_space]
                                    [--source 24] [--unlabeled N] [--val-videos N] [--skip-tenth] [--resume]

The layout (1,000 train / 1,000 val / 13,000 unlabeled / 2,000 hidden videos, times --fraction) is built
cheaply: `--source` videos per split are generated once, and every video folder of the big layout holds
hard links to the files of one of them (the decoded cache, keyed by files, decodes each as a video of its
own). Then each split is decoded (all cores), and `python -m tune.search --budget smoke` runs each space,
first on the layout at --fraction / 10, then at --fraction.

Memory is what the system cannot take back: anonymous and shared-memory PSS (Pss_Anon + Pss_Shmem of
/proc/PID/smaps_rollup) summed over the study's processes (the driver and every descendant: Ray's GCS,
raylet, workers, object store), sampled every 0.5 s; pages of the memory-mapped cache are page cache the
system can drop and are not counted. Target (issue 11): each full-size study's peak at most 1.2x the
tenth-size one's and under 6 GiB on a 2-core, 24 GiB machine.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.args import count, folders
from data.cache import decode_split
from data.files import run_command
from data.synth.generate import SynthSpec, generate
from tune.search.driver import splits_used
from tune.search.spaces import get_space, list_spaces

SIZES = {"train": 1000, "val": 1000, "unlabeled": 13000, "hidden": 2000}
FIRST_ID = {"train": 0, "val": 1000, "unlabeled": 2000, "hidden": 15000}
ROOT = Path(__file__).resolve().parents[1]


def build_layout(source: Path, target: Path, fraction: float, per_split: int) -> dict[str, int]:
    """A layout of SIZES x fraction videos hard-linked from `per_split` source videos a split."""
    counts = {}
    for split, size in SIZES.items():
        n = max(1, round(size * fraction))
        counts[split] = n
        sources = sorted((source / split).iterdir(), key=lambda p: int(p.name.split("_")[1]))[:per_split]
        for k in range(n):
            folder = target / split / f"video_{FIRST_ID[split] + k}"
            if folder.exists():
                continue
            tmp = folder.with_name(f".{folder.name}.partial")
            tmp.mkdir(parents=True, exist_ok=True)
            for file in sources[k % len(sources)].iterdir():
                if not (tmp / file.name).exists():
                    os.link(file, tmp / file.name)
            tmp.rename(folder)
    return counts


def descendants(pid: int) -> list[int]:
    """A process and all its descendants, from /proc/PID/stat's parent ids."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, up in parent.items() if up in frontier]
        tree += frontier
    return tree


def memory_of_tree(pid: int) -> dict[str, int]:
    """Pss_Anon + Pss_Shmem bytes of a process and each of its descendants, by "pid name"."""
    by_process = {}
    for proc in descendants(pid):
        try:
            text = Path(f"/proc/{proc}/smaps_rollup").read_text()
            name = Path(f"/proc/{proc}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        total = 0
        for line in text.splitlines():
            if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                total += int(line.split()[1]) * 1024
        by_process[f"{proc} {name[:70]}"] = total
    return by_process


def run_study(
    space: str, data: Path, out: Path, name: str, parts: list[str], resume: bool = False
) -> tuple[float, int, int]:
    """(wall seconds, peak bytes, exit status) of a smoke study: a fresh one, or the stopped OUT/NAME resumed.
    `parts`: the study's flags for using part of a split (--unlabeled N, --val-videos N)."""
    if resume:
        cmd = [sys.executable, "-m", "tune.search", "--out", str(out), "--name", name, "--resume", "--no-dashboard"]
    else:
        cmd = [sys.executable, "-m", "tune.search", "--space", space, "--budget", "smoke", "--data", str(data)]
        cmd += ["--out", str(out), "--name", name, "--no-dashboard"]
        cmd += parts
        shutil.rmtree(out / name, ignore_errors=True)  # a fresh study each run (the decoded cache is kept)
    env = {**os.environ, "SEGTUNE_CACHE": str(out / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, at_peak = 0, {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, at_peak
        while not done.is_set():
            now = memory_of_tree(proc.pid)
            if sum(now.values()) > peak:
                peak, at_peak = sum(now.values()), now
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, err = proc.communicate()
    except KeyboardInterrupt:  # a SIGINT to this command alone (a terminal's Ctrl-C reaches the study too)
        proc.send_signal(signal.SIGINT)  # the study stops as its own Ctrl-C stops it: resumable (--resume)
        proc.communicate()
        raise
    finally:
        done.set()
    sampler.join()
    if proc.returncode:
        print(err[-2000:], file=sys.stderr)
    print(f"  {name} at its peak ({peak / 2**30:.2f} GiB), processes over 50 MiB:")
    for what, size in sorted(at_peak.items(), key=lambda kv: -kv[1]):
        if size > 50 * 2**20:
            print(f"    {size / 2**30:6.2f} GiB  {what}")
    return time.perf_counter() - started, peak, proc.returncode


def fraction_of_sizes(text: str) -> float:
    """An argparse type: a fraction of the real sizes, > 0 (1: the real set; more: a larger one)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.full_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/full_scale"))
    parser.add_argument(
        "--fraction", type=fraction_of_sizes, default=1.0, help="of the real sizes (1: 1,000/1,000/13,000/2,000)"
    )
    parser.add_argument("--spaces", nargs="+", default=["dual_phase", "mask_space"], choices=list_spaces())
    parser.add_argument("--source", type=count, default=24, help="generated videos per split, hard-linked over")
    parser.add_argument("--unlabeled", type=count, default=None, help="passed to the studies (--unlabeled N)")
    parser.add_argument("--val-videos", type=count, default=None, help="passed to the studies (--val-videos N)")
    parser.add_argument("--skip-tenth", action="store_true", help="run --fraction only (the tenth measured before)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="finish the stopped studies of --out at --fraction (implies --skip-tenth; their time and memory "
        "are those of the resumed part)",
    )
    args = parser.parse_args(argv)
    folders(parser, out=args.out)
    if args.unlabeled is not None and (
        none := [s for s in args.spaces if "unlabeled" not in splits_used(get_space(s))]
    ):
        parser.error(
            f"--unlabeled {args.unlabeled}: no stage of {', '.join(none)} reads unlabeled videos (its study refuses it)"
        )
    args.skip_tenth = args.skip_tenth or args.resume
    parts = [
        x
        for flag, n in (("--unlabeled", args.unlabeled), ("--val-videos", args.val_videos))
        if n is not None
        for x in (flag, str(n))
    ]
    source = args.out / "source"
    generate(source, SynthSpec(train=args.source, val=args.source, unlabeled=args.source, hidden=args.source, seed=7))
    rows = []
    for fraction in (args.fraction,) if args.skip_tenth else (args.fraction / 10, args.fraction):
        root = args.out / f"root-{fraction:g}"
        started = time.perf_counter()
        counts = build_layout(source, root, fraction, args.source)
        print(f"layout {root}: {counts} in {time.perf_counter() - started:.1f} s")
        os.environ["SEGTUNE_CACHE"] = str(args.out / "decoded")
        for split in SIZES:
            started = time.perf_counter()
            decode_split(root, split)
            print(f"  decoded {split}: {time.perf_counter() - started:.1f} s")
        for space in args.spaces:
            name = f"{space}-{fraction:g}"
            seconds, peak, status = run_study(space, root, args.out, name, parts, args.resume)
            rows.append((space, fraction, seconds, peak, status))
            print(f"  {space} smoke study: {seconds:.0f} s, peak {peak / 2**30:.2f} GiB, exit {status}")
    print("\n| space | fraction | wall s | peak GiB (Pss_Anon + Pss_Shmem) | exit |")
    print("| --- | --- | --- | --- | --- |")
    for space, fraction, seconds, peak, status in rows:
        print(f"| {space} | {fraction:g} | {seconds:.0f} | {peak / 2**30:.2f} | {status} |")
    for space in args.spaces:
        if args.skip_tenth or any(r[4] for r in rows if r[0] == space):
            print(f"{space}: a study failed or the tenth was skipped; no ratio")
            continue
        small, big = (r[3] for r in rows if r[0] == space)
        print(f"{space}: full / tenth peak = {big / max(small, 1):.2f} (target <= 1.2, and < 6 GiB)")
    return 1 if any(status for *_, status in rows) else 0  # a study that failed: its error is printed above


if __name__ == "__main__":
    run_command(main)
