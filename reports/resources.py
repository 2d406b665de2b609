"""Where a study's time went, from its epochs table: when each trial ran, the gaps when none did, the share
of the time the GPU was busy, and the seconds of each phase of an epoch. Pure pandas, numbers only.

An epoch covers [EPOCH_END - EPOCH_SECONDS, EPOCH_END] (Unix seconds; EPOCH_END is taken from REPORTED_AT where an
epoch has it: Ray's own is whole seconds, which made trials that ran one after the other seem to overlap by up to a
second, two slots where one ran). Epochs without those two columns
(studies made before segtune recorded them) are left out; with none left, every function answers with an
empty table, zeros or None rather than raising.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.schema import (
    EPOCH,
    EPOCH_END,
    EPOCH_SECONDS,
    GPU_BUSY,
    GPU_PEAK_GB,
    MICRO_BATCHES,
    PHASES,
    REPORTED_AT,
    SETUP_S,
    STAGE,
    STARTED_AT,
    TRIAL_ID,
)

# trial_intervals / idle_gaps columns
START = "start"  # Unix seconds
END = "end"  # Unix seconds
SECONDS = "seconds"  # END - START
KIND = "kind"  # one of GAP_KINDS
BEFORE = "before"  # the trial whose end opened the gap (the last to finish before it)
AFTER = "after"  # the trial whose start closed it
GAP_KINDS = ("between trials", "between stages")  # the trials before and after are of the same stage / not
# phase_seconds / stage_use columns besides PHASES
OTHER = "other_s"  # an epoch's seconds outside its phases (Ray's reporting, ...), clipped at 0
EPOCHS_S = "epochs_s"  # the sum of the epochs' EPOCH_SECONDS
SPAN_S = "span_s"  # the stage's first trial start to its last trial end
BUSY_SHARE = "gpu_busy_share"  # gpu_busy_share of the stage; NaN without GPU_BUSY values
IDLE_TRIALS_S = "idle_between_trials_s"  # idle gaps inside the stage
IDLE_STAGES_S = "idle_between_stages_s"  # the idle gap before the stage's first trial, after the stage before
PEAK_GB = "gpu_peak_gb"  # the largest GPU_PEAK_GB of its epochs; NaN without them
AT_ONCE = "trials_at_once"  # the most trials of the stage that ran at one time: its trial slots, as it used them
EMPTY_SLOTS_S = "empty_slots_s"  # the seconds of those AT_ONCE slots over SPAN_S that no trial held
SPLIT_TRIALS = "trials_split"  # trials whose batch ran out of GPU memory whole (MICRO_BATCHES over 1); 0 without


def timed(epochs: pd.DataFrame) -> pd.DataFrame:
    """The epochs that have both EPOCH_END and EPOCH_SECONDS; none of an older table."""
    if not len(epochs) or EPOCH_END not in epochs or EPOCH_SECONDS not in epochs:
        return epochs.iloc[:0]
    if REPORTED_AT in epochs:
        epochs = epochs.assign(**{EPOCH_END: epochs[REPORTED_AT].fillna(epochs[EPOCH_END])})
    return epochs[epochs[EPOCH_END].notna() & epochs[EPOCH_SECONDS].notna()]


def with_setup(epochs: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The epochs with a row more per trial for the time before its first epoch, from the trial's STARTED_AT
    (when Ray started it) to its first epoch's start: the trial's process, data and model. That row has
    EPOCH = 0, SETUP_S and EPOCH_SECONDS the seconds, no GPU_BUSY (it counts as idle). Epochs without
    timings, or trials without STARTED_AT, are left as they are."""
    rows = timed(epochs)
    if not len(rows) or STARTED_AT not in trials or EPOCH not in rows:
        return epochs
    started = trials.set_index(TRIAL_ID)[STARTED_AT].dropna().map(lambda t: pd.Timestamp(t).timestamp())
    first = rows.sort_values(EPOCH).groupby(TRIAL_ID, sort=False).head(1).set_index(TRIAL_ID)
    begins = first[EPOCH_END] - first[EPOCH_SECONDS]
    setup = (begins - started.reindex(begins.index)).dropna().clip(lower=0)
    added = pd.DataFrame(
        {
            TRIAL_ID: setup.index,
            STAGE: first.loc[setup.index, STAGE].to_numpy(),
            EPOCH: 0,
            EPOCH_END: begins.loc[setup.index].to_numpy(),
            EPOCH_SECONDS: setup.to_numpy(),
            SETUP_S: setup.to_numpy(),
        }
    )
    return pd.concat([added, epochs], ignore_index=True) if len(added) else epochs


