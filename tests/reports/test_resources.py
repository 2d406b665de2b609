"""Where a study's time went, on hand-made epochs tables (tests/reports/study_files.TIMED_EPOCHS: two stages,
two trials packed on the GPU, a gap between trials and one between the stages), a CPU-only one and an old
one without the timing columns."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports import page, resource_figures, resources, schema
from tests.reports.study_files import TIMED_EPOCHS, timed_epoch

EPOCHS = pd.DataFrame(TIMED_EPOCHS)
CPU = EPOCHS.drop(columns=[schema.GPU_BUSY, schema.GPU_PEAK_GB])  # the columns are absent on a CPU study
OLD = EPOCHS[[schema.TRIAL_ID, schema.SPACE, schema.STAGE, schema.EPOCH, "val_iou"]]  # before segtune timed epochs


def test_a_trial_runs_from_its_first_epochs_start_to_its_last_epochs_end() -> None:
    intervals = resources.trial_intervals(EPOCHS)
    assert list(intervals[schema.TRIAL_ID]) == ["a", "b", "d", "c"]  # by start
    assert list(intervals[resources.START]) == [1000.0, 1005.0, 1025.0, 1040.0]
    assert list(intervals[resources.END]) == [1020.0, 1015.0, 1030.0, 1050.0]
    assert list(intervals[schema.STAGE]) == ["pretrain", "pretrain", "pretrain", "finetune"]


def test_idle_gaps_are_labelled_between_trials_or_between_stages() -> None:
    gaps = resources.idle_gaps(EPOCHS)
    assert list(gaps[resources.START]) == [1020.0, 1030.0] and list(gaps[resources.END]) == [1025.0, 1040.0]
    assert list(gaps[resources.KIND]) == ["between trials", "between stages"]
    assert list(gaps[schema.STAGE]) == ["pretrain", "finetune"]  # charged to the stage after the gap
    assert resources.idle_totals(gaps) == {"between trials": 5.0, "between stages": 10.0}


def test_a_gap_opens_when_the_last_of_packed_trials_ends() -> None:
    gaps = resources.idle_gaps(EPOCHS)
    # b started after a but ended before it: the gap before d opens at a's end, not b's
    assert (gaps[resources.BEFORE].iloc[0], gaps[resources.AFTER].iloc[0]) == ("a", "d")


def test_trial_slots_are_the_most_trials_at_once_and_their_empty_time_counts_a_slot_left_empty_while_others_ran() -> (
    None
):
    use = resources.stage_use(EPOCHS)
    # pretrain: a 1000-1020 and b 1005-1015 at once, d 1025-1030: 2 slots over 30 s, 35 s held
    assert use.loc["pretrain", resources.AT_ONCE] == 2 and use.loc["pretrain", resources.EMPTY_SLOTS_S] == 25.0
    assert use.loc["finetune", resources.AT_ONCE] == 1 and use.loc["finetune", resources.EMPTY_SLOTS_S] == 0.0
    lines = page.stage_use_table(use.iloc[0]).set_index("")  # pretrain's
    assert tuple(lines.loc["trial slots left empty"]) == ("25s", "42% of its 2 trials at once over the stage")
    assert "trial slots left empty" not in list(page.stage_use_table(use.iloc[1])[""])  # finetune's: one at a time
    handed_over = pd.DataFrame([timed_epoch("a", "s", 1, 10.0, 10.0), timed_epoch("b", "s", 1, 20.0, 10.0)])
    assert resources.slots(resources.trial_intervals(handed_over)) == (1, 0.0)  # one ends as the next starts


def test_epochs_are_timed_by_the_trials_own_clock_not_rays_whole_seconds() -> None:
    """Ray's timestamp is whole seconds: a trial that began 0.1 s after the one before it ended seemed to overlap it."""
    a, b = timed_epoch("a", "s", 1, 11.0, 10.0), timed_epoch("b", "s", 1, 21.0, 10.2)  # Ray's: a to 11, b from 10.8
    rounded = pd.DataFrame([a, b])
    assert resources.slots(resources.trial_intervals(rounded))[0] == 2
    own = pd.DataFrame([{**a, schema.REPORTED_AT: 10.3}, {**b, schema.REPORTED_AT: 20.6}])  # a to 10.3, b from 10.4
    assert resources.slots(resources.trial_intervals(own))[0] == 1
    assert list(resources.trial_intervals(own)[resources.END]) == [10.3, 20.6]


def test_gaps_shorter_than_min_gap_s_are_the_hand_over_between_trials() -> None:
    epochs = pd.DataFrame([timed_epoch("a", "s", 1, 10.0, 10.0), timed_epoch("b", "s", 1, 20.5, 10.0)])
    assert resources.idle_gaps(epochs).empty
    assert list(resources.idle_gaps(epochs, min_gap_s=0.1)[resources.SECONDS]) == [0.5]


def test_gpu_busy_share_is_the_mean_over_1s_bins_of_the_busiest_epoch_or_0() -> None:
    # 50 s: a alone at 0.5 for 5 + 5 s, b packed over a at 1.0 for 10 s, 5 s idle, d at 0.2 for 5 s,
    # 10 s idle, c at 0.8 for 10 s
    assert resources.gpu_busy_share(EPOCHS) == pytest.approx((10 * 0.5 + 10 * 1.0 + 5 * 0.2 + 10 * 0.8) / 50)


