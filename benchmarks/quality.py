"""Quality table: val IoU of each approach trained with a fixed budget on one synthetic set.

    python -m benchmarks.quality --out runs/quality.md [--data DIR | --train 1000 --val 1000 --unlabeled 3000]
                                 [--epochs 30] [--pretrain-epochs 30] [--width 64] [--batch 32] [--device auto]
                                 [--input-scale 1.0]

Approaches: `unet` (frames 1-11 stacked), `dual_phase` (frame predictor pretrained on unlabeled + train,
then a U-Net on its frame 22), the three references from one per-frame segmenter: `copy last` (its mask
of frame 11 as the answer for frame 22), `extrapolate` (its masks of frames 9-11, each object moved along
its track, no training) and `oracle` (its mask of the true frame 22; an upper bound), and
`mask_space` (a mask predictor trained on that segmenter's masks of every frame, evaluated on its masks
of val frames 1-11), in the variants of MASK_VARIANTS (`--mask-variants` picks some).
`--segmenter CKPT` reuses a trained per-frame segmenter (a checkpoint, a trial's checkpoint folder, or a study
folder: its best's, or the segmenter its best answers from; its copy-last and extrapolate rows then come from
the mask predictor's val masks, the oracle is not re-measured) and
`--only mask_space` skips the RGB approaches.
Without --data, the set is generated (seed 0) into --workdir. Appends a row per approach to a markdown
table in --out, with the command, device and date.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from pathlib import Path

import torch

from benchmarks.args import at_least, bad_input, count, given_segmenter, output_files, segmenter_argument
from data.files import run_command
from data.layout import index_split
from data.synth.generate import SynthSpec, generate
from reports.schema import VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_IOU, VAL_ORACLE_IOU
from tune.training.config import RunConfig
from tune.training.inference import resolve_device
from tune.training.run import build_run, train_run

MASK_VARIANTS = {  # mask_space rows: key -> (row name, extra --set assignments of the mask predictor)
    "plain": ("one step, no prior", ["prior=none"]),
    "copy": ("one step, copy prior", ["prior=copy", "copy_prior=10"]),
    "motion": ("one step, motion prior", ["prior=motion", "copy_prior=10"]),
    "motion-input": ("one step, motion prior and input", ["prior=motion", "copy_prior=10", "motion_input=true"]),
    "copy-future": ("one step, copy prior, loss on masks 12-21", ["prior=copy", "copy_prior=10", "future_weight=0.5"]),
    "rollout4": (
        "rolled out 4 masks a step, copy prior, loss on masks 12-21",
        ["horizon=4", "prior=copy", "copy_prior=10", "future_weight=0.5"],
    ),
}
APPROACHES = ("unet", "dual_phase", "frame_segmenter", "mask_space")


def _common(args: argparse.Namespace) -> list[str]:
    """The settings every approach's run gets."""
    return [
        f"batch_size={args.batch}",
        f"eval_batch_size={args.batch}",
        f"input_scale={args.input_scale}",
        "compile=true" if resolve_device(args.device).type == "cuda" and not args.no_compile else "compile=false",
    ]


