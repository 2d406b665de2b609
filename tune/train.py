"""`python -m tune.train --model NAME | --from STUDY_OR_CHECKPOINT [--data DIR] [--epochs N] [--out DIR] [--set FIELD=VALUE ...]`

One run of one configuration outside any search: per-epoch metrics printed, a checkpoint written after
every epoch to OUT/checkpoint.pt. `dual_phase` runs both phases: the frame predictor is pretrained into
OUT/pretrain/checkpoint.pt, then the segmenter is fine-tuned on it. `frame_segmenter` reports the two
references, copy-last and oracle. With no --data, `--from` a study (or a trial's checkpoint in it) trains on the
study's data, and otherwise the embedded default synthetic set is used (generated on first use). `--resume`
continues from the checkpoints in OUT; without it, an OUT holding a run is refused.

`--set` takes fields of the model's config (`width=64`, for dual_phase `predictor.hidden=32`) or of the
training config (`lr=3e-4`, `batch_size=8`); `python -m tune.train --model unet --show-config` lists them.

`--from runs/NAME` trains a study's best configuration anew (its last stage's best trial; or `--from` a
checkpoint.pt): its model, every setting and its epochs, with `--epochs` and `--set` on top (longer, another seed,
...) and, for a model trained on a segmenter's masks, its segmenter. The weights are not carried over: dual_phase
pretrains its frame predictor again, as the checkpoint's predictor was pretrained (its settings and epochs, stopped
where ASHA stopped it). On the study's data it uses the videos the study used (`--unlabeled`, `--val-videos`).
"""

from __future__ import annotations

if __name__ == "__main__":  # its imports below (torch: 2 s) inside the command's Ctrl-C handling (data.files)
    from data.files import run_module

    run_module("tune.train", stopped="nothing trained yet")  # (Ctrl-C in training: main says what --out keeps)

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from data.arguments import videos
from data.files import ensure_writable, error_line
from data.layout import index_split
from data.locking import run_lock
from models.registry import list_models, model_entry
from reports.checkpoints import study_of
from reports.load import unfinished_text
from reports.records import study_data
from tune.plugins import add_plugin_argument, early_plugins, load_study_plugins, study_plugins
from tune.training.config import RunConfig
from tune.training.run import (
    CHECKPOINT_FILE,
    RUN_LOCK,
    Source,
    build_run,
    run_checkpoints,
    run_source,
    train_run,
)
from tune.training.tasks import answering_models, task_for


