"""The input scale: a model sees its inputs reduced and its outputs come back at 160x240; training's loss is
at the reduced size against targets reduced alike; dual_phase's per-frame loss trains its segmenter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.dual_phase import DualPhase
from models.frame_predictor import FramePrediction
from models.mask_predictor import MaskPredictor
from models.registry import create_model, model_config
from tune.training.config import TrainConfig
from tune.training.inference import ModelRunner, class_ids, reduce_inputs, resolve_device, restore_size
from tune.training.run import build_run
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
    synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
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


def _mask_predictor(**settings: object) -> MaskPredictor:
    model = create_model("mask_predictor", model_config("mask_predictor", hid_s=4, hid_t=8, n_t=2, embed=4, **settings))
    assert isinstance(model, MaskPredictor)
    return model.eval()


def _silent_mask_predictor(**settings: object) -> MaskPredictor:
    """A mask predictor whose network says nothing (head zeroed): its logits are its prior's bonus alone."""
    model = _mask_predictor(**settings)
    assert model.head.bias is not None
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    return model


def _moving_object_masks() -> torch.Tensor:
    """uint8 masks of frames 1-11 (2, 11, 160, 240): an object of odd size at odd offsets moving 3 px a frame
    to the right and 1 down, and a still one; at half size both lose a row or a column."""
    x = torch.zeros(2, 11, 160, 240, dtype=torch.uint8)
    for t in range(11):
        x[:, t, 51 + t : 62 + t, 13 + 3 * t : 24 + 3 * t] = 7
    x[:, :, 101:110, 99:110] = 3
    return x


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_a_reduced_mask_predictor_puts_its_motion_prior_back_at_full_size(scale: float) -> None:
    """At a reduced input scale the runner's logits carry the motion rule of the full-size masks: a silent
    network answers exactly the rule at 160x240, where the same model's upsampled logits answer the rule of the
    reduced masks (blockier, and off by the rounding of a slower track). Training's loss stays at the model's size."""
    from models.motion import extrapolate_masks

    model = _silent_mask_predictor(prior="motion")
    x = _moving_object_masks()
    runner = ModelRunner(model, "mask_predictor", torch.device("cpu"), input_scale=scale)
    with torch.no_grad():
        logits, small = runner(x), runner.at_model_size()(x)
    rule = extrapolate_masks(x.long())
    assert logits.dtype == torch.float32 and torch.equal(class_ids(logits), rule)
    side = round(1 / scale)
    assert small.shape == (2, 49, 160 // side, 240 // side)
    upsampled = class_ids(restore_size(small, small.shape[-2:], (160, 240)))
    assert not torch.equal(upsampled, rule)
    assert torch.equal(class_ids(small), extrapolate_masks(reduce_inputs(x.long(), side)))


def test_a_reduced_copy_prior_is_the_full_size_last_mask_unless_rolled_out() -> None:
    """The copy prior of a one-step model is mask 11 at full size; a rolled-out one copies its own reduced
    predictions, which have no full-size form: its logits are the upsampled ones."""
    x = _moving_object_masks()
    one_step = ModelRunner(_silent_mask_predictor(prior="copy"), "mask_predictor", torch.device("cpu"), input_scale=0.5)
    rolled = _silent_mask_predictor(prior="copy", horizon=4)
    rolled_runner = ModelRunner(rolled, "mask_predictor", torch.device("cpu"), input_scale=0.5)
    with torch.no_grad():
        assert torch.equal(class_ids(one_step(x)), x[:, -1].long())
        small = rolled_runner.at_model_size()(x)
        torch.testing.assert_close(rolled_runner(x), restore_size(small, small.shape[-2:], (160, 240)))
        assert not torch.equal(class_ids(rolled_runner(x)), x[:, -1].long())


def test_the_full_size_prior_keeps_the_networks_part() -> None:
    """A trained-like network (random weights): the runner's logits less the full-size prior are the
    upsampled logits less the upsampled reduced prior, to rounding."""
    torch.manual_seed(0)
    model = _mask_predictor(prior="motion")
    x = _moving_object_masks()
    runner = ModelRunner(model, "mask_predictor", torch.device("cpu"), input_scale=0.5)
    with torch.no_grad():
        logits, small = runner(x), runner.at_model_size()(x)
        full_prior, reduced_prior = model.prior_of(x.long()), model.prior_of(reduce_inputs(x.long(), 2))
    assert full_prior is not None and reduced_prior is not None and model.copy_scale is not None
    bonus = float(model.copy_scale.detach())

    def prior_logits(ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(ids, 49).movedim(-1, 1).float() * bonus

    network = restore_size(small - prior_logits(reduced_prior[0]), small.shape[-2:], (160, 240))
    torch.testing.assert_close(logits - prior_logits(full_prior[0]), network, rtol=0, atol=1e-4)


def test_a_device_this_machine_lacks_is_refused_by_name() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"^device 'gpu': not a device; give auto, cpu, cuda or cuda:N$"):
        resolve_device("gpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"device 'cuda:{count}': this machine has (no CUDA GPU|{count} CUDA GPU)"):
        resolve_device(f"cuda:{count}")
    if not count:
        with pytest.raises(ValueError, match="device 'cuda': this machine has no CUDA GPU that torch"):
            resolve_device("cuda")
