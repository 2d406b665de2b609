"""Every registered model is trained by exactly one task object, chosen from its interface; the task
names are those the checkpoints record; a segmenter's masks have one shape per object, made without autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.classes import NUM_CLASSES
from models.registry import create_model, list_models, model_entry
from tune.training.inference import class_ids
from tune.training.run import build_run
from tune.training.tasks import task_for
from tune.training.tasks.frame_segmentation import segment_frames, segmenter_masks

EXPECTED = {
    "unet": "segmentation",
    "dual_phase": "segmentation",
    "frame_predictor": "frame_prediction",
    "frame_segmenter": "frame_segmentation",
    "mask_predictor": "mask_prediction",
    "object_dynamics": "object_dynamics",
}


@pytest.mark.parametrize("model", list_models())
def test_each_model_has_one_task_that_handles_its_interface(model: str) -> None:
    task_for(model)  # raises unless exactly one task handles its interface (what this test is for)


def test_task_names_are_those_checkpoints_record() -> None:
    assert {model: task_for(model).name for model in EXPECTED} == EXPECTED


def test_only_the_mask_and_dynamics_tasks_train_on_a_segmenter() -> None:
    own = [m for m in list_models() if model_entry(m).build.__module__.startswith("models.")]  # (and no plugin's)
    assert {m for m in own if task_for(m).needs_segmenter} == {"mask_predictor", "object_dynamics"}


def test_a_segmenters_masks_have_one_shape_per_object_unless_asked_for_each_pixels_class() -> None:
    logits = torch.zeros(1, NUM_CLASSES, 10, 10)
    logits[0, 0] = 1.0  # background
    logits[0, 1, 2:6, 2:6] = 5.0  # a red metal cube
    logits[0, 17, 2:4, 2:4] = 9.0  # a quarter of it read as a red metal sphere
    raw = segmenter_masks(logits, one_shape=False)
    assert torch.equal(raw, class_ids(logits)) and set(raw.unique().tolist()) == {0, 1, 17}
    voted = segmenter_masks(logits)
    assert (voted[0, 2:6, 2:6] == 1).all() and int((voted > 0).sum()) == 16


def test_a_segmenters_masks_are_made_without_autograd() -> None:
    """Every pipeline's masks (prediction, evaluation, pseudo-labels, rules) come through segment_frames: with
    autograd on, each chunk would keep the segmenter's activations for a backward pass that never comes."""
    run = build_run("frame_segmenter", ["width=4", "depth=2"])
    model = create_model(run.model, run.model_config)
    grad_modes: list[bool] = []
    model.register_forward_hook(lambda _m, _i, _o: grad_modes.append(torch.is_grad_enabled()))
    frames = np.random.default_rng(0).integers(0, 256, (3, 22, 160, 240, 3), dtype=np.uint8)
    masks = segment_frames(run, model, frames, (9, 10), "cpu", batch_size=2)
    assert masks.shape == (3, 2, 160, 240) and masks.dtype == np.uint8
    assert torch.is_grad_enabled() and grad_modes == [False] * 3  # a video a chunk; the caller's mode is left on
