"""`python -m tune.predict --experiment DIR [--checkpoint PATH] --data DIR --split {val,hidden} --out FILE`

Predicts the mask of frame 22 for every video of a split with the study's best checkpoint (or the one
named), and saves the (N, 160, 240) integer tensor in video-id order with torch.save, the competition's
submission format. With `--split val` it also prints the IoU exactly as the competition computes it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from data.cache import decode_split
from data.classes import N_INPUT_FRAMES, TARGET_FRAME
from data.datasets import INPUT_FRAMES, DeviceSplit, MaskClips
from data.layout import DataError
from data.metric import competition_iou
from tune.pseudo import segment_frames
from tune.recipes import load_checkpoint, load_model, predict_masks, resolve_device
from tune.results import read_results


def best_checkpoint(experiment: str | os.PathLike[str]) -> Path:
    """The best checkpoint of the last stage of a study (by its metric), from its results."""
    trials, _ = read_results(Path(experiment) / "results")
    if not len(trials):
        raise FileNotFoundError(f"no results in {Path(experiment) / 'results'}: is {experiment} a study folder?")
    stages = list(dict.fromkeys(trials["stage"]))  # in the order they ran
    final = trials[(trials["stage"] == stages[-1]) & trials["checkpoint"].notna() & trials["best_metric"].notna()]
    if not len(final):
        raise FileNotFoundError(f"no trial of stage {stages[-1]!r} in {experiment} left a checkpoint")
    mode = final["mode"].iloc[0]
    best = final.sort_values("best_metric", ascending=mode == "min", kind="stable").iloc[0]
    return Path(best["checkpoint"])


def predict(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    split: str,
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    """(predicted masks (N, H, W) uint8, video ids (N,), competition IoU for val else None)."""
    dev = resolve_device(device)
    run, model = load_model(checkpoint, dev)
    decoded = decode_split(data, split, hidden=hidden)
    if decoded.n_frames < N_INPUT_FRAMES:
        raise DataError(
            f"split {split!r} of {data} has {decoded.n_frames} frames per video, fewer than the {N_INPUT_FRAMES} inputs"
        )
    target = torch.from_numpy(np.array(decoded.masks[:, TARGET_FRAME])) if decoded.masks is not None else None
    if run.task == "mask_prediction":
        # the mask-space pipeline: its segmenter labels the input frames, the predictor takes those masks
        segmenter_path = load_checkpoint(checkpoint).get("pipeline", {}).get("segmenter")
        if not segmenter_path:
            raise ValueError(f"{checkpoint} holds a mask predictor but names no segmenter checkpoint")
        _, segmenter = load_model(segmenter_path, dev)
        inputs = torch.from_numpy(segment_frames(segmenter, decoded.frames, INPUT_FRAMES, dev)).to(dev)
        no_target = torch.zeros_like(inputs[:, :1])  # only the inputs are read
        held: DeviceSplit | MaskClips = MaskClips(inputs, inputs, no_target)
    else:
        held = DeviceSplit(decoded, dev, frames=INPUT_FRAMES)
    masks = predict_masks(run, model, held, batch_size=batch_size)
    iou = competition_iou(masks.long(), target.long()) if split != "hidden" and target is not None else None
    return masks, torch.as_tensor(decoded.ids), iou


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tune.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--experiment", type=Path, default=None, help="study folder (OUT/NAME); its best checkpoint is used"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint.pt to use instead")
    parser.add_argument("--data", type=Path, required=True, help="data root in the competition layout")
    parser.add_argument("--hidden", type=Path, default=None, help="the hidden split's folder, when shipped apart")
    parser.add_argument("--split", choices=["val", "hidden"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="file for torch.save of the (N, 160, 240) tensor")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.experiment is None:
        parser.error("give --experiment or --checkpoint")
    try:
        checkpoint = args.checkpoint or best_checkpoint(args.experiment)
        masks, ids, iou = predict(
            checkpoint, args.data, args.split, hidden=args.hidden, device=args.device, batch_size=args.batch_size
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(masks, args.out)
    print(f"checkpoint: {checkpoint}")
    print(f"wrote {args.out}: {tuple(masks.shape)} {masks.dtype}, videos {int(ids[0])}..{int(ids[-1])} in id order")
    if iou is not None:
        print(f"val IoU (competition metric, whole set): {iou:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
