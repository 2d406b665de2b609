"""A stage's first configurations (Stage.first) are enqueued in its Optuna study before TPE's random start: the
first trial Optuna hands out has them; a resume does not enqueue them again; overrides that rule a value out
leave it out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from reports.schema import STUDY_FILE, optuna_study_name
from tune.search.budget import budget_for
from tune.search.config import SearchConfig
from tune.search.driver import open_study
from tune.search.resources import Cluster
from tune.search.searcher import DefineByRun, journal_storage
from tune.search.spaces import get_space
from tune.search.warm_start import warm_start

PRIORS = ["none", "copy", "motion"]


def _study(tmp_path: Path, *overrides: str) -> tuple[optuna.Study, int]:
    """warm_start of mask_space's predictor stage, twice (the second as a resume): its Optuna study and how
    many trials it holds."""
    cfg = SearchConfig(
        space="mask_space", data=str(tmp_path), out=str(tmp_path), name="s", gpus_per_trial=0.0, overrides=overrides
    )
    study = open_study(cfg, Cluster.local())
    stage = study.space.stage("predictor")
    assert stage.first == ({"prior": "motion"},)
    study.folder.mkdir(parents=True, exist_ok=True)
    warm_start(study, stage)
    warm_start(study, stage)  # a resume: the stage already holds its trials
    ot = optuna.load_study(study_name=optuna_study_name("s", "predictor"), storage=journal_storage(study.folder))
    return ot, len(ot.get_trials(deepcopy=False))


def test_the_first_trial_of_mask_space_predictors_has_the_motion_prior_and_the_rest_sampled(tmp_path: Path) -> None:
    ot, held = _study(tmp_path)
    assert held == 1
    trial = ot.ask()
    assert trial.suggest_categorical("prior", PRIORS) == "motion"
    assert ot.trials[0].system_attrs["fixed_params"] == {"prior": "motion"}  # motion_retention, not named: sampled
    assert "segtune.warm_start" in ot.trials[0].user_attrs
    assert [ot.ask().suggest_categorical("prior", PRIORS) for _ in range(30)].count("motion") < 30  # then TPE


@pytest.mark.parametrize("override", ["set prior=copy", "choices prior=none,copy"])
def test_overrides_that_rule_the_first_value_out_enqueue_nothing(tmp_path: Path, override: str) -> None:
    assert _study(tmp_path, override)[1] == 0


def test_a_warm_start_from_few_trials_does_not_draw_the_old_configurations_again(tmp_path: Path) -> None:
    """Under TPE's 10 random start-up trials, a warm start seeded as its old study was drew that study's
    configurations again, one by one (both at the default --seed 0): its TPE is seeded with the old study's name
    mixed in. Through the stage's real define function and Optuna's TPE, as the study's searcher asks them."""
    old_folder = tmp_path / "old"
    old_folder.mkdir()
    (old_folder / STUDY_FILE).write_text(json.dumps({"name": "old", "space": "unet"}))
    define = DefineByRun(get_space("unet").stage("main"), budget_for("smoke", gpu=False), ())

    def draws(seed: int, before: list[FrozenTrial]) -> tuple[list[str], list[FrozenTrial]]:
        """3 trials of a study of TPE seeded `seed` that starts from the finished trials `before`."""
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.add_trials(before)
        for value in (0.1, 0.3, 0.2):
            trial = study.ask()
            define(trial)
            study.tell(trial, value)
        new = study.trials[len(before) :]
        return [str(t.params) for t in new], new

    old, finished = draws(0, [])
    cfg = SearchConfig(space="unet", warm_start=str(old_folder))
    assert draws(0, finished)[0] == old  # the old study's own seed: its configurations again
    assert cfg.sampler_seed != 0 and SearchConfig().sampler_seed == 0
    assert not set(draws(cfg.sampler_seed, finished)[0]) & set(old)


@pytest.mark.parametrize(("samples", "enqueued", "said"), [(2, [2, 1], "(the stage runs 2 trials in all)"),
                                                            (6, [2, 1, 0, 3], "(5 asked: it has 4 with a result)")])  # fmt: skip