def test_an_epoch_counts_in_the_bins_whose_middle_it_covers() -> None:
    # 4 s, bins [0, 1) .. [3, 4): the busy epoch [0, 1.4] covers bin 0's middle only, and not bin 1's (1.5)
    epochs = pd.DataFrame([timed_epoch("a", "s", 1, 1001.4, 1.4, 1.0), timed_epoch("a", "s", 2, 1004.0, 2.6, 0.0)])
    assert resources.gpu_busy_share(epochs) == pytest.approx(0.25)


def test_gpu_busy_share_of_a_stage_spans_that_stage_only() -> None:
    assert resources.gpu_busy_share(EPOCHS, "pretrain") == pytest.approx((10 * 0.5 + 10 * 1.0 + 5 * 0.2) / 30)
    assert resources.gpu_busy_share(EPOCHS, "finetune") == pytest.approx(0.8)
    assert resources.gpu_busy_share(EPOCHS, "nope") is None


def test_an_epoch_without_a_gpu_busy_value_counts_as_idle() -> None:
    epochs = EPOCHS.copy()
    epochs.loc[epochs[schema.TRIAL_ID] == "c", schema.GPU_BUSY] = math.nan
    assert resources.gpu_busy_share(epochs) == pytest.approx((10 * 0.5 + 10 * 1.0 + 5 * 0.2) / 50)


def test_phase_seconds_are_summed_per_stage_with_the_rest_as_other() -> None:
    table = resources.phase_seconds(EPOCHS)
    assert list(table.index) == ["pretrain", "finetune"]  # the order they ran
    pretrain = table.loc["pretrain"]
    assert pretrain[schema.DATA_WAIT_S] == 4.0 and pretrain[schema.EVAL_S] == 4.0
    assert pretrain[schema.TRAIN_S] == 7.0 * 3 + 2.0 and pretrain[schema.CHECKPOINT_S] == 2.0
    assert pretrain[resources.OTHER] == 4 * 0.5 and pretrain[resources.EPOCHS_S] == 35.0
    assert table.loc["finetune", resources.EPOCHS_S] == 10.0


def test_other_is_clipped_at_zero_when_the_phases_overrun_the_epoch() -> None:
    epochs = pd.DataFrame([{**timed_epoch("a", "s", 1, 10.0, 10.0), schema.TRAIN_S: 20.0}])
    assert resources.phase_seconds(epochs).loc["s", resources.OTHER] == 0.0


def test_a_phase_the_table_lacks_is_nan_not_zero() -> None:
    table = resources.phase_seconds(EPOCHS.drop(columns=[schema.CHECKPOINT_S]))
    assert table[schema.CHECKPOINT_S].isna().all()
    assert table.loc["pretrain", resources.OTHER] == 4 * 1.0  # the checkpoint's 0.5 s now counts as other


def test_stage_use_gathers_each_stages_numbers() -> None:
    use = resources.stage_use(EPOCHS)
    assert list(use.index) == ["pretrain", "finetune"]
    assert list(use[resources.SPAN_S]) == [30.0, 10.0]
    assert list(use[resources.IDLE_TRIALS_S]) == [5.0, 0.0]
    assert list(use[resources.IDLE_STAGES_S]) == [0.0, 10.0]
    assert list(use[resources.PEAK_GB]) == [2.0, 1.0]
    assert list(use[resources.SPLIT_TRIALS]) == [0.0, 0.0]  # no micro_batches column: none split
    split = EPOCHS.assign(**{schema.MICRO_BATCHES: [2.0 if t in ("a", "b") else 1.0 for t in EPOCHS[schema.TRIAL_ID]]})
    split.loc[(split[schema.TRIAL_ID] == "a") & (split[schema.EPOCH] == 1), schema.MICRO_BATCHES] = 1.0  # from epoch 2
    assert list(resources.stage_use(split)[resources.SPLIT_TRIALS]) == [2.0, 0.0]
    assert "trials that split their batches" in list(page.stage_use_table(resources.stage_use(split).iloc[0])[""])
    assert "trials that split their batches" not in list(page.stage_use_table(use.iloc[0])[""])
    assert use.loc["finetune", resources.BUSY_SHARE] == pytest.approx(0.8)
    assert use.loc["pretrain", resources.EPOCHS_S] == 35.0


def test_a_cpu_study_has_timings_and_phases_but_no_gpu_numbers() -> None:
    assert len(resources.timed(CPU)) == len(CPU)
    assert resources.gpu_busy_share(CPU) is None
    use = resources.stage_use(CPU)
    assert use[resources.BUSY_SHARE].isna().all() and use[resources.PEAK_GB].isna().all()
    assert list(use[resources.IDLE_STAGES_S]) == [0.0, 10.0]
    assert resource_figures.gpu_busy_over_time(CPU, "pretrain") is None
    assert resource_figures.phase_time(CPU) is not None


