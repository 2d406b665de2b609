"""Which checkpoint of a study folder: its best (the best-trial rule of reports.schema), a trial's, and a checkpoint
that one names (a mask predictor's segmenter, a fine-tuned model's pretrained part), each found where the study
folder is now. The results record checkpoints by their absolute paths where the study ran
(OUT/NAME/STAGE/trial_ID/checkpoint_N/checkpoint.pt); a study copied or moved keeps them at the same place under its
folder, and that copy is the one read, not the original (another model, if the study there was run again).
"""

from __future__ import annotations

import os
from pathlib import Path

from reports.schema import (
    CHECKPOINT,
    RESULTS_DIR,
    STAGE,
    STUDY_FILE,
    TRIAL_DIR,
    TRIAL_ID,
    Status,
    finished_trials,
    is_missing,
    ranked,
    read_results,
    stage_order,
)

_TRIAL_PREFIX = TRIAL_DIR.format("")  # a trial's folder's name before its id
_IN_STUDY = 4  # STAGE/trial_ID/checkpoint_N/FILE: a trial's checkpoint file under its study folder


def study_of(checkpoint: str | os.PathLike[str]) -> Path | None:
    """The study folder that holds a trial's checkpoint file (STAGE/trial_ID/checkpoint_N/FILE under it), else None."""
    parts = Path(checkpoint).parts
    if len(parts) > _IN_STUDY and parts[-3].startswith(_TRIAL_PREFIX) and parts[-2].startswith("checkpoint_"):
        return Path(*parts[:-_IN_STUDY])
    return None


def found_in(study: str | os.PathLike[str] | None, recorded: str | os.PathLike[str]) -> Path:
    """A trial's checkpoint as the study recorded it, in the study folder `study` as it is now; the recorded path
    where `study` holds no such file (results copied without their checkpoints, a checkpoint of no study)."""
    path = Path(recorded)
    if study is not None and study_of(path) is not None:
        here = Path(study).joinpath(*path.parts[-_IN_STUDY:])
        if here.is_file():
            return here
    return path


def beside(checkpoint: str | os.PathLike[str], recorded: str | os.PathLike[str]) -> Path:
    """A checkpoint that `checkpoint` names (its segmenter, its pretrained part), found in the study folder that
    holds `checkpoint` now."""
    return found_in(study_of(checkpoint), recorded)


def best_checkpoint(experiment: str | os.PathLike[str], trial: str | None = None) -> Path:
    """The best checkpoint of the last stage of a study (by its metric), from its results: of its finished trials,
    as the summary names it, else (a study still running) of its running ones; never a failed trial's. With
    `trial`, that trial's best checkpoint (of any stage). Found where the study folder is now."""
    results = Path(experiment) / RESULTS_DIR
    if Path(experiment).is_file():
        raise NotADirectoryError(f"{experiment} is a file, not a study folder")
    if not Path(experiment).exists():
        raise FileNotFoundError(f"{experiment}: no such folder (a study's, OUT/NAME)")
    trials, _ = read_results(results)
    if not len(trials):
        if (Path(experiment) / STUDY_FILE).is_file():  # a study whose deadline came before any trial reported
            raise FileNotFoundError(f"no trial of the study {experiment} has reported a result yet")
        inside = next((p for p in Path(experiment).absolute().parents if (p / STUDY_FILE).is_file()), None)
        if inside is not None:  # its results/ folder, a stage's, a trial's
            raise FileNotFoundError(f"{experiment} is inside the study {inside}: give the study's folder")
        raise FileNotFoundError(f"no results in {results}: is {experiment} a study folder?")
    if trial is not None:
        row = trials[trials[TRIAL_ID] == trial.removeprefix(_TRIAL_PREFIX)]  # its id, or its folder's name (trial_ID)
        checkpoint = row[CHECKPOINT].iloc[0] if len(row) and CHECKPOINT in row else None
        if checkpoint is None or is_missing(checkpoint):
            top = ranked(trials, stage_order(trials)[-1], with_checkpoint=True)[TRIAL_ID].head(5)
            raise FileNotFoundError(
                f"--trial {trial}: no trial of {experiment} by that id left a checkpoint (its final stage's best: "
                f"{', '.join(top) or 'none'})"
            )
        return found_in(experiment, checkpoint)
    final = stage_order(trials)[-1]
    best = finished_trials(trials, final)
    if not len(best):
        best = ranked(trials, final, statuses=(Status.RUNNING,), with_checkpoint=True)
    if not len(best):
        raise FileNotFoundError(f"no finished or running trial of stage {final!r} in {experiment} left a checkpoint")
    return found_in(experiment, best.iloc[0][CHECKPOINT])


def trial_stages(experiment: str | os.PathLike[str], trial: str) -> tuple[str, str]:
    """The stage a trial of a study belongs to, and the study's last stage (whose trials answer it)."""
    trials, _ = read_results(Path(experiment) / RESULTS_DIR)
    row = trials[trials[TRIAL_ID] == trial.removeprefix(_TRIAL_PREFIX)]
    return str(row[STAGE].iloc[0]) if len(row) else "?", stage_order(trials)[-1]