def trial_intervals(epochs: pd.DataFrame) -> pd.DataFrame:
    """When each trial ran: TRIAL_ID, STAGE, START (its first epoch's start), END (its last epoch's end),
    SECONDS; sorted by START. A trial resumed after a crash counts the time it was down as running."""
    rows = timed(epochs)
    columns = [TRIAL_ID, STAGE, START, END, SECONDS]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    spans = rows.assign(**{START: rows[EPOCH_END] - rows[EPOCH_SECONDS], END: rows[EPOCH_END]})
    out = spans.groupby([TRIAL_ID, STAGE], sort=False).agg(**{START: (START, "min"), END: (END, "max")}).reset_index()
    out[SECONDS] = out[END] - out[START]
    return out.sort_values(START, kind="stable").reset_index(drop=True)[columns]


def idle_gaps(epochs: pd.DataFrame, min_gap_s: float = 1.0) -> pd.DataFrame:
    """The gaps of at least `min_gap_s` in the study's timeline (its first trial's start to its last trial's
    end) when no trial ran: START, END, SECONDS, KIND, BEFORE and AFTER (trial ids), STAGE (the stage of
    AFTER, the one the gap is charged to); in time order. Shorter gaps are the hand-over from one trial to
    the next and are left out."""
    intervals = trial_intervals(epochs)
    stage_of = dict(zip(intervals[TRIAL_ID], intervals[STAGE], strict=True))
    gaps = []
    latest_end, latest = -math.inf, None  # the end of the running trials so far, and the trial that holds it
    for row in intervals.itertuples(index=False):
        start, end, trial = getattr(row, START), getattr(row, END), getattr(row, TRIAL_ID)
        if latest is not None and start - latest_end >= min_gap_s:
            kind = GAP_KINDS[stage_of[latest] != getattr(row, STAGE)]
            gaps.append((latest_end, start, start - latest_end, kind, latest, trial, getattr(row, STAGE)))
        if end > latest_end:
            latest_end, latest = end, trial
    return pd.DataFrame(gaps, columns=[START, END, SECONDS, KIND, BEFORE, AFTER, STAGE])


def slots(intervals: pd.DataFrame) -> tuple[int, float]:
    """The most of these trials (trial_intervals) that ran at once, and the seconds of that many slots over their
    span that no trial held: time no trial ran, and a slot left empty while others ran (a stage's last trials)."""
    if not len(intervals):
        return 0, 0.0
    ends_first = sorted([(t, 1) for t in intervals[START]] + [(t, -1) for t in intervals[END]])  # (t, -1) < (t, 1)
    running = most = 0
    for _, step in ends_first:
        running += step
        most = max(most, running)
    span = float(intervals[END].max() - intervals[START].min())
    return most, max(0.0, most * span - float(intervals[SECONDS].sum()))


def idle_totals(gaps: pd.DataFrame) -> dict[str, float]:
    """Seconds of idle_gaps per kind: {"between trials": s, "between stages": s}, 0.0 where there are none."""
    return {kind: float(gaps.loc[gaps[KIND] == kind, SECONDS].sum()) if len(gaps) else 0.0 for kind in GAP_KINDS}


def gpu_busy_share(epochs: pd.DataFrame, stage: str | None = None) -> float | None:
    """The share (0-1) of the study's timeline (of `stage`'s, if given: its first trial's start to its last
    trial's end) that the GPU was busy. The span is cut into 1 s bins; a bin's busy is the largest GPU_BUSY
    of the epochs covering its middle (trials packed on one GPU each see the whole GPU's utilisation), 0
    where none does (between trials, or an epoch without a GPU_BUSY value); the share is the mean over the
    bins. None when no epoch (of the stage) has a GPU_BUSY value: CPU studies and older ones."""
    rows = timed(epochs)
    if stage is not None and len(rows):
        rows = rows[rows[STAGE] == stage]
    if GPU_BUSY not in rows or not rows[GPU_BUSY].notna().any():
        return None
    intervals = trial_intervals(rows)
    first, last = float(intervals[START].min()), float(intervals[END].max())
    bins = max(1, math.ceil(last - first))
    busy = np.zeros(bins)
    measured = rows[rows[GPU_BUSY].notna()]
    starts = (measured[EPOCH_END] - measured[EPOCH_SECONDS] - first).to_numpy(float)
    ends = (measured[EPOCH_END] - first).to_numpy(float)
    # bin k's middle, k + 0.5, lies in [start, end] for k from ceil(start - 0.5) to floor(end - 0.5)
    lows = np.clip(np.ceil(starts - 0.5), 0, bins).astype(int)
    highs = np.clip(np.floor(ends - 0.5) + 1, 0, bins).astype(int)
    for low, high, value in zip(lows, highs, measured[GPU_BUSY].clip(0, 1).to_numpy(float), strict=True):
        busy[low:high] = np.maximum(busy[low:high], value)
    return float(busy.mean())


