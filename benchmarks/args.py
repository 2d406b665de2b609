"""What the benchmarks' command lines share: counts that must be 1 or more, and bad input (a data root, a curve
bank, a checkpoint, a setting) told as argparse's one line with exit status 2, before the work, not as a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data.arguments import at_least
from data.files import ensure_writable, not_a

count = at_least(1)  # trials, seeds, epochs, a batch
asha_reduction = at_least(2)  # ASHA's reduction factor: 1 would keep every trial at every rung


@contextmanager
def bad_input(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Inside: reading what the command was given. A missing or unreadable file, a bad value, a model the registry
    does not know: `PROG: error: MESSAGE` (the message names the file or the value), exit 2."""
    try:
        yield
    except KeyError as err:  # the registry's own line
        parser.error(str(err.args[0]))
    except (OSError, ValueError) as err:  # DataError is a ValueError; a file that is not Parquet, an ArrowInvalid
        parser.error(" ".join(str(err).split()))


def output_files(parser: argparse.ArgumentParser, **flags: Path) -> None:
    """Before the work: each output file (flag name -> path) can be written where it is asked for; a folder, or a
    folder that cannot be made or written, is `PROG: error: --FLAG PATH: ...`, exit 2."""
    for flag, path in flags.items():
        with bad_input(parser):
            if path.is_dir():
                raise ValueError(f"--{flag} {path}: {not_a('file', path)}")
            ensure_writable(path.parent)


def segmenter_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """--segmenter (read by segmenter_checkpoint) and the --plugin its model may come from."""
    from tune.plugins import add_plugin_argument

    parser.add_argument("--segmenter", type=Path, default=None, help=help)
    add_plugin_argument(parser, default=[])


def given_segmenter(args: argparse.Namespace) -> Path | None:
    """segmenter_argument's flags read: the --plugin files or modules loaded (refused where one is not there, with
    or without --segmenter), then the --segmenter checkpoint (segmenter_checkpoint), None where none is given."""
    from tune.plugins import load_plugins, plugin_spec

    load_plugins(tuple(plugin_spec(text) for text in args.plugin))
    return None if args.segmenter is None else segmenter_checkpoint(args.segmenter)


def segmenter_checkpoint(given: Path) -> Path:
    """A --segmenter, read as tune.predict reads a checkpoint: the file itself, a trial's checkpoint_NNNNNN folder's,
    or a study folder's best; where that is a model answering from a segmenter's masks (mask_space's predictor, an
    object_dynamics model), the segmenter it answers from. Returned where it is the checkpoint of a per-frame
    segmenter (frame_segmenter, or a plugin's model of that task, as pseudo-labels take it), loaded on the CPU; a
    ValueError naming it otherwise (for bad_input), before the work. A plugin's model is found as tune.predict
    finds it: the --plugin given (given_segmenter), and those of the studies that hold the checkpoints."""
    from reports.checkpoints import best_checkpoint, study_of
    from reports.records import is_study
    from tune.plugins import load_study_plugins
    from tune.search.keys import CHECKPOINT_NAME
    from tune.training.checkpoints import load_model
    from tune.training.prediction import rule_source
    from tune.training.tasks import FrameSegmentation, task_for

    path = best_checkpoint(given) if is_study(given) else given
    path = path / CHECKPOINT_NAME if path.is_dir() and (path / CHECKPOINT_NAME).is_file() else path
    found = Path(rule_source(path)) if path.is_file() else path  # (not there: load_model names it)
    for study in dict.fromkeys((study_of(path), study_of(found))):  # (the segmenter's: another study's, at times)
        if study is not None:
            load_study_plugins(study)
    path = found
    held = load_model(path, "cpu")[0].model
    if not isinstance(task_for(held), FrameSegmentation):
        raise ValueError(f"--segmenter {given}: a {held!r} checkpoint; a frame_segmenter's is needed")
    return path


def folders(parser: argparse.ArgumentParser, **flags: Path | None) -> None:
    """Before the work: each folder flag given (name -> path) that names a file is `PROG: error: --FLAG PATH: a
    file, where a folder is needed`, exit 2 (a "Not a directory" of a path inside it, after the work began)."""
    for flag, path in flags.items():
        if path is not None and path.exists() and not path.is_dir():
            parser.error(f"--{flag} {path}: {not_a('folder', path)}")
