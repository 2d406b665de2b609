"""The Optuna searcher with real Ray and real Optuna (no cluster needed): ASHA-stopped trials are told
as PRUNED, finished ones as COMPLETE, and the private attributes of Ray's OptunaSearch it relies on are
still there (this test fails when a Ray release renames them)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest

from reports.schema import OPTUNA_FILE, optuna_study_name
from tune.search.budget import budget_for
from tune.search.keys import FAULT_KEY, TRAINING_ITERATION
from tune.search.searcher import journal_storage, make_searcher, mend_journal
from tune.search.spaces import Stage


def _define(trial: optuna.Trial, budget: Any, parents: Sequence[str]) -> dict[str, Any]:
    return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}


@pytest.fixture
def searcher(tmp_path: Path) -> Any:
    stage = Stage("main", "unet", "val_iou", "max", _define)
    return make_searcher(stage, budget_for("smoke", gpu=False), (), experiment_dir=tmp_path, study="s", seed=0)


def test_ray_still_has_the_private_attributes_the_searcher_reads(searcher: Any) -> None:
    searcher.suggest("a")
    assert isinstance(searcher._ot_trials, dict) and isinstance(searcher._ot_trials["a"], optuna.Trial)
    assert isinstance(searcher._completed_trials, set)
    assert isinstance(searcher._ot_study, optuna.Study)


def test_a_trial_stopped_before_max_t_is_pruned_at_its_last_value(searcher: Any, tmp_path: Path) -> None:
    max_t = budget_for("smoke", gpu=False).max_epochs
    for trial_id in ("stopped", "finished"):
        assert "lr" in searcher.suggest(trial_id)
        searcher.on_trial_result(trial_id, {"val_iou": 0.1, TRAINING_ITERATION: 1})
    searcher.on_trial_complete("stopped", {"val_iou": 0.2, TRAINING_ITERATION: 2})
    searcher.on_trial_complete("finished", {"val_iou": 0.5, TRAINING_ITERATION: max_t})
    stored = optuna.load_study(study_name=optuna_study_name("s", "main"), storage=journal_storage(tmp_path))
    stopped, finished = stored.get_trials(deepcopy=False)
    assert stopped.state == optuna.trial.TrialState.PRUNED
    assert stopped.intermediate_values == {1: 0.1, 2: 0.2} and stopped.value == 0.2
    assert finished.state == optuna.trial.TrialState.COMPLETE and finished.value == 0.5
    assert finished.intermediate_values == {1: 0.1, max_t: 0.5}  # its last epoch's too (Ray hands it only here)
    assert searcher._completed_trials == {"stopped", "finished"}
    assert [t.user_attrs["segtune.trial_id"] for t in (stopped, finished)] == ["stopped", "finished"]  # (the report's)


def test_the_named_trials_carry_the_fault_flag(tmp_path: Path) -> None:
    stage = Stage("main", "unet", "val_iou", "max", _define)
    searcher = make_searcher(
        stage, budget_for("smoke", gpu=False), (), experiment_dir=tmp_path, study="s", seed=0, fail_trials=(2,)
    )
    flags = [bool((searcher.suggest(f"t{k}") or {}).get(FAULT_KEY)) for k in range(3)]
    assert flags == [False, True, False]


def test_an_epoch_run_again_after_a_resume_is_kept_once_without_optuna_s_warning(searcher: Any) -> None:
    """A trial interrupted in its epoch 2 runs it again at the resume: Optuna keeps the first report of a step and
    warned of the second among the study's lines."""
    assert "lr" in searcher.suggest("t")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value in (0.1, 0.2):
            searcher.on_trial_result("t", {"val_iou": value, TRAINING_ITERATION: 1})
    assert not caught, [str(w.message) for w in caught]
    assert searcher._ot_trials["t"].study.trials[0].intermediate_values == {1: 0.1}


def test_a_trial_told_again_after_a_restore_is_not_told_twice(searcher: Any, tmp_path: Path) -> None:
    """kill -9 after Optuna's journal recorded a trial's end but before Ray saved the searcher: the restored
    searcher does not know the trial ended, and Ray hands its last result and its end over again."""
    searcher.suggest("stopped")
    searcher.on_trial_result("stopped", {"val_iou": 0.1, TRAINING_ITERATION: 1})
    saved = tmp_path / "searcher.pkl"
    searcher.save(str(saved))
    searcher.on_trial_complete("stopped", {"val_iou": 0.2, TRAINING_ITERATION: 2})
    restored = make_searcher(
        Stage("main", "unet", "val_iou", "max", _define),
        budget_for("smoke", gpu=False),
        (),
        experiment_dir=tmp_path,
        study="s",
        seed=0,
    )
    restored.restore(str(saved))
    assert "stopped" not in restored._completed_trials
    restored.on_trial_result("stopped", {"val_iou": 0.2, TRAINING_ITERATION: 2})
    restored.on_trial_complete("stopped", {"val_iou": 0.2, TRAINING_ITERATION: 2})
    assert "stopped" in restored._completed_trials
    (stored,) = optuna.load_study(study_name=optuna_study_name("s", "main"), storage=journal_storage(tmp_path)).trials
    assert stored.state == optuna.trial.TrialState.PRUNED and stored.intermediate_values == {1: 0.1, 2: 0.2}


