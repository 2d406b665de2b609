"""The rules that need no training, scored on true input masks: how far the data's structure (rigid
objects moving by physics, one object per class) goes before any learning.

    python -m benchmarks.rules [--data DIR | --val 200 --seed 11] [--workdir runs/rules]

Rows: copy last (mask 11 as mask 22), extrapolate as the pipelines run it (models.motion's defaults: each
object of mask 11 moved along its centroid velocity fitted over frames 9-11, 11 frames on, slowing down by
the default retention a frame), the velocity over frames 10-11 alone with that retention and at constant
speed, constant speed over frames 7-11 (a straight line through the first and last centroid), the ceiling
of rigid moves (each object of mask 11 moved by its true displacement to frame 22), the bound of any answer
built from mask 11's objects (frame 22's true mask without the objects that entered after frame 11), and frames 10-11 with
the retention fitted to the split's true moves (least squares: what a data set of its own physics would
want). Competition IoU of mask 22 over the val split.
Without --data, a val split is generated (--val videos, --seed) into --workdir.

With --segmenter CKPT (a frame_segmenter checkpoint; or as tune.predict takes one, a trial's checkpoint folder, a
study folder or a mask_space/dynamics model's: the segmenter it answers from), the same rules are scored again on that segmenter's masks
of val frames 1-11 (as its pseudo-labels give them to the mask-space pipeline), with what bounds them there: the
segmenter's mask 22 (the oracle of issue 12's gap), each object of its mask 11 moved by the velocity fitted to the
true masks (a perfect track) and by its true displacement (a perfect move), and how it errs on frame 11
(foreground found, and the share of the pixels found whose class is right). Both on its masks as the pipelines
get them (one shape per object, models.objects) and on each pixel's most likely class.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.args import bad_input, count, folders, given_segmenter, segmenter_argument
from data.cache import decode_split
from data.classes import INPUT_FRAMES, LAST_INPUT_FRAME, NUM_CLASSES, TARGET_FRAME
from data.files import run_command
from data.metric import competition_iou
from data.synth.generate import SynthSpec, generate
from models.motion import (
    RETENTION,
    TRACKED,
    centroid_velocity,
    extrapolate_masks,
    move_objects,
    track_velocity,
    travel,
)
from models.objects import one_shape_per_object
from tune.training.checkpoints import load_model
from tune.training.tasks import segment_frames


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


def rule_rows(masks: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each rule's mask 22 (N, H, W) from masks of frames 1-11 (N, 11+, H, W), and the ceiling of rigid moves
    (each object of mask 11 moved by its true displacement to `target`, the true masks of frame 22)."""
    last = masks[:, LAST_INPUT_FRAME]
    inputs = masks[:, LAST_INPUT_FRAME - 1 : LAST_INPUT_FRAME + 1]  # frames 10-11
    first, final = TRACKED[0] + 1, TRACKED[-1] + 1
    rows = {
        "copy last (mask 11)": last,
        f"extrapolate (models.motion as the pipelines run it: velocity over frames {first}-{final}, speed kept "
        f"{RETENTION} a frame)": extrapolate_masks(masks[:, list(TRACKED)]),
        f"velocity over frames 10-11, speed kept {RETENTION} a frame": extrapolate_masks(inputs),
        "velocity over frames 10-11, constant speed (retention 1)": extrapolate_masks(inputs, retention=1.0),
    }
    ahead = TARGET_FRAME - LAST_INPUT_FRAME
    vy, vx = centroid_velocity(masks[:, LAST_INPUT_FRAME - 4], last)  # frame 7 to 11: the mean velocity
    scale = ahead / 4
    rows["constant speed over frames 7-11"] = move_objects(
        last, (vy * scale).round().long(), (vx * scale).round().long()
    )
    dy, dx = centroid_velocity(last, target)
    rows["ceiling: each object moved by its true displacement"] = move_objects(
        last, dy.round().long(), dx.round().long()
    )
    rows["bound: every object of mask 11 exactly as in frame 22 (objects that enter later: background)"] = (
        known_objects(last, target)
    )
    return rows


