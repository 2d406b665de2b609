"""The mask predictor with a perfect segmenter: trained and scored with the true masks of frames 1-11 as its
inputs, so that what it adds over the rules (printed beside it each epoch: copy-last and extrapolate on the same
masks) is not hidden by a segmenter's errors. What a full-scale GPU pipeline, whose segmenter is nearly right,
can expect of its predictor.

    python -m benchmarks.true_masks --data DIR --out runs/true_masks [--epochs 6] [--set FIELD=VALUE ...]

The true masks of frames 1-11 of train and val go into a pseudo-label folder (OUT/pseudo, the layout
tune.training.pseudo_store reads; no unlabeled split, which has no masks), and `tune.train` trains the
mask_predictor on it (`--set` as for tune.train: `prior=motion`, `input_scale=0.25`, ...). The checkpoint names
no segmenter: it predicts from masks given to it, not from frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.args import count, folders
from data.cache import decode_split
from data.classes import INPUT_FRAMES
from data.files import run_command
from tune.training.inference import resolve_device
from tune.training.pseudo_store import MANIFEST
from tune.training.run import CHECKPOINT_FILE, build_run, train_run


def write_true_masks(root: Path, folder: Path) -> Path:
    """A pseudo-label folder of `root`'s true masks of frames 1-11, train and val (where `root` has one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val") if (root / "val").is_dir() else ("train",):
        decoded = decode_split(root, split, progress=False)
        if decoded.masks is None:
            raise ValueError(f"{root}: the {split} split has no masks")
        np.save(folder / f"{split}.npy", np.ascontiguousarray(np.asarray(decoded.masks)[:, list(INPUT_FRAMES)]))
        np.save(folder / f"{split}_ids.npy", np.asarray(decoded.ids))
    (folder / MANIFEST).write_text(json.dumps({"truth": str(root), "frames": list(INPUT_FRAMES)}, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.true_masks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="data root with train and val masks")
    parser.add_argument("--out", type=Path, default=Path("runs/true_masks"))
    parser.add_argument("--epochs", type=count, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args(argv)
    folders(parser, out=args.out)
    try:
        if (args.out / CHECKPOINT_FILE).exists():  # the run's result, not to be replaced by another's
            raise FileExistsError(f"--out {args.out} holds a trained model already ({CHECKPOINT_FILE}): give another")
        device = resolve_device(args.device)
        run = build_run("mask_predictor", args.assignments, epochs=args.epochs)
        pseudo = write_true_masks(args.data, args.out / "pseudo")
    except (OSError, ValueError) as err:  # a root or checkpoint not there, a folder given for a file, a bad setting
        print(f"error: {err}", file=sys.stderr)
        return 2
    train_run(run, args.data, args.out, device=str(device), pseudo=pseudo, progress=False)
    return 0


if __name__ == "__main__":
    run_command(main)
