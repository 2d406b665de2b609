"""The space a study searches, checked before Ray starts: a plugin's space most of all, whose mistakes failed every
trial (a misspelled setting, a range upside down, a model never registered) or were a traceback (its define function
raising); and shown as --show-space prints it."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

from models.registry import list_models
from tune.search.overrides import (
    NOT_OVERRIDABLE,
    Override,
    Param,
    checked_run,
    describe_stage,
    dry_run,
    first_points,
    parse_overrides,
    run_values,
)
from tune.search.spaces import Budget, SearchSpace, Stage


def check_space(space: SearchSpace, budget: Budget, texts: Sequence[str] = ()) -> tuple[Override, ...]:
    """The space as its trials will ask for it, after the study's overrides (`texts`, parsed and returned), checked
    before Ray starts (a plugin's space, most of all, whose mistakes failed every trial or were a traceback): each
    stage's model registered, its define function run once (each parameter at its low end or first choice), each
    range LOW <= HIGH, the run it returns built. ValueError names the space, the stage and what is wrong."""
    for stage in space.stages:
        where = f"space {space.name}, stage {stage.name}"
        if stage.model not in list_models():
            raise ValueError(
                f"{where}: no model {stage.model!r} is registered (the models: {', '.join(list_models())})"
            )
        _defined(stage, budget, (), where)
    overrides = parse_overrides(space, budget, texts)
    for stage in space.stages:
        where = f"space {space.name}, stage {stage.name}"
        mine = [o for o in overrides if o.stage == stage.name]
        params, returned = _defined(stage, budget, mine, where)  # (a --set value is in no trial's params)
        for param in params.values():
            if param.kind in ("int", "float") and not (param.low <= param.high and (param.low > 0 or not param.log)):
                raise ValueError(f"{where}: {param.name} is {param.text()}: needs LOW <= HIGH (LOW > 0 on a log scale)")
        checked_run(
            stage, {**run_values(budget, mine), **returned, **{o.name: o.value for o in mine if o.kind == "set"}}, where
        )
    return overrides


def _defined(
    stage: Stage, budget: Budget, overrides: Sequence[Override], where: str
) -> tuple[dict[str, Param], dict[str, Any]]:
    """dry_run of the stage after `overrides`; an error of its define function (a plugin's own code) in one line, as an
    error importing it is, with the define function's own line, not a library's under it."""
    try:
        return dry_run(stage, budget, overrides)
    except Exception as err:
        frames = traceback.extract_tb(err.__traceback__)
        file = getattr(getattr(stage.define, "__code__", None), "co_filename", None)  # (a function's)
        own = [f for f in frames if f.filename == file] or frames
        raise ValueError(
            f"{where}: its define function raised {type(err).__name__}: {err} ({own[-1].filename}, line {own[-1].lineno})"
        ) from None


def show_space(space: SearchSpace, budget: Budget, overrides: Sequence[Override], samples: int) -> str:
    """The space as --show-space prints it: every stage's parameters after the overrides, `samples` trials a stage."""
    lines = [f"space {space.name}, budget {budget.name} ({samples} trials a stage): {space.description}"]
    for stage in space.stages:
        params = describe_stage(stage, budget, [o for o in overrides if o.stage == stage.name])
        lines.append(f"\nstage {stage.name}: model {stage.model}, {stage.mode}imise {stage.metric}")
        for name, param in params.items():
            shown = f"one of the best {stage.parent} trials" if name in NOT_OVERRIDABLE else param.text()
            lines.append(f"  {name:<{max(map(len, params))}}  {shown}")
        lines += [f"  tried first (the rest sampled): {point}" for point in first_points(stage, params)]
    return "\n".join(lines)
