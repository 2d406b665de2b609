"""The results schema: file names, column names and the best-trial rule, written once; reports/records.py reads a
study folder's small records (its settings), reports/checkpoints.py finds its best checkpoint.

`tune` writes with these names and `reports` reads with them; neither spells one as a bare string. Only pandas.

A study folder OUT/NAME holds:
    search.json              the study's settings (STUDY_FILE)
    run.json                 its driver's last run: its stages, whether it reached the study's end (RUN_FILE)
    optuna.journal           one Optuna study per stage, named optuna_study_name(NAME, stage) (OPTUNA_FILE)
    results/trials.parquet   one row per trial, all stages (TRIALS_FILE; the trial-table columns below)
    results/epochs.parquet   a row per trial per epoch: its numbers, and CHECKPOINT, the epoch's (EPOCHS_FILE)
    results/per_class_iou.parquet, results/gallery.parquet and results/gallery/  the best model on val
    results/references.parquet  the best model on val beside answers that need no training (REFERENCES_FILE)
    submission.pt            the best checkpoint's masks of the hidden split, the competition's submission
                             (SUBMISSION_FILE), and results/submission.json what made it (SUBMISSION_INFO_FILE)
"""

from __future__ import annotations

import math
import numbers
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

STUDY_FILE = "search.json"
OPTUNA_FILE = "optuna.journal"
RESULTS_DIR = "results"
TRIALS_FILE = "trials.parquet"
EPOCHS_FILE = "epochs.parquet"
PER_CLASS_FILE = "per_class_iou.parquet"
GALLERY_FILE = "gallery.parquet"
GALLERY_DIR = "gallery"
REFERENCES_FILE = "references.parquet"
SUBMISSION_FILE = "submission.pt"  # in the study folder: torch.save of the (N, 160, 240) uint8 masks, video-id order
SUBMISSION_INFO_FILE = "submission.json"  # in results: {CHECKPOINT: what wrote it, VIDEOS: its rows}
REPORT_FILE = "report.html"  # in the study folder: the report the study's end writes (reports.build's default)
TRIAL_DIR = "trial_{}"  # a trial's folder in its stage's (STAGE/trial_ID), by its id (tune's trainable names it)
PLUGINS_FILE = "plugins.json"  # {plugin: the sha256 of its file} as the study's driver last ran them (tune/plugins.py)
SKIPPED_FILE = "skipped_videos.json"  # {split: {video id: reason}} of the bad videos a study left out
DATA_FILE = "data.json"  # {split: what its videos were as the study began (data.layout.split_signature)}
BUDGET_FILE = "budget.json"  # the time budget of a study's last run and the stages it cut (tune/search/deadline.py)
BUDGET_TEXT = "time_budget"  # budget.json: the time budget as text (1h02m); None without one
BUDGET_CUT = "cut"  # budget.json: stage -> what the time budget cut of it
BUDGET_SECONDS = "time_budget_s"  # budget.json: the last run's time budget, seconds; None without one
BUDGET_USED = "used_s"  # budget.json: the seconds the last run's search used, from the command's start
# said of a cut whose stages all ended (each started every trial): nothing is left for --resume to run
CUT_BUT_FINISHED = "nothing is left for --resume to run: the trials stopped at the deadline are final"
DRIVER_LOCK = ".driver.lock"  # locked by the driver running the study (flock), names it: "pid N on HOST, since T"
STAGE_DONE = ".done"  # in OUT/NAME/STAGE, the folder of a stage's Ray experiment, once the stage has ended
RUN_FILE = (
    "run.json"  # the driver's last run: RUN_STAGES, RUN_ENDED, RUN_STOPPED, ... (written by tune/search/study.py)
)
RUN_STAGES = "stages"  # run.json: the space's stages, in the order they run
RUN_ENDED = "ended"  # run.json: whether the run reached the study's end (the best model evaluated, its submission)
RUN_STOPPED = "stopped"  # run.json: stage -> why it stopped the study (no trial succeeded, a systematic failure)
# what the run ran with (run.json), for whoever reruns it: the budget's values as sized to the machine, its trials'
# resources in words, the versions of what decides its numbers ({package: version}), its command where it had one
RUN_BUDGET, RUN_RESOURCES, RUN_SOFTWARE, RUN_COMMAND = "budget", "resources", "software", "command"

