"""The study driver: starts (or joins) Ray, runs the space's stages in order, and ends with the best
model's evaluation, the report and a summary."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path

from data.cache import decode_split
from data.files import atomic_write, error_line, os_error_line
from data.layout import has_split, index_split, shared_ids, split_signature
from data.synth.default import default_data_root, default_root_path
from reports.records import read_submission
from reports.schema import (
    REPORT_FILE,
    SKIPPED_FILE,
    STAGE,
    STUDY_FILE,
    finished_trials,
    read_results,
)
from tune.plugins import edited_plugins, load_plugins, load_study_plugins
from tune.search.clock import StudyClock, budget_seconds
from tune.search.config import SearchConfig, forget_unstarted, named, one_driver, prepare_study
from tune.search.node_check import check_nodes_see
from tune.search.ray_env import private_token, ray_defaults, stop_local_ray
from tune.search.reach import check_mlflow, check_ray_temp, check_reachable, join_cluster
from tune.search.resources import Cluster, plan_resources
from tune.search.searcher import mend_journal
from tune.search.signals import StopSignals, ray_in_own_session, sigterm_kept
from tune.search.space_check import check_space, show_space
from tune.search.spaces import SearchSpace, get_space
from tune.search.stages import DiskFull, StageInterrupted, run_stage
from tune.search.study import Study
from tune.search.summary import print_summary
from tune.search.warm_start import check_warm_start, warm_start
from tune.training.tasks import task_for


def run_search(cfg: SearchConfig, *, resume: bool = False, given: frozenset[str] = frozenset()) -> int:
    """Run (or resume) a study; returns the exit status: 1 if a stage had no successful trial. `given`:
    the study settings the user named, which a resume refuses to change."""
    started = time.time()  # a time budget counts from here
    cfg = named(cfg, resume)
    out = Path(cfg.out).absolute()
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # the folders --out makes
    try:
        with one_driver(cfg.experiment_dir, new=not resume):  # refused while another driver runs the study
            return _run_search(cfg, resume, given, started)
    except Exception:
        with contextlib.suppress(OSError):  # a refused start leaves no empty --out behind (nor a study:
            for folder in made:  # forget_unstarted); one that holds anything (another study's) stays
                folder.rmdir()
        raise


def _run_search(cfg: SearchConfig, resume: bool, given: frozenset[str], started: float) -> int:
    before = cfg.experiment_dir / STUDY_FILE  # an unstarted study's, which a new start replaces
    previous = before.read_bytes() if not resume and before.is_file() else None
    try:
        cfg = prepare_study(cfg, resume, given=given)
        study, cluster = start_study(cfg, new=not resume)
    except Exception:
        if previous is not None:  # a start refused where a study had not started (cut before its first trial):
            if not before.is_file() or before.read_bytes() != previous:  # that one kept, for its --resume
                before.write_bytes(previous)
        elif not resume:  # a start refused (a bad flag, bad data) leaves no study; Ctrl-C keeps it for --resume
            forget_unstarted(cfg.experiment_dir)
        raise
    edited = edited_plugins(study.folder, study.cfg.plugins)  # each plugin file's digest, kept for the next resume
    for spec in edited if resume else ():  # (a new study started anew where a first start ran nothing: no news)
        said = "its trials from now on run the new code, those before ran the old"
        print(f"warning: the plugin {spec} changed since this study last ran: {said}", file=sys.stderr)
    left = study.stages_left()
    with sigterm_kept():  # (SIGTERM stops the study as Ctrl-C does up to its end, its report included)
        started_ray = left and init_ray(study.cfg, cluster)
        # (a resume killed while the report was made, or of a finished study, only finishes it: no Ray to start)
        try:
            study.record_run(ended=False)
            signals = StopSignals()
            clock = StudyClock(
                study, budget_seconds(study.cfg, study.resources), started, idle=not left, fresh=not resume
            )
            status, ends, stopped = _run_stages(study, clock, signals)
        finally:  # (also where a study run from Python stops: its Ray stopped)
            if started_ray:
                stop_local_ray()
        if ends:
            finish(study, clock, stopped)
    return status


def _run_stages(study: Study, clock: StudyClock, signals: StopSignals) -> tuple[int, bool, dict[str, str]]:
    """Each stage in turn, until one stops the study: the exit status, whether the study is to be finished (its
    evaluation, submission and report: every stage ran, or one stopped it on failing trials), not interrupted, and
    the stages that stopped it (stage -> why)."""
    status, stopped = 0, dict[str, str]()
    for stage in study.space.stages:
        if not clock.start(stage):
            break
        try:
            warm_start(study, stage)
            complete = run_stage(study, stage)
            clock.ran(stage, complete)
        except (StageInterrupted, KeyboardInterrupt) as err:
            full = isinstance(err, DiskFull)  # (no signal stopped it: it ends with 1, as a failed stage does)
            print(
                f"{str(err) or 'stopped at once'}{'' if full else f' ({signals.why()})'}; nothing unfinished is marked "
                f"finished{'' if full else f'; a report of what it ran: {report_command(study.folder)}'}. "
                f"{'Free some space, then resume' if full else 'Resume'} with: {study.cfg.resume_command()}",
                file=sys.stderr,
            )
            return (1 if full else 128 + int(getattr(signal, signals.why()))), False, stopped
        except RuntimeError as err:
            stopped[stage.name] = str(err)
        else:
            trials, _ = read_results(study.results_dir)
            if not len(finished_trials(trials, stage.name)):
                if not complete and not (len(trials) and (trials[STAGE] == stage.name).any()):
                    stages = study.space.stages  # the deadline came before a trial started (Ray's start took it):
                    for later in stages[stages.index(stage) + 1 :]:  # cut, not failed; none is left to be a parent
                        clock.cut[later.name] = f"not started: stage {stage.name} started no trial"
                    break
                stopped[stage.name] = "no trial succeeded"
        if stage.name in stopped:
            print(f"stage {stage.name}: {stopped[stage.name]}", file=sys.stderr)
            status = 1
            break
    clock.end()
    return status, True, stopped


def report_command(folder: Path) -> str:
    """The command that builds a study's report, of what it ran so far where it is stopped or running."""
    return f"python -m reports.build {shlex.quote(str(folder))}"


