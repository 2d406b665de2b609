"""The summary a study ends with: its trials, the compute each stage spent, the top trials of the final stage,
the best checkpoint beside the answers that need no training, its submission and the commands that follow a
study (its configuration trained anew, another trial's submission, a rule's where one scored above it)."""

from __future__ import annotations

import shlex

import pandas as pd

from data.layout import has_split
from reports.checkpoints import found_in
from reports.records import read_submission, submit_command
from reports.references import no_segmenter_text, references_text
from reports.resources import gpu_busy_share, with_setup
from reports.schema import (
    BEST_METRIC,
    CHECKPOINT,
    EPOCHS,
    FAILURE,
    MAX_EPOCHS,
    MICRO_BATCHES,
    REFERENCES_FILE,
    RULE_REFERENCES,
    STAGE,
    STATUS,
    SUBMISSION_FILE,
    TRIAL_DIR,
    TRIAL_ID,
    VIDEOS,
    Status,
    finished_trials,
    is_missing,
    param_columns,
    param_name,
    read_results,
    short_value,
    status_text,
)
from reports.spent import epochs_spent_text
from tune.search.failures import ENDED_UNDER_IT, RETRIES_HINT, error_signature
from tune.search.study import Study
from tune.training.tasks import task_for


def split_text(epochs: pd.DataFrame) -> str | None:
    """The line on trials that ran out of GPU memory on a whole batch and went on in parts; None where none did."""
    split = epochs.loc[epochs[MICRO_BATCHES] > 1, TRIAL_ID].nunique() if MICRO_BATCHES in epochs else 0
    if not split:
        return None
    return (
        f"{split} trial{'s' if split > 1 else ''} ran out of GPU memory on a whole batch and took each batch in parts "
        "since (gradients accumulated; slower): a larger --gpus-per-trial gives a trial more memory"
    )


def failures_text(study: Study, trials: pd.DataFrame, shown: int = 5) -> list[str]:
    """A line for each error the failed trials failed with (those whose lines differ only in paths, ids and numbers
    are one), naming its trials and where a traceback is kept: each trial's was said as it failed, amid Ray's tables."""
    failed = trials[trials[STATUS] == Status.FAILED]
    lines = []
    for _, group in failed.groupby(failed[FAILURE].fillna("").map(error_signature), sort=False):
        ids = list(group[TRIAL_ID])
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        stage_dir = study.folder / str(group[STAGE].iloc[0])
        where = (
            f"; tracebacks: {stage_dir / TRIAL_DIR.format('ID')}/error.txt"
            if (stage_dir / TRIAL_DIR.format(ids[0]) / "error.txt").is_file()
            else ""
        )
        reason = group[FAILURE].iloc[0] or "no reason recorded"
        again = (
            ""
            if ENDED_UNDER_IT not in reason
            else f"; --retries {study.cfg.retries} used up"
            if study.cfg.retries
            else RETRIES_HINT
        )
        lines.append(f"  failed: {len(ids)} with {reason} ({', '.join(ids[:shown])}{more}{where}{again})")
    return lines


