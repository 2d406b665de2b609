"""The budget's training values (Budget.run_values: epoch_samples) travel on the stage's job, beside max_epochs,
not in Optuna's config; `--set` fixes them as before; a budget that leaves one unset leaves the run its own
default (TrainConfig's, the only one). No Ray started here."""

from __future__ import annotations

import optuna
import pytest

from tune.search.budget import Budget, budget_for
from tune.search.overrides import describe_stage, parse_overrides, run_values
from tune.search.resources import Resources
from tune.search.searcher import DefineByRun
from tune.search.space_check import show_space
from tune.search.spaces import TRACK_EPOCH, get_space
from tune.search.trainable import StageJob
from tune.training.config import TrainConfig

SMOKE = budget_for("smoke", gpu=False)
CPU = Resources(gpus_per_trial=0, cpus_per_trial=1, concurrent=1, compile=False)
BUILT_IN = ("unet", "dual_phase", "mask_space", "dynamics")
OWN_EPOCH = {("dynamics", "dynamics"): TRACK_EPOCH}  # a define that fixes epoch_samples itself: that many budget epochs
# (a video's tracks cost ~1/1000 of its frames); a plugin's may too (benchmarks/bank_space.py)


def job(model: str, values: dict[str, int]) -> StageJob:
    return StageJob(model=model, max_epochs=3, run_values=values, data_root="unused", resources=CPU)


@pytest.mark.parametrize("space", BUILT_IN)
def test_no_stage_puts_the_budgets_values_in_optunas_config(space: str) -> None:
    for stage in get_space(space).stages:
        trial = optuna.create_study().ask()
        constants = DefineByRun(stage, SMOKE, ("parent",))(trial) or {}
        assert not set(SMOKE.run_values()) & set(trial.params), (stage.name, trial.params)
        own = OWN_EPOCH.get((space, stage.name))
        fixed = {"epoch_samples": own * (SMOKE.epoch_samples or 0)} if own else {}
        assert {key: constants[key] for key in SMOKE.run_values() if key in constants} == fixed, (stage.name, constants)


@pytest.mark.parametrize(
    ("name", "gpu", "samples"), [("smoke", False, 4), ("default", False, 240), ("default", True, 2000)]
)
def test_each_budget_sets_its_epoch_samples_and_every_stage_has_them(name: str, gpu: bool, samples: int) -> None:
    budget = budget_for(name, gpu=gpu)
    assert budget.run_values() == {"epoch_samples": samples}
    for space in BUILT_IN:
        for stage in get_space(space).stages:
            times = OWN_EPOCH.get((space, stage.name), 1)
            assert describe_stage(stage, budget)["epoch_samples"].text() == f"constant {times * samples}"


def test_a_trials_run_takes_the_budgets_values_and_epochs() -> None:
    run = job("unet", SMOKE.run_values()).plan({"width": 4}).run
    assert (run.train.epoch_samples, run.train.epochs, run.model_config.width) == (4, 3, 4)


def test_a_value_the_spaces_define_fixes_itself_wins_over_the_budgets() -> None:
    # benchmarks/bank_space.py returns epoch_samples=120 from its define, a constant of its trials' config
    run = job("frame_segmenter", SMOKE.run_values()).plan({"epoch_samples": 120}).run
    assert run.train.epoch_samples == 120


def test_a_budget_that_leaves_a_value_unset_leaves_the_runs_own_default() -> None:
    bare = Budget("bare", 1, 1, 1, 2, (4,), (4,), (4,), (2,))
    assert bare.run_values() == {}
    assert job("unet", bare.run_values()).plan({}).run.train.epoch_samples == TrainConfig().epoch_samples


def test_set_fixes_a_budget_value_for_every_stage_or_for_one() -> None:
    space = get_space("dual_phase")
    overrides = parse_overrides(space, SMOKE, ["set finetune.epoch_samples=500"])
    of = {stage.name: [o for o in overrides if o.stage == stage.name] for stage in space.stages}
    assert run_values(SMOKE, of["finetune"]) == {"epoch_samples": 500}
    assert run_values(SMOKE, of["pretrain"]) == {"epoch_samples": 4}
    pretrain, finetune = show_space(space, SMOKE, overrides, SMOKE.samples).split("stage finetune")
    assert "epoch_samples     fixed 500   (--set)" in finetune and "epoch_samples  constant 4" in pretrain
    everywhere = parse_overrides(space, SMOKE, ["set epoch_samples=16"])
    assert [run_values(SMOKE, [o]) for o in everywhere] == [{"epoch_samples": 16}] * 2


def test_set_of_a_budget_value_is_checked_by_the_run_config() -> None:
    with pytest.raises(ValueError, match=r"TrainConfig\.epoch_samples must be >= 0"):
        parse_overrides(get_space("unet"), SMOKE, ["set epoch_samples=-1"])
    with pytest.raises(ValueError, match="epoch_samples is constant 4, not a range"):
        parse_overrides(get_space("unet"), SMOKE, ["range epoch_samples=1:10"])
