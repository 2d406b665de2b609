"""What a stage's trials spent: the epochs they ran, against what the same trials would have cost at the full
budget, and which of ASHA, the time budget and failures account for the rest (the compute line of the summary
and the report)."""

from __future__ import annotations

import pandas as pd

from reports.schema import EPOCHS, MAX_EPOCHS, RESTARTS, STAGE, STATUS, TRIAL_ID, Status


def epochs_spent(trials: pd.DataFrame, stage: str) -> tuple[int, int]:
    """What ASHA (and the time budget) spent on a stage: the epochs its trials ran, and what the same trials
    would have cost at the full budget (each MAX_EPOCHS)."""
    mine = trials[trials[STAGE] == stage] if len(trials) else trials
    if not len(mine):
        return 0, 0
    return int(mine[EPOCHS].fillna(0).sum()), int(mine[MAX_EPOCHS].fillna(0).sum())


def epochs_not_run(trials: pd.DataFrame, stage: str) -> dict[str, int]:
    """The epochs a stage's trials did not run (MAX_EPOCHS - EPOCHS), per STATUS with any: "stopped" is what ASHA
    saved, "cut" what the time budget cut, "failed" and "running" what failures and unfinished trials left."""
    mine = trials[trials[STAGE] == stage] if len(trials) else trials
    if not len(mine):
        return {}
    left = (mine[MAX_EPOCHS].fillna(0) - mine[EPOCHS].fillna(0)).clip(lower=0)
    per_status = left.groupby(mine[STATUS]).sum()
    return {str(status): int(n) for status, n in per_status.items() if n > 0}


NOT_RUN_TEXT = {  # how the compute line names each status's epochs not run
    Status.STOPPED: "ASHA saved {n}",
    Status.CUT: "the time budget cut {n}",
    Status.FAILED: "failed trials left {n}",
    Status.RUNNING: "{n} still to run",
}


def epochs_spent_text(trials: pd.DataFrame, stage: str) -> str:
    """The compute line of a stage: epochs run, of how many at the full budget, and which of ASHA, the time
    budget and failures account for the rest: "... (62%; ASHA saved 40, the time budget cut 52)"."""
    spent, full = epochs_spent(trials, stage)
    if not full:
        return ""
    not_run = epochs_not_run(trials, stage)
    why = [NOT_RUN_TEXT[s].format(n=not_run.get(s, 0)) for s in NOT_RUN_TEXT if s == Status.STOPPED or s in not_run]
    count = int((trials[STAGE] == stage).sum())
    who = "this trial" if count == 1 else f"these {count} trials"
    return (
        f"{spent} epochs run, of the {full} that {who} would have cost at the full budget "
        f"({spent / full:.0%}; {', '.join(why)}){restarts_text(trials, stage)}"
    )


def restarts_text(trials: pd.DataFrame, stage: str, shown: int = 5) -> str:
    """The compute line's end where some of a stage's trials ran again after their process ended (--retries, or a node
    Ray drained, whose trials it runs again whatever --retries): the epochs since their last checkpoint ran twice,
    which the epochs run leave out; "" where none did (or the results are from before RESTARTS was recorded)."""
    if RESTARTS not in trials or not len(trials):
        return ""
    again = trials[(trials[STAGE] == stage) & (trials[RESTARTS].fillna(0) > 0)]
    if not len(again):
        return ""
    ids = [f"{t} ({int(n)} times)" if n > 1 else str(t) for t, n in zip(again[TRIAL_ID], again[RESTARTS], strict=True)]
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    its, who = ("its", "1 trial") if len(ids) == 1 else ("their", f"{len(ids)} trials")
    # rows a version before the count wrote (NaN): their runs again then are not known
    unknown = "; those from before segtune counted them are not known" * bool(
        trials.loc[trials[STAGE] == stage, RESTARTS].isna().any()
    )
    return (
        f"; {who} ran again after {its} process ended (--retries, or {its} node drained): "
        f"{', '.join(ids[:shown])}{more}{unknown}"
    )
