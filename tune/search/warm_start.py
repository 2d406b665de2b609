"""Where TPE starts. `--warm-start runs/OLD`: a new study of the same space starts from an earlier study's
finished trials; and a stage's own first configurations (`Stage.first`) are tried before TPE's random start.

Before a stage's first trial, the finished (COMPLETE and PRUNED) Optuna trials of the same stage of OLD
are added to this study's Optuna study, with their values and intermediate values, so that TPE's first
suggestions are informed by them; with `--warm-start-best K` the best K of them are also enqueued, to be
run again first. Parameters the new study does not search (fixed by --set, or `parent_trial`, whose
trials belong to OLD) are left out of the copies. The two spaces must agree on every parameter both
search: the same kind, the same log scale, the same choices (Optuna cannot mix them); a difference is
one error naming each parameter, before Ray starts.

A stage's first configurations name a few parameters (the rest sampled as usual): what the space's author knows
works, such as the motion prior of mask_space's predictor, which a few random trials may otherwise never try.
Of each, the parameters the overrides leave searched with that value in range are enqueued; none, nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from data.files import not_a
from reports.load import unfinished_text
from reports.records import read_study_settings
from reports.schema import (
    BEST_METRIC,
    EPOCHS,
    MODE,
    OPTUNA_FILE,
    STAGE,
    STUDY_FILE,
    TRIAL_NUMBER,
    optuna_study_name,
    ranked,
)
from tune.search.overrides import NOT_OVERRIDABLE, Param, describe_stage, first_points
from tune.search.searcher import TRIAL_ID_ATTR, journal_storage
from tune.search.spaces import Stage
from tune.search.study import Study

COPIED = (TrialState.COMPLETE, TrialState.PRUNED)
SOURCE_ATTR = "segtune.warm_start"  # on each copied trial: "OLD_NAME/STAGE #NUMBER (trial ID)"; an enqueued one: why


def check_warm_start(study: Study) -> None:
    """Before Ray starts: OLD is a study of the same space whose searched parameters agree with this one's."""
    old = study.cfg.warm_start
    if old is None:
        return
    folder = Path(old)
    if not folder.is_dir():
        raise FileNotFoundError(f"--warm-start {old}: {not_a('folder', folder)} (an earlier study's, OUT/NAME)")
    if not (folder / STUDY_FILE).is_file() or not (folder / OPTUNA_FILE).is_file():
        raise FileNotFoundError(f"--warm-start {old}: not a study folder (no {STUDY_FILE} and {OPTUNA_FILE})")
    space = read_study_settings(folder).get("space")
    if space != study.space.name:
        raise ValueError(f"--warm-start {old}: a study of space {space!r}, and this one searches {study.space.name!r}")
    for stage in study.space.stages:
        differ = _differences(_old_trials(study, stage), _distributions(_described(study, stage)))
        if differ:
            raise ValueError(
                f"--warm-start {old}: stage {stage.name} searches its parameters differently: {'; '.join(differ)}"
            )


def warm_start(study: Study, stage: Stage) -> None:
    """Before a stage's first trial (not when the stage already holds trials, as after a resume): copy OLD's
    finished trials of `stage` into this study's Optuna study and enqueue the best K of them; then enqueue the
    stage's own first configurations (`Stage.first`), so that TPE's random start tries them."""
    if study.cfg.warm_start is None and not stage.first:
        return
    target = optuna.create_study(
        study_name=optuna_study_name(str(study.cfg.name), stage.name),
        storage=journal_storage(study.folder),
        direction="maximize" if stage.mode == "max" else "minimize",
        load_if_exists=True,
    )
    if target.get_trials(deepcopy=False):
        return
    described = _described(study, stage)
    searched = _distributions(described)
    copies: list[FrozenTrial] = []
    if study.cfg.warm_start is not None:
        if snapshot := unfinished_text(Path(study.cfg.warm_start)):  # as its trials are copied (not on a resume)
            print(f"stage {stage.name}: --warm-start: {snapshot}")
        copies = [_copy(trial, searched) for trial in _old_trials(study, stage)]
        target.add_trials(copies)
        asked = study.cfg.warm_start_best
        best = _best_first(copies, stage.mode)[: min(asked, study.samples)]  # more would wait in the journal for ever
        for trial in best:
            target.enqueue_trial(trial.params, user_attrs={SOURCE_ATTR: trial.user_attrs[SOURCE_ATTR] + " (again)"})
        print(
            f"stage {stage.name}: warm start from {study.cfg.warm_start}: {len(copies)} finished trials"
            + (f", the best {len(best)} run again first" if best else "")
            + (f" (the stage runs {study.samples} trials in all)" if asked > study.samples and best else "")
            + (f" ({asked} asked: it has {len(best)} with a result)" if len(best) < min(asked, study.samples) else "")
            + f" (TPE seeded {study.stage_seed(stage)}, --seed mixed with that study's name: its random start does not "
            "draw that study's configurations again)"
        )
    for params in first_points(stage, described):  # the other parameters sampled as usual
        if ran := next((t for t in copies if params.items() <= t.params.items()), None):  # TPE knows its result
            print(f"stage {stage.name}: not tried first again: {params}, run by {ran.user_attrs[SOURCE_ATTR]}")
        else:
            target.enqueue_trial(params, user_attrs={SOURCE_ATTR: f"the space's first choice {params}"})
            print(f"stage {stage.name}: tried first: {params}")