@pytest.mark.parametrize("old", [OLD, pd.DataFrame()], ids=["without-timing-columns", "empty"])
def test_an_old_table_gives_empty_answers_not_errors(old: pd.DataFrame) -> None:
    assert resources.timed(old).empty
    assert resources.trial_intervals(old).empty and resources.idle_gaps(old).empty
    assert resources.idle_totals(resources.idle_gaps(old)) == {"between trials": 0.0, "between stages": 0.0}
    assert resources.gpu_busy_share(old) is None
    assert resources.phase_seconds(old).empty and resources.stage_use(old).empty
    assert resource_figures.phase_time(old) is None and resource_figures.gpu_busy_over_time(old, "pretrain") is None


def test_epochs_without_timings_in_a_timed_table_are_left_out() -> None:
    epochs = EPOCHS.copy()  # e.g. a study resumed after segtune began recording them
    epochs.loc[epochs[schema.TRIAL_ID] == "d", [schema.EPOCH_END, schema.EPOCH_SECONDS]] = math.nan
    assert list(resources.trial_intervals(epochs)[schema.TRIAL_ID]) == ["a", "b", "c"]
    assert list(resources.idle_gaps(epochs)[resources.SECONDS]) == [20.0]


def test_the_gpu_figure_draws_each_epoch_as_a_step_from_the_studys_start_with_the_gaps_shaded() -> None:
    fig = resource_figures.gpu_busy_over_time(EPOCHS, "pretrain")
    assert fig is not None
    traces = {trace.name: trace for trace in fig.data}
    assert set(traces) == {"a", "b", "d"}
    assert list(traces["a"].x) == [0.0, 10.0, None, 10.0, 20.0, None]
    assert list(traces["d"].x) == [25.0, 30.0, None] and list(traces["d"].y) == [0.2, 0.2, None]
    assert [(shape.x0, shape.x1) for shape in fig.layout.shapes] == [(20.0, 25.0)]  # pretrain's gap only
    later = resource_figures.gpu_busy_over_time(EPOCHS, "finetune")
    assert later is not None and [(s.x0, s.x1) for s in later.layout.shapes] == [(30.0, 40.0)]
    assert "80% of the stage's time" in later.layout.title.text


def test_the_phase_figure_stacks_each_phase_per_stage() -> None:
    fig = resource_figures.phase_time(EPOCHS)
    assert fig is not None and fig.layout.barmode == "stack"
    bars = {bar.name: list(bar.y) for bar in fig.data}
    assert bars[resource_figures.PHASE_LABELS[schema.TRAIN_S]] == [23.0, 7.0]
    assert bars[resource_figures.PHASE_LABELS[resources.OTHER]] == [2.0, 0.5]
    assert list(fig.data[0].x) == ["pretrain", "finetune"]


def test_a_trials_setup_before_its_first_epoch_counts_from_its_launch_as_idle_gpu_time() -> None:
    # a launched 10 s before its first epoch's start (1000), b 5 s before its own (1005): b's setup is inside a's
    # first epoch, a's is the study's first 10 s, with no GPU_BUSY
    launched = pd.to_datetime([990.0, 1000.0], unit="s", utc=True)
    trials = pd.DataFrame({schema.TRIAL_ID: ["a", "b"], schema.STARTED_AT: launched})
    epochs = resources.with_setup(EPOCHS, trials)
    setup = epochs[epochs[schema.EPOCH] == 0].set_index(schema.TRIAL_ID)
    assert setup[schema.SETUP_S].to_dict() == {"a": 10.0, "b": 5.0}
    assert setup[schema.EPOCH_END].to_dict() == {"a": 1000.0, "b": 1005.0} and setup[schema.GPU_BUSY].isna().all()
    assert resources.trial_intervals(epochs).set_index(schema.TRIAL_ID)[resources.START]["a"] == 990.0
    assert resources.gpu_busy_share(epochs) == pytest.approx((10 * 0.5 + 10 * 1.0 + 5 * 0.2 + 10 * 0.8) / 60)
    phases = resources.phase_seconds(epochs)
    assert phases[schema.SETUP_S].fillna(-1).to_dict() == {"pretrain": 15.0, "finetune": -1}
    assert resources.with_setup(OLD, trials) is OLD  # nothing to extend without timings
    assert len(resources.with_setup(EPOCHS, trials.drop(columns=[schema.STARTED_AT]))) == len(EPOCHS)


def test_stages_keep_the_order_they_ran_in_whatever_the_trial_ids() -> None:
    # the table's rows in another order than the epochs ran (c, the finetune trial, first), c's setup row too
    launched = pd.to_datetime([1020.0, 1035.0], unit="s", utc=True)
    trials = pd.DataFrame({schema.TRIAL_ID: ["d", "c"], schema.STARTED_AT: launched})
    epochs = resources.with_setup(EPOCHS.iloc[::-1], trials)
    assert list(resources.phase_seconds(epochs).index) == ["pretrain", "finetune"]
    assert list(resources.stage_use(epochs).index) == ["pretrain", "finetune"]
    fig = resource_figures.phase_time(epochs)
    assert fig is not None and list(fig.data[0].x) == ["pretrain", "finetune"]