# trial-table columns
TRIAL_ID = "trial_id"  # Ray's trial id, unique within a study
TRIAL_NUMBER = (
    "trial_number"  # its place in its stage's trials as the searcher made them (1, 2, ...: the same each run)
)
SPACE = "space"  # the registered search space
STAGE = "stage"  # the stage of the space the trial belongs to
STATUS = "status"  # a Status
FAILURE = "failure"  # why a failed trial failed; None otherwise
METRIC = "metric"  # the stage's metric, the name of a column of the epochs table
MODE = "mode"  # "max" or "min": which way the metric is better
BEST_METRIC = "best_metric"  # the trial's best metric over its epochs (NaN before its first epoch)
LAST_METRIC = "last_metric"  # the metric of its last epoch
BEST_EPOCH = "best_epoch"  # the epoch of BEST_METRIC (ties: the later one, the one the checkpoint holds)
EPOCHS = "epochs"  # epochs run
MAX_EPOCHS = "max_epochs"  # epochs a trial that ASHA does not stop runs
WALL_TIME_S = "wall_time_s"  # the trial's training time
GPU_HOURS = "gpu_hours"  # WALL_TIME_S times the GPUs it held
CPUS = "cpus"  # the CPUs Ray reserved for the trial
GPUS = "gpus"  # the GPUs (a fraction: packed) Ray reserved for the trial
CHECKPOINT = "checkpoint"  # the checkpoint of BEST_EPOCH; None before one is saved
PARENT_TRIAL = "parent_trial"  # in a staged space, the earlier stage's trial this one builds on
STARTED_AT = "started_at"  # UTC timestamp: when the trial was launched (its process started after)
RESTARTS = "restarts"  # times Ray ran the trial again after its process ended (--retries, or a node Ray drained)

EPOCH = "epoch"  # epochs-table column: 1-based epoch (Ray's training_iteration)
# epochs-table columns of where an epoch's time went (seconds; Ray's EPOCH_END and EPOCH_SECONDS included)
EPOCH_END = "timestamp"  # when the epoch's result was reported (Unix seconds, Ray's: whole ones)
REPORTED_AT = "reported_at"  # the same moment, the trial's own clock to the microsecond (what the report times by)
EPOCH_SECONDS = "time_this_iter_s"  # the epoch's wall time in the trial, Ray's
SETUP_S = "time_setup_s"  # before a trial's first epoch: its process, data and model (reports.resources.with_setup)
DATA_WAIT_S = "time_data_s"  # training waiting for its next batch (reading, decoding, copying to the device)
TRAIN_S = "time_train_s"  # training steps, the wait for data left out
EVAL_S = "time_eval_s"  # evaluation on val
CHECKPOINT_S = "time_checkpoint_s"  # writing the epoch's checkpoint
PHASES = (SETUP_S, DATA_WAIT_S, TRAIN_S, EVAL_S, CHECKPOINT_S)
GPU_BUSY = "gpu_busy"  # on CUDA: the share of the epoch the trial's GPU was busy (NVML's utilisation), 0-1
GPU_PEAK_GB = "gpu_peak_memory_gb"  # on CUDA: the trial's peak allocated GPU memory in the epoch, GiB
TORCH_THREADS = "torch_threads"  # the trial's torch threads (its CPUs)
MICRO_BATCHES = "micro_batches"  # the parts a training batch was taken in: over 1, it ran out of GPU memory whole
FIRST_STEP_AT = "first_step_at"  # when the trial's process took its first training step (Unix seconds)
NODE_ID = "node_id"  # the Ray node the trial ran on (also a trial-table column)


class Status(StrEnum):
    """A trial's STATUS. A str: a table stores and compares it as its value ("running", ...)."""

    RUNNING = "running"  # started and not ended, or interrupted with the study
    COMPLETED = "completed"  # ran its MAX_EPOCHS
    STOPPED = "stopped"  # stopped early by ASHA
    CUT = "cut"  # stopped at the time budget's deadline
    FAILED = "failed"  # raised, or lost by a killed driver; FAILURE says why


