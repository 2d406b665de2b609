"""One stage of a study, in small steps: the parent trials it builds on, the pseudo-labels it trains on,
and the Ray Tune experiment, built new or restored after a crash."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from ray import tune

from data.cache import default_cache_dir
from data.files import atomic_write, sigint_restored, size_text
from reports.schema import CHECKPOINT, STAGE, STAGE_DONE, STATUS, TRIAL_ID, Status, finished_trials, read_results
from tune.search.deadline import DeadlineStopper, reopen_search
from tune.search.failfast import SYSTEMATIC_FILE, SystematicFailure, first_failures, systematic_failure
from tune.search.failures import ENDED_UNDER_IT, RETRIES_HINT
from tune.search.keeper import CheckpointKeeper, drop_kept, restore_kept, resumed_trials
from tune.search.keys import PARENTS_FILE, TRAINING_ITERATION
from tune.search.overrides import Override, run_values
from tune.search.progress import Progress, as_resumed
from tune.search.results import ResultsWriter
from tune.search.scheduler import ResumableASHA
from tune.search.searcher import fail_orphaned_optuna_trials, make_searcher
from tune.search.spaces import Stage
from tune.search.state_writes import EXPERIMENT_STATE, RAY_STATE, atomic_state_copies, check_state, newest
from tune.search.study import Study
from tune.search.trainable import StageJob, train_trial, trial_dirname
from tune.training.pseudo import pseudo_label


class SystematicFailureError(RuntimeError):
    """A stage's first trials all failed with one error (tune/search/failfast.py): the study stops."""


def stage_failure_text(study: Study, failures: list[dict[str, str]], left: int) -> str:
    """One line: the error, the file holding its traceback, and what to do after the fix: the command that resumes
    the stage's `left` trials (not started, or stopped as they ran), or, with none left, a new study."""
    first = failures[0]
    what = (
        f"its first {len(failures)} trials all failed with the same error before any reported a result"
        if len(failures) > 1
        else "its one trial failed before it reported a result"  # (a stage of --samples 1)
    )
    said = f"stopped: {what}: {first['error']} (traceback: {first['file']}); "
    again = "start the study again under another --name"
    ran = f"all its {study.samples} trials" if study.samples > 1 else "its one trial"
    none_left = f"{ran} ran: none is left to resume"
    if ENDED_UNDER_IT in first["error"]:  # nothing of the user's to fix where nodes left; memory is the study's plan
        return (
            said
            + (
                f"where their nodes left the cluster, {again} ({none_left})"
                if left <= 0
                else f"where their nodes left the cluster, resume as it is: {study.cfg.resume_command()}"
            )
            + f"; where it was memory (the OOM killer), {again} with fewer trials at once (--max-concurrent) or smaller ones"
            + (
                f" (each ran {study.cfg.retries + 1} times: --retries {study.cfg.retries})"
                if study.cfg.retries
                else RETRIES_HINT
            )
        )
    if left <= 0:  # failed trials stay failed: a resume would run nothing
        return said + f"fix it, then {again} ({none_left})"
    return said + f"fix it, then resume with: {study.cfg.resume_command()}"


class StageInterrupted(Exception):
    """A stage's experiment ended before its trials did (Ctrl-C, SIGTERM): Ray saved its state, running
    trials resume from their last checkpoint on --resume, and nothing is marked finished."""


class DiskFull(StageInterrupted):
    """A stage's experiment ended by a full disk (a result, a checkpoint or Ray's state could not be written): what
    was written stays, and --resume goes on once there is space."""


