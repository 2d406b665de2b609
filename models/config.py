"""Helpers for the models' frozen-dataclass configs: the checks their __post_init__ share, and configs
to and from plain dicts (for checkpoints, Parquet rows and CLI overrides)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from data.classes import FRAME_HEIGHT, FRAME_WIDTH

T = TypeVar("T")


def max_depth(height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH) -> int:
    """Down-sampling steps that keep both sides whole: 4 for 160x240 (240 = 2^4 * 15)."""
    depth = 0
    while height % 2 ** (depth + 1) == 0 and width % 2 ** (depth + 1) == 0:
        depth += 1
    return depth


def check_positive(cfg: object, *names: str) -> None:
    """Fields `names` of `cfg` are counts of at least 1."""
    for name in names:
        value = getattr(cfg, name)
        if value < 1:
            raise ValueError(f"{type(cfg).__name__}.{name} must be >= 1, got {value}")


def check_depth(cfg: object, name: str, lowest: int = 1) -> None:
    """A count of stride-2 steps must keep 160x240 whole (at most max_depth())."""
    value, limit = getattr(cfg, name), max_depth()
    if not lowest <= value <= limit:
        raise ValueError(
            f"{type(cfg).__name__}.{name} must be in {lowest}..{limit} for {FRAME_HEIGHT}x{FRAME_WIDTH} frames, "
            f"got {value}"
        )


def check_prior(cfg: object) -> None:
    """`cfg.background_prior` is a probability below 1 (0: no prior)."""
    value = getattr(cfg, "background_prior")  # noqa: B009
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{type(cfg).__name__}.background_prior must be in [0, 1), got {value}")


def config_to_dict(cfg: object) -> dict[str, Any]:
    """A config as nested dicts of plain values."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a dataclass instance, got {type(cfg).__name__}")
    return dataclasses.asdict(cfg)


def dotted_values(cfg: object, prefix: str = "") -> dict[str, Any]:
    """A config's fields as `with_values` takes them: `hidden`, dotted for a nested config's (`predictor.hidden`)."""
    flat: dict[str, Any] = {}
    for name, value in config_to_dict(cfg).items():
        if isinstance(value, dict):
            flat.update(dotted_values(getattr(cfg, name), f"{prefix}{name}."))
        else:
            flat[prefix + name] = value
    return flat


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Rebuild a (possibly nested) config; unknown keys are an error naming them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = config_from_dict(hint, value)  # type: ignore[arg-type]
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def parse_field(cls: type, name: str, text: str) -> Any:
    """A command-line string converted to the type of field `name` of `cls`."""
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise ValueError(f"{cls.__name__} has no field {name!r}; valid: {sorted(hints)}")
    hint = hints[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        hint = args[0]
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{cls.__name__}.{name} expects true or false, got {text!r}")
    if hint in (int, float, str):
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"{cls.__name__}.{name} expects {hint.__name__}, got {text!r}") from None
    raise ValueError(f"{cls.__name__}.{name} cannot be set from the command line")


def with_values(config: T, values: dict[str, Any], *, from_text: bool = False) -> T:
    """`config` with `values` applied; keys may be dotted (`predictor.hidden`) for nested configs.
    With `from_text`, values are command-line strings parsed by their field's type."""
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif from_text:
            changes[key] = parse_field(type(config), key, value)
        else:
            if key not in {f.name for f in dataclasses.fields(config)}:  # type: ignore[arg-type]
                raise ValueError(f"{type(config).__name__} has no field {key!r}")
            changes[key] = value
    for head, inner in nested.items():
        if head not in {f.name for f in dataclasses.fields(config)}:  # type: ignore[arg-type]
            raise ValueError(f"{type(config).__name__} has no field {head!r}")
        part = getattr(config, head)
        if not dataclasses.is_dataclass(part):  # `width.x`: int has no fields
            raise ValueError(f"{head}.{next(iter(inner))}: {type(config).__name__}.{head} is one setting, not a group")
        try:
            changes[head] = with_values(part, inner, from_text=from_text)
        except ValueError as err:  # named from the top: predictor.nosuch
            raise ValueError(f"{head}.{next(iter(inner))}: {err}") from None
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
