"""The study clock's account of a time budget's cut: a resume is offered only where it has trials to run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from reports import schema
from reports.load import load_experiment
from reports.schema import duration
from tests.reports.study_files import trial_row, write_study_folder
from tune.search.clock import StudyClock
from tune.search.config import SearchConfig
from tune.search.driver import open_study
from tune.search.resources import Cluster


def test_a_cut_stage_that_started_every_trial_is_not_offered_a_resume(tmp_path: Path) -> None:
    """A machine fast enough to start all a stage's trials before its deadline: the stage ends (its trials cut at
    the deadline are final), and neither the summary nor the report sends the user to a --resume that adds none."""
    cfg = SearchConfig(space="unet", data=str(tmp_path), out=str(tmp_path), name="s", samples=3, gpus_per_trial=0.0)
    study = open_study(cfg, Cluster.local())
    rows = [
        trial_row("a", 0.2, stage="main"),
        trial_row("b", 0.1, stage="main", status="cut"),
        trial_row("c", 0.3, stage="main"),
    ]
    clock = StudyClock(study, 60.0, time.time())  # before the run: no trial yet
    write_study_folder(study.folder, rows, settings={"name": "s", "space": "unet"})
    stage = study.space.stage("main")
    clock.ran(stage, complete=True)
    clock.end()
    assert clock.cut == {"main": "all 3 trials started, 1 stopped at the deadline"}
    (study.folder / "main").mkdir()
    resume = "complete it with: python -m tune.search"
    assert resume in clock.summary()  # the stage is open (its Ray experiment did not end): a resume goes on
    assert any(n.endswith("--resume completes it") for n in load_experiment(study.folder).notes)
    (study.folder / "main" / schema.STAGE_DONE).touch()
    assert resume not in clock.summary() and schema.CUT_BUT_FINISHED in clock.summary()
    note = "the study was cut by its time budget (1m00s): stage main: all 3 trials started, 1 stopped at the deadline; "
    assert note + schema.CUT_BUT_FINISHED in load_experiment(study.folder).notes
    assert json.loads((study.folder / schema.BUDGET_FILE).read_text())[schema.BUDGET_CUT] == clock.cut
    study.record_run(ended=False)  # the driver died after the cut stage, as the best model was evaluated
    notes = load_experiment(study.folder).notes
    assert not any(schema.CUT_BUT_FINISHED in n for n in notes), notes
    assert any(n.startswith("every stage ended but the study did not") and "--resume" in n for n in notes), notes


def test_a_resume_s_budget_is_not_said_to_have_cut_what_an_earlier_budget_cut(tmp_path: Path) -> None:
    """`--resume --time-budget 60` of a stage an earlier 12 s budget cut: its trials cut then are not this run's."""
    cfg = SearchConfig(space="unet", data=str(tmp_path), out=str(tmp_path), name="s", samples=3, gpus_per_trial=0.0)
    study = open_study(cfg, Cluster.local())
    earlier = [trial_row("a", 0.2, stage="main"), trial_row("b", 0.1, stage="main", status="cut")]
    write_study_folder(study.folder, earlier, settings={"name": "s", "space": "unet"})
    clock = StudyClock(study, 60.0, time.time())
    write_study_folder(study.folder, [*earlier, trial_row("c", 0.3, stage="main")])
    clock.ran(study.space.stage("main"), complete=True)
    assert clock.cut == {}  # the resume started the last trial, and its budget cut none
    write_study_folder(study.folder, [*earlier, trial_row("c", 0.3, stage="main", status="cut")])
    clock.ran(study.space.stage("main"), complete=True)
    assert clock.cut == {"main": "all 3 trials started, 1 stopped at the deadline"}  # c, this run's cut


def test_durations_are_shown_as_given_under_a_minute_and_rounded_above() -> None:
    """`--time-budget 4.5` was shown as "4s", so that a budget of 4.5 s seemed to stop a study early."""
    shown = [duration(s) for s in (4.5, 6.0, 42.37, 59.97, 185.4, 3725.0)]
    assert shown == ["4.5s", "6s", "42.4s", "1m00s", "3m05s", "1h02m"]