def start_study(cfg: SearchConfig, *, new: bool) -> tuple[Study, Cluster]:
    """Everything a study checks and prepares before Ray starts: its plugins, the cluster and the plan of its
    resources, the flags a new user gets wrong, its data (decoded once on this machine, bad videos listed). A
    resumed study (not `new`) keeps the counts it ran with."""
    if new:
        load_plugins(cfg.plugins)  # (loaded already, by the command line's early_plugins)
    else:
        load_study_plugins(cfg.experiment_dir)  # those its search.json records
    cluster = cluster_of(cfg)
    study = open_study(cfg, cluster).planned() if new else open_study(cfg, cluster)
    check_mlflow(study.cfg.mlflow)
    if study.cfg.gpu_hours and not study.resources.on_gpu:  # before anything runs
        raise ValueError("--gpu-hours needs trials on GPUs, and this study's trials have none: use --time-budget")
    check_warm_start(study)
    if not new:
        study.check_results()
        mend_journal(study.folder)
    if cfg.data is None:  # the embedded set, generated once per machine, after every flag is checked
        default_data_root()
    space = study.space
    splits = splits_used(space)
    if new and study.cfg.unlabeled is not None and "unlabeled" not in splits:  # the report would say it trained on them
        raise ValueError(
            f"--unlabeled {study.cfg.unlabeled}: space {space.name} reads no unlabeled videos; leave it out"
        )
    signatures = {}  # what the splits hold (the videos the study reads): a resume refuses data that changed
    for split in splits:  # a mistyped --data, an empty split, a count past it: said before the plan is printed
        if split != "unlabeled" or (study.root / split).is_dir():  # (listing, no decoding)
            with warnings.catch_warnings():  # what it leaves out is said as the split is decoded
                warnings.simplefilter("ignore")
                entries = index_split(study.root, split)
            _check_count(study, split, len(entries), new)
            used = {"val": study.cfg.val_videos, "unlabeled": study.cfg.unlabeled}.get(split)
            signatures[split] = split_signature(entries[:used])
    if not new:
        study.check_data(signatures)  # before its plan is printed, and any decoding
    if study.cfg.address and study.stages_left():  # trials on other machines
        trial = {"CPU": study.resources.cpus_per_trial, "GPU": study.resources.gpus_per_trial}
        read = [split for split in splits if split != "unlabeled" or (study.root / split).is_dir()]
        for line in check_nodes_see(study.folder, study.root, read, trial):
            print(line, file=sys.stderr)
    print(
        f"study {study.cfg.name}: space {space.name} ({' -> '.join(s.name for s in space.stages)}), "
        f"budget {study.budget.name}, data {study.root}"
        + ("" if study.cfg.unlabeled is None else f", the first {study.cfg.unlabeled} unlabeled videos only")
        + ("" if study.cfg.val_videos is None else f", scored on the first {study.cfg.val_videos} val videos only")
    )
    print(study.resources.describe())
    print(
        f"TensorBoard: tensorboard --logdir {shlex.quote(str(study.folder))}  (every trial of every stage; Ray names one stage's copy)"
    )
    for vid, holders in shared_ids(study.root, splits).items():
        print(f"warning: video {vid} of {study.root} is in more than one split: {', '.join(holders)}", file=sys.stderr)
    skipped, checked = {}, []
    for split in splits:  # decode once on this machine, before any trial starts
        if split != "unlabeled" or (study.root / split).is_dir():
            decoded = decode_split(study.root, split, on_error=study.on_error)
            skipped[split] = {str(vid): reason for vid, reason in decoded.skipped}
            checked.append(decoded.check)
            _check_count(study, split, len(decoded), new)  # (bad videos skipped: fewer)
    if study.cfg.hidden or has_split(study.root, "hidden"):  # predicted at the end: a bad video is found now
        decode_split(study.root, "hidden", hidden=study.cfg.hidden, on_error=study.on_error)
    if any(skipped.values()):
        with atomic_write(study.folder / SKIPPED_FILE) as tmp:
            tmp.write_text(json.dumps(skipped, indent=2))
    study.record_data(signatures, new=new)  # (every check passed: a refused start leaves none)
    return dataclasses.replace(study, checked=tuple(c for c in checked if c is not None)), cluster