def test_warm_start_best_runs_again_the_old_studys_best_by_its_own_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], samples: int, enqueued: list[int], said: str
) -> None:
    """--warm-start-best K: OLD's best K by the rule of its summary (each trial's best epoch; a trial the budget cut
    can be the best; ties to the one trained longer), as many as the stage runs: a configuration enqueued beyond
    them waited in the journal for ever. COMPLETE trials alone were taken: a study whose trials were all cut ran
    none again."""
    old_folder = tmp_path / "old"
    old_folder.mkdir()
    (old_folder / STUDY_FILE).write_text(json.dumps({"name": "old", "space": "unet"}))
    define = DefineByRun(get_space("unet").stage("main"), budget_for("smoke", gpu=False), ())
    old = optuna.create_study(
        study_name=optuna_study_name("old", "main"), storage=journal_storage(old_folder), direction="maximize"
    )
    curves = [[0.1, 0.2, 0.25, 0.3], [0.5], [0.2, 0.3, 0.4, 0.5], [0.05]]  # #1 cut at 0.5, #3 stopped by ASHA
    for curve in curves:
        trial = old.ask()
        define(trial)
        trial.set_user_attr("segtune.trial_id", f"t{trial.number}")  # the old study's trial id, as its searcher set it
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        old.tell(trial, curve[-1] if len(curve) == 4 else None, state=None if len(curve) == 4 else TrialState.PRUNED)
    cfg = SearchConfig(
        space="unet", out=str(tmp_path), name="new", samples=samples, gpus_per_trial=0.0, budget="smoke",
        warm_start=str(old_folder), warm_start_best=5,
    )  # fmt: skip
    study = open_study(cfg, Cluster.local())
    study.folder.mkdir(parents=True)
    warm_start(study, study.space.stage("main"))
    new = optuna.load_study(study_name=optuna_study_name("new", "main"), storage=journal_storage(study.folder))
    waiting = [t for t in new.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    assert [t.user_attrs["segtune.warm_start"] for t in waiting] == [
        f"old/main #{n} (trial t{n}) (again)" for n in enqueued
    ]
    copies = [t for t in new.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    assert len(copies) == 4 and not any("segtune.trial_id" in t.user_attrs for t in copies)  # (not this study's)
    for held, n in zip(waiting, enqueued, strict=True):
        assert held.system_attrs["fixed_params"].items() <= old.trials[n].params.items()
        assert "lr" in held.system_attrs["fixed_params"]
    assert f"4 finished trials, the best {len(enqueued)} run again first {said}" in capsys.readouterr().out


def test_a_first_configuration_the_old_study_ran_is_not_tried_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A warm start copies OLD's trials, one of which ran the space's first choice: TPE knows its result, and
    enqueueing it again spent a trial of the new study on it (one of 3, with --warm-start-best 2 all of them)."""
    old_folder = tmp_path / "old"
    old_folder.mkdir()
    (old_folder / STUDY_FILE).write_text(json.dumps({"name": "old", "space": "mask_space"}))
    stage = get_space("mask_space").stage("predictor")
    old = optuna.create_study(
        study_name=optuna_study_name("old", "predictor"), storage=journal_storage(old_folder), direction="maximize"
    )
    old.enqueue_trial({"prior": "motion"})
    trial = old.ask()
    DefineByRun(stage, budget_for("smoke", gpu=False), ("p",))(trial)
    trial.set_user_attr("segtune.trial_id", "t0")
    trial.report(0.3, 1)
    old.tell(trial, 0.3)
    cfg = SearchConfig(
        space="mask_space", data=str(tmp_path), out=str(tmp_path), name="new", gpus_per_trial=0.0,
        budget="smoke", warm_start=str(old_folder),
    )  # fmt: skip
    study = open_study(cfg, Cluster.local())
    study.folder.mkdir(parents=True)
    optuna.logging.set_verbosity(optuna.logging.INFO)  # as a study's first stage began: Optuna's INFO lines showed
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO, logger="optuna"):
            warm_start(study, stage)
    finally:
        optuna.logging.disable_propagation()
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("optuna")]  # "A new study created ..."
    new = optuna.load_study(study_name=optuna_study_name("new", "predictor"), storage=journal_storage(study.folder))
    assert [t.state for t in new.get_trials(deepcopy=False)] == [TrialState.COMPLETE]  # the copy, nothing waiting
    assert "not tried first again: {'prior': 'motion'}, run by old/predictor #0 (trial t0)" in capsys.readouterr().out


@pytest.mark.parametrize(("override", "shown"), [((), True), (("set prior=copy",), False)])
def test_show_space_says_what_a_stage_tries_first(override: tuple[str, ...], shown: bool) -> None:
    """--show-space named every parameter, and not the configuration the stage runs first (the overrides' rules)."""
    from tune.search.overrides import parse_overrides
    from tune.search.space_check import show_space

    space, smoke = get_space("mask_space"), budget_for("smoke", gpu=False)
    text = show_space(space, smoke, parse_overrides(space, smoke, override), smoke.samples)
    assert ("  tried first (the rest sampled): {'prior': 'motion'}" in text) == shown