def test_trials_an_earlier_budget_cut_are_said_cut_by_it_after_later_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study cut by an 8 s budget, resumed under 6 s that was spent before the stage resumed, then resumed under a
    minute that cut nothing: the second run said "stage main: not started" and dropped the 2 trials cut before; the
    report of the third said the study was cut by a budget that cut nothing (6 s, then its own minute)."""
    cfg = SearchConfig(space="unet", data=str(tmp_path), out=str(tmp_path), name="s", samples=3, gpus_per_trial=0.0)
    study = open_study(cfg, Cluster.local())
    stage = study.space.stage("main")
    first = StudyClock(study, 8.0, time.time())
    cut = [trial_row("a", 0.2, stage="main", status="cut"), trial_row("b", 0.1, stage="main", status="cut")]
    write_study_folder(study.folder, cut, settings={"name": "s", "space": "unet"})
    (study.folder / "main").mkdir()
    first.ran(stage, complete=False)
    first.end()
    assert first.cut == {"main": "2 of 3 trials started, 2 stopped at the deadline"}
    second = StudyClock(study, 6.0, time.time() - 7.0)  # Ray's start and the data's check took the 6 s
    assert not second.start(stage)
    second.end()
    assert second.cut == {
        "main": "not resumed: the time budget was spent; 2 trials stopped at an earlier run's deadline (8s)"
    }
    third = StudyClock(study, 60.0, time.time())
    write_study_folder(study.folder, [*cut, trial_row("c", 0.3, stage="main")])
    assert third.start(stage)
    said = capsys.readouterr().out  # when it stops starting trials, and what happens to those running then
    assert re.fullmatch(r"stage main: the time budget gives it (59|1m00)\S*, to \d\d:\d\d:\d\d: no trial starts after, "
                        r"and those running stop at the end of their epoch\n", said), said  # fmt: skip
    third.ran(stage, complete=True)
    third.end()
    assert third.cut == {"main": "2 trials stopped at an earlier run's deadline"}
    note = "the study was cut by its time budget (8s): stage main: 2 trials stopped at an earlier run's deadline"
    assert any(n.startswith(note) for n in load_experiment(study.folder).notes), load_experiment(study.folder).notes


def test_a_budget_not_half_used_says_how_many_trials_it_would_fit(tmp_path: Path) -> None:
    """A budget does not add trials: a 2-CPU machine's default budget used 6m45s of a 15-minute one, and nothing said
    what would fill it. A resume with no stage left to run leaves the record of the run before it."""
    cfg = SearchConfig(space="unet", data=str(tmp_path), out=str(tmp_path), name="s", samples=8, gpus_per_trial=0.0)
    study = open_study(cfg, Cluster.local())
    write_study_folder(study.folder, [trial_row("a", 0.2, stage="main")], settings={"name": "s", "space": "unet"})
    clock = StudyClock(study, 900.0, time.time() - 405, fresh=True)  # 6m45s of 15m
    clock.ran(study.space.stage("main"), complete=True)
    clock.end()
    assert "would fit" not in clock.summary()  # its stage not done (a stage that failed): no advice
    (study.folder / "main").mkdir()
    (study.folder / "main" / schema.STAGE_DONE).touch()
    summary = clock.summary()
    assert "time budget 15m00s: the search used 6m45s, 8m15s left\n" in summary
    fits = "the budget would fit ~15 trials a stage at this run's pace (8 ran): a new study with --samples 15 "
    assert f"{fits}--warm-start {study.folder} begins from these trials" in summary
    resumed = StudyClock(study, 900.0, time.time() - 20)  # a resume's run: it ran the trials it had left
    assert "would fit" not in resumed.summary()
    record = (study.folder / schema.BUDGET_FILE).read_text()
    idle = StudyClock(study, 480.0, time.time(), idle=True)  # `--resume --time-budget 8m` of the finished study
    idle.end()
    assert (study.folder / schema.BUDGET_FILE).read_text() == record  # its record: the run that used the budget
    assert "time budget 8m00s: unused, every stage had ended before this run" in idle.summary()
    assert "would fit" not in idle.summary()
    hurried = StudyClock(study, 900.0, time.time() - 600, fresh=True)  # used 10 of 15 minutes: no advice
    hurried.end()
    assert "would fit" not in hurried.summary()
