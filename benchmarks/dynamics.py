"""The object-dynamics model (issue 31) against the motion rule, with a learning curve, on true masks or on a
segmenter's masks:

    python -m benchmarks.dynamics --data ROOT [--more-train ROOT2 ...] [--segmenter CKPT|STUDY]
        [--train-sizes 300 1000 3000] [--samples 180000] [--epochs 6] [--set FIELD=VALUE ...] [--out table.md]

The model is the platform's (models/dynamics.py, `object_dynamics`), trained by its Trainer and task
(tune/training/tasks/object_dynamics.py) on the tracks of the masks of frames 1-11 of ROOT's train videos, then of
each --more-train root's, in order (the first N for each N of --train-sizes), each size trained on the same number
of samples (--samples, in --epochs epochs). The masks are the true ones (a pseudo-label folder of them is written
once into the cache), or with --segmenter the masks a frame_segmenter checkpoint makes of the train and val videos
(its pseudo-labels, as the dynamics space trains on them; --unlabeled N adds its masks of the first N unlabeled
videos of each root after its train videos, as the space trains on them too, and --train-sizes count them). Each row of the table is the competition IoU of mask 22 over
ROOT's val videos, all answers drawn on the same mask 11 (true or the segmenter's): copy-last, the rule, the model
at each train size, and the rigid ceiling (each object moved by its true move).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import torch

from benchmarks.args import bad_input, count, folders, given_segmenter, output_files, segmenter_argument
from data.arguments import ALL, videos
from data.cache import default_cache_dir
from data.files import run_command
from data.layout import index_split
from data.metric import competition_iou
from models.dynamics import draw_moves, rule_moves
from reports.schema import VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_IOU
from tune.training.inference import resolve_device
from tune.training.pseudo import pseudo_label
from tune.training.run import build_run
from tune.training.tasks import LoadOptions, TrainData
from tune.training.tasks.object_dynamics import ObjectMoves, ObjectVal, train_moves, val_objects
from tune.training.trainer import Trainer

SETTINGS = ["width=64", "rounds=1", "history=5", "lr=2e-3", "batch_size=64", "weight_decay=1e-4"]  # measured first


def masks_folder(
    root: Path, segmenter: Path | None, cache: Path, device: torch.device, unlabeled: int | None = 0
) -> Path:
    """The pseudo-label folder of `root`: the segmenter's masks (of the first `unlabeled` unlabeled videos too; None:
    all), or its true masks of frames 1-11 (written once)."""
    if segmenter is not None:
        return pseudo_label(segmenter, root, device=device, cache_dir=cache, progress=False, unlabeled=unlabeled)
    from benchmarks.true_masks import write_true_masks
    from tune.training.pseudo_store import MANIFEST

    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    folder = cache / "true-masks" / f"{root.name}-{key}"
    return folder if (folder / MANIFEST).exists() else write_true_masks(root, folder)


def rigid_ceiling(val: ObjectVal) -> float:
    """Each object of mask 11 moved by its true move (by the rule's where it has none: it left the picture)."""
    known = val.moves[..., 2:] > 0
    moves = torch.where(known, val.moves[..., :2], rule_moves(val.inputs))
    return competition_iou(draw_moves(val.last, moves), val.target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dynamics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a data root with labelled train and val splits")
    parser.add_argument("--more-train", type=Path, nargs="*", default=[], help="more roots whose train videos join")
    segmenter_argument(
        parser,
        "a frame_segmenter checkpoint, a trial's checkpoint folder, or a study folder (its best's segmenter: "
        "a mask_space or dynamics model's is the one it answers from); default: the true masks",
    )
    parser.add_argument(
        "--unlabeled",
        type=videos(0),
        default=0,
        metavar="N|all",
        help="with --segmenter: its masks of the first N unlabeled videos of each root train too, after the train "
        "videos, as the dynamics space trains, counted by --train-sizes (default: %(default)s: the train videos alone)",
    )
    parser.add_argument(
        "--train-sizes", type=count, nargs="+", default=[300, 1000, 3000], help="train videos (default: %(default)s)"
    )
    parser.add_argument(
        "--samples", type=count, default=180_000, help="training samples (videos) of every size (default: %(default)s)"
    )
    parser.add_argument(
        "--epochs",
        type=count,
        default=6,
        help="epochs the samples are spread over, each evaluated (default: %(default)s)",
    )
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--device", default="cpu")
    # the model's steps are many small ops: on the 2-core machine, loaded, one torch thread trained 14x faster than two
    parser.add_argument("--threads", type=count, default=1, help="torch threads on a CPU, and processes making tracks")
    parser.add_argument("--cache", type=Path, default=None, help="cache root (default: $SEGTUNE_CACHE)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    if args.out is not None:
        output_files(parser, out=args.out)
    folders(parser, cache=args.cache)
    with bad_input(parser):  # before the work: the device, and the segmenter whose masks it trains on
        device = resolve_device(args.device)
        segmenter = given_segmenter(args)
    cache = args.cache or default_cache_dir()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        roots = [args.data, *args.more_train]  # a root named twice gives its videos twice
        unlabeled = None if args.unlabeled == ALL else int(args.unlabeled) if args.segmenter else 0
        options = [
            LoadOptions(
                cache_dir=cache,
                progress=False,
                pseudo=masks_folder(r, segmenter, cache, device, unlabeled),
                unlabeled=unlabeled,
            )
            for r in roots
        ]
        val = val_objects(args.data, device, options[0])
        trains = ObjectMoves.concat([train_moves(root, device, o) for root, o in zip(roots, options, strict=True)])
        run = build_run(
            "object_dynamics",
            [*SETTINGS, f"epoch_samples={args.samples // args.epochs}", *args.assignments],
            epochs=args.epochs,
        )
    except (OSError, ValueError) as err:  # a root or checkpoint not there, a folder given for a file, a bad setting
        print(f"error: {err}", file=sys.stderr)
        return 2
    source = "a segmenter's masks" if segmenter else "true masks"
    if segmenter and segmenter != args.segmenter:  # a study's, a folder's, a model's: the checkpoint that segmented
        print(f"segmenter: {segmenter}")
    labelled = sum(len(index_split(root, "train")) for root in roots)
    more = f" (and {len(trains) - labelled} unlabeled)" if len(trains) > labelled else ""
    print(
        f"tracks of {labelled} train{more} and {len(val)} val videos ({source}): {time.perf_counter() - started:.0f} s"
    )
    rule = Trainer(run, TrainData(trains.head(1), val), device).evaluate()  # untrained: the rule
    rows = {"copy last (mask 11)": rule[VAL_COPY_LAST_IOU], "the rule (extrapolate)": rule[VAL_EXTRAPOLATE_IOU]}
    for size in args.train_sizes:
        if size > len(trains):
            print(f"{size} train videos: left out, the train roots hold {len(trains)} (--more-train for more)")
            continue
        began = time.perf_counter()
        trainer = Trainer(run, TrainData(trains.head(size), val), device)
        *_, last = trainer.epochs()
        rows[f"object_dynamics, {size} train videos ({time.perf_counter() - began:.0f} s)"] = last[VAL_IOU]
        print(f"{size} train videos: {last[VAL_IOU]:.4f}", flush=True)
    rows["rigid ceiling (each object moved by its true move)"] = rigid_ceiling(val)
    lines = [f"| answer for mask 22 ({len(val)} val videos, {source}) | competition IoU |", "| --- | --- |"]
    lines += [f"| {name} | {score:.4f} |" for name, score in rows.items()]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    settings = dict(setting.split("=", 1) for setting in [*SETTINGS, *args.assignments])  # a --set over the default
    shown = " ".join(f"{key}={value}" for key, value in settings.items())
    print(f"({time.perf_counter() - started:.0f} s; {shown}, {args.epochs} epochs)")
    return 0


if __name__ == "__main__":
    run_command(main)