def run_stage(study: Study, stage: Stage) -> bool:
    """Run (or resume, or skip when done) one stage's Ray Tune experiment. Returns False when the time
    budget's deadline cut it before all its trials started: it stays open, for --resume to complete."""
    stage_dir = study.folder / stage.name
    if study.finished(stage):
        print(f"stage {stage.name}: already finished")
        return True
    parents = stage_parents(study, stage, stage_dir)
    job = StageJob(
        model=stage.model,
        max_epochs=study.budget.max_epochs,
        run_values=run_values(study.budget, stage_overrides(study, stage)),
        data_root=str(study.root),
        resources=study.resources,
        parents=parents,
        parent_role=stage.parent_role,
        pseudo_dir=make_pseudo_labels(study, stage, parents),
        unlabeled=study.cfg.unlabeled,
        on_error=study.on_error,
        plugins=study.cfg.plugins,
        metric=stage.metric,
        val_videos=study.cfg.val_videos,
        cache_dir=str(default_cache_dir()),  # the driver's, not what each node's Ray workers were started with
        checked=study.checked,
    )
    (stage_dir / SYSTEMATIC_FILE).unlink(missing_ok=True)  # a resume after the fix judges its trials afresh
    try:
        with sigint_restored():  # Ray Tune's handler, left by an experiment that ended normally, took a later Ctrl-C
            grid = make_tuner(study, stage, job, stage_dir).fit()
    except OSError as err:  # raised by a callback's write (the results'), which ended Ray's experiment
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = size_text(shutil.disk_usage(study.folder).free)  # (pyarrow's words for it: "Error writing bytes...")
        where = f"{err.filename}: " if err.filename else ""
        raise DiskFull(
            f"stage {stage.name} stopped: {where}{os.strerror(err.errno)} ({free} free for the study's folder)"
        ) from None
    # Interrupted (Ray ends the experiment on SIGINT and returns normally): trials Ray left unfinished, that our
    # results still hold as running (Ray's statuses alone missed 2 running trials in one CI run), or that never
    # reported: PENDING as it stopped (their actors starting), which Ray ends TERMINATED while its saved state keeps
    # them PENDING for a resume (a Ctrl-C then marked the stage done, with "no trial succeeded", and no resume ran it)
    trials, _ = read_results(study.results_dir)
    mine = trials[(trials[STAGE] == stage.name) & (trials[STATUS] == Status.RUNNING)] if len(trials) else trials
    reported = [(grid[i].metrics or {}, grid[i].error) for i in range(len(grid))]
    never_ran = {last.get("trial_id") for last, error in reported if error is None and TRAINING_ITERATION not in last}
    left = never_ran | set(mine[TRIAL_ID] if len(mine) else ())
    unfinished = max(len(left), len(grid) - grid.num_terminated - grid.num_errors)
    if failures := systematic_failure(stage_dir):  # trials left: not started, or stopped as they ran (Ray ended a
        # running one TERMINATED: counted ended, the line said "none is left to resume" beside the summary's "1 running")
        raise SystematicFailureError(stage_failure_text(study, failures, study.samples - len(grid) + unfinished))
    if unfinished == len(never_ran) and (never_ran or len(grid) < study.samples) and study.deadline.passed():
        return False  # cut by the time budget: its trials not yet started run at a resume
    if unfinished or len(grid) < study.samples:
        raise StageInterrupted(
            f"stage {stage.name} was interrupted with {unfinished} of {len(grid)} started trials unfinished"
        )
    fail_orphaned_optuna_trials(study.folder, str(study.cfg.name), stage)
    named: list[str] = list(trials[trials[STAGE] == stage.name][CHECKPOINT].dropna()) if len(trials) else []
    drop_kept(stage_dir, keep={str(Path(path).parent) for path in named})
    (stage_dir / STAGE_DONE).touch()
    return True


def stage_overrides(study: Study, stage: Stage) -> tuple[Override, ...]:
    """The study's overrides of this stage's parameters (each names its stage once checked)."""
    return tuple(o for o in study.overrides if o.stage == stage.name)


