"""Every registered model: shapes, finite outputs, a loss that falls when overfitting one batch, and
configs that cannot work refused at construction. Parametrized over the registry, so a new model is
tested with no new test code."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from data.classes import FRAME_HEIGHT, FRAME_WIDTH, N_INPUT_FRAMES, NUM_CLASSES, TRACK_CHANNELS
from models.dual_phase import DualPhaseConfig
from models.frame_predictor import FramePredictorConfig
from models.mask_predictor import MaskPredictor
from models.motion import extrapolate_masks, extrapolate_steps
from models.registry import (
    PretrainedPart,
    create_model,
    list_models,
    model_config,
    model_entry,
    pretrained_part,
    register_model,
)
from models.unet import UNetConfig

TINY: dict[str, dict[str, Any]] = {
    "unet": {"width": 4, "depth": 2},
    "frame_segmenter": {"width": 4, "depth": 2},
    "frame_predictor": {"width": 4, "hidden": 4},
    "mask_predictor": {"hid_s": 4, "hid_t": 8, "n_t": 2, "embed": 4},
    "dual_phase": {
        "predictor": FramePredictorConfig(width=4, hidden=4),
        "seg_width": 4,
        "seg_depth": 2,
        "use_features": True,
    },
    "object_dynamics": {"width": 8},
}
IMAGE_MODELS = [m for m in list_models() if model_entry(m).input_kind != "tracks"]  # inputs of any picture size


def _inputs(name: str, batch: int = 2, size: tuple[int, int] = (FRAME_HEIGHT, FRAME_WIDTH)) -> torch.Tensor:
    """A batch of a model's inputs; pictures (and masks) of `size` (H, W)."""
    gen = torch.Generator().manual_seed(0)
    if model_entry(name).input_kind == "tracks":  # dense tracks: a few objects present, at random places and sizes
        tracks = torch.rand(batch, N_INPUT_FRAMES, NUM_CLASSES, len(TRACK_CHANNELS), generator=gen) * 100
        tracks[..., 0] = (torch.rand(batch, 1, NUM_CLASSES, generator=gen) < 0.15).float()
        return tracks * tracks[..., :1]
    if model_entry(name).input_kind == "masks":
        return torch.randint(0, NUM_CLASSES, (batch, N_INPUT_FRAMES, *size), generator=gen)
    shape = {
        "stacked": (batch, 3 * N_INPUT_FRAMES, *size),
        "sequence": (batch, N_INPUT_FRAMES, 3, *size),
        "frame": (batch, 3, *size),
    }[model_entry(name).input_kind]
    return torch.rand(shape, generator=gen)


def _output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out.frame if hasattr(out, "frame") else out


def own_models() -> list[str]:
    """The package's models: a plugin another test of this process loaded adds its own to the registry."""
    return [name for name in list_models() if model_entry(name).build.__module__.startswith("models.")]


def test_every_model_has_a_tiny_config() -> None:
    assert sorted(TINY) == own_models()


@pytest.mark.parametrize("name", list_models())
def test_output_shape_and_finite(name: str) -> None:
    model = create_model(name, model_config(name, **TINY[name])).eval()
    with torch.no_grad():
        out = _output(model, _inputs(name))
    shape = {
        "frame": (2, 3, FRAME_HEIGHT, FRAME_WIDTH),
        "mask": (2, NUM_CLASSES, FRAME_HEIGHT, FRAME_WIDTH),
        "moves": (2, NUM_CLASSES, 2),  # each object's move, rows and columns
    }[model_entry(name).output]
    assert out.shape == shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("size", [(40, 60), (80, 120), (36, 50)])
