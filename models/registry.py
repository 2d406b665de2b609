"""One registry of models: `@register_model(name, ConfigClass)` on a builder, `create_model(name, cfg)`.

A duplicate name raises; an unknown name raises with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from torch import nn

InputKind = Literal["stacked", "sequence", "frame", "masks"]
# stacked: (B, 33, H, W), frames 1-11 stacked on channels; sequence: (B, 11, 3, H, W); frame: (B, 3, H, W);
# masks: (B, 11, H, W) class ids of frames 1-11


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_class: type
    build: Callable[[Any], nn.Module]
    input_kind: InputKind  # what forward() takes
    output: Literal["mask", "frame"]  # 49-class logits (B, 49, H, W), or a frame (B, 3, H, W)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, config_class: type, *, input_kind: InputKind, output: Literal["mask", "frame"] = "mask"
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    def decorator(build: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, config_class, build, input_kind, output)
        return build

    return decorator


def model_entry(name: str) -> ModelEntry:
    _load_builtin_models()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; valid: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_models() -> list[str]:
    _load_builtin_models()
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


def _load_builtin_models() -> None:
    # Registration happens at import of the model modules; import them here so that the registry is
    # complete whichever module the caller imported first.
    from models import dual_phase, frame_predictor, mask_predictor, unet  # noqa: F401