FINISHED = (Status.COMPLETED, Status.STOPPED, Status.CUT)
STANDING = (*FINISHED, Status.RUNNING)  # the trials a best is told of: a failed trial's model is no answer

# epochs-table metrics: what the trainer reports each epoch (TRAIN_LOSS, EPOCH) and what each training task's
# evaluation reports (its `metrics`, tune/training/tasks); a stage's METRIC is one of them
TRAIN_LOSS = "train_loss"  # the mean training loss of the epoch
VAL_IOU = "val_iou"  # competition IoU on val (of mask 22; a per-frame segmenter's: of frames 11 and 22)
VAL_LOSS = "val_loss"  # the loss on val
VAL_COPY_LAST_IOU = "val_copy_last_iou"  # the rule copy last on a segmenter's masks (see REFERENCES)
VAL_EXTRAPOLATE_IOU = "val_extrapolate_iou"  # the rule extrapolate on a segmenter's masks
VAL_ORACLE_IOU = "val_oracle_iou"  # a per-frame segmenter on the true frame 22
VAL_FRAME_MSE = "val_frame_mse"  # a frame predictor's mean squared error on frame 22 (pixels in 0-1)
VAL_FRAME_L1 = "val_frame_l1"  # its mean absolute error
VAL_PSNR = "val_psnr"  # its PSNR, dB
VAL_COPY_LAST_MSE = "val_copy_last_mse"  # frame 11 given as frame 22: the MSE a predictor must beat
METRICS = (
    TRAIN_LOSS, VAL_IOU, VAL_LOSS, VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_ORACLE_IOU, VAL_FRAME_MSE, VAL_FRAME_L1,
    VAL_PSNR, VAL_COPY_LAST_MSE,
)  # fmt: skip

CONFIG_PREFIX = "config/"  # a trial's hyperparameters are the columns config/NAME

# epochs-table metrics of the rules a mask stage is measured against, with the segmenter's masks it uses; each named
# as `tune.predict --rule` and the references line (reports/references.py) name it
REFERENCES = {
    VAL_COPY_LAST_IOU: "copy_last (the mask of frame 11)",
    VAL_EXTRAPOLATE_IOU: "extrapolate (the objects of frame 11 moved along their tracks)",
    VAL_ORACLE_IOU: "oracle (the segmenter on the true frame 22)",
}

# the rules `tune.predict --rule` answers with from a per-frame segmenter's masks (tune/training/prediction.py)
RULE_COPY_LAST = "copy_last"
RULE_EXTRAPOLATE = "extrapolate"
# the val metric each rule is recorded as, beside a model's, where the model answers from a segmenter's masks
RULE_REFERENCES = {VAL_COPY_LAST_IOU: RULE_COPY_LAST, VAL_EXTRAPOLATE_IOU: RULE_EXTRAPOLATE}

