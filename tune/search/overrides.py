"""Space overrides: fix a value (`--set width=32`), narrow a range (`--range lr=1e-4:3e-3`), restrict choices
(`--choices batch_size=16,32`), for every stage that has the parameter or for one (`--set finetune.freeze_predictor=false`),
on the command line or in a TOML file (`--overrides FILE`).

A study keeps its overrides as text (`set width=32`) in search.json. Before Ray starts they are checked against the
space as the budget sizes it: each stage's define-by-run function is run once on a trial that records what it asks
for (`describe_stage`), and every name and value is checked against that, with the valid names in the error. During
the study `OverriddenTrial` stands between the define function and Optuna's trial: a fixed parameter is not searched
(it goes into each trial's config as a constant), a narrowed one is suggested in its new range or among its new choices.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tune.search.keys import PARENT_KEY
from tune.search.spaces import Budget, SearchSpace, Stage
from tune.training.config import RunConfig

KINDS = ("set", "range", "choices")
Kind = Literal["set", "range", "choices"]
KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number"}  # what a value must be, in an error
NOT_OVERRIDABLE = (PARENT_KEY,)  # chosen among the parent stage's best trials, which exist only at run time


@dataclass(frozen=True)
class Param:
    """One parameter a stage's define function asks for: a float or int range, a choice, or a constant."""

    name: str
    kind: Literal["float", "int", "categorical", "constant"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()  # a categorical's choices; a constant's value is choices[0]
    source: str = ""  # "--set", "--range", "--choices" once overridden

    def text(self) -> str:
        """How --show-space prints it."""
        origin = f"   ({self.source})" if self.source else ""
        if self.kind in ("float", "int"):
            return f"{self.kind} in [{_short(self.low)}, {_short(self.high)}]{' log' if self.log else ''}{origin}"
        if self.kind == "categorical":
            return f"one of {', '.join(_short(c) for c in self.choices)}{origin}"
        fixed = "fixed" if self.source else "constant"
        return f"{fixed} {_short(self.choices[0])}{origin}"

    def holds(self, value: Any) -> bool:
        """Whether a search of it may draw `value` (first_points keeps only such values)."""
        if self.kind == "categorical":
            return value in self.choices
        return self.kind != "constant" and isinstance(value, (int, float)) and self.low <= value <= self.high


def first_points(stage: Stage, params: dict[str, Param]) -> list[dict[str, Any]]:
    """The stage's first configurations (Stage.first) as the overrides leave them (`params`: describe_stage's): of
    each, the values still searched; one left with none is left out."""
    kept = [{k: v for k, v in point.items() if k in params and params[k].holds(v)} for point in stage.first]
    return [point for point in kept if point]


@dataclass(frozen=True)
class Override:
    kind: Kind
    stage: str | None  # None: every stage that has the parameter
    name: str
    value: Any  # set: the value; range: (low, high); choices: a tuple

    def param(self, old: Param) -> Param:
        """The parameter as this override leaves it."""
        if self.kind == "set":
            return Param(old.name, "constant", choices=(self.value,), source="--set")
        if self.kind == "range":
            low, high = self.value
            return Param(old.name, old.kind, low, high, log=old.log, source="--range")
        return Param(old.name, "categorical", choices=self.value, source="--choices")


class _Deprecated:
    """optuna.Trial's suggest_uniform, suggest_loguniform and suggest_discrete_uniform (deprecated in Optuna 3, still
    there) as the suggest_float they stand for: a plugin's define function that calls them sees its overrides too."""

    suggest_float: Callable[..., float]

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def suggest_discrete_uniform(self, name: str, low: float, high: float, q: float) -> float:
        return self.suggest_float(name, low, high, step=q)


class _Recorder(_Deprecated):
    """A stand-in for optuna.Trial that records what a define function asks for, after the `overrides` given (name ->
    Override), and answers each at its low end or first choice; numbered 0, with params and user attributes."""

    def __init__(self, overrides: dict[str, Override] | None = None) -> None:
        self.asked: dict[str, Param] = {}
        self.overrides, self.number = overrides or {}, 0
        self.params, self.user_attrs = dict[str, Any](), dict[str, Any]()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(  # it names no class of ours, only what a define function may use
            f"trial.{name}: the trial a define function is checked on before the study (and by --show-space) has "
            "suggest_float/int/categorical (and suggest_*uniform), number, params, user_attrs, set_user_attr"
        )

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def _ask(self, param: Param) -> Any:
        if (override := self.overrides.get(param.name)) is not None:
            param = override.param(param)
        self.asked[param.name] = param
        answer = param.low if param.kind in ("int", "float") else param.choices[0]
        if param.kind != "constant":  # a --set value: not asked of Optuna, so not in a real trial's params either
            self.params[param.name] = answer
        return answer

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False, step: Any = None) -> float:
        return float(self._ask(Param(name, "float", low, high, log)))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        return int(self._ask(Param(name, "int", low, high, log)))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._ask(Param(name, "categorical", choices=tuple(choices)))


