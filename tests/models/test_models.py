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

from data.classes import FRAME_HEIGHT, FRAME_WIDTH, N_INPUT_FRAMES, NUM_CLASSES
from models.dual_phase import DualPhaseConfig
from models.frame_predictor import FramePredictorConfig
from models.registry import create_model, list_models, model_config, model_entry, register_model
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
}


def _inputs(name: str, batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if model_entry(name).input_kind == "masks":
        return torch.randint(0, NUM_CLASSES, (batch, N_INPUT_FRAMES, FRAME_HEIGHT, FRAME_WIDTH), generator=gen)
    shape = {
        "stacked": (batch, 3 * N_INPUT_FRAMES, FRAME_HEIGHT, FRAME_WIDTH),
        "sequence": (batch, N_INPUT_FRAMES, 3, FRAME_HEIGHT, FRAME_WIDTH),
        "frame": (batch, 3, FRAME_HEIGHT, FRAME_WIDTH),
    }[model_entry(name).input_kind]
    return torch.rand(shape, generator=gen)


def _output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out.frame if hasattr(out, "frame") else out


def test_every_model_has_a_tiny_config() -> None:
    assert sorted(TINY) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_output_shape_and_finite(name: str) -> None:
    model = create_model(name, model_config(name, **TINY[name])).eval()
    with torch.no_grad():
        out = _output(model, _inputs(name))
    channels = 3 if model_entry(name).output == "frame" else NUM_CLASSES
    assert out.shape == (2, channels, FRAME_HEIGHT, FRAME_WIDTH)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_loss_falls_when_overfitting_one_batch(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, model_config(name, **TINY[name]))
    x = _inputs(name)
    gen = torch.Generator().manual_seed(1)
    if model_entry(name).output == "frame":
        target = 1 - x[:, -1]  # the negative of the last frame: a change the model can learn

        def loss_fn(out: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(out, target)
    else:
        labels = torch.randint(0, 4, (2, FRAME_HEIGHT // 40, FRAME_WIDTH // 40), generator=gen) * 12
        target = labels.repeat_interleave(40, 1).repeat_interleave(40, 2)  # 4 classes in 40x40 blocks

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
    ],
)
def test_configs_that_cannot_work_raise_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


def test_registry_refuses_duplicates_unknown_names_and_wrong_configs() -> None:
    with pytest.raises(ValueError, match="'unet' is already registered"):
        register_model("unet", UNetConfig, input_kind="stacked")(lambda cfg: nn.Identity())
    with pytest.raises(KeyError, match="unknown model 'resnet'; valid: dual_phase, frame_predictor"):
        create_model("resnet")
    with pytest.raises(TypeError, match="takes a UNetConfig, got FramePredictorConfig"):
        create_model("unet", FramePredictorConfig())


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNetConfig().width = 8  # type: ignore[misc]