def print_summary(study: Study) -> None:
    trials, epochs = read_results(study.results_dir)
    if not len(trials):
        print("\nno trials ran: no results yet")
        return
    print(f"\nresults: {study.results_dir}")
    print(f"trials: {status_text(trials)}")
    for line in failures_text(study, trials):
        print(line)
    for stage in study.space.stages:
        if spent := epochs_spent_text(trials, stage.name):
            print(f"stage {stage.name}: {spent}")
    if (busy := gpu_busy_share(with_setup(epochs, trials))) is not None:
        print(f"GPU busy {busy:.0%} of the time from the first trial's start to the last trial's end")
    if split := split_text(epochs):
        print(split)
    final = study.space.stages[-1]
    top = finished_trials(trials, final.name).head(5)
    if not len(top):
        return
    params = param_columns(top)
    print(f"\ntop {len(top)} of stage {final.name} by {final.metric} ({final.mode}):")
    for rank, row in enumerate(top.to_dict("records"), 1):
        shown = ", ".join(f"{param_name(c)}={short_value(row[c])}" for c in params if not is_missing(row[c]))
        print(
            f"  {rank}. {row[TRIAL_ID]}  {final.metric} {row[BEST_METRIC]:.4f}  [{row[STATUS]}, {row[EPOCHS]} epoch{'s' if row[EPOCHS] != 1 else ''}]  {shown}"
        )
    best = top.iloc[0]
    print(f"\nbest checkpoint: {found_in(study.folder, best[CHECKPOINT])}")  # where the study is now
    if (references := study.results_dir / REFERENCES_FILE).exists():  # written by the best model's evaluation
        print(references_text(pd.read_parquet(references)))

    hidden = "" if has_split(study.root, "hidden", hidden=study.cfg.hidden) else " --hidden DIR"  # (none in the data)

    def submit(rule: str | None = None) -> str:
        return submit_command(study.folder, rule, hidden)

    if (submission := read_submission(study.folder)) is not None:
        print(
            f"submission: {study.folder / SUBMISSION_FILE} (the best checkpoint's masks of the {submission[VIDEOS]} "
            f"hidden videos; another trial's: {submit()} --trial ID)"
        )
    if final.mode == "max" and task_for(final.model).needs_segmenter:  # the rules answer from a segmenter's masks
        scores, above = rule_scores(epochs, best), rules_above(epochs, best)
        for rule, score in above.items():
            print(
                f"the rule {rule} scores {score:.4f} on the best trial's val masks (its segmenter's), above it (no "
                f"training); to submit "
                f"it: {submit(rule)}"
            )
        if scores and not above:
            print(unbeaten_text(final.model, best, scores))
    elif references.exists() and not any(task_for(s.model).needs_segmenter for s in study.space.stages):
        print(no_segmenter_text(study.space.name))  # only the rules' ceiling was said: this space has no segmenter
    task = task_for(final.model)
    if submission is None and (task.predicts_masks() or task.answer_rule):  # no hidden split, or the writing failed
        print(f"to submit it: {submit(None if task.predicts_masks() else task.answer_rule)}")  # (said above)
    print(
        f"its configuration trained anew (the budget's {best[MAX_EPOCHS]} epochs; --epochs N for more, "
        f"--trial ID for another above; on the study's data): python -m tune.train --from {shlex.quote(str(study.folder))}"
    )


def unbeaten_text(model: str, best: pd.Series, scores: dict[str, float]) -> str:
    """The summary's line where no rule scored above the `best` trial on its masks: it beats them all, or ties
    some (on a set too small to tell them apart, every answer may be all background)."""
    value = float(best[BEST_METRIC])
    hair = 5e-5  # a margin the 4 digits shown round to 0 (a few hundred pixels of a small val set)

    def margin(by: float) -> str:
        return f"{by:+.4f}" if by == 0 or abs(by) >= hair else f"{by:+.1e}"

    shown = ", ".join(f"{rule} {score:.4f} ({margin(value - score)})" for rule, score in scores.items())
    tied = [rule for rule, score in scores.items() if score == value]
    close = not tied and min(value - score for score in scores.values()) < hair
    verb = (
        f"ties {', '.join(tied)}, and no rule beats it,"
        if tied
        else "beats every rule by a hair (as good as a tie: more val videos tell them apart)"
        if close
        else "beats every rule"
    )
    return f"the best {model} ({best[TRIAL_ID]}) {verb} on the same val masks (its segmenter's): {shown}"


def rules_above(epochs: pd.DataFrame, best: pd.Series) -> dict[str, float]:
    """The rules (`tune.predict --rule`) that scored above the `best` trial on the masks it was scored on: rule ->
    its score."""
    return {rule: score for rule, score in rule_scores(epochs, best).items() if score > float(best[BEST_METRIC])}


def rule_scores(epochs: pd.DataFrame, best: pd.Series) -> dict[str, float]:
    """The rules' scores (`tune.predict --rule`) on the masks the `best` trial was scored on: the references its
    epochs recorded (last value), rule -> its score; none for a stage that records no rule."""
    rows = epochs[epochs[TRIAL_ID] == best[TRIAL_ID]] if TRIAL_ID in epochs else epochs
    found = {}
    for column, rule in RULE_REFERENCES.items():
        scores = rows[column].dropna() if column in rows else pd.Series(dtype=float)
        if len(scores):
            found[rule] = float(scores.iloc[-1])
    return found
