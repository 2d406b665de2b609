"""Generation speed of the synthetic data set, in videos per minute per core.

    python benchmarks/synth_speed.py [--videos 60] [--workers 1 2]

Generates labelled 22-frame videos (frames + mask.npy, the heaviest kind) into a temporary folder,
once per worker count, and prints wall time and videos/min/core. Target: >= 100 videos/min/core.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile

from data.synth.generate import SynthSpec, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=60, help="videos per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, MUJOCO_GL={os.environ.get('MUJOCO_GL', '(default)')}"
    )
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            report = generate(tmp, SynthSpec(train=args.videos, seed=0), workers=workers, progress=False)
        print(
            f"workers={workers}: {report.written} videos in {report.seconds:.1f}s = "
            f"{report.written * 60 / report.seconds:.0f} videos/min, {report.videos_per_minute_per_core:.0f} videos/min/core"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