def main(argv: list[str] | None = None) -> int:
    try:
        given_plugins = early_plugins(argv)  # first: a plugin adds models to --model's choices
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog="python -m tune.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, choices=list_models(), help="registered model")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="STUDY_OR_CHECKPOINT",
        help="train anew the configuration of a study's best trial (a study folder) or of a checkpoint.pt",
    )
    parser.add_argument(
        "--trial", default=None, metavar="ID", help="with --from a study: this trial's configuration, not the best's"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data root in the competition layout (default: --from a study, the study's; else the embedded synthetic set)",
    )
    for flag, split, least in (("--unlabeled", "unlabeled", 0), ("--val-videos", "val", 1)):
        parser.add_argument(
            flag,
            type=videos(least),
            default=None,
            metavar="N|all",
            help=f"use the first N {split} videos only (default: --from a study on its data, the study's; else all)",
        )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: TrainConfig.epochs)")
    parser.add_argument(
        "--pretrain-epochs", type=int, default=None, help="dual_phase: phase-1 epochs (default: --epochs)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/train-MODEL; --from a study: runs/train-STUDY)",
    )
    parser.add_argument(
        "--segmenter",
        type=Path,
        default=None,
        help="mask_predictor, object_dynamics: the frame_segmenter checkpoint whose masks it trains on",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE", help="override a config field"
    )
    add_plugin_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--show-config", action="store_true", help="print the run's config and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--skip-bad-videos",
        action="store_true",
        help="leave out videos whose files are broken, each named in a warning",
    )
    args = parser.parse_args(argv)
    if args.model is not None and args.source is not None:  # one line: not a usage error, the flags are known
        print(
            "error: --model and --from: give one (--from trains the model its study or checkpoint has)", file=sys.stderr
        )
        return 2
    if args.model is None and args.source is None:
        parser.error("give --model NAME, or --from a study folder or checkpoint")
    if args.epochs is not None and args.epochs < 1:
        print(f"error: --epochs {args.epochs}: must be >= 1", file=sys.stderr)
        return 2
    if args.trial is not None and args.source is None:
        parser.error("--trial names a trial of the study given with --from")
    from_study = args.source is not None and args.source.is_dir()
    try:
        source = None if args.source is None else _source(args.source, args.trial)
        run = build_run(args.model or "", args.sets, epochs=args.epochs, base=source.run if source else None)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    except KeyError as err:  # a model the registry does not know
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    if args.show_config:
        root = args.data if args.data is not None else source.data if source is not None else None
        try:  # the data it would read, as many videos as asked (not the embedded set's: that one is made as it runs)
            if root is not None:
                with contextlib.redirect_stdout(io.StringIO()):  # (its "videos:" line: the config alone on stdout)
                    index_split(root, "train")
                    _subset(args, source, root, run)
        except (OSError, ValueError) as err:
            print(f"error: {error_line(err)}", file=sys.stderr)
            return 2
        print(json.dumps(run.to_dict(), indent=2))
        return 0
    if args.data is not None:
        data_root = args.data
    elif source is not None and source.data is not None:
        data_root = source.data
        print(f"data: {data_root} (the study's; --data for another)")
    else:
        if from_study:  # a study of the embedded set, or of data unknown
            try:
                study_data(args.source)
            except FileNotFoundError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
        from data.synth.default import default_data_root

        data_root = default_data_root(progress=not args.quiet)
        if source is not None:  # a checkpoint of no study (a tune.train run's): its data is not known
            print(
                f"data: {data_root}, the embedded synthetic set ({source.checkpoint} names no study; --data for another)"
            )
    try:
        subset = _subset(args, source, data_root, run)
    except (OSError, ValueError) as err:  # a count past the split's videos; a split that cannot be listed
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    named = args.source.resolve().name if from_study else run.model
    out = Path(args.out or Path("runs") / f"train-{named}")  # --from a study: named by the study
    segmenter = args.segmenter or (source.segmenter if source else None)
    if source is not None and source.segmenter is not None and not args.segmenter and not source.segmenter.is_file():
        why = f"{source.checkpoint} names its segmenter {segmenter}, which is not there: give --segmenter"
        print(f"error: {why}", file=sys.stderr)
        return 2
    if source is not None:
        if from_study and (snapshot := unfinished_text(args.source)):
            print(f"note: {snapshot}")
        print(f"from {source.checkpoint}: {_epochs(run)}{''.join(f', {s}' for s in args.sets)}")
        if source.pretrain is not None:
            pretrain = source.pretrain.with_epochs(args.pretrain_epochs or source.pretrain.train.epochs)
            stop = source.pretrain_stop if not args.pretrain_epochs else None
            stopped = f", stopped after epoch {stop} as the study's part was" if stop else ""
            print(f"  its pretrained part with the training settings it had there: {_epochs(pretrain)}{stopped}")
        if segmenter is not None:  # the masks it trains on (a mask_space or dynamics model's)
            print(f"  on the masks of the segmenter {segmenter}{' (--segmenter)' if args.segmenter else ', as it was'}")
    made, locked, held_it = not out.exists(), (out / RUN_LOCK).exists(), False
    try:
        ensure_writable(out)  # before an epoch is spent on a run whose checkpoint could not be saved
        with run_lock(out / RUN_LOCK, f"the run in {out}"):  # one process at a time: the same --out twice
            held_it = True  # (a lock another process holds is never removed)
            if not args.resume and (held := run_checkpoints(out)):  # an earlier run's epochs are not thrown away
                raise ValueError(
                    f"{out} already holds a run ({held[0]}); pass --resume to continue it (same settings), or "
                    "another --out"
                )
            train_run(
                run,
                data_root,
                out,
                device=args.device,
                pretrain_epochs=args.pretrain_epochs,
                resume=args.resume,
                progress=not args.quiet,
                segmenter=segmenter,
                pretrain=source.pretrain if source else None,
                pretrain_stop=source.pretrain_stop if source else None,
                subset=subset,
                on_error="skip" if args.skip_bad_videos else "raise",
            )
    except (OSError, ValueError) as err:  # bad input; read-only, full disk, no permission: the path named
        if isinstance(err, ValueError) and not _ours(err):  # torch's or a plugin's: the training failed
            code = _failed(err, out)
        else:
            print(f"error: {error_line(err)}", file=sys.stderr)
            code = 2
    except Exception as err:  # the training failed (a model's own error, out of memory): one line, its traceback kept
        code = _failed(err, out)
    except KeyboardInterrupt:  # Ctrl-C: each epoch done has its checkpoint
        given = sys.argv[1:] if argv is None else argv
        held = run_checkpoints(out)  # none before the first epoch's end: a --resume would find nothing
        again = shlex.join([*(arg for arg in given if arg != "--resume"), *(["--resume"] if held else [])])
        kept = "keeps every epoch done; go on with" if held else "holds no epoch yet; start it again with"
        print(f"\nstopped (SIGINT): {out} {kept}: python -m tune.train {again}", file=sys.stderr)
        return 130
    else:
        study = args.source if from_study else study_of(args.source) if args.source is not None else None
        plugins = [*given_plugins, *(study_plugins(study) if study is not None else [])]
        print(next_step(run.model, out / CHECKPOINT_FILE, data_root, plugins))
        (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier failure's, this run resumed past it
        return 0
    with contextlib.suppress(OSError):  # a run refused before its first epoch leaves no lock, nor empty folder, behind
        if held_it and not locked:
            (out / RUN_LOCK).unlink(missing_ok=True)
        if made:
            out.rmdir()
    return code


ERROR_FILE = "error.txt"  # in a run's folder: the traceback of its failure, until a run there ends well
PACKAGES = ("data", "models", "tune", "reports")


def _ours(err: Exception) -> bool:
    """Whether `err` was raised by this project's own code (a check that names what was wrong), not by torch's or a
    plugin's (a model's own error, which a ValueError may be too: torch's cross-entropy on a wrong batch size)."""
    frames = traceback.extract_tb(err.__traceback__)
    root = Path(__file__).resolve().parents[1]
    last = Path(frames[-1].filename).resolve() if frames else None
    return last is None or (last.is_relative_to(root) and last.relative_to(root).parts[0] in PACKAGES)


def _failed(err: Exception, out: Path) -> int:
    """Say that the run failed, in one line naming the file its traceback went to (in `out`, beside the epochs
    done), as a failed trial of a study says it; exit status 1."""
    where = out / ERROR_FILE
    try:
        where.write_text(traceback.format_exc())
        kept = f"traceback: {where}; "
    except OSError:  # (a full disk)
        kept = ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    print(f"error: the run failed: {type(err).__name__}: {first} ({kept}{out} keeps every epoch done)", file=sys.stderr)
    return 1


def next_step(model: str, checkpoint: Path, data_root: str | os.PathLike[str], plugins: Sequence[str] = ()) -> str:
    """The command that submits what a run trained: its masks of the hidden split, or for a frame segmenter
    the motion rule's answer on its masks (a frame predictor answers nothing alone: dual_phase pretrains one);
    with the `plugins` a plugin's model needs."""
    places = f"--checkpoint {shlex.quote(str(checkpoint))} --data {shlex.quote(str(data_root))}"
    command = f"python -m tune.predict {places} --split hidden --out submission.pt"
    command += "".join(f" --plugin {shlex.quote(plugin)}" for plugin in dict.fromkeys(plugins))
    task = task_for(model)
    if task.predicts_masks():
        return f"to submit it: {command}"
    if task.answer_rule:
        return f"to submit the motion rule's answer on its masks: {command} --rule {task.answer_rule}"
    return f"a {model} does not predict masks of frame 22 (models that do: {', '.join(answering_models())})"


def _subset(args: argparse.Namespace, source: Source | None, data_root: Path, run: RunConfig) -> dict[str, int]:
    """The first N videos of unlabeled and val that the run reads: as given (no more than a split has), else, on a
    study's data, the study's (--unlabeled, --val-videos); what it takes is said."""
    part = model_entry(run.model).pretrained
    reads = {*task_for(run.model).splits, *(task_for(part.model).splits if part else ())}
    on_its_data = args.data is None or (
        source is not None and source.data is not None and Path(data_root).resolve() == source.data.resolve()
    )
    study = source.subset if source is not None else {}
    subset, said = {}, []
    for key, split in (("unlabeled", "unlabeled"), ("val_videos", "val")):
        given = getattr(args, key)
        if split not in reads:
            continue
        if key in study and (given == "all" or (given is None and not on_its_data)):
            said.append(f"every {split} video{'' if given else ' of --data'} (the study took the first {study[key]})")
        value = given if given is not None else study.get(key) if on_its_data else None
        if not isinstance(value, int):
            continue
        if given is not None and value > (have := len(index_split(data_root, split))):
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag} {value}: {Path(data_root) / split} has {have} videos; {flag} all takes them all")
        subset[key] = value
        said.append(
            (f"the first {value} {split} videos" if value else f"no {split} video")
            + (" (the study's)" if given is None else "")
        )
    if said:
        print(f"videos: {', '.join(said)}")
    return subset


def _epochs(run: RunConfig) -> str:
    return f"{run.model}, {run.train.epochs} epoch{'' if run.train.epochs == 1 else 's'}"


def _source(path: Path, trial: str | None) -> Source:
    """The run `--from` (and `--trial`) name; a study's plugins are loaded first (its model may be one of theirs)."""
    if (study := path if path.is_dir() else study_of(path)) is not None:  # a trial's checkpoint: its study's too
        load_study_plugins(study)
    return run_source(path, trial)
