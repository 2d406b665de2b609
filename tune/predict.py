"""`python -m tune.predict --experiment DIR [--trial ID | --checkpoint PATH] [--data DIR] --split {val,hidden} --out FILE.pt [--rule R]`

Predicts the mask of frame 22 for every video of a split with the study's best checkpoint (or the one
named), and saves the (N, 160, 240) integer tensor in video-id order with torch.save, the competition's
submission format. With `--split val` it also prints the IoU exactly as the competition computes it. The data is
the study's (`--experiment`, or the study a trial's `--checkpoint` is in) unless `--data` names another; any other
`--checkpoint` needs `--data` (a `--checkpoint` with `--data` takes nothing of its study).
`--rule extrapolate` (or `copy_last`) answers with a rule on a per-frame segmenter's masks instead: the
checkpoint is a frame_segmenter, or a mask_space predictor or dynamics model whose segmenter is used.
"""

from __future__ import annotations

if __name__ == "__main__":  # its imports below (torch: 2 s) inside the command's Ctrl-C handling (data.files)
    from data.files import run_module

    run_module("tune.predict", stopped="nothing written")

import argparse
import sys
import warnings
from pathlib import Path

from data.arguments import at_least
from data.files import ensure_writable, error_line
from data.layout import index_split
from reports.checkpoints import best_checkpoint, study_of, trial_stages
from reports.load import unfinished_text
from reports.records import is_study, read_study_settings, study_data
from tune.plugins import add_plugin_argument, early_plugins, load_study_plugins
from tune.search.keys import CHECKPOINT_NAME
from tune.training.checkpoints import torch_save
from tune.training.prediction import RULES, predict, rule_source
from tune.training.tasks.base import NoMasks

SUBMISSION_SUFFIXES = (".pt", ".pth")


