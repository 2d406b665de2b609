"""Run configs: what a resume compares."""

from __future__ import annotations

from tune.training.config import RunConfig


def test_differences_name_each_setting_as_set_takes_it_and_leave_the_runtime_ones_out() -> None:
    asked = RunConfig.from_values("dual_phase", {"predictor.hidden": 8, "lr": 0.01, "eval_batch_size": 4}, epochs=2)
    saved = RunConfig.from_values("dual_phase", {"predictor.hidden": 16, "compile": True}, epochs=3)
    assert asked.differences(saved) == [
        "epochs 2 (the checkpoint has 3)",
        "lr 0.01 (the checkpoint has 0.001)",
        "predictor.hidden 8 (the checkpoint has 16)",
    ]
    assert asked.differences(asked) == []
    other = RunConfig.from_values("unet", {}, epochs=2)
    assert other.differences(saved) == ["model 'unet' (the checkpoint is of a 'dual_phase' run)"]  # its fields aside