def dry_run(
    stage: Stage, budget: Budget, overrides: Sequence[Override] = ()
) -> tuple[dict[str, Param], dict[str, Any]]:
    """The stage's define function run once on a recording trial (after the stage's `overrides`): what it asks
    for, and the run values it returns (each searched one at its low end or first choice)."""
    recorder = _Recorder({o.name: o for o in overrides})
    values = stage.define(recorder, budget, ("PARENT",))  # type: ignore[arg-type]
    return dict(recorder.asked), values


def describe_stage(stage: Stage, budget: Budget, overrides: Sequence[Override] = ()) -> dict[str, Param]:
    """What a stage's trials are made of, by name, after `overrides` (already checked): what its define function
    asks for and returns, and the budget's training values (Budget.run_values), constants that `--set` fixes."""
    params, values = dry_run(stage, budget)
    for name, value in {**budget.run_values(), **values}.items():  # as StageJob.plan: a define's own value wins
        if name not in params:
            params[name] = Param(name, "constant", choices=(value,))
    for override in overrides:
        params[override.name] = override.param(params[override.name])
    return params


def parse_overrides(space: SearchSpace, budget: Budget, texts: Sequence[str]) -> tuple[Override, ...]:
    """Check the study's overrides (`set width=32`, ...) against the space; ValueError names what is wrong."""
    described = {stage.name: describe_stage(stage, budget) for stage in space.stages}
    found: list[Override] = []
    seen: set[tuple[str, str]] = set()
    for text in texts:
        kind, _, assignment = text.partition(" ")
        name, equals, raw = assignment.partition("=")
        if kind not in KINDS or not equals or not name.strip():
            raise ValueError(f"override {text!r}: expected --{kind if kind in KINDS else 'set'} NAME=VALUE")
        name, raw = name.strip(), raw.strip()
        stage_name, dot, bare = name.partition(".")
        stages = [stage_name] if dot and stage_name in described else list(described)
        bare = bare if dot and stage_name in described else name
        holders = [s for s in stages if bare in described[s]]
        if not holders or bare in NOT_OVERRIDABLE:
            raise ValueError(f"--{kind} {name}: {_unknown(bare, described, stages)}")
        for stage in holders:
            key = (stage, bare)
            if key in seen:
                raise ValueError(f"--{kind} {name}: stage {stage}'s {bare} is overridden twice")
            seen.add(key)
            where = f"--{kind} {name}={raw}"
            value = _value(kind, described[stage][bare], raw, where)  # type: ignore[arg-type]
            _check_runs(space.stage(stage), budget, bare, value if kind != "set" else (value,), where)
            found.append(Override(kind, stage, bare, value))  # type: ignore[arg-type]
    return tuple(found)


def _check_runs(stage: Stage, budget: Budget, name: str, values: Sequence[Any], where: str) -> None:
    """Build the stage's run with each value (a range's ends, every choice) in turn: the model's and the
    training config's own checks say what is out of bounds (`--set norm=layer`, `--range dropout=0:2`)."""
    _, returned = dry_run(stage, budget)
    for value in values:
        checked_run(stage, {**budget.run_values(), **returned, name: value}, where)


def checked_run(stage: Stage, values: dict[str, Any], where: str) -> None:
    """The stage's run with `values` (a trial's, its parent aside): the model's and the training config's own checks
    (a plugin's config may raise anything) as a ValueError after `where`."""
    try:
        RunConfig.from_values(stage.model, {k: v for k, v in values.items() if k != PARENT_KEY}, epochs=1)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None
    except Exception as err:  # a plugin's config checking itself otherwise
        raise ValueError(f"{where}: {type(err).__name__}: {err}") from None


def run_values(budget: Budget, overrides: Sequence[Override]) -> dict[str, int]:
    """The budget's training values a stage's trials run with (Budget.run_values), after the stage's `--set`
    (`--set epoch_samples=500`): they travel on the stage's job, not in Optuna's config."""
    fixed = {o.name: o.value for o in overrides if o.kind == "set"}
    return {name: fixed.get(name, value) for name, value in budget.run_values().items()}


def overrides_from_file(path: str | Path) -> list[str]:
    """A TOML file's overrides as text: tables [set], [range] and [choices] of NAME = VALUE (a range as
    "LOW:HIGH" or [LOW, HIGH], choices as a list)."""
    path = Path(path)
    try:
        tables = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--overrides {path}: no such file") from None
    except OSError as err:  # a folder, no permission
        raise ValueError(f"--overrides {path}: cannot be read ({err.strerror or err})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--overrides {path}: not valid TOML ({err})") from None
    texts = []
    for kind, table in tables.items():
        if kind not in KINDS and not isinstance(table, dict):  # `width = 8` above any table
            raise ValueError(f"--overrides {path}: {kind} is in no table: put it under [set], [range] or [choices]")
        if kind not in KINDS:
            raise ValueError(f"--overrides {path}: unknown table [{kind}]; valid: {', '.join(KINDS)}")
        if not isinstance(table, dict):
            raise ValueError(f"--overrides {path}: {kind} must be a table, [{kind}] with NAME = VALUE lines below it")
        for name, value in _dotted(table):
            joiner = ":" if kind == "range" else ","
            text = joiner.join(map(_text, value)) if isinstance(value, list) else _text(value)
            texts.append(f"{kind} {name}={text}")
    return texts


