"""Every registered model is trained by exactly one task object, chosen from its interface; the task
names are those the checkpoints record."""

from __future__ import annotations

import pytest

from models.registry import list_models, model_entry
from tune.training.tasks import task_for

EXPECTED = {
    "unet": "segmentation",
    "dual_phase": "segmentation",
    "frame_predictor": "frame_prediction",
    "frame_segmenter": "frame_segmentation",
    "mask_predictor": "mask_prediction",
}


@pytest.mark.parametrize("model", list_models())
def test_each_model_has_one_task_that_handles_its_interface(model: str) -> None:
    task = task_for(model)
    assert task.handles(model_entry(model))


def test_task_names_are_those_checkpoints_record() -> None:
    assert {model: task_for(model).name for model in EXPECTED} == EXPECTED


def test_only_the_mask_task_trains_on_a_segmenter() -> None:
    assert {m for m in list_models() if task_for(m).needs_segmenter} == {"mask_predictor"}
