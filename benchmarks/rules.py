"""The rules that need no training, scored on true input masks: how far the data's structure (rigid
objects moving by physics, one object per class) goes before any learning.

    python benchmarks/rules.py [--data DIR | --val 200 --seed 11] [--workdir runs/rules]

Rows: copy last (mask 11 as mask 22), extrapolate (models.motion: each object of mask 11 moved by its
centroid velocity over frames 10-11, 11 frames on), the same with the velocity over frames 7-11 (a
straight-line fit through the first and last centroid), and the ceiling of rigid moves (each object of
mask 11 moved by its true displacement to frame 22). Competition IoU of mask 22 over the val split.
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
from models.motion import centroid_velocity, extrapolate_masks, move_objects


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
    started = time.perf_counter()
    rows = {
        "copy last (mask 11)": last,
        "extrapolate: velocity over frames 10-11 (models.motion)": extrapolate_masks(
            masks[:, LAST_INPUT_FRAME - 1 : LAST_INPUT_FRAME + 1]
        ),
    }
    seconds = time.perf_counter() - started
    ahead = TARGET_FRAME - LAST_INPUT_FRAME
    four_back = masks[:, LAST_INPUT_FRAME - 4]  # frame 7: the mean velocity over frames 7-11
    vy, vx = centroid_velocity(four_back, last)
    scale = ahead / 4
    rows["velocity over frames 7-11"] = move_objects(last, (vy * scale).round().long(), (vx * scale).round().long())
    dy, dx = centroid_velocity(last, target)
    rows["ceiling: each object moved by its true displacement"] = move_objects(
        last, dy.round().long(), dx.round().long()
    )
    print(f"{len(target)} val videos of {root}; extrapolate took {seconds:.2f} s on the CPU")
    print("| rule (true input masks, no training) | IoU of mask 22 |\n| --- | --- |")
    for name, pred in rows.items():
        print(f"| {name} | {competition_iou(pred, target):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