def phase_seconds(epochs: pd.DataFrame) -> pd.DataFrame:
    """Seconds per phase summed per stage: one row per stage (in the order they ran), columns PHASES, OTHER
    (EPOCH_SECONDS minus the phases, per epoch, clipped at 0) and EPOCHS_S (EPOCH_SECONDS summed). A phase
    column the table lacks is NaN; empty when no epoch has EPOCH_SECONDS or none has a phase."""
    rows = timed(epochs)
    present = [p for p in PHASES if p in rows and rows[p].notna().any()]
    if not len(rows) or not present:
        return pd.DataFrame(columns=[*PHASES, OTHER, EPOCHS_S], index=pd.Index([], name=STAGE))
    phases = rows.reindex(columns=list(PHASES))
    other = (rows[EPOCH_SECONDS] - phases[present].fillna(0).sum(axis=1)).clip(lower=0)
    table = phases.assign(**{OTHER: other, EPOCHS_S: rows[EPOCH_SECONDS], STAGE: rows[STAGE]})
    return table.groupby(STAGE).sum(min_count=1)[[*PHASES, OTHER, EPOCHS_S]].reindex(stages_in_time(rows))


def stages_in_time(epochs: pd.DataFrame) -> list[str]:
    """The stages of timed epochs in the order they began (the table's row order need not be it)."""
    rows = timed(epochs)
    starts = (rows[EPOCH_END] - rows[EPOCH_SECONDS]).groupby(rows[STAGE]).min()
    return [str(stage) for stage in starts.sort_values(kind="stable").index]


def stage_use(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per stage (in the order they ran) of what its trials used: the columns of phase_seconds
    (NaN without phases), SPAN_S, BUSY_SHARE, IDLE_TRIALS_S, IDLE_STAGES_S, AT_ONCE, EMPTY_SLOTS_S, PEAK_GB and
    SPLIT_TRIALS. Empty when
    no epoch has timings."""
    rows = timed(epochs)
    columns = [*PHASES, OTHER, EPOCHS_S, SPAN_S, BUSY_SHARE, IDLE_TRIALS_S, IDLE_STAGES_S, AT_ONCE, EMPTY_SLOTS_S]
    columns += [PEAK_GB, SPLIT_TRIALS]
    if not len(rows):
        return pd.DataFrame(columns=columns, index=pd.Index([], name=STAGE))
    intervals = trial_intervals(rows)
    stages = stages_in_time(rows)
    spans = intervals.groupby(STAGE, sort=False).agg(**{START: (START, "min"), END: (END, "max")})
    gaps = idle_gaps(rows)
    table = phase_seconds(rows).reindex(stages)
    table[EPOCHS_S] = rows.groupby(STAGE, sort=False)[EPOCH_SECONDS].sum().reindex(stages)
    table[SPAN_S] = spans[END] - spans[START]
    table[BUSY_SHARE] = [gpu_busy_share(rows, s) for s in stages]
    for column, kind in ((IDLE_TRIALS_S, GAP_KINDS[0]), (IDLE_STAGES_S, GAP_KINDS[1])):
        mine = gaps[gaps[KIND] == kind] if len(gaps) else gaps
        table[column] = mine.groupby(STAGE)[SECONDS].sum().reindex(stages).fillna(0.0) if len(mine) else 0.0
    table[AT_ONCE], table[EMPTY_SLOTS_S] = zip(*(slots(intervals[intervals[STAGE] == s]) for s in stages), strict=True)
    table[PEAK_GB] = (
        rows.groupby(STAGE, sort=False)[GPU_PEAK_GB].max().reindex(stages) if GPU_PEAK_GB in rows else np.nan
    )
    split = rows[rows[MICRO_BATCHES] > 1] if MICRO_BATCHES in rows else rows.iloc[:0]
    table[SPLIT_TRIALS] = split.groupby(STAGE)[TRIAL_ID].nunique().reindex(stages).fillna(0.0)
    table.index.name = STAGE
    return table[columns].astype(float)
