"""Read one study folder's result files (Parquet, the Optuna journal, the gallery's PNGs); nothing else."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from reports.checkpoints import found_in
from reports.ran_with import ran_with
from reports.records import read_run, read_study_settings, read_submission, resume_command
from reports.schema import (
    ANSWER,
    ANSWER_UNSEEN,
    BUDGET_CUT,
    BUDGET_FILE,
    BUDGET_SECONDS,
    BUDGET_TEXT,
    BUDGET_USED,
    CHECKPOINT,
    CUT_BUT_FINISHED,
    DRIVER_LOCK,
    EPOCHS_FILE,
    FILE,
    GALLERY_FILE,
    OPTUNA_FILE,
    PER_CLASS_FILE,
    REFERENCES_FILE,
    RESULTS_DIR,
    RUN_ENDED,
    RUN_FILE,
    RUN_STAGES,
    RUN_STOPPED,
    SKIPPED_FILE,
    SPACE,
    STAGE_DONE,
    STATUS,
    STUDY_FILE,
    TRIALS_FILE,
    Status,
    duration,
    optuna_study_name,
    read_parquet,
    read_results,
    stage_order,
)

NO_TRIALS = f"no {TRIALS_FILE}: the study has not reported any trial yet"
NO_EPOCHS = f"no {EPOCHS_FILE}: no trial has finished an epoch yet"
NO_PER_CLASS = "no per-class IoU: the study has not finished (or had no successful trial)"
NO_JOURNAL = f"no {OPTUNA_FILE}: no hyperparameter importances"
_DIED = "the study was stopped or its driver died, and is partial"

EMBEDDED = "the embedded synthetic set"  # a study's data where it was given no --data
CANNOT_READ = "cannot read"  # a note on a damaged file, said on the terminal too (reports.build)


@dataclass
class Experiment:
    name: str
    folder: Path
    trials: pd.DataFrame  # one row per trial (empty if none yet)
    epochs: pd.DataFrame  # one row per trial per epoch
    per_class: pd.DataFrame | None = None  # the best model's per-class IoU on val
    gallery: pd.DataFrame | None = None  # video_id, order, label, data_uri
    references: pd.DataFrame | None = None  # the best model beside answers that need no training, on val
    space: str = ""
    ran: str = ""  # what its last run ran with, in a sentence (reports/ran_with.py); "" where no record says
    data: str = ""  # the data the study ran on: its --data, EMBEDDED (none given), "" where no settings say
    notes: list[str] = field(default_factory=list)  # what is missing or partial, said in the report
    studies: dict[str, optuna.Study] = field(default_factory=dict)  # stage -> its Optuna study, from the journal
    submission: dict[str, Any] | None = None  # what made the study's submission (CHECKPOINT, VIDEOS); None without one

    @property
    def stages(self) -> list[str]:
        return stage_order(self.trials)


def load_experiment(folder: str | os.PathLike[str]) -> Experiment:
    folder = Path(folder)
    results = folder / RESULTS_DIR
    notes: list[str] = []
    trials, epochs = _read_results(results, notes)
    per_class = _read(results / PER_CLASS_FILE, notes, NO_PER_CLASS)
    gallery = _read(results / GALLERY_FILE, notes, None)
    references = _read(results / REFERENCES_FILE, notes, None)
    if gallery is not None and len(gallery):
        gallery = gallery.assign(data_uri=[_data_uri(results / f) for f in gallery[FILE]])
    settings = read_study_settings(folder)
    space = ""
    if (folder / STUDY_FILE).exists():
        space = settings.get("space", "")
    elif len(trials):
        space = str(trials[SPACE].iloc[0])
    left_out = _record(folder / SKIPPED_FILE, notes, lambda found: all(isinstance(v, dict) for v in found.values()))
    for split, videos in left_out.items():
        if videos:
            named = "; ".join(f"video {vid}: {reason}" for vid, reason in videos.items())
            notes.append(f"{len(videos)} bad {split} video(s) left out (--skip-bad-videos): {named}")
    run = read_run(folder)  # {} for a study older than run.json, or results copied without it
    if not run and (folder / RUN_FILE).exists():
        notes.append(
            f"{CANNOT_READ} {RUN_FILE}: {folder / RUN_FILE}: not what the study writes there (judged without it)"
        )
    offered = False  # whether the budget's note already sends the user to --resume
    if (folder / BUDGET_FILE).exists():
        budget = _record(folder / BUDGET_FILE, notes, lambda found: isinstance(found.get(BUDGET_CUT, {}), dict))
        if budget.get(BUDGET_CUT):
            stages_cut = "; ".join(f"stage {stage}: {what}" for stage, what in budget[BUDGET_CUT].items())
            offered = any(not (folder / stage / STAGE_DONE).exists() for stage in budget[BUDGET_CUT])
            after = (
                "; --resume completes it" if offered else f"; {CUT_BUT_FINISHED}" if run.get(RUN_ENDED, True) else ""
            )
            cut = f"cut by its time budget ({budget.get(BUDGET_TEXT)}): {stages_cut}"
            # a --resume running now goes on with what the last run's deadline cut (its record is rewritten at its
            # end): a record older than the running driver's lock (written as it took it), not its own at its end
            live = offered and study_driver(folder) and _older(folder / BUDGET_FILE, folder / DRIVER_LOCK)
            notes.append(
                f"an earlier run was {cut}; the run going on now completes it"
                if live
                else f"the study was {cut}{after}"
            )
        elif isinstance(total := budget.get(BUDGET_SECONDS), (int, float)) and isinstance(
            used := budget.get(BUDGET_USED), (int, float)
        ):  # (the summary said it)
            notes.append(
                f"its last run had a time budget of {duration(total)}, which cut nothing: its search used {duration(used)}"
            )
    if settings.get("warm_start"):
        again = settings.get("warm_start_best")
        notes.append(
            f"warm-started: TPE began from the finished trials of {settings['warm_start']} (--warm-start"
            + (f"; --warm-start-best {again}: the best of them, up to {again}, run again first)" if again else ")")
        )
    if plugins := _texts(settings.get("plugins")):
        notes.append(f"with the plugin(s) {', '.join(plugins)} (--plugin)")
    if overrides := _texts(settings.get("overrides")):
        notes.append(f"its space as overridden: {'; '.join(overrides)} (--set, --range, --choices)")
    if settings.get("unlabeled") is not None:
        notes.append(f"the study trained on the first {settings['unlabeled']} unlabeled videos only (--unlabeled)")
    if settings.get("val_videos") is not None:  # (and the best on the others, where its evaluation scored them)
        unseen = references is not None and ANSWER in references and (references[ANSWER] == ANSWER_UNSEEN).any()
        notes.append(
            f"trials and the best model were scored on the first {settings['val_videos']} val videos only (--val-videos)"
            + "; the best model on the others too, as a score its choice did not flatter" * bool(unseen)
        )
    running = int((trials[STATUS] == Status.RUNNING).sum()) if len(trials) else 0
    name = str(settings.get("name") or folder.name)
    resume = resume_command(folder.parent, name, settings.get("address"), settings.get("dashboard") is not False)
    if driver := study_driver(folder):
        notes.append(
            f"the study is running now ({driver}), {running} trial(s) in progress: this report is a snapshot of it"
        )
    elif running:
        why = "a stage stopped the study (below), which is partial" if run.get(RUN_STOPPED) else _DIED
        notes.append(f"{running} trial(s) did not end: {why}; finish it with: {resume}")
    elif len(trials) and not offered and (partial := _partial(folder, trials, run)):  # stopped between trials/stages
        notes.append(f"{partial}; finish it with: {resume}")
    elif not len(trials) and settings and not run.get(RUN_ENDED) and not (folder / BUDGET_FILE).exists():
        notes.append(  # (a budget's cut and a stage that stopped the run say so themselves)
            f"no driver runs the study: it was stopped or its driver died before any trial reported; go on with: {resume}"
        )
    if not driver:  # a running driver's run has not stopped (yet): what stopped the last one is past
        notes += _stopped_by(run)
    studies = _load_studies(folder, name, stage_order(trials), notes)
    return Experiment(
        name=folder.name,
        folder=folder,
        trials=trials,
        epochs=epochs,
        per_class=per_class,
        gallery=gallery,
        references=references,
        space=space,
        data=_data(settings),
        ran=ran_with(settings, run),
        notes=notes,
        studies=studies,
        submission=_submission(folder),
    )


def _data(settings: dict[str, Any]) -> str:
    """The data a study ran on, as the side-by-side table says it: its root, and the val videos it was scored on."""
    first = f" (the first {settings['val_videos']} val videos)" if settings.get("val_videos") is not None else ""
    return str(settings.get("data") or EMBEDDED) + first if settings else ""


def _submission(folder: Path) -> dict[str, Any] | None:
    """read_submission, its checkpoint found where the study folder is now (a moved study's, not the old place's)."""
    found = read_submission(folder)
    return found and {**found, CHECKPOINT: str(found_in(folder, found[CHECKPOINT]))}


def _partial(folder: Path, trials: pd.DataFrame, run: dict[str, Any]) -> str | None:
    """What did not end of a study that no driver runs and that has no trial left running: the first stage of its
    last `run` (run.json) without STAGE_DONE in its folder (OUT/NAME/STAGE), or its end (the best model's evaluation
    and submission) where every stage ended; None where the run ended, or where run.json is missing (results copied
    without it, an older study) and every stage with trials ended."""
    if run.get(RUN_ENDED):
        return None
    if not run:
        opened = [s for s in stage_order(trials) if (folder / s).is_dir() and not (folder / s / STAGE_DONE).exists()]
        return f"stage {opened[0]} did not end: {_DIED}" if opened else None
    for stage in run.get(RUN_STAGES, []):
        if not (folder / stage / STAGE_DONE).exists():
            began = (folder / stage).is_dir() or stage in stage_order(trials)  # (copied without its folder)
            return f"stage {stage} did not {'end' if began else 'start'}: {_DIED}"
    return f"every stage ended but the study did not (the best model's evaluation on val, its submission): {_DIED}"


def _stopped_by(run: dict[str, Any]) -> list[str]:
    """Why a stage stopped the study's last `run` (no trial succeeded, a systematic failure), and the stages that
    did not run for it."""
    notes = []
    for stage, why in run.get(RUN_STOPPED, {}).items():
        stages = list(run.get(RUN_STAGES, []))
        later = stages[stages.index(stage) + 1 :] if stage in stages else []
        notes.append(f"stage {stage}: {why}" + (f"; so stage(s) {', '.join(later)} did not run" if later else ""))
    return notes


def _texts(value: Any) -> list[str]:
    """A list of texts from search.json ([] for anything else: a hand-edited file)."""
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else []


def unfinished_text(folder: Path) -> str | None:
    """What a command that takes a study's best (tune.predict, tune.train --from, --warm-start) says of a study that
    has not ended, as its report judges it: that it takes a snapshot, or the trials so far; None for one that ended
    (or a folder of no study)."""
    if driver := study_driver(folder):
        return f"{folder} is running now ({driver}): this takes its trials as they are now, a snapshot"
    run = read_run(folder)
    if run.get(RUN_ENDED):
        return None
    try:
        trials, _ = read_results(folder / RESULTS_DIR)
    except (OSError, ValueError):  # said where the results are read
        return None
    running = int((trials[STATUS] == Status.RUNNING).sum()) if len(trials) else 0
    why = f"{running} trial(s) did not end: {_DIED}" if running else len(trials) and _partial(folder, trials, run)
    return f"{folder}: {why}; --resume finishes it. This takes its trials so far" if why else None


def _older(path: Path, than: Path) -> bool:
    try:
        return path.stat().st_mtime < than.stat().st_mtime
    except OSError:
        return False


def study_driver(folder: Path) -> str | None:
    """Who runs the study in `folder` now, as its driver's lock names it ("pid 12 on node1, since ..."): None where
    no process holds the lock (a study that ended, was stopped or never started) or where this one does (a driver
    building its report). Only looks: the lock is taken for an instant if free, and the file never created."""
    path = folder / DRIVER_LOCK
    if not path.is_file():
        return None
    try:
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip()
                itself = holder.startswith(f"pid {os.getpid()} on {socket.gethostname()},")
                return None if itself else holder or "a driver"
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:  # unreadable: nobody is named
        pass
    return None


def _read_results(results: Path, notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    if results.is_file():  # a study copied by hand, its folder replaced by a file
        notes.append(f"{CANNOT_READ} {RESULTS_DIR}/: {results} is a file, where the results folder is needed")
        return pd.DataFrame(), pd.DataFrame()
    try:
        trials, epochs = read_results(results)
    except Exception:  # a half-copied or foreign file: read them one by one to say which, keep the other
        trials = _read(results / TRIALS_FILE, notes, None)
        epochs = _read(results / EPOCHS_FILE, notes, None)
    if not (results / TRIALS_FILE).exists():
        notes.append(NO_TRIALS)
    if not (results / EPOCHS_FILE).exists():
        notes.append(NO_EPOCHS)
    return trials, epochs


def _record(path: Path, notes: list[str], valid: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """A JSON object the study keeps beside its results ({} where there is none); {} and a note where the file is
    damaged or hand-edited: not JSON, not an object, or not `valid` (what its values hold)."""
    if not path.exists():
        return {}
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        notes.append(f"{CANNOT_READ} {path.name}: {path}: not JSON ({err})")
        return {}
    if not isinstance(found, dict) or not valid(found):
        notes.append(f"{CANNOT_READ} {path.name}: {path}: not what the study writes there (a hand-edited file?)")
        return {}
    return found


def _read(path: Path, notes: list[str], missing: str | None) -> pd.DataFrame:
    if path.exists():
        try:
            return read_parquet(path)
        except Exception as err:  # a half-copied or foreign file: say so in the report, keep going
            notes.append(f"{CANNOT_READ} {path.name}: {err}")
            return pd.DataFrame()
    if missing:
        notes.append(missing)
    return pd.DataFrame()


def _load_studies(folder: Path, name: str, stages: list[str], notes: list[str]) -> dict[str, optuna.Study]:
    """The Optuna study of each stage, read from the journal. Reading takes no lock and writes nothing
    (JournalFileBackend only creates the file when it is missing, which is checked first), so a running
    search is not disturbed."""
    if not stages:
        return {}
    path = folder / OPTUNA_FILE
    if not path.exists():
        notes.append(NO_JOURNAL)
        return {}
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
    except Exception as err:  # a truncated or foreign file
        notes.append(f"{CANNOT_READ} {OPTUNA_FILE}: {err}")
        return {}
    studies: dict[str, optuna.Study] = {}
    for stage in stages:
        study_name = optuna_study_name(name, stage)
        try:
            studies[stage] = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            notes.append(f"no Optuna study {study_name!r} in {OPTUNA_FILE}: no importances for stage {stage}")
    return studies


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.exists() else ""