# per-class table (PER_CLASS_FILE): the best model's IoU per class on val
CLASS_ID = "class_id"
CLASS_NAME = "class_name"
IOU = "iou"  # NaN where a class is absent from both the prediction and the truth
TARGET_PIXELS = "target_pixels"
PREDICTED_PIXELS = "predicted_pixels"
COLOUR = "colour"  # "#rrggbb": the class's colour in the gallery's mask pictures
# gallery table (GALLERY_FILE): one row per picture of a val video
VIDEO_ID = "video_id"
ORDER = "order"  # the picture's place in its video's row
LABEL = "label"
FILE = "file"  # path relative to the results folder
CLASS_IDS = "class_ids"  # the classes a mask picture shows (empty for a frame): the gallery's colour legend
# references table (REFERENCES_FILE): the competition IoU of mask 22 on the val videos the best model was scored
# on, for the best model and for answers that need no training: every pixel background (the floor), and the rules
# on val's true masks (what a perfect segmenter would give them: a ceiling of the rules, since no split to predict
# has masks), so that a study's score can be read without knowing the data; and ANSWER_UNSEEN's two rows, on the
# val videos after the first --val-videos (VIDEOS is each row's)
ANSWER = "answer"
VIDEOS = "videos"  # how many val videos the IoU is over
ANSWER_BEST = "the best model"
ANSWER_BACKGROUND = "all background"
# the best model on the val videos after the first --val-videos N, which no trial was scored on: a score its choice
# among the trials did not flatter (VIDEOS: those videos)
ANSWER_UNSEEN = "the best model on the val videos no trial was scored on"
ANSWER_UNSEEN_BACKGROUND = "all background on the val videos no trial was scored on"
TRUE_MASKS = "on the true masks"  # ANSWER of a rule on the true masks: "RULE on the true masks"
# ANSWER of a rule on the masks of the segmenter the best model answers from (mask_space, dynamics): what it must beat
SEGMENTER_MASKS = "on its segmenter's masks"
MODES = ("max", "min")
# what readers need of each results table: a file with rows that lacks one is no study's (read_parquet refuses it)
NEEDED = {
    TRIALS_FILE: (TRIAL_ID, SPACE, STAGE, STATUS, METRIC, MODE, BEST_METRIC),
    EPOCHS_FILE: (TRIAL_ID, STAGE, EPOCH),
    PER_CLASS_FILE: (CLASS_NAME, IOU, TARGET_PIXELS, PREDICTED_PIXELS),
    GALLERY_FILE: (VIDEO_ID, ORDER, LABEL, FILE),
    REFERENCES_FILE: (ANSWER, IOU, VIDEOS),
}


def is_missing(value: Any) -> bool:
    """Whether a table cell holds no value: None, NaN (what a float column holds where it has none) or pd.NA (what an
    integer column holds where it has none: a hyperparameter of one stage of several)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy's too; (a bool is an int)


def duration(seconds: float) -> str:
    """Seconds as the report and the terminal write them: 1h02m, 3m05s, 42s, 4.5s (tenths under a minute: a budget of
    4.5 s is not shown as 4)."""
    if seconds < 59.95:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def short_value(value: Any) -> str:
    """A hyperparameter's value in a line of text: 3 significant digits for a float, "-" for none."""
    return "-" if is_missing(value) else f"{value:.3g}" if isinstance(value, float) else str(value)


def config_column(param: str) -> str:
    """The trial-table column of a hyperparameter: "width" -> "config/width"."""
    return CONFIG_PREFIX + param


def param_name(column: str) -> str:
    """The hyperparameter of a trial-table column: "config/width" -> "width"."""
    if not column.startswith(CONFIG_PREFIX):
        raise ValueError(f"expected a column starting with {CONFIG_PREFIX!r}, got {column!r}")
    return column[len(CONFIG_PREFIX) :]


def param_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns set in at least one of these trials, in table order."""
    return [c for c in trials.columns if c.startswith(CONFIG_PREFIX) and trials[c].notna().any()]


def stage_order(trials: pd.DataFrame) -> list[str]:
    """The stages of these trials in the order they ran; [] for an empty table."""
    return [str(s) for s in dict.fromkeys(trials[STAGE])] if len(trials) else []


def status_text(trials: pd.DataFrame) -> str:
    """How many trials of each stage ended how, stages in the order they ran: `pretrain: 1 completed, 3 stopped;
    finetune: 4 completed`."""
    parts = []
    for stage in stage_order(trials):
        counts = trials.loc[trials[STAGE] == stage, STATUS].value_counts().sort_index()
        parts.append(f"{stage}: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return "; ".join(parts)


def optuna_study_name(study: str, stage: str) -> str:
    """The name, in the study's Optuna journal, of the Optuna study of one stage."""
    return f"{study}/{stage}"


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A Parquet file read through one open handle (empty where there is none): given a path, pyarrow opens it again
    after its footer, and a study replaces its results every few seconds (atomically): 1 read in 12 failed then.
    A results table (NEEDED, by file name) with rows but without the columns readers need is refused."""
    if not os.path.exists(path):
        return pd.DataFrame()
    with open(path, "rb") as file:
        try:
            table = pd.read_parquet(file)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError; it names no file (a handle)
            raise ValueError(f"{path}: not a Parquet file that can be read ({' '.join(str(err).split())})") from None
    lacking = [column for column in NEEDED.get(Path(path).name, ()) if column not in table] if len(table) else []
    if lacking:
        raise ValueError(f"{path}: not a study's {Path(path).stem} table: it lacks the column(s) {', '.join(lacking)}")
    return table


def read_results(folder: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) of a results folder (OUT/NAME/results) or of its study's folder (OUT/NAME), also while a
    study writes them; empty where missing."""
    folder = Path(folder)
    if not (folder / TRIALS_FILE).exists() and (folder / RESULTS_DIR / TRIALS_FILE).exists():  # the study's folder
        folder = folder / RESULTS_DIR
    return read_parquet(folder / TRIALS_FILE), read_parquet(folder / EPOCHS_FILE)