def known_objects(last: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`target` (N, H, W) with the classes missing from `last` (N, H, W) made background: the best any answer
    built from mask 11's objects can do."""
    present = torch.zeros(len(last), NUM_CLASSES, dtype=torch.bool, device=last.device)
    present.scatter_(1, last.flatten(1).long(), True)
    return torch.where(present.gather(1, target.flatten(1).long()).view_as(target), target, 0)


def segmenter_rows(segmented: torch.Tensor, true: torch.Tensor, oracle: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rules on a segmenter's masks of frames 1-11 (N, 11, H, W) against the true masks (N, 22, H, W), and
    what bounds them: `oracle` (its mask 22), a perfect track (velocities fitted to the true masks of frames 9-11
    moving its mask 11's objects) and the ceiling of rigid moves."""
    rows = {"oracle (the segmenter's mask 22)": oracle, **rule_rows(segmented, true[:, TARGET_FRAME])}
    vy, vx = track_velocity(true[:, list(TRACKED)])
    ahead = travel(TARGET_FRAME - LAST_INPUT_FRAME)
    rows["perfect track: velocities of the true masks of frames 9-11, its mask 11's objects moved"] = move_objects(
        segmented[:, LAST_INPUT_FRAME], (vy * ahead).round().long(), (vx * ahead).round().long()
    )
    return rows


def segmenter_errors(segmented: torch.Tensor, true: torch.Tensor) -> tuple[float, float]:
    """How a segmenter's mask errs against the true one (N, H, W): the IoU of foreground (any object) against
    background, and the share of the pixels both call foreground whose class it gets right."""
    found, real = segmented > 0, true > 0
    both = found & real
    right = float((both & (segmented == true)).sum() / both.sum()) if both.any() else math.nan  # NaN: none
    return float(both.sum() / (found | real).sum().clamp(min=1)), right


def segment_val(checkpoint: Path, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A segmenter's masks of frames 1-11 (N, 11, H, W) of videos (N, T, H, W, 3), each pixel's most likely
    class (before `one_shape_per_object`), and of frame 22 (N, H, W)."""
    run, model = load_model(checkpoint, "cpu")
    masks = segment_frames(run, model, frames, (*INPUT_FRAMES, TARGET_FRAME), torch.device("cpu"), one_shape=False)
    labelled = torch.from_numpy(masks).long()
    return labelled[:, :-1], labelled[:, -1]


def _table(title: str, rows: dict[str, torch.Tensor], target: torch.Tensor) -> None:
    print(f"| {title} | IoU of mask 22 |\n| --- | --- |")
    for name, pred in rows.items():
        print(f"| {name} | {competition_iou(pred, target):.3f} |")


def _segmenter_tables(title: str, segmented: torch.Tensor, oracle: torch.Tensor, masks: torch.Tensor) -> None:
    """The rules on a segmenter's masks of frames 1-11 and their bounds, then how it errs on frame 11."""
    print(f"\n{title}:")
    target, last = masks[:, TARGET_FRAME], LAST_INPUT_FRAME
    _table("rule (the segmenter's input masks, no training)", segmenter_rows(segmented, masks, oracle), target)
    found, right = segmenter_errors(segmented[:, last], masks[:, last])
    classes = (
        f"class right on {right:.1%} of the pixels both call foreground"
        if math.isfinite(right)
        else "no pixel that both call foreground"
    )
    print(
        f"its frame 11: IoU {competition_iou(segmented[:, last], masks[:, last]):.3f}; foreground against "
        f"background {found:.3f}; {classes}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rules", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--val", type=count, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=Path("runs/rules"))
    segmenter_argument(
        parser,
        "also score the rules on its masks (a checkpoint, a trial's checkpoint folder, or a study: its best's segmenter)",
    )
    args = parser.parse_args(argv)
    with bad_input(parser):  # refused now, not after the rules' tables
        args.segmenter = given_segmenter(args)
        root = args.data
        if root is None:
            folders(parser, workdir=args.workdir)
            root = args.workdir / f"val{args.val}-seed{args.seed}"
            generate(root, SynthSpec(val=args.val, seed=args.seed), progress=False)
        val = decode_split(root, "val", progress=False)
    assert val.masks is not None
    masks = torch.from_numpy(np.array(val.masks)).long()  # (N, 22, H, W)
    target = masks[:, TARGET_FRAME]
    started = time.perf_counter()
    extrapolate_masks(masks[:, list(TRACKED)])
    seconds = time.perf_counter() - started
    rows = rule_rows(masks, target)
    inputs = masks[:, LAST_INPUT_FRAME - 1 : LAST_INPUT_FRAME + 1]
    fitted = fit_retention(inputs, target)
    rows[f"velocity over frames 10-11, the retention fitted to these masks ({fitted:.3f})"] = extrapolate_masks(
        inputs, retention=fitted
    )
    print(f"{len(target)} val videos of {root}; extrapolate took {seconds:.2f} s on the CPU")
    _table("rule (true input masks, no training)", rows, target)
    if args.segmenter is not None:
        pixels, pixels_oracle = segment_val(args.segmenter, val.frames)
        voted, voted_oracle = one_shape_per_object(pixels), one_shape_per_object(pixels_oracle)
        _segmenter_tables(
            f"{args.segmenter}'s masks, as the pipelines get them (one shape per object)", voted, voted_oracle, masks
        )
        _segmenter_tables(f"{args.segmenter}'s masks, each pixel's most likely class", pixels, pixels_oracle, masks)
    return 0


if __name__ == "__main__":
    run_command(main)