def _runs(args: argparse.Namespace, common: list[str]) -> dict[str, RunConfig]:
    """Each approach's run, from the command's settings (a bad one refused before any training)."""
    return {
        "unet": build_run("unet", [f"width={args.width}", *common], epochs=args.epochs),
        "dual_phase": build_run(
            "dual_phase",
            [
                f"seg_width={args.width}",
                f"predictor.width={args.predictor_width}",
                f"predictor.hidden={args.predictor_hidden}",
                *common,
            ],
            epochs=args.epochs,
        ),
        "frame_segmenter": build_run(
            "frame_segmenter",
            [f"width={args.width}", f"frames_per_video={args.frames_per_video}", *common],
            epochs=args.epochs,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--train", type=count, default=1000)
    parser.add_argument("--val", type=count, default=1000)
    parser.add_argument("--unlabeled", type=at_least(0), default=3000)
    parser.add_argument("--workdir", type=Path, default=Path("runs/quality"))
    parser.add_argument("--epochs", type=count, default=30)
    parser.add_argument("--pretrain-epochs", type=count, default=30)
    parser.add_argument("--width", type=count, default=64, help="U-Net widths (all approaches)")
    parser.add_argument("--predictor-width", type=count, default=32)
    parser.add_argument("--predictor-hidden", type=count, default=64)
    parser.add_argument("--batch", type=count, default=32)
    parser.add_argument(
        "--input-scale", type=float, default=1.0, help="every model's input scale (its logits come back to 160x240)"
    )
    parser.add_argument(
        "--frames-per-video", type=count, default=4, help="per-frame segmenter: frames per video per epoch"
    )
    parser.add_argument("--mask-variants", nargs="+", choices=list(MASK_VARIANTS), default=list(MASK_VARIANTS))
    parser.add_argument("--only", nargs="+", choices=APPROACHES, default=list(APPROACHES))
    segmenter_argument(
        parser,
        "a trained frame_segmenter to reuse: its checkpoint, a trial's checkpoint folder, or a study (its best's segmenter)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true", help="no torch.compile on CUDA (quicker to start)")
    parser.add_argument("--out", type=Path, default=Path("runs/quality.md"))
    args = parser.parse_args(argv)
    output_files(parser, out=args.out)
    with bad_input(parser):  # before hours of training: the data, the segmenter, the device and the settings
        if args.data is not None:
            for split in ("train", "val"):
                index_split(args.data, split)
        args.segmenter = given_segmenter(args)
        device = resolve_device(args.device)
        common = _common(args)
        runs = _runs(args, common)
    root = args.data
    if root is None:
        root = args.workdir / "data"
        generate(root, SynthSpec(train=args.train, val=args.val, unlabeled=args.unlabeled, seed=0))
    wanted = set(args.only)
    if "mask_space" in wanted and args.segmenter is None:
        wanted.add("frame_segmenter")  # mask_space trains on its masks
    runs = {name: run for name, run in runs.items() if name in wanted}
    rows: list[tuple[str, float, str]] = []
    try:
        _train(args, root, runs, common, rows)
    except KeyboardInterrupt:  # the rows finished are kept: written, then the command stops as Ctrl-C stops it
        if rows:
            _write(args, argv, device, rows, "stopped by Ctrl-C: the approaches finished before it")
        raise
    _write(args, argv, device, rows)
    return 0


def _train(
    args: argparse.Namespace,
    root: Path,
    runs: dict[str, RunConfig],
    common: list[str],
    rows: list[tuple[str, float, str]],
) -> None:
    """Train each approach asked for, in turn, its rows added to `rows` as it ends."""
    for name, run in runs.items():
        started = time.perf_counter()
        final = train_run(
            run,
            root,
            args.workdir / name,
            device=args.device,
            pretrain_epochs=args.pretrain_epochs if name == "dual_phase" else None,  # the one with a pretrained part
            progress=False,
        )
        minutes = (time.perf_counter() - started) / 60
        if name == "frame_segmenter":
            rows.append(("copy last (per-frame U-Net on frame 11)", final[VAL_COPY_LAST_IOU], f"{minutes:.1f}"))
            rows.append(
                (
                    "extrapolate (its masks of frames 9-11, objects moved)",
                    final[VAL_EXTRAPOLATE_IOU],
                    f"{minutes:.1f}",
                )
            )
            rows.append(("oracle (per-frame U-Net on the true frame 22)", final[VAL_ORACLE_IOU], f"{minutes:.1f}"))
        else:
            rows.append((name, final[VAL_IOU], f"{minutes:.1f}"))
    segmenter = args.segmenter or args.workdir / "frame_segmenter" / "checkpoint.pt"
    for variant in args.mask_variants if "mask_space" in args.only else []:
        started = time.perf_counter()
        label, extra = MASK_VARIANTS[variant]
        sets = [f"hid_s={args.width}", f"hid_t={4 * args.width}", *common, *extra]
        out = args.workdir / f"mask_predictor-{variant}"
        final = train_run(
            build_run("mask_predictor", sets, epochs=args.epochs),
            root,
            out,
            device=args.device,
            progress=False,
            segmenter=segmenter,
        )
        took = f"{(time.perf_counter() - started) / 60:.1f}"
        if args.segmenter is not None and variant == args.mask_variants[0]:  # the reused segmenter's copy-last
            rows.append(("copy last (the segmenter's mask of frame 11)", final[VAL_COPY_LAST_IOU], "-"))
            rows.append(("extrapolate (the segmenter's masks, objects moved)", final[VAL_EXTRAPOLATE_IOU], "-"))
        rows.append((f"mask_space, {label}", final[VAL_IOU], took))


def _write(
    args: argparse.Namespace,
    argv: list[str] | None,
    device: torch.device,
    rows: list[tuple[str, float, str]],
    note: str = "",
) -> None:
    """The table, appended to --out and printed."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        f"\n### {datetime.date.today()}, {name}{' (' + note + ')' if note else ''}\n",
        f"`python -m benchmarks.quality {shlex.join(sys.argv[1:] if argv is None else argv)}`\n",
        "| approach | val IoU | train minutes |",
        "| --- | --- | --- |",
        *[f"| {a} | {iou:.3f} | {m} |" for a, iou, m in rows],
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_command(main)