def _check_count(study: Study, split: str, videos: int, new: bool) -> None:
    """Refuse a new study's `--val-videos N`/`--unlabeled N` past the `videos` its split has: the report would say
    "the first N only"."""
    asked = {"val": (study.cfg.val_videos, "--val-videos"), "unlabeled": (study.cfg.unlabeled, "--unlabeled")}
    count, flag = asked.get(split, (None, ""))
    if new and count is not None and count > videos:
        raise ValueError(f"{flag} {count}: {study.root / split} has {videos} videos; leave {flag} out to use them all")


def splits_used(space: SearchSpace) -> list[str]:
    """The splits the stages of a space read (a unet study never opens unlabeled)."""
    return list(dict.fromkeys(split for stage in space.stages for split in task_for(stage.model).splits))


def cluster_of(cfg: SearchConfig) -> Cluster:
    """What the study's trials will run on: the Ray cluster it joins (--address, or a Ray already running in
    this process), else this machine, on which init_ray starts a local Ray of the same size."""
    import ray

    if cfg.address:
        init_ray(cfg)
    return Cluster.of_ray() if ray.is_initialized() else Cluster.local()


def open_study(cfg: SearchConfig, cluster: Cluster) -> Study:
    """The study's space, budget, data root (the embedded synthetic set's when it names none, which
    `start_study` generates where it is not yet) and resources, planned for `cluster`."""
    root = default_root_path() if cfg.data is None else Path(cfg.data).absolute()
    space = get_space(cfg.space)
    resources, budget = plan_resources(
        cluster,
        cfg.budget,
        gpus_per_trial=cfg.gpus_per_trial,
        cpus_per_trial=cfg.cpus_per_trial,
        max_concurrent=cfg.max_concurrent,
    )
    return Study(cfg, space, budget, root, resources, check_space(space, budget, cfg.overrides))


def describe_space(cfg: SearchConfig) -> str:
    """--show-space: the study's space as its budget sizes it on this machine, after its overrides."""
    study = open_study(cfg, Cluster.local())
    return show_space(study.space, study.budget, study.overrides, study.samples)


