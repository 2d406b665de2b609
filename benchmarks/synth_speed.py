"""Generation speed of the synthetic data set, in videos per minute per core.

    python -m benchmarks.synth_speed [--videos 60] [--workers 1 2] [--phases 20]

Generates labelled 22-frame videos (frames + mask.npy, the heaviest kind) into a temporary folder,
once per worker count, and prints wall time and videos/min/core. Target: >= 100 videos/min/core.
--phases N: where one core's time goes over N videos: MuJoCo's RGB render and read-back, its segmentation
render and read-back, and the rest (physics, scene sampling, the PNG and mask files), per video.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.args import count
from data.files import run_command
from data.synth.generate import SynthSpec, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.synth_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--videos", type=count, default=60, help="videos per measurement")
    parser.add_argument("--workers", type=count, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--phases", type=count, default=0, metavar="N", help="time the phases of N videos instead")
    args = parser.parse_args(argv)
    if args.phases:
        print(phases(args.phases))
        return 0
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


def phases(videos: int) -> str:
    """Per video, on this core: the RGB pass (render + read-back), the segmentation pass, and all the rest, timed
    around MuJoCo's own render and read calls while the generator writes `videos` labelled videos."""
    from data.synth import generate as gen
    from data.synth.render import mujoco  # imported after it chose its GL back end (MUJOCO_GL)
    from data.synth.scene import SceneConfig

    spent = {"rgb": 0.0, "segmentation": 0.0}
    render, read, pass_of = mujoco.mjr_render, mujoco.mjr_readPixels, ["rgb"]

    def timed(call: Callable[..., None], *args: object) -> None:
        started = time.perf_counter()
        call(*args)
        spent[pass_of[0]] += time.perf_counter() - started

    def timed_render(rect: object, scene: mujoco.MjvScene, context: object) -> None:
        pass_of[0] = "segmentation" if scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] else "rgb"
        timed(render, rect, scene, context)

    gen._init_worker(0, SceneConfig())
    mujoco.mjr_render, mujoco.mjr_readPixels = timed_render, lambda *a: timed(read, *a)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "train").mkdir()
            started = time.perf_counter()
            for video in range(videos):
                gen._write_video((tmp, "train", video))
            total = (time.perf_counter() - started) / videos
    finally:
        mujoco.mjr_render, mujoco.mjr_readPixels = render, read
        gen._close_worker()
    each = {name: seconds / videos for name, seconds in spent.items()}
    each["the rest"] = total - sum(each.values())
    shares = ", ".join(f"{name} {value * 1000:.0f} ms ({value / total:.0%})" for name, value in each.items())
    return f"{videos} labelled videos, {total * 1000:.0f} ms a video on one core: {shares}"


if __name__ == "__main__":
    run_command(main)