def trial_numbers(rows: pd.DataFrame) -> pd.Series:
    """Each trial's number in its stage (from 1, as Ray counts a stage's trials: TRIAL_NUMBER), the leaderboard's # and
    the best-trial rule's last tie-break; trials without one (rows of a study written before they were recorded)
    numbered after those with one, by their start (else in the table), failed ones counted."""
    known = rows[TRIAL_NUMBER].to_numpy(dtype=float, copy=True) if TRIAL_NUMBER in rows else np.full(len(rows), np.nan)
    missing = np.isnan(known)
    if missing.any():
        started = STARTED_AT in rows and rows[STARTED_AT].notna().all()
        order = pd.Series(rows[STARTED_AT].to_numpy() if started else np.arange(len(rows)))[missing]
        known[missing] = (np.nanmax(known) if not missing.all() else 0) + order.rank(method="first").to_numpy()
    return pd.Series(known.astype(int), index=rows.index)


def ranked(
    trials: pd.DataFrame, stage: str, *, statuses: tuple[str, ...] | None = None, with_checkpoint: bool = False
) -> pd.DataFrame:
    """The best-trial rule: the trials of `stage` that have a BEST_METRIC, best first by the stage's MODE (ties: the one
    trained more epochs first, then the one the searcher made first: TRIAL_NUMBER, else their order); only those with a status in `statuses`, and a checkpoint."""
    if not len(trials):
        return trials
    rows = trials[trials[STAGE] == stage]
    if not len(rows):
        return rows
    mode = rows[MODE].iloc[0]
    if mode not in MODES:
        raise ValueError(f"expected the {MODE} of stage {stage!r} to be one of {MODES}, got {mode!r}")
    keep = rows[BEST_METRIC].notna()
    if statuses is not None:
        keep &= rows[STATUS].isin(statuses)
    if with_checkpoint:
        keep &= rows[CHECKPOINT].notna() if CHECKPOINT in rows else False
    # ties: more epochs first (a cut trial's 1 epoch tied a whole one's), then the lower number, as the leaderboard's #
    # shows it (trials that start together end in either order)
    tie = "_number"  # (a column of its own: the table's TRIAL_NUMBER is returned as it was)
    numbered = rows.assign(**{tie: trial_numbers(rows).to_numpy()})
    order = {BEST_METRIC: mode == "min", EPOCHS: False, tie: True}
    by = [column for column in order if column in numbered]
    return numbered[keep].sort_values(by, ascending=[order[column] for column in by], kind="stable").drop(columns=tie)


def finished_trials(trials: pd.DataFrame, stage: str) -> pd.DataFrame:
    """The finished trials of a stage that left a checkpoint, best first (the summary's top, a stage's parents)."""
    return ranked(trials, stage, statuses=FINISHED, with_checkpoint=True)


def best_value(trials: pd.DataFrame, stage: str) -> float:
    """The best BEST_METRIC of a stage's standing trials by its mode; NaN if none of them has one."""
    rows = ranked(trials, stage, statuses=STANDING)
    return float(rows[BEST_METRIC].iloc[0]) if len(rows) else math.nan
