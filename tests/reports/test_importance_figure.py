"""The importance figure from small handmade studies, computed on a real Optuna journal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go

from reports import importance_figure as figures
from reports import schema
from tests.reports.study_files import SPREAD, trial_row, write_journal

ROOT = Path(__file__).resolve().parents[2]
TRIALS = pd.DataFrame([trial_row("a", 0.5)])  # only the stage's metric is read from the table


def journal_study(tmp_path: Path, trials: list) -> optuna.Study:
    return write_journal(tmp_path / schema.OPTUNA_FILE, schema.optuna_study_name("s", "train"), trials)


def test_importances_are_optunas_bar_chart_of_the_parameters(tmp_path: Path) -> None:
    fig = figures.importances(TRIALS, "train", journal_study(tmp_path, SPREAD))
    assert fig is not None
    (bars,) = fig.data
    assert isinstance(bars, go.Bar) and bars.orientation == "h"
    assert list(bars.y)[-1] == "width"  # plotted bottom-up: the most important last
    assert set(bars.y) == {"lr", "width"}
    assert "(fANOVA over 6 trials: under 10, a hint at most)" in fig.layout.title.text
    (tmp_path / "more").mkdir()
    fig = figures.importances(TRIALS, "train", journal_study(tmp_path / "more", SPREAD * 2))
    assert fig is not None and fig.layout.title.text.endswith("(fANOVA over 12 trials)")  # a finding, not a hint


def test_importances_count_trials_asha_stopped_at_their_last_rung(tmp_path: Path) -> None:
    study = journal_study(tmp_path, [*SPREAD[:2], ({"lr": 1e-3, "width": 32}, [0.6, 0.7], "pruned")])
    finished = figures.finished_study(study)
    assert [t.state for t in finished.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [t.value for t in finished.trials] == [0.20, 0.21, 0.7]


def test_importances_leave_out_failed_trials(tmp_path: Path) -> None:
    study = journal_study(tmp_path, [*SPREAD[:2], ({"lr": 1e-3, "width": 32}, [0.6], "fail")])
    assert len(figures.finished_study(study).trials) == 2
    assert figures.importances(TRIALS, "train", study) is None


def test_importances_without_scikit_learn_say_so_and_the_report_stands(tmp_path: Path) -> None:
    """Optuna's fANOVA imports scikit-learn as it computes (a dependency: an install that lost it, or a machine's
    own Python without it); the study's report, written at its end, lost everything to its ImportError."""
    script = f"""
import sys
sys.modules["sklearn"] = None  # no scikit-learn: importing it raises ImportError
from pathlib import Path
from reports import importance_figure
from tests.reports.test_importance_figure import TRIALS, journal_study
from tests.reports.study_files import SPREAD
fig = importance_figure.importances(TRIALS, "train", journal_study(Path({str(tmp_path)!r}), SPREAD))
print(fig.layout.title.text, len(fig.data))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("not drawn, Optuna's fANOVA needs scikit-learn, which is not installed here "
                                        "(pip install scikit-learn) 0"), done.stdout  # fmt: skip


def test_importances_need_three_finished_trials(tmp_path: Path) -> None:
    assert figures.importances(TRIALS, "train", journal_study(tmp_path, SPREAD[:2])) is None


def test_importances_are_left_out_when_every_trial_scored_the_same(tmp_path: Path) -> None:
    same = [(params, [0.25], "complete") for params, _, _ in SPREAD]
    assert figures.importances(TRIALS, "train", journal_study(tmp_path, same)) is None


def test_importances_are_left_out_when_no_parameter_varies(tmp_path: Path) -> None:
    constant = [({"lr": 1e-3, "width": 8}, [value], "complete") for value in (0.1, 0.2, 0.3)]
    assert figures.importances(TRIALS, "train", journal_study(tmp_path, constant)) is None


def test_importances_leave_out_a_conditional_parameter(tmp_path: Path) -> None:
    conditional = [({**params, "warp": True}, curve, state) for params, curve, state in SPREAD[::2]]
    fig = figures.importances(TRIALS, "train", journal_study(tmp_path, [*conditional, *SPREAD[1::2]]))
    assert fig is not None
    assert set(fig.data[0].y) == {"lr", "width"}


def test_no_study_no_importances() -> None:
    assert figures.importances(TRIALS, "train", None) is None
