"""The input scale: a model sees its inputs reduced and its outputs come back at 160x240; training's loss is
at the reduced size against targets reduced alike; dual_phase's per-frame loss trains its segmenter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.dual_phase import DualPhase
from models.frame_predictor import FramePrediction
from models.registry import create_model, model_config
from tune.train import build_run
from tune.training.config import TrainConfig
from tune.training.inference import ModelRunner, class_ids, reduce_inputs, restore_size
from tune.training.tasks import task_for
from tune.training.trainer import Trainer, load_data


def test_reduced_inputs_average_frames_and_sample_masks_at_block_centres() -> None:
    frames = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert reduce_inputs(frames, 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    masks = torch.arange(16).reshape(1, 4, 4)
    assert reduce_inputs(masks, 2).flatten().tolist() == [5, 7, 13, 15]
    assert reduce_inputs(masks, 1) is masks


def test_class_ids_are_argmaxs_answer_ties_included() -> None:
    logits = torch.randn(3, 49, 16, 24).round()  # integers: many pixels with two or more largest logits
    logits[0] = 0.0  # every class tied: class 0
    assert (logits.amax(1, keepdim=True) == logits).sum(1).gt(1).any()
    ids = class_ids(logits)
    assert ids.shape == (3, 16, 24) and torch.equal(ids, logits.argmax(1)) and (ids[0] == 0).all()


def test_outputs_at_the_reduced_size_come_back_full_size_and_features_stay() -> None:
    out = FramePrediction(torch.rand(2, 3, 40, 60), torch.rand(2, 8, 10, 15))
    back = restore_size(out, (40, 60), (160, 240))
    assert isinstance(back, FramePrediction)
    assert back.frame.shape == (2, 3, 160, 240) and back.features.shape == (2, 8, 10, 15)
    assert restore_size(torch.rand(2, 11, 49, 40, 60), (40, 60), (160, 240)).shape == (2, 11, 49, 160, 240)


def test_a_scale_that_is_not_one_over_an_integer_is_refused() -> None:
    with pytest.raises(ValueError, match=r"input_scale must be one of \(1.0, 0.5, 0.25\), got 0.3"):
        TrainConfig(input_scale=0.3)


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_a_runner_at_a_reduced_scale_runs_the_model_small_and_answers_full_size(scale: float) -> None:
    model = create_model("unet", model_config("unet", width=4, depth=4)).eval()
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    runner = ModelRunner(model, "unet", torch.device("cpu"), input_scale=scale)
    raw = torch.randint(0, 256, (2, 11, 3, 160, 240), dtype=torch.uint8)
    with torch.no_grad():
        full, small = runner(raw), runner.at_model_size()(raw)
    side = round(1 / scale)
    assert seen[0] == (2, 33, 160 // side, 240 // side)
    assert full.shape == (2, 49, 160, 240) and small.shape == (2, 49, 160 // side, 240 // side)


def test_dual_phase_frame_weight_trains_the_segmenter_on_true_frames(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGTUNE_CACHE", str(tmp_path / "cache"))
    sets = ["predictor.width=4", "predictor.hidden=4", "seg_width=4", "seg_depth=2", "batch_size=2", "input_scale=0.5"]
    data = load_data(build_run("dual_phase", sets, epochs=1), synth_root, "cpu", progress=False)
    losses = {}
    for weight in (0.0, 1.0, 3.0):
        run = build_run("dual_phase", [*sets, f"frame_weight={weight}", "frames_per_video=3"], epochs=1)
        trainer = Trainer(run, data)
        index = torch.arange(2)
        extra = task_for("dual_phase").auxiliary_loss(
            trainer.runner.at_model_size(), data.train, index, run.train, trainer.generator, None
        )
        losses[weight] = None if extra is None else extra.detach()
        if extra is not None:
            extra.backward()
            model = trainer.model
            assert isinstance(model, DualPhase)
            assert all(p.grad is None for p in model.predictor.parameters())  # the frozen part
            assert all(p.grad is not None for p in model.segmenter.parameters())
    assert losses[0.0] is None
    assert losses[1.0] is not None and losses[3.0] is not None and float(losses[1.0]) > 0
    assert float(losses[3.0]) == pytest.approx(3 * float(losses[1.0]))  # same seed: same frames, same model
    unet = build_run("unet", ["width=4", "depth=2", "frame_weight=3"], epochs=1)  # no segmenter part: no such loss
    assert (
        task_for("unet").auxiliary_loss(
            ModelRunner(create_model("unet", unet.model_config), "unet", torch.device("cpu")),
            data.train,
            torch.arange(2),
            unet.train,
            torch.Generator(),
            None,
        )
        is None
    )