def test_a_trial_told_failed_that_a_resume_ran_to_its_end_is_told_again_as_a_new_trial(
    searcher: Any, tmp_path: Path
) -> None:
    """A full disk stopped the driver as a trial failed on it: Ray told the searcher (FAIL) and saved it, but not
    the trial's state, so the resume ran the trial again, to its end. Optuna keeps the FAIL (a finished trial
    cannot be told again) and gets the end as a new trial of the same configuration: TPE learns from it, and the
    journal agrees with the study's results (it held the study's best trial as failed)."""
    max_t = budget_for("smoke", gpu=False).max_epochs
    config = searcher.suggest("t")
    searcher.on_trial_result("t", {"val_iou": 0.1, TRAINING_ITERATION: 1})
    searcher.on_trial_complete("t", None, error=True)
    searcher.on_trial_complete("t", {"val_iou": 0.5, TRAINING_ITERATION: max_t})  # the resumed run's end
    searcher.on_trial_complete("t", {"val_iou": 0.5, TRAINING_ITERATION: max_t})  # (told once)
    failed, again = optuna.load_study(
        study_name=optuna_study_name("s", "main"), storage=journal_storage(tmp_path)
    ).trials
    assert failed.state == optuna.trial.TrialState.FAIL
    assert again.state == optuna.trial.TrialState.COMPLETE and again.value == 0.5 and again.params == failed.params
    assert again.params["lr"] == config["lr"] and again.user_attrs["told_fail_as_trial"] == failed.number
    assert again.intermediate_values == {1: 0.1, max_t: 0.5}
    searcher.suggest("u")  # and TPE goes on, with the new trial among those it learns from
    searcher.on_trial_complete("u", {"val_iou": 0.2, TRAINING_ITERATION: 1})
    stopped = optuna.load_study(study_name=optuna_study_name("s", "main"), storage=journal_storage(tmp_path)).trials[-1]
    assert stopped.state == optuna.trial.TrialState.PRUNED and stopped.value == 0.2  # an error-free end: as before


def test_a_journal_line_cut_short_by_a_kill_is_cut_and_the_study_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill -9 (or a full disk) as Optuna appended its last log: the resume cuts that line, so the next trial's
    log is readable (Optuna appended it after the part, and the trial failed in Optuna's replay). A whole journal
    is left as it was, byte for byte."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=journal_storage(tmp_path), study_name="s", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    path = tmp_path / OPTUNA_FILE
    whole = path.read_bytes()
    mend_journal(tmp_path)
    assert path.read_bytes() == whole and capsys.readouterr().out == ""
    path.write_bytes(whole[:-20])  # the last log (the third trial's end) cut short
    mend_journal(tmp_path)
    assert path.read_bytes() == whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1]
    assert f"{path}: its last line was written only in part" in capsys.readouterr().out
    resumed = optuna.load_study(storage=journal_storage(tmp_path), study_name="s")
    resumed.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    again = optuna.load_study(storage=journal_storage(tmp_path), study_name="s")
    assert [t.state.name for t in again.trials] == ["COMPLETE", "COMPLETE", "RUNNING", "COMPLETE"]


def test_optuna_trials_a_killed_start_asked_for_are_failed_as_the_stage_starts_anew(tmp_path: Path) -> None:
    """A start killed before Ray saved its state left the trials it had asked Optuna for RUNNING, through the whole
    stage started anew (in optuna-dashboard: running): they are FAIL from its start. Nothing for a new stage."""
    from tune.search.searcher import fail_orphaned_optuna_trials, journal_storage
    from tune.search.spaces import get_space

    stage = get_space("unet").stage("main")
    fail_orphaned_optuna_trials(tmp_path, "s", stage)  # no Optuna study yet: nothing, no error
    study = optuna.create_study(study_name="s/main", storage=journal_storage(tmp_path), direction="maximize")
    asked = study.ask()
    study.tell(study.ask(), 0.5)
    study.enqueue_trial({"lr": 0.01}, user_attrs={"segtune.warm_start": "OLD/main #3 (again)"})  # a warm start's
    queued = study.ask()
    queued.set_user_attr("segtune.trial_id", "abc")
    fail_orphaned_optuna_trials(tmp_path, "s", stage, requeue=True)  # as the stage starts anew
    trials = optuna.load_study(study_name="s/main", storage=journal_storage(tmp_path)).trials
    states = optuna.trial.TrialState
    assert [t.state for t in trials] == [states.FAIL, states.COMPLETE, states.FAIL, states.WAITING]
    assert asked.number == 0 and queued.number == 2  # the queued one asked again first, as the warm start queued it
    assert trials[3].system_attrs["fixed_params"] == {"lr": 0.01}
    assert trials[3].user_attrs == {"segtune.warm_start": "OLD/main #3 (again)"}
