"""One registry of models: `@register_model(name, ConfigClass)` on a builder, `create_model(name, cfg)`.

A duplicate name raises; an unknown name raises with the list of valid ones. The model files register
themselves when imported, and the `models` package imports all of them, so the registry is complete as
soon as anything under `models` is imported. This module imports none of the model files.

An entry may name a pretrained part (`PretrainedPart`): a submodule trained first on its own as another
registered model and loaded into this one (dual_phase's `predictor`, pretrained as `frame_predictor`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from torch import nn

InputKind = Literal["stacked", "sequence", "frame", "masks", "tracks"]
# stacked: (B, 33, H, W), frames 1-11 stacked on channels; sequence: (B, 11, 3, H, W); frame: (B, 3, H, W);
# masks: (B, 11, H, W) class ids of frames 1-11; tracks: (B, 11, 49, channels) float, data.tracks.dense_tracks
Output = Literal["mask", "frame", "moves"]  # 49-class logits (B, 49, H, W), a frame (B, 3, H, W), or each
# object's move to frame 22 (B, 49, 2), rows and columns in pixels


@dataclass(frozen=True)
class PretrainedPart:
    """A part of a model that is trained first on its own, as another registered model, and loaded into it."""

    attribute: str  # the submodule of the model and the field of its config that hold the part ("predictor")
    model: str  # the registered model the part is pretrained as ("frame_predictor")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_class: type
    build: Callable[[Any], nn.Module]
    input_kind: InputKind  # what forward() takes
    output: Output
    pretrained: PretrainedPart | None = None  # the part trained first as another model; None: trained whole


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    config_class: type,
    *,
    input_kind: InputKind,
    output: Output = "mask",
    pretrained: PretrainedPart | None = None,
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    if pretrained is not None:
        fields = [f.name for f in dataclasses.fields(config_class)]
        if pretrained.attribute not in fields:
            raise ValueError(
                f"model {name!r}: pretrained part {pretrained.attribute!r} must be a field of "
                f"{config_class.__name__}; its fields: {', '.join(fields)}"
            )

    def decorator(build: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, config_class, build, input_kind, output, pretrained)
        return build

    return decorator


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise KeyError(
            f"unknown model {name!r}; valid: {', '.join(sorted(_MODELS))} (a plugin's model: pass its --plugin)"
        )
    return _MODELS[name]


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_config(name: str, **overrides: Any) -> Any:
    """The default config of a model with `overrides` applied (validated on construction)."""
    return replace(model_entry(name).config_class(), **overrides)


def create_model(name: str, cfg: Any = None) -> nn.Module:
    entry = model_entry(name)
    cfg = entry.config_class() if cfg is None else cfg
    if not isinstance(cfg, entry.config_class):
        raise TypeError(f"model {name!r} takes a {entry.config_class.__name__}, got {type(cfg).__name__}")
    return entry.build(cfg)


def pretrained_part(model: nn.Module, name: str) -> nn.Module | None:
    """The submodule of a `name` model that its entry names as pretrained, or None."""
    part = model_entry(name).pretrained
    if part is None:
        return None
    return model.get_submodule(part.attribute)