def stage_parents(study: Study, stage: Stage, stage_dir: Path) -> dict[str, str]:
    """The parents a stage's trials choose among: chosen once, when the stage first starts, and kept in
    STAGE/parents.json, so that a resumed stage (whose searcher was saved with them) gets the same ones
    even when its parent stage has finished more trials since (a stage cut by the time budget)."""
    path = stage_dir / PARENTS_FILE
    if path.is_file():
        return dict(json.loads(path.read_text()))
    parents = choose_parents(study, stage)
    if parents:
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(parents, indent=2))
    return parents


def choose_parents(study: Study, stage: Stage) -> dict[str, str]:
    """The best finished trials of the stage this one builds on (one, for pseudo-labels): trial id ->
    its best checkpoint. Empty for a stage with no parent."""
    if stage.parent is None:
        return {}
    trials, _ = read_results(study.results_dir)
    best = finished_trials(trials, stage.parent).head(1 if stage.parent_role == "pseudo_labels" else study.budget.top_k)
    if not len(best):
        raise RuntimeError(f"stage {stage.name} needs finished {stage.parent} trials, and there are none")
    parents = dict(zip(best[TRIAL_ID], best[CHECKPOINT], strict=True))
    print(f"stage {stage.name}: starting from the best {len(parents)} {stage.parent} trials: {', '.join(parents)}")
    return parents


def make_pseudo_labels(study: Study, stage: Stage, parents: dict[str, str]) -> str | None:
    """The pseudo-label folder of the parent segmenter, for a stage that trains on its masks."""
    if stage.parent_role != "pseudo_labels" or not parents:
        return None
    segmenter = next(iter(parents.values()))
    folder = pseudo_label(
        segmenter,
        study.root,
        device=study.resources.device,
        unlabeled=study.cfg.unlabeled,
        val=study.cfg.val_videos,
        on_error=study.on_error,
    )
    print(f"stage {stage.name}: pseudo-labels of segmenter {next(iter(parents))} in {folder}")
    return str(folder)


def make_tuner(study: Study, stage: Stage, job: StageJob, stage_dir: Path) -> tune.Tuner:
    """The stage's Tuner: restored from its folder after a crash, else new."""
    cfg = study.cfg
    atomic_state_copies()  # a kill -9 leaves the state a resume reads whole
    trainable = tune.with_resources(tune.with_parameters(train_trial, job=job), study.resources.ray_request())
    if tune.Tuner.can_restore(str(stage_dir)) and not forget_empty_state(stage_dir, stage.name):
        check_trusted(stage_dir)
        check_state(stage_dir)
        reopen_search(stage_dir, study.resources.concurrent)
        print(f"stage {stage.name}: resuming {stage_dir}")
        state = newest(stage_dir, EXPERIMENT_STATE)
        put_back = [
            f"{f.parent.name}/{f.name}" for f in restore_kept(stage_dir, resumed_trials(state) if state else {})
        ]
        if put_back:
            print(
                f"stage {stage.name}: put back {', '.join(put_back)}, which Ray's saved state names and it had deleted"
            )
        return as_resumed(
            tune.Tuner.restore(
                str(stage_dir), trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
            ),
            study.samples,
            study.deadline,
            cfg.retries,
        )
    budget = study.budget
    fail_orphaned_optuna_trials(study.folder, str(cfg.name), stage, requeue=True)  # (a start killed before Ray saved)
    writer = ResultsWriter(
        study.results_dir,
        space=study.space.name,
        stage=stage.name,
        metric=stage.metric,
        mode=stage.mode,
        max_epochs=job.max_epochs,
        run_values=job.run_values,
        deadline=study.deadline,
        retries=cfg.retries,
    )
    scheduler = ResumableASHA(
        results_dir=study.results_dir,
        stage=stage.name,
        metric=stage.metric,
        mode=stage.mode,
        max_t=budget.max_epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )
    searcher = make_searcher(
        stage,
        budget,
        tuple(job.parents),
        experiment_dir=study.folder,
        study=str(cfg.name),
        seed=study.stage_seed(stage),
        overrides=stage_overrides(study, stage),
        deadline=study.deadline,
        fail_trials=cfg.fail_trials,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=study.samples,
            max_concurrent_trials=study.resources.concurrent,
            trial_dirname_creator=trial_dirname,
            reuse_actors=True,  # a new trial skips the process start and imports (seconds on a CPU)
        ),
        run_config=tune.RunConfig(
            name=stage.name,
            storage_path=str(study.folder),
            failure_config=tune.FailureConfig(max_failures=cfg.retries),
            stop=DeadlineStopper(study.deadline),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=stage.metric, checkpoint_score_order=stage.mode
            ),
            callbacks=[
                writer,
                SystematicFailure(stage_dir, first_failures(study.samples, study.resources.concurrent)),
                CheckpointKeeper(),
                *trackers(study, stage),
                Progress(writer, study.samples, study.deadline),  # (after the writer: it reads the writer's rows)
            ],
            verbose=0,  # Ray's tables: a configuration table and a result table for each trial (Progress instead)
        ),
    )