def test_any_input_size_gives_outputs_of_that_size(name: str, size: tuple[int, int]) -> None:
    """A reduced input scale (40x60 at 0.25) is not divisible by a model's deepest stride: models pad and crop."""
    deep = {"unet": {"depth": 4}, "frame_segmenter": {"depth": 4}, "mask_predictor": {"n_s": 4}}.get(name, {})
    model = create_model(name, model_config(name, **{**TINY[name], **deep})).eval()
    x = (
        F.interpolate(_inputs(name).float(), size=size)
        if _inputs(name).dim() == 4
        else _inputs(name)[..., : size[0], : size[1]]
    )
    if model_entry(name).input_kind == "masks":
        x = x.long()
    with torch.no_grad():
        out = _output(model, x)
    assert out.shape[-2:] == size and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_loss_falls_when_overfitting_one_batch(name: str) -> None:
    """On pictures of half the frame's size (a quarter of the compute; any size works, as tested above)."""
    torch.manual_seed(0)
    model = create_model(name, model_config(name, **TINY[name]))
    height, width = FRAME_HEIGHT // 2, FRAME_WIDTH // 2
    x = _inputs(name, size=(height, width))
    gen = torch.Generator().manual_seed(1)
    if model_entry(name).output == "frame":
        target = 1 - x[:, -1]  # the negative of the last frame: a change the model can learn

        def loss_fn(out: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(out, target)
    elif model_entry(name).output == "moves":
        target = torch.randn(2, NUM_CLASSES, 2, generator=gen) * 10  # moves the rule does not know
        present = x[:, -1, :, 0] > 0

        def loss_fn(out: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(out[present], target[present])
    else:
        labels = torch.randint(0, 4, (2, height // 20, width // 20), generator=gen) * 12
        target = labels.repeat_interleave(20, 1).repeat_interleave(20, 2)  # 4 classes in 20x20 blocks

        def loss_fn(out: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(out, target)

    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(30):
        loss = loss_fn(_output(model, x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: UNetConfig(depth=5), "UNetConfig.depth must be in 1..4 for 160x240"),
        (lambda: UNetConfig(depth=0), "UNetConfig.depth"),
        (lambda: UNetConfig(width=-8), "UNetConfig.width must be >= 1, got -8"),
        (lambda: UNetConfig(norm="layer"), "UNetConfig.norm must be one of"),
        (lambda: UNetConfig(dropout=1.0), "UNetConfig.dropout"),
        (lambda: FramePredictorConfig(downsample=5), "FramePredictorConfig.downsample must be in 0..4"),
        (lambda: FramePredictorConfig(cell="rnn"), "FramePredictorConfig.cell"),
        (lambda: FramePredictorConfig(kernel=4), "FramePredictorConfig.kernel must be odd"),
        (lambda: FramePredictorConfig(hidden=0), "FramePredictorConfig.hidden"),
        (lambda: DualPhaseConfig(seg_depth=6), "UNetConfig.depth"),
        (lambda: model_config("unet", width=0), "UNetConfig.width"),
        (lambda: model_config("mask_predictor", n_s=5), "MaskPredictorConfig.n_s must be in 1..4"),
        (lambda: model_config("mask_predictor", embed=-1), "MaskPredictorConfig.embed"),
        (lambda: model_config("mask_predictor", horizon=0), "MaskPredictorConfig.horizon must be in 1..11, got 0"),
        (lambda: model_config("mask_predictor", horizon=12), "MaskPredictorConfig.horizon must be in 1..11, got 12"),
        (lambda: model_config("mask_predictor", copy_prior=-1.0), "MaskPredictorConfig.copy_prior"),
        (lambda: model_config("mask_predictor", prior="flow"), "MaskPredictorConfig.prior must be one of"),
    ],
)
def test_configs_that_cannot_work_raise_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


def test_registry_refuses_duplicates_unknown_names_and_wrong_configs() -> None:
    with pytest.raises(ValueError, match="'unet' is already registered"):
        register_model("unet", UNetConfig, input_kind="stacked")(lambda cfg: nn.Identity())
    with pytest.raises(KeyError, match="unknown model 'resnet'; valid: dual_phase, "):
        create_model("resnet")
    with pytest.raises(TypeError, match="takes a UNetConfig, got FramePredictorConfig"):
        create_model("unet", FramePredictorConfig())


def test_dual_phase_names_its_predictor_as_pretrained() -> None:
    assert model_entry("dual_phase").pretrained == PretrainedPart("predictor", "frame_predictor")
    model = create_model("dual_phase", model_config("dual_phase", **TINY["dual_phase"]))
    assert pretrained_part(model, "dual_phase") is model.predictor
    assert pretrained_part(create_model("unet", model_config("unet", **TINY["unet"])), "unet") is None


@pytest.mark.parametrize("name", [name for name in list_models() if model_entry(name).pretrained])
def test_pretrained_part_is_built_as_its_registered_model(name: str) -> None:
    part = model_entry(name).pretrained
    assert part is not None
    cfg = model_config(name, **TINY[name])
    part_cfg = getattr(cfg, part.attribute)
    assert isinstance(part_cfg, model_entry(part.model).config_class)
    built = pretrained_part(create_model(name, cfg), name)
    alone = create_model(part.model, part_cfg)
    assert built is not None
    assert type(built) is type(alone)
    assert built.state_dict().keys() == alone.state_dict().keys()  # a checkpoint of the part loads into it


def test_pretrained_part_must_be_a_config_field() -> None:
    with pytest.raises(ValueError, match="pretrained part 'encoder' must be a field of UNetConfig"):
        register_model(
            "unet_pretrained", UNetConfig, input_kind="stacked", pretrained=PretrainedPart("encoder", "unet")
        )


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNetConfig().width = 8  # type: ignore[misc]


CANVAS = (120, 120)  # (H, W) that holds every object of _block_masks and _moving_masks: for the mask predictor's
# properties that hold at any size, at under half the compute of a whole frame


def _block_masks(batch: int = 2, size: tuple[int, int] = (FRAME_HEIGHT, FRAME_WIDTH)) -> torch.Tensor:
    """Masks of frames 1-11 like the data's: background with a few objects (40x40 blocks) that move."""
    gen = torch.Generator().manual_seed(2)
    masks = torch.zeros(batch, N_INPUT_FRAMES, *size, dtype=torch.long)
    for b in range(batch):
        for obj in range(3):
            cls, row, col = torch.randint(1, NUM_CLASSES, (1,), generator=gen).item(), 40 * obj, 20 * b
            for t in range(N_INPUT_FRAMES):
                masks[b, t, row : row + 40, col + 4 * t : col + 4 * t + 40] = cls
    return masks


@pytest.mark.parametrize("motion_input", [False, True])
@pytest.mark.parametrize("horizon", [1, 4, 11])
def test_mask_predictor_rollout_gives_masks_12_to_22_and_frame_22_alone(horizon: int, motion_input: bool) -> None:
    torch.manual_seed(0)
    cfg = model_config("mask_predictor", **TINY["mask_predictor"], horizon=horizon, motion_input=motion_input)
    model = create_model("mask_predictor", cfg)
    x = _block_masks(size=CANVAS)
    with torch.no_grad():
        last, every = model.eval()(x), model(x, all_frames=True)
    assert every.shape == (2, 11, NUM_CLASSES, *CANVAS)  # 11 masks of the input's size
    torch.testing.assert_close(last, every[:, -1], rtol=1e-4, atol=1e-4)
    if horizon < 11:  # frame 22 rests on the model's own predictions: their gradient reaches the early outputs
        loss = model(x, all_frames=True)[:, -1].logsumexp(1).mean()
        head = model.head
        assert isinstance(head, nn.Conv2d)
        (grad,) = torch.autograd.grad(loss, head.weight)
        rows = grad.unflatten(0, (horizon, NUM_CLASSES)).abs().sum(dim=(1, 2, 3, 4))
        assert (rows > 0).all(), rows  # every output of a step feeds a later one (or is frame 22)


@pytest.mark.parametrize(("prior", "motion_input"), [("copy", False), ("motion", True), ("none", False)])
@pytest.mark.parametrize("horizon", [1, 4])
def test_mask_predictor_checkpointed_steps_train_exactly_as_kept_ones(
    horizon: int, prior: str, motion_input: bool
) -> None:
    cfg = model_config(
        "mask_predictor", **TINY["mask_predictor"], horizon=horizon, prior=prior, motion_input=motion_input
    )
    x = _block_masks(size=CANVAS)
    results = []
    for checkpoint_steps in (False, True):
        torch.manual_seed(0)
        model = create_model("mask_predictor", dataclasses.replace(cfg, checkpoint_steps=checkpoint_steps)).train()
        out = model(x, all_frames=True)
        out.logsumexp(2).mean().backward()
        results.append((out.detach(), {name: p.grad for name, p in model.named_parameters()}))
    (out, grads), (again, grads_again) = results
    assert torch.equal(out, again) and grads.keys() == grads_again.keys()
    for name, grad in grads.items():
        kept = grads_again[name]
        assert grad is not None and kept is not None and torch.equal(grad, kept), name


@pytest.mark.parametrize("horizon", [1, 11])
def test_mask_predictor_copy_prior_starts_from_the_last_mask(horizon: int) -> None:
    x = _block_masks()
    torch.manual_seed(0)
    cfg = model_config("mask_predictor", **TINY["mask_predictor"], horizon=horizon, copy_prior=0.0)
    with torch.no_grad():
        plain = create_model("mask_predictor", cfg).eval()(x).argmax(1)
        copying = create_model("mask_predictor", dataclasses.replace(cfg, copy_prior=20.0)).eval()(x).argmax(1)
    assert torch.equal(copying, x[:, -1])  # through the whole rollout for horizon 1
    assert not torch.equal(plain, x[:, -1])


def _moving_masks(size: tuple[int, int] = (FRAME_HEIGHT, FRAME_WIDTH)) -> torch.Tensor:
    """Masks of frames 1-11 (2, 11, H, W): one object moving 3 px a frame to the right, one still."""
    x = torch.zeros(2, N_INPUT_FRAMES, *size, dtype=torch.long)
    for t in range(N_INPUT_FRAMES):
        x[:, t, 50:60, 10 + 3 * t : 20 + 3 * t] = 7
    x[:, :, 100:110, 100:110] = 3
    return x


@pytest.mark.parametrize("motion_input", [False, True])
@pytest.mark.parametrize("horizon", [1, 4, 11])
def test_mask_predictor_motion_prior_with_a_silent_network_is_the_extrapolation(
    horizon: int, motion_input: bool
) -> None:
    x = _moving_masks(size=CANVAS)
    cfg = model_config(
        "mask_predictor",
        **TINY["mask_predictor"],
        horizon=horizon,
        prior="motion",
        motion_input=motion_input,
        motion_retention=0.9,  # not the rule's default: the config's value is the one used
    )
    model = create_model("mask_predictor", cfg).eval()
    head = model.head
    assert isinstance(head, nn.Conv2d) and head.bias is not None
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        mask_22 = model(x).argmax(1)
        masks_12_22 = model(x, all_frames=True).argmax(2)
    assert torch.equal(mask_22, extrapolate_masks(x, retention=0.9))
    assert not torch.equal(mask_22, extrapolate_masks(x))
    for ahead in range(1, 12):  # every rolled-out step has the rule of its own frame
        assert torch.equal(masks_12_22[:, ahead - 1], extrapolate_masks(x, steps=ahead, retention=0.9))
    assert not torch.equal(mask_22, x[:, -1])  # the object moved


@pytest.mark.parametrize("embed", [0, 4])
def test_mask_predictor_stem_of_class_ids_is_the_stem_of_their_encoding(embed: int) -> None:
    """stem_classes (9 table lookups) computes stem(encode_classes(...)) without the encoded input, its
    gradients included; in float64 the two agree to rounding."""
    cfg = model_config("mask_predictor", **{**TINY["mask_predictor"], "embed": embed})
    model = create_model("mask_predictor", cfg).double()
    assert isinstance(model, MaskPredictor)
    x = torch.randint(0, NUM_CLASSES, (3, 20, 28))
    looked_up, convolved = model.stem_classes(x), model.stem(model.encode_classes(x).double())
    torch.testing.assert_close(looked_up, convolved, rtol=0, atol=1e-12)
    params = list(model.stem.parameters()) + ([model.embedding.weight] if model.embedding is not None else [])
    for a, b in zip(
        torch.autograd.grad(looked_up.square().sum(), params),
        torch.autograd.grad(convolved.square().sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


def test_mask_predictor_motion_input_is_the_rule_of_each_frame_a_step_predicts() -> None:
    """horizon 4, third step: frames 9, 10, 11 ahead, then 12, past frame 22: frame 22's again."""
    x = _moving_masks()
    cfg = model_config("mask_predictor", **TINY["mask_predictor"], horizon=4, motion_input=True)
    model = create_model("mask_predictor", cfg).eval()
    assert isinstance(model, MaskPredictor)
    with torch.no_grad():
        full, low = model._motion_inputs(extrapolate_steps(x, range(1, 12)), step=2)  # the rule of frames 12-22
        for features, ahead in zip(full, [9, 10, 11, 11], strict=True):
            torch.testing.assert_close(features, model.stem_classes(extrapolate_masks(x, steps=ahead)))
    assert len(low) == 4 and low[0].shape == (2, cfg.hid_s, FRAME_HEIGHT // 4, FRAME_WIDTH // 4)


def test_mask_predictor_prior_none_adds_no_bonus() -> None:
    cfg = model_config("mask_predictor", **TINY["mask_predictor"], prior="none")
    assert create_model("mask_predictor", cfg).copy_scale is None


@pytest.mark.parametrize("learn_prior", [True, False])
def test_mask_predictor_prior_bonus_is_trained_only_when_learned(learn_prior: bool) -> None:
    """learn_prior=False: a training step (AdamW, weight decay) moves the network, not the rule's bonus."""
    x = _moving_masks()
    cfg = model_config("mask_predictor", **TINY["mask_predictor"], prior="motion", learn_prior=learn_prior)
    model = create_model("mask_predictor", cfg)
    assert isinstance(model, MaskPredictor) and model.copy_scale is not None
    head_before = model.head.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    F.cross_entropy(model(x), torch.zeros_like(x[:, -1])).backward()  # all background: the bonus is wrong
    optimizer.step()
    assert not torch.equal(model.head.weight, head_before)
    if learn_prior:
        assert float(model.copy_scale.detach()) < cfg.copy_prior
    else:
        assert float(model.copy_scale) == cfg.copy_prior
