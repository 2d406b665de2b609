"""`python -m tune.search --space SPACE [--data DIR] [--samples N] [--budget smoke|default] ...` (the spaces: below)

The product's main job: a staged hyperparameter search with Ray Tune, the Optuna TPE searcher and the
ASHA scheduler. Each stage of the space is one Ray Tune experiment in OUT/NAME/STAGE; results go to
OUT/NAME/results/*.parquet while the study runs; the Optuna studies to OUT/NAME/optuna.journal
(`optuna-dashboard OUT/NAME/optuna.journal` opens them). `--resume` continues a killed study.
At its end the study has OUT/NAME/report.html (`python -m reports.build OUT/NAME [OUT/OTHER ...]` makes one
again, or one of several studies side by side), OUT/NAME/submission.pt where its data has a hidden split, and a
summary naming its best checkpoint; `python -m tune.predict --experiment OUT/NAME` and `python -m tune.train --from
OUT/NAME` take the study's folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
import textwrap

from data.arguments import ALL, at_least, videos
from data.files import error_line
from data.synth.default import DEFAULT_SPEC, default_synth_dir
from reports.schema import RESULTS_DIR
from tune.plugins import add_plugin_argument, early_plugins, load_study_plugins
from tune.search.budget import BUDGETS, budget_for
from tune.search.config import CHANGEABLE, SearchConfig, prepare_study
from tune.search.deadline import parse_duration
from tune.search.driver import describe_space, report_command, run_search
from tune.search.overrides import KINDS, overrides_from_file
from tune.search.spaces import get_space, list_spaces
from tune.training.tasks.base import hold_env_gb

STUDY_FLAGS = (
    "space",
    "data",
    "hidden",
    "samples",
    "budget",
    "gpus_per_trial",
    "cpus_per_trial",
    "max_concurrent",
    "seed",
    "unlabeled",
    "val_videos",
    "skip_bad_videos",
    "overrides",
    "plugins",
    "warm_start",
    "warm_start_best",
    "mlflow",
    "retries",
    "fail_trials",
)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _number(text: str) -> float:
    """A finite number (nan and inf pass float() and every "< 0" check, then leave trials pending for ever)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _budgets_text() -> str:
    """Each budget's trials and epochs, on a GPU and on CPUs only, for --help (--show-space says the rest)."""
    sized = {name: (budget_for(name, gpu=True), budget_for(name, gpu=False)) for name in BUDGETS}
    return "; ".join(
        f"{name} {gpu.samples} trials a stage of up to {gpu.max_epochs} epochs with a GPU, "
        + (
            "the same"
            if (cpu.samples, cpu.max_epochs) == (gpu.samples, gpu.max_epochs)
            else f"{cpu.samples} trials of up to {cpu.max_epochs} epochs"
        )
        + " on CPUs only"
        for name, (gpu, cpu) in sized.items()
    )