def _dotted(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A TOML table's (NAME, VALUE) pairs, dotted keys joined again: TOML reads `finetune.width = 8` unquoted as a
    table finetune holding width, the stage-qualified name it means."""
    pairs: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            pairs += _dotted(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


class OverriddenTrial(_Deprecated):
    """An optuna.Trial as a stage's overrides see it: fixed parameters are returned without being
    suggested, narrowed ones are suggested in their new range or choices; the rest goes to the trial."""

    def __init__(self, trial: Any, overrides: Sequence[Override]) -> None:
        self._trial = trial
        self._overrides = {o.name: o for o in overrides}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False, step: Any = None) -> float:
        override = self._overrides.get(name)
        if override is None:
            return self._trial.suggest_float(name, low, high, log=log, step=step)
        return self._overridden(override, lambda lo, hi: self._trial.suggest_float(name, lo, hi, log=log, step=step))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        override = self._overrides.get(name)
        if override is None:
            return self._trial.suggest_int(name, low, high, log=log, step=step)
        return self._overridden(override, lambda lo, hi: self._trial.suggest_int(name, lo, hi, log=log, step=step))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        override = self._overrides.get(name)
        if override is None:
            return self._trial.suggest_categorical(name, choices)
        return self._overridden(override, None)

    def _overridden(self, override: Override, in_range: Any) -> Any:
        if override.kind == "set":
            return override.value
        if override.kind == "range":
            return in_range(*override.value)
        return self._trial.suggest_categorical(override.name, list(override.value))

    def constants(self, values: dict[str, Any]) -> dict[str, Any]:
        """The define function's values with `--set` applied to the constants it returns without asking Optuna
        (benchmarks/bank_space.py's fixed settings, `--set width=8` there)."""
        fixed = {o.name: o.value for o in self._overrides.values() if o.kind == "set"}
        return {**values, **{k: v for k, v in fixed.items() if k in values}}


# ---------------------------------------------------------------- values


def _value(kind: Kind, param: Param, raw: str, where: str) -> Any:
    if kind == "set":
        return _one(param, raw, where)
    if kind == "range":
        if param.kind not in ("float", "int"):
            raise ValueError(f"{where}: {param.name} is {param.text()}, not a range: use --set or --choices")
        low_text, colon, high_text = raw.partition(":")
        if not colon:
            raise ValueError(f"{where}: a range is LOW:HIGH, for instance {param.name}={param.low}:{param.high}")
        low, high = (_one(param, text.strip(), where) for text in (low_text, high_text))
        if not low < high or (param.log and low <= 0):
            raise ValueError(f"{where}: needs LOW < HIGH{' and LOW > 0 (a log range)' if param.log else ''}")
        return (low, high)
    if param.kind != "categorical":
        raise ValueError(f"{where}: {param.name} is {param.text()}, not a choice: use --range or --set")
    values = tuple(_one(param, text.strip(), where) for text in raw.split(","))
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: a choice is given twice")
    return values


def _one(param: Param, raw: str, where: str) -> Any:
    """One value of `param`'s type parsed from text; a string or a flag must be one of its choices."""
    kind = type(param.choices[0]) if param.choices else {"float": float, "int": int}[param.kind]
    try:
        if kind is bool:
            value: Any = {"true": True, "false": False}[raw.lower()]
        elif kind is int:
            value = int(raw)
        elif kind is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
        else:
            value = raw
    except (KeyError, ValueError):
        raise ValueError(f"{where}: {raw!r} is not {KIND_WORDS.get(kind, 'a ' + kind.__name__)}") from None
    return value


def _unknown(name: str, described: dict[str, dict[str, Param]], stages: list[str]) -> str:
    if name in NOT_OVERRIDABLE:
        return f"{name} is chosen among the parent stage's best trials and cannot be overridden"
    valid = "; ".join(
        f"{stage}: {', '.join(n for n in described[stage] if n not in NOT_OVERRIDABLE)}" for stage in stages
    )
    stage, dot, _ = name.partition(".")
    staged = (
        f" (nor a stage {stage!r}: the stages are {', '.join(described)})" if dot and stage not in described else ""
    )
    return (
        f"no parameter {name!r} in {'stage ' + stages[0] if len(stages) == 1 else 'any stage'}{staged}; valid: {valid}"
    )


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else _text(value)