def init_ray(cfg: SearchConfig, cluster: Cluster | None = None) -> bool:
    """Join the study's Ray cluster, or start a local Ray of `cluster`'s size (the machine its resources were
    planned for; True); nothing when Ray is running in this process."""
    import ray

    ray_defaults()
    if cfg.address:  # said even where this process runs a Ray already (a study started from Python, a test)
        check_reachable(cfg.address)
    if ray.is_initialized():
        return False
    if cfg.address:
        join_cluster(cfg.address)
        print(f"joined the Ray cluster at {cfg.address}: {ray.cluster_resources()}")
        return False
    check_ray_temp()  # $RAY_TMPDIR (or $TMPDIR): a folder, writable, short enough for Ray's sockets
    ray_in_own_session()  # a SIGTERM to the driver's process group stops the study, not its Ray (tune/search/signals.py)
    context = ray.init(
        address="local",  # a Ray of its own, even where `ray start` runs one here (that one: --address)
        num_cpus=None if cluster is None else int(cluster.cpus),
        num_gpus=None if cluster is None else int(cluster.gpus),
        include_dashboard=cfg.dashboard,
        dashboard_host="127.0.0.1",
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    private_token()
    if cfg.dashboard and context.dashboard_url:
        print(
            f"Ray dashboard: http://{context.dashboard_url}  (it asks for Ray's auth token: "
            "`ray get-auth-token`, or the file ~/.ray/auth_token)"
        )
    return True


def _no_submission(study: Study, why: str) -> None:
    """Say why the study's submission was not written, and whether the one before, of the same checkpoint, stays."""
    if read_submission(study.folder) is None:
        print(f"no submission written: {why}", file=sys.stderr)
    else:
        kept = "the one written before from the same checkpoint stays"
        print(f"no new submission written: {why} ({kept})", file=sys.stderr)


def finish(study: Study, clock: StudyClock | None = None, stopped: dict[str, str] | None = None) -> None:
    """Evaluate the best model for the report, write its submission, mark the run ended (with the stages that
    `stopped` it), build the report, print the summary. A failure here is reported and leaves the results as they
    are."""
    from reports.build import build_report

    final = study.space.stages[-1].name  # the stage whose model answers: none of its trials, nothing to evaluate
    try:
        trials, _ = read_results(study.results_dir)
        ran = bool(len(trials)) and bool((trials[STAGE] == final).any())
    except (OSError, ValueError):  # a results file that cannot be read: the evaluation says so
        ran = True
    if not ran:
        cut = clock.cut if clock is not None else {}  # why: its own cut, else what cut or stopped the stages before
        why = cut.get(final) or "; ".join(f"stage {k}: {v}" for k, v in {**cut, **(stopped or {})}.items())
        print(
            f"no per-class IoU, gallery or submission: stage {final}, the last, ran no trial"
            + (f" ({why})" if why else ""),
            file=sys.stderr,
        )
    else:
        _answer(study)
    study.record_run(ended=True, stopped=stopped)
    try:
        report = f"report: {build_report([study.folder], study.folder / REPORT_FILE)}"
    except OSError as err:  # a full disk: the summary is still said (the report can be built again)
        report = f"no report: {error_line(err)}; once there is room: {report_command(study.folder)}"
    except Exception as err:  # a defect of the report's: the study's results, submission and summary stand
        report = f"no report: {type(err).__name__}: {err} (a defect: please report it); {report_command(study.folder)}"
    print_summary(study)
    if clock is not None:
        print(clock.summary())
    print(report, file=sys.stdout if report.startswith("report:") else sys.stderr)


def _answer(study: Study) -> None:
    """The best model evaluated on val (the report's per-class IoU and gallery), and its submission written."""
    from tune.search.evaluate import evaluate_best, write_submission

    try:
        evaluate_best(
            study.folder,
            study.root,
            device=study.resources.device,  # the study's plan: no GPU for a study whose trials had none
            on_error=study.on_error,
            val_videos=study.cfg.val_videos,
        )
    except (OSError, ValueError, RuntimeError) as err:  # (a full disk too)
        print(f"no per-class IoU or gallery: {error_line(err)}", file=sys.stderr)
    try:
        if not write_submission(
            study.folder, study.root, hidden=study.cfg.hidden, device=study.resources.device, on_error=study.on_error
        ):
            print(f"no submission written: no hidden split to predict ({study.cfg.hidden or study.root / 'hidden'})")
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        _no_submission(study, str(err))
    except OSError as err:  # a full disk, no permission: the results stay
        _no_submission(study, os_error_line(err))