def _spaces_text() -> str:
    """The spaces --space takes (a plugin's too), each with its stages and what it searches, for --help."""
    lines = ["spaces (--show-space prints one's parameters):"]
    for name in list_spaces():
        space = get_space(name)
        head = f"{name} ({', '.join(stage.name for stage in space.stages)})"
        lines += textwrap.wrap(
            f"{head}: {space.description}" if space.description else head,
            110,
            initial_indent="  ",
            subsequent_indent="      ",
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    defaults = SearchConfig()
    try:
        plugins = early_plugins(argv)  # first: a plugin adds spaces to --space's choices
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog="python -m tune.search",
        description=__doc__,
        epilog=_spaces_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    given = argparse.SUPPRESS  # the study's settings: only those on the command line reach the namespace
    parser.add_argument(
        "--space", default=given, choices=list_spaces(), help=f"search space (default: {defaults.space})"
    )
    embedded = DEFAULT_SPEC
    parser.add_argument(
        "--data",
        default=given,
        help="data root in the competition layout: train/, val/, unlabeled/ and hidden/ of video_N folders, each of "
        "image_0.png .. image_21.png (hidden: .. image_10.png) and, in train and val, mask.npy (default: the embedded "
        f"synthetic set, {embedded.train} train, {embedded.val} val, {embedded.unlabeled} unlabeled and "
        f"{embedded.hidden} hidden videos, generated once into {default_synth_dir()} ($SEGTUNE_SYNTH))",
    )
    parser.add_argument(
        "--hidden",
        default=given,
        help="the hidden split's folder, when shipped apart: saved in search.json, where tune.predict --experiment "
        "finds it for the submission",
    )
    parser.add_argument("--samples", type=int, default=given, help="trials per stage (default: the budget's)")
    parser.add_argument(
        "--budget", default=given, choices=BUDGETS, help=f"study size (default: {defaults.budget}): {_budgets_text()}"
    )
    parser.add_argument(
        "--out",
        default=defaults.out,
        help="folder for experiments, each in OUT/NAME (default: %(default)s, in the current folder; shared storage "
        "with --address)",
    )
    parser.add_argument("--name", default=None, help="experiment name (default: SPACE-TIME)")
    parser.add_argument(
        "--gpus-per-trial",
        type=_number,
        default=given,
        help="GPUs per trial; fractions pack trials (default: 1 with a GPU, else 0)",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=_number,
        default=given,
        help="CPUs per trial, and its torch threads (default: a node's CPUs shared among the trials that fit on it at once)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=at_least(0),
        default=given,
        metavar="N",
        help="trials at once (default 0: as many as the cluster's CPUs and GPUs allow); 1: one at a time, so that "
        "a seed gives the same trials",
    )
    parser.add_argument(
        "--unlabeled",
        type=videos(0),
        default=given,
        metavar="N|all",
        help="train on the first N unlabeled videos only, for a quick study (default: all; 0: none)",
    )
    parser.add_argument(
        "--val-videos",
        type=videos(1),
        default=given,
        metavar="N|all",
        help="score trials (and the report's best model) on the first N val videos only, for a quick study: each "
        "epoch evaluates the whole val split otherwise (default: all)",
    )
    parser.add_argument(
        "--skip-bad-videos",
        action="store_true",
        default=given,
        help="leave out videos whose files are broken (each named in a warning, the study's folder and report) "
        "instead of failing",
    )
    for kind, value, example, what in (
        ("set", "VALUE", "width=32", "fix a parameter (it is not searched)"),
        ("range", "LOW:HIGH", "lr=1e-4:3e-3", "search a number in this range"),
        ("choices", "A,B,...", "batch_size=16,32", "search among these choices"),
    ):
        parser.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar=f"[STAGE.]NAME={value}",
            help=f"{what}, in every stage that has it or in STAGE only; repeatable (e.g. --{kind} {example})",
        )
    parser.add_argument(
        "--overrides",
        dest="overrides_file",
        metavar="FILE",
        help="a TOML file of overrides: tables [set], [range], [choices] (docs/search.md)",
    )
    add_plugin_argument(parser, default=given)
    parser.add_argument(
        "--mlflow",
        default=given,
        metavar="URI",
        help="also log every trial to MLflow (a tracking server, or a folder for a local file store)",
    )
    parser.add_argument("--show-space", action="store_true", help="print the space after overrides, and exit")
    parser.add_argument(
        "--warm-start",
        default=given,
        metavar="OLD",
        help="start TPE from the finished trials of the earlier study OLD (a folder OUT/NAME) of the same space",
    )
    parser.add_argument(
        "--warm-start-best",
        type=at_least(0),
        default=given,
        metavar="K",
        help="with --warm-start: run OLD's best K configurations again first",
    )
    parser.add_argument(
        "--time-budget",
        type=_duration,
        default=None,
        metavar="T",
        help="stop starting trials after T (6h, 90m, 1h30m, seconds), shared among the stages; running trials "
        "end at their next epoch; --resume completes a cut study, with a new budget if given",
    )
    parser.add_argument(
        "--gpu-hours",
        type=_number,
        default=None,
        metavar="H",
        help="a budget in GPU-hours: the time budget is H over the cluster's GPUs",
    )
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="join an existing Ray cluster (default: $RAY_ADDRESS, which `ray job submit` sets; none: a local Ray)",
    )
    parser.add_argument(
        "--retries",
        type=at_least(0),
        default=given,
        metavar="N",
        help="run a trial whose process ended under it (its node left the cluster, the OOM killer) again from its last "
        "checkpoint, up to N times; one failing on its own error fails again at once, for good (default: 0); a --resume "
        "may change it, for the trials it has left",
    )
    parser.add_argument("--resume", action="store_true", help="continue the study OUT/NAME after a crash or kill")
    parser.add_argument("--seed", type=int, default=given, help=f"TPE sampler seed (default: {defaults.seed})")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    parser.add_argument("--fail-trials", type=int, nargs="*", default=given, help=argparse.SUPPRESS)
    args = vars(parser.parse_args(argv))
    settings = {key: args[key] for key in STUDY_FLAGS if key in args}
    for key in ("unlabeled", "val_videos"):
        if settings.get(key) == ALL:  # every video: the study's None
            settings[key] = None
    if "fail_trials" in settings:
        settings["fail_trials"] = tuple(settings["fail_trials"])
    if plugins:
        settings["plugins"] = plugins
    try:
        from_file = overrides_from_file(args["overrides_file"]) if args["overrides_file"] else []
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    overrides = from_file + [f"{kind} {text}" for kind in KINDS for text in args[kind]]
    if overrides:
        settings["overrides"] = tuple(overrides)
    try:
        cfg = dataclasses.replace(
            defaults,
            **settings,
            out=args["out"],
            name=args["name"],
            address=args["address"],
            dashboard=not args["no_dashboard"],
            time_budget_s=args["time_budget"],
            gpu_hours=args["gpu_hours"],
        )
    except ValueError as err:
        print(f"error: {_naming_file(str(err), from_file, args['overrides_file'])}", file=sys.stderr)
        return 2
    try:
        if args["show_space"]:
            if args["resume"]:  # the study's space, as saved (settings that contradict it refused, as a resume does;
                shown = frozenset(settings) - CHANGEABLE  # one it may change is left as it is)
                cfg = prepare_study(cfg, resume=True, given=shown)
                load_study_plugins(cfg.experiment_dir)
            print(describe_space(cfg))
            return 0
        hold_env_gb(0.0)  # a bad $SEGTUNE_HOLD_GB refused here, not by every trial
        return run_search(cfg, resume=args["resume"], given=frozenset(settings))
    except KeyboardInterrupt:  # outside a stage's experiment (decoding, the report): nothing half-written stays
        unnamed = "" if cfg.name else " (NAME: the study folder it printed)"
        ran = cfg.name is not None and (cfg.experiment_dir / RESULTS_DIR).is_dir()  # (a stop as its end evaluated)
        report = f"; a report of what it ran: {report_command(cfg.experiment_dir)}" if ran else ""
        print(f"interrupted{report}; resume with: {cfg.resume_command(cfg.name or 'NAME')}{unnamed}", file=sys.stderr)
        return 130
    except (OSError, ValueError, KeyError) as err:  # bad input; read-only, full disk, no permission: the path named
        message = str(err.args[0]) if isinstance(err, KeyError) else error_line(err)
        print(f"error: {_naming_file(message, from_file, args['overrides_file'])}", file=sys.stderr)
        return 2


def _naming_file(message: str, from_file: list[str], path: str | None) -> str:
    """An override's error ("--set widht=8: ..."), naming the --overrides file where the override came from one."""
    for text in from_file:
        kind, _, assignment = text.partition(" ")
        if re.match(rf"--{kind} {re.escape(assignment.partition('=')[0].strip())}[=: ]", message):
            return f"{message} (in --overrides {path})"
    return message
