"""The Optuna side of a stage: TPE through Ray's OptunaSearch, told PRUNED for trials ASHA stopped, with
its study kept in the study folder's Optuna journal."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from reports.schema import OPTUNA_FILE, is_number, optuna_study_name
from tune.search.deadline import Deadline
from tune.search.keys import FAULT_KEY, TRAINING_ITERATION
from tune.search.overrides import OverriddenTrial, Override
from tune.search.spaces import Budget, Stage

TRIAL_ID_ATTR = "segtune.trial_id"  # on each Optuna trial: the study's trial id (results/trials.parquet)


def journal_storage(experiment_dir: Path) -> JournalStorage:
    """The study folder's Optuna journal (`optuna-dashboard OUT/NAME/optuna.journal` opens it). Optuna's INFO lines
    ("A new study created in Journal with name: ...", "Using an existing study ...") are left out of the study's
    output, wherever it opens one (the searcher, a warm start, a resume's checks)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return JournalStorage(JournalFileBackend(str(experiment_dir / OPTUNA_FILE)))


def mend_journal(experiment_dir: Path) -> None:
    """Cut the journal's last line where it was written only in part (a kill -9 or a full disk as Optuna appended
    it). Optuna skips such a line as it reads, but appends its next log right after it, and that log then cannot be
    read: the resumed stage's first trial failed inside Optuna (an AttributeError of its journal replay), and every
    later one. Only the study's driver calls this, holding the study's lock (no one else appends)."""
    path = experiment_dir / OPTUNA_FILE
    if not path.is_file():
        return
    with path.open("rb+") as journal:
        size = journal.seek(0, os.SEEK_END)
        end = size
        while end > 0:  # back to the last newline, a block at a time
            start = max(0, end - (1 << 16))
            journal.seek(start)
            block = journal.read(end - start)
            if b"\n" in block:
                end = start + block.rindex(b"\n") + 1
                break
            end = start
        if end == size:
            return
        journal.truncate(end)
    print(
        f"{path}: its last line was written only in part (the study was killed as Optuna wrote it): cut "
        f"({size - end} bytes; Optuna had not read it)"
    )


class PrunedAwareOptunaSearch(OptunaSearch):
    """Tells Optuna that a trial ASHA stopped early was PRUNED at its last rung (its last reported value),
    not COMPLETE with a low-fidelity value, which would mislead TPE. Also marks the trials --fail-trials
    names, for the tests' fault injection.

    Ray has no public hook for this, so it reads three private attributes of OptunaSearch (Ray 2.60):
    `_ot_trials` (Ray trial id -> optuna.Trial), `_completed_trials` (Ray trial ids already told) and
    `_ot_study` (the optuna.Study). tests/tune/search/test_searcher.py fails if a Ray release changes them.
    """

    def __init__(
        self,
        *args: Any,
        max_t: int,
        deadline: Deadline | None = None,
        fail_trials: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._max_t = max_t
        self._deadline = deadline
        self._fail_trials = set(fail_trials)
        self._suggested = 0

    def suggest(self, trial_id: str) -> dict | None:
        if self._deadline is not None and self._deadline.passed():
            return Searcher.FINISHED  # type: ignore[return-value]  # no trial starts after the time budget's deadline
        config = super().suggest(trial_id)
        if config is not None:
            if trial_id in self._ot_trials:  # the journal's trial names the study's (optuna-dashboard, the report)
                self._ot_trials[trial_id].set_user_attr(TRIAL_ID_ATTR, trial_id)
            self._suggested += 1
            if self._suggested in self._fail_trials:
                config[FAULT_KEY] = True
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if not self._already_told(trial_id):
            with warnings.catch_warnings():  # an epoch run again after a resume: Optuna keeps the first, as it says
                warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
                super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if not error and result is not None and (failed := self._failed_before(trial_id)) is not None:
            self._tell_again(trial_id, failed, result)
            return
        if self._already_told(trial_id):
            return
        if error or result is None or trial_id not in self._ot_trials or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result, error)
            return
        # Ray hands a trial's last result (the one that triggered ASHA's stop, or its last epoch's) to
        # on_trial_complete, not on_trial_result: it is the last intermediate value, and the trial's value
        ot_trial = self._ot_trials[trial_id]
        if is_number(value := result.get(self.metric)) and TRAINING_ITERATION in result:
            with warnings.catch_warnings():  # reported already (a result Ray handed both ways): Optuna keeps it
                warnings.simplefilter("ignore")
                ot_trial.report(float(value), int(result[TRAINING_ITERATION]))
        if result.get(TRAINING_ITERATION, self._max_t) < self._max_t:  # stopped early: the last rung's value
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)  # type: ignore[attr-defined]
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result, error)

    def _failed_before(self, trial_id: str) -> optuna.trial.FrozenTrial | None:
        """The journal's trial told FAIL for a trial that has now ended well: its driver stopped as the trial failed
        (a full disk in the driver's own writes), after Ray told this searcher and before Ray saved the trial's
        state, so a resume ran the trial again."""
        if trial_id not in self._ot_trials or trial_id in getattr(self, "_told_again", set()):
            return None
        number = self._ot_trials[trial_id].number
        stored = self._ot_study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
        return next((t for t in stored if t.number == number and t.state == optuna.trial.TrialState.FAIL), None)

    def _tell_again(self, trial_id: str, failed: optuna.trial.FrozenTrial, result: dict) -> None:
        """Tell Optuna how a trial it holds as FAIL (`failed`) ended, as a new trial of the same configuration (a
        finished trial cannot be told again): TPE learns from it, and the journal agrees with the study's results."""
        value = result.get(self.metric)
        if not isinstance(value, (int, float)):
            return
        epoch = int(result.get(TRAINING_ITERATION, self._max_t))
        pruned = epoch < self._max_t  # stopped by ASHA at a rung: its last value, as on_trial_complete tells it
        self._ot_study.add_trial(  # type: ignore[attr-defined]
            optuna.trial.create_trial(
                params=failed.params,
                distributions=failed.distributions,
                value=float(value),
                state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE,
                intermediate_values={**failed.intermediate_values, epoch: float(value)},
                user_attrs={**failed.user_attrs, "told_fail_as_trial": failed.number},
            )
        )
        self._told_again = {*getattr(self, "_told_again", set()), trial_id}
        self._completed_trials.add(trial_id)

    def _already_told(self, trial_id: str) -> bool:
        """Whether the journal holds this trial as finished though this searcher does not know it: after a kill -9,
        Ray restores the searcher state it saved before the trial's end was told, then hands that end over again,
        and Optuna refuses to update a finished trial (UpdateFinishedTrialError ended a resumed study)."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return False
        number = self._ot_trials[trial_id].number
        stored = self._ot_study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
        if not any(t.number == number and t.state.is_finished() for t in stored):
            return False
        self._completed_trials.add(trial_id)
        return True


class DefineByRun:
    """The stage's define-by-run function bound to its budget and parents; picklable, so that the
    searcher can be saved with the experiment."""

    def __init__(
        self, stage: Stage, budget: Budget, parents: tuple[str, ...], overrides: tuple[Override, ...] = ()
    ) -> None:
        self.stage, self.budget, self.parents, self.overrides = stage, budget, parents, overrides

    def __call__(self, trial: optuna.Trial) -> dict[str, Any] | None:
        overridden = OverriddenTrial(trial, self.overrides)
        values = overridden.constants(self.stage.define(overridden, self.budget, self.parents))  # type: ignore[arg-type]
        constants = {k: v for k, v in values.items() if k not in trial.params}
        return constants or None  # Ray adds these to the trial's config beside the sampled values


def make_searcher(
    stage: Stage,
    budget: Budget,
    parents: tuple[str, ...],
    *,
    experiment_dir: Path,
    study: str,
    seed: int,
    overrides: tuple[Override, ...] = (),
    deadline: Deadline | None = None,
    fail_trials: tuple[int, ...] = (),
) -> PrunedAwareOptunaSearch:
    """The stage's searcher; `overrides`: those of this stage (its journal quiet: journal_storage)."""
    return PrunedAwareOptunaSearch(
        space=DefineByRun(stage, budget, parents, overrides),
        metric=stage.metric,
        mode=stage.mode,
        sampler=optuna.samplers.TPESampler(seed=seed),
        storage=journal_storage(experiment_dir),
        study_name=optuna_study_name(study, stage.name),
        max_t=budget.max_epochs,
        deadline=deadline,
        fail_trials=fail_trials,
    )


def fail_orphaned_optuna_trials(experiment_dir: Path, study: str, stage: Stage, *, requeue: bool = False) -> None:
    """After a stage, or as it starts anew, an Optuna trial still RUNNING was asked for by a driver that was killed
    before Ray recorded it; it will never be told. Mark it FAIL so the stored study is consistent (they stayed
    RUNNING through the whole stage started anew, optuna-dashboard showing them running). Nothing where the stage has
    no Optuna study yet. With `requeue` (a stage starting anew), an orphan that was a queued configuration (a warm
    start's best, a stage's first ones) is queued again: the warm start does not queue into a study with trials."""
    try:
        loaded = optuna.load_study(
            study_name=optuna_study_name(study, stage.name), storage=journal_storage(experiment_dir)
        )
    except KeyError:  # (Optuna's "Record does not exist.")
        return
    for trial in loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        loaded.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if requeue and "fixed_params" in trial.system_attrs:  # (Optuna's key of an enqueued trial's parameters)
            attrs = {k: v for k, v in trial.user_attrs.items() if k != TRIAL_ID_ATTR}
            loaded.enqueue_trial(trial.system_attrs["fixed_params"], user_attrs=attrs)