def trackers(study: Study, stage: Stage) -> list[tune.Callback]:
    """Ray Tune's own logger callbacks: TensorBoard event files in every trial's folder (`tensorboard --logdir
    OUT/NAME`), and each trial as an MLflow run with --mlflow URI (the study's name is the MLflow experiment, each run
    tagged with the space, the stage and the study)."""
    from ray.tune.logger import TBXLoggerCallback

    found: list[tune.Callback] = [TBXLoggerCallback()]
    if study.cfg.mlflow:
        from tune.search.trackers import STAGE_TAG, ResumingMLflowLogger

        tags = {"segtune.space": study.space.name, STAGE_TAG: stage.name, "segtune.study": str(study.cfg.name)}
        found.append(ResumingMLflowLogger(tracking_uri=study.cfg.mlflow, experiment_name=study.cfg.name, tags=tags))
    return found


def check_trusted(stage_dir: Path) -> list[Path]:
    """Refuse to restore from state others could have written, as ssh treats its keys: Tuner.restore
    unpickles the files of the stage folder (tuner.pkl, the searcher's state), and a pickle runs code.
    The study folder, the stage folder and every file in it must be the user's and not group- or
    world-writable. Returns the paths it checked."""
    checked = [stage_dir.parent, stage_dir, *sorted(p for p in stage_dir.iterdir() if p.is_file())]
    for path in checked:
        info = path.stat()
        if info.st_uid != os.getuid():
            why, fix = f"owned by uid {info.st_uid}, not you (uid {os.getuid()})", f"chown $(id -u) {path}"
        elif info.st_mode & 0o022:
            why, fix = "writable by group or others", f"chmod go-w {path}"
        else:
            continue
        raise ValueError(
            f"refusing to resume: {path} is {why}, and resuming runs the code its pickles hold; "
            f"if you trust it, `{fix}` and resume again"
        )
    return checked


def forget_empty_state(stage_dir: Path, stage: str) -> bool:
    """Remove Ray's state of a stage that holds no trial, so that the stage starts anew: one the time budget ended
    before its first trial started, or one whose driver was killed as it started (tuner.pkl written, whole or not,
    and no experiment state yet). Ray 2.60 cannot restore either (an IndexError in TuneController._restore_trials;
    "no experiment state file"), then runs one trial of the stage and ends as if interrupted, at every resume.
    Whether it did."""
    state = newest(stage_dir, EXPERIMENT_STATE)
    try:
        empty = state is None or not json.loads(state.read_bytes())["trial_data"]
    except (ValueError, KeyError, TypeError):  # damaged: check_state says so
        return False
    if empty:
        for pattern in RAY_STATE:
            for path in stage_dir.glob(pattern):
                path.unlink()
        why = "no trial of it had started" if state else "Ray had saved no state of it (its driver stopped as it began)"
        print(f"stage {stage}: {why}; starting it anew")
    return empty
