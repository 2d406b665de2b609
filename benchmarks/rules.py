"""The rules that need no training, scored on true input masks: how far the data's structure (rigid
objects moving by physics, one object per class) goes before any learning.

    python benchmarks/rules.py [--data DIR | --val 200 --seed 11] [--workdir runs/rules]

Rows: copy last (mask 11 as mask 22), extrapolate as the pipelines run it (models.motion's defaults: each
object of mask 11 moved along its centroid velocity fitted over frames 9-11, 11 frames on, slowing down by
the default retention a frame), the velocity over frames 10-11 alone with that retention and at constant
speed, constant speed over frames 7-11 (a straight line through the first and last centroid), the ceiling
of rigid moves (each object of mask 11 moved by its true displacement to frame 22), and frames 10-11 with
the retention fitted to the split's true moves (least squares: what a data set of its own physics would
want). Competition IoU of mask 22 over the val split.
Without --data, a val split is generated (--val videos, --seed) into --workdir.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from data.cache import decode_split
from data.classes import LAST_INPUT_FRAME, TARGET_FRAME
from data.metric import competition_iou
from data.synth.generate import SynthSpec, generate
from models.motion import RETENTION, TRACKED, centroid_velocity, extrapolate_masks, move_objects, travel


def fit_retention(inputs: torch.Tensor, target: torch.Tensor) -> float:
    """The retention whose travel best matches the objects' true moves, by least squares: masks of frames 10-11
    (N, 2, H, W) and true masks of frame 22 (N, H, W); objects moving in frames 10-11 and present in frame 22."""
    vy, vx = centroid_velocity(inputs[:, 0], inputs[:, 1])
    dy, dx = centroid_velocity(inputs[:, 1], target)
    moving = ((vy != 0) | (vx != 0)) & ((dy != 0) | (dx != 0))
    frames = float((dy * vy + dx * vx)[moving].sum() / (vy**2 + vx**2)[moving].sum().clamp(min=1e-9))
    ahead = TARGET_FRAME - LAST_INPUT_FRAME
    low, high = 1e-3, 1.0  # travel grows with the retention: bisect for travel(ahead, r) = frames
    if frames >= travel(ahead, high):
        return high
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if travel(ahead, mid) < frames else (low, mid)
    return (low + high) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=Path("runs/rules"))
    args = parser.parse_args(argv)
    root = args.data
    if root is None:
        root = args.workdir / f"val{args.val}-seed{args.seed}"
        generate(root, SynthSpec(val=args.val, seed=args.seed), progress=False)
    val = decode_split(root, "val", progress=False)
    assert val.masks is not None
    masks = torch.from_numpy(np.array(val.masks)).long()  # (N, 22, H, W)
    target = masks[:, TARGET_FRAME]
    last = masks[:, LAST_INPUT_FRAME]
    inputs = masks[:, LAST_INPUT_FRAME - 1 : LAST_INPUT_FRAME + 1]  # frames 10-11
    first, final = TRACKED[0] + 1, TRACKED[-1] + 1
    started = time.perf_counter()
    rows = {
        "copy last (mask 11)": last,
        f"extrapolate (models.motion as the pipelines run it: velocity over frames {first}-{final}, speed kept "
        f"{RETENTION} a frame)": extrapolate_masks(masks[:, list(TRACKED)]),
    }
    seconds = time.perf_counter() - started
    rows[f"velocity over frames 10-11, speed kept {RETENTION} a frame"] = extrapolate_masks(inputs)
    rows["velocity over frames 10-11, constant speed (retention 1)"] = extrapolate_masks(inputs, retention=1.0)
    ahead = TARGET_FRAME - LAST_INPUT_FRAME
    four_back = masks[:, LAST_INPUT_FRAME - 4]  # frame 7: the mean velocity over frames 7-11
    vy, vx = centroid_velocity(four_back, last)
    scale = ahead / 4
    rows["constant speed over frames 7-11"] = move_objects(
        last, (vy * scale).round().long(), (vx * scale).round().long()
    )
    dy, dx = centroid_velocity(last, target)
    rows["ceiling: each object moved by its true displacement"] = move_objects(
        last, dy.round().long(), dx.round().long()
    )
    fitted = fit_retention(inputs, target)
    rows[f"velocity over frames 10-11, the retention fitted to these masks ({fitted:.3f})"] = extrapolate_masks(
        inputs, retention=fitted
    )
    print(f"{len(target)} val videos of {root}; extrapolate took {seconds:.2f} s on the CPU")
    print("| rule (true input masks, no training) | IoU of mask 22 |\n| --- | --- |")
    for name, pred in rows.items():
        print(f"| {name} | {competition_iou(pred, target):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