def _best_first(trials: list[FrozenTrial], mode: str) -> list[FrozenTrial]:
    """OLD's trials by the best-trial rule of its summary and report (reports.schema.ranked): each by its best
    epoch's value (a trial the budget cut or ASHA stopped too: a cut one can be the best), ties to the one trained
    longer; those with no value left out."""
    pick = max if mode == "max" else min
    values = [
        [v for v in (*trial.intermediate_values.values(), trial.value) if v is not None and math.isfinite(v)]
        for trial in trials
    ]
    rows = pd.DataFrame(
        {
            STAGE: "",
            MODE: mode,
            BEST_METRIC: [pick(found) if found else math.nan for found in values],
            EPOCHS: [len(trial.intermediate_values) for trial in trials],
            TRIAL_NUMBER: [trial.number for trial in trials],
        },
        index=range(len(trials)),
    )
    return [trials[i] for i in ranked(rows, "").index]


def _old_trials(study: Study, stage: Stage) -> list[FrozenTrial]:
    folder = Path(str(study.cfg.warm_start))
    name = read_study_settings(folder).get("name") or folder.name
    try:
        old = optuna.load_study(study_name=optuna_study_name(name, stage.name), storage=journal_storage(folder))
    except KeyError:  # OLD never ran this stage
        return []
    trials = old.get_trials(deepcopy=True, states=COPIED)
    for trial in trials:  # named by where it came from; its trial id is the old study's
        was = trial.user_attrs.get(TRIAL_ID_ATTR)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != TRIAL_ID_ATTR}
        trial.set_user_attr(SOURCE_ATTR, f"{name}/{stage.name} #{trial.number}" + (f" (trial {was})" if was else ""))
    return trials


def _described(study: Study, stage: Stage) -> dict[str, Param]:
    """What this study's stage asks for, after its overrides (describe_stage)."""
    return describe_stage(stage, study.budget, [o for o in study.overrides if o.stage == stage.name])


def _distributions(params: dict[str, Param]) -> dict[str, BaseDistribution]:
    """What a stage searches (its `_described` params), as Optuna distributions (constants and fixed values left out)."""
    return {
        name: dist
        for name, p in params.items()
        if name not in NOT_OVERRIDABLE and (dist := _distribution(p)) is not None
    }


def _distribution(param: Param) -> BaseDistribution | None:
    if param.kind == "float":
        return FloatDistribution(param.low, param.high, log=param.log)
    if param.kind == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    if param.kind == "categorical":
        return CategoricalDistribution(param.choices)
    return None


def _differences(trials: list[FrozenTrial], searched: dict[str, BaseDistribution]) -> list[str]:
    found: dict[str, str] = {}
    for trial in trials:
        for name, old in trial.distributions.items():
            new = searched.get(name)
            if new is None or name in found:
                continue
            if (
                type(old) is not type(new)
                or getattr(old, "log", False) != getattr(new, "log", False)
                or (
                    isinstance(old, CategoricalDistribution) and old.choices != new.choices  # type: ignore[attr-defined]
                )
            ):
                one = isinstance(new, CategoricalDistribution) and len(new.choices) == 1
                fix = f"; --set {name}={new.choices[0]} fixes it, which a warm start takes" if one else ""  # type: ignore[attr-defined]
                found[name] = f"{name} (there: {_text(old)}; here: {_text(new)}{fix})"
    return list(found.values())


def _text(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return "one of " + ", ".join(map(str, dist.choices))
    assert isinstance(dist, (FloatDistribution, IntDistribution))
    kind = "float" if isinstance(dist, FloatDistribution) else "int"
    return f"{kind} in [{dist.low:g}, {dist.high:g}]{' log' if dist.log else ''}"


def _copy(trial: FrozenTrial, searched: dict[str, BaseDistribution]) -> FrozenTrial:
    """The trial with only the parameters this study searches (in their new distributions: a narrowed
    range may leave an old value outside it, which TPE still learns from)."""
    keep = {name: value for name, value in trial.params.items() if name in searched}
    distributions = {name: _widened(searched[name], value) for name, value in keep.items()}
    return optuna.trial.create_trial(
        state=trial.state,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=keep,
        distributions=distributions,
        user_attrs=trial.user_attrs,
        intermediate_values=trial.intermediate_values,
    )


def _widened(dist: BaseDistribution, value: object) -> BaseDistribution:
    """A float or int distribution stretched to hold `value` (Optuna refuses a trial outside its own)."""
    if isinstance(dist, FloatDistribution):
        low, high = min(dist.low, float(value)), max(dist.high, float(value))  # type: ignore[arg-type]
        return FloatDistribution(low, high, log=dist.log)
    if isinstance(dist, IntDistribution):
        low_i, high_i = min(dist.low, int(value)), max(dist.high, int(value))  # type: ignore[call-overload]
        return IntDistribution(low_i, high_i, log=dist.log)
    return dist