def check_out(out: Path) -> None:
    """Refuse an --out that the masks cannot be written to as a submission, before they are computed."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name the file to write, e.g. {out / 'submission.pt'}")
    if out.suffix not in SUBMISSION_SUFFIXES:
        raise ValueError(f"--out {out}: the masks are written with torch.save (the competition's format); name it .pt")
    try:
        ensure_writable(out.parent)
    except OSError as err:  # its folder named, and the flag
        raise ValueError(f"--out {out}: {error_line(err)}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tune.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--experiment", type=Path, default=None, help="study folder (OUT/NAME); its best checkpoint is used"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a checkpoint.pt to use instead (or a trial's checkpoint_NNNNNN folder, which holds one)",
    )
    parser.add_argument(
        "--trial", default=None, metavar="ID", help="with --experiment: this trial's best checkpoint, not the best's"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="data root in the competition layout (default: the --experiment's)"
    )
    parser.add_argument(
        "--hidden",
        type=Path,
        default=None,
        help="the hidden split's folder, when shipped apart (default: the --hidden the study was given)",
    )
    parser.add_argument(
        "--split",
        choices=["val", "hidden"],
        required=True,
        help="hidden: the submission (the videos of 11 frames); val: the labelled videos, scored (the val IoU printed)",
    )
    parser.add_argument("--out", type=Path, required=True, help="a .pt file: torch.save of the (N, 160, 240) tensor")
    parser.add_argument(
        "--skip-bad-videos",
        action="store_true",
        help="val: leave broken videos out; hidden: predict them from the frames that decode (each named)",
    )
    parser.add_argument(
        "--rule",
        choices=list(RULES),
        default=None,
        help="answer with a rule on the segmenter's masks instead of the model (the checkpoint is a frame_segmenter "
        "or names one): copy_last (its mask of frame 11) or extrapolate (each object moved along its track)",
    )
    add_plugin_argument(parser)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--batch-size", type=at_least(1), default=32, help="videos predicted at once (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.experiment is None:
        parser.error("give --experiment or --checkpoint")
    if args.checkpoint is not None and args.checkpoint.is_dir():  # a trial's checkpoint_NNNNNN folder
        if not (args.checkpoint / CHECKPOINT_NAME).is_file():
            hint = " (a study's folder: give it as --experiment)" if is_study(args.checkpoint) else ""
            print(
                f"error: --checkpoint {args.checkpoint} is a folder, where a checkpoint file is needed{hint}",
                file=sys.stderr,
            )
            return 2
        args.checkpoint = args.checkpoint / CHECKPOINT_NAME
    if args.trial is not None and (args.experiment is None or args.checkpoint is not None):
        parser.error("--trial names a trial of the study given with --experiment (and no --checkpoint)")
    # a trial's checkpoint without --data: its study's data, hidden folder and plugins; with --data, it stands alone
    study = args.experiment or (study_of(args.checkpoint) if args.checkpoint and args.data is None else None)
    if args.data is None and study is None:
        parser.error(
            "give --data: the data root to predict (the study's is the default with --experiment, or a --checkpoint "
            "of a trial in its study folder)"
        )
    try:
        early_plugins(argv)  # the checkpoint's model may be a plugin's; a study's plugins are in its search.json
        if study is not None:
            load_study_plugins(study)
        check_out(args.out)  # before the predictions are computed
        # the study as it was when its best was taken (a running study's best may change while this predicts)
        snapshot = unfinished_text(args.experiment) if args.checkpoint is None else None
        checkpoint = args.checkpoint or best_checkpoint(args.experiment, args.trial)
        hidden, data, studied = args.hidden, args.data, {}
        if study is not None:
            studied = read_study_settings(study)
            hidden = studied.get("hidden") if hidden is None else hidden
            if data is None and (data := study_data(study)) is None:  # a study of the embedded set
                from data.synth.default import default_data_root

                data = default_data_root(progress=False)
        masks, ids, iou = predict(
            checkpoint,
            data,
            args.split,
            hidden=hidden,
            device=args.device,
            batch_size=args.batch_size,
            on_error="skip" if args.skip_bad_videos else "raise",
            rule=args.rule,
        )
        torch_save(masks, args.out)
    except (OSError, ValueError) as err:  # bad input; read-only, full disk, no permission: the path named
        line = error_line(err)
        if isinstance(err, NoMasks) and args.trial is not None:  # said of the trial given, and of the study's answer
            stage, final = trial_stages(args.experiment, args.trial)
            rule = f", or add --rule {err.rule} to answer with the rule on its masks" if err.rule else ""
            line = (
                f"--trial {args.trial} is of stage {stage}, a {err.model!r} that predicts no mask 22: give a trial of "
                f"stage {final} (the study's answers){rule}"
            )
        print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyError as err:  # a model the registry does not know
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    if snapshot:
        print(f"note: {snapshot}")
    if args.rule and (source := rule_source(checkpoint)) != str(checkpoint):
        print(f"checkpoint: {checkpoint}, whose segmenter {source} answered (the rule {args.rule} on its masks)")
    else:
        print(f"checkpoint: {checkpoint}" + (f" (the rule {args.rule} on the segmenter's masks)" if args.rule else ""))
    print(f"data: {data}" + ("" if args.data else " (the study's; --data for another)"))
    print(f"wrote {args.out}: {tuple(masks.shape)} {masks.dtype}, videos {int(ids[0])}..{int(ids[-1])} in id order")
    if iou is not None:
        scored = studied.get("val_videos") if study is not None and args.data is None else None
        first = "its first video" if scored == 1 else f"its first {scored} videos"
        subset = f"; the study scored on {first} (--val-videos)" if scored else ""
        with warnings.catch_warnings():  # its stray entries were said as the split was decoded
            warnings.simplefilter("ignore")
            total = len(index_split(data, "val"))  # less the bad videos --skip-bad-videos left out, each named
        videos = (
            f"whole set of {total} video{'s' * (total != 1)}"
            if total == len(ids)
            else f"{len(ids)} of its {total} videos"
        )
        print(f"val IoU (competition metric, {videos}{subset}): {iou:.4f}")
    return 0
