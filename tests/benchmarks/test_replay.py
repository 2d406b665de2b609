"""The replay benchmark runs the real engine (Ray Tune, the project's Optuna searcher, its ASHA) on a bank
of curves: the bank's values are played back exactly, ASHA stops trials at its rungs only, the project's
searcher tells those trials to Optuna as PRUNED where Ray's tells COMPLETE, and a seed gives one sequence."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmarks.advice import advise, page, play
from benchmarks.bank_space import STAGE
from benchmarks.curve_bank import METRIC, config_id, grid
from benchmarks.replay import curves, run_study, summarise
from reports.schema import optuna_study_name
from tune.search.budget import budget_for
from tune.search.config import SearchConfig
from tune.search.driver import run_search
from tune.search.searcher import journal_storage

pytestmark = pytest.mark.slow
EPOCHS = 4


def bank() -> pd.DataFrame:
    """Curves that rise to a final value set by the configuration; some cross (late bloomers)."""
    rows = []
    for index, config in enumerate(grid()):
        final = 0.02 + 0.002 * ((index * 7) % 48)
        speed = 1.0 if index % 3 else 4.0  # every third learns late
        for epoch in range(1, EPOCHS + 1):
            rows.append(
                {
                    **config,
                    "config_id": index,
                    "seed": 0,
                    "epoch": epoch,
                    METRIC: final * (1 - math.exp(-epoch / speed)),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def local_ray(local_ray: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's shared local Ray (tests/conftest.py); Tune's default loggers off (the driver reads it)."""
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


def test_replayed_studies_play_the_bank_back_through_the_real_searcher_and_asha(
    local_ray: None, tmp_path: Path
) -> None:
    table = curves(bank())
    settings = {"trials": 8, "grace": 1, "reduction": 2, "storage": tmp_path}
    ours = run_study("tpe_asha_pruned", 0, table, **settings)  # type: ignore[arg-type]
    again = run_study("tpe_asha_pruned", 0, table, **settings)  # type: ignore[arg-type]
    rays = run_study("tpe_asha_complete", 0, table, **settings)  # type: ignore[arg-type]
    full = run_study("random_full", 0, table, **{**settings, "trials": 3})  # type: ignore[arg-type]

    assert len(ours) == 8 and ours["order"].tolist() == list(range(8))
    cols = ["config_id", "epochs", "last_value"]
    assert ours[cols].equals(again[cols])  # one seed, one sequence
    for cid, ran, last in zip(ours["config_id"], ours["epochs"], ours["last_value"], strict=True):
        assert last == table[int(cid)][int(ran) - 1]  # the bank's values, exactly
    assert set(ours["epochs"]) <= {1, 2, EPOCHS} and (ours["epochs"] < EPOCHS).any()  # rungs 1, 2
    stopped = ours["epochs"] < EPOCHS
    assert (ours.loc[stopped, "optuna_state"] == "PRUNED").all() and (
        ours.loc[~stopped, "optuna_state"] == "COMPLETE"
    ).all()
    assert (rays["optuna_state"] == "COMPLETE").all() and (
        rays["epochs"] < EPOCHS
    ).any()  # Ray's default tells COMPLETE
    assert (full["epochs"] == EPOCHS).all()

    report = summarise(pd.concat([ours, rays, full]), bank(), "replay test")
    assert "| tpe_asha_pruned |" in report and "| random_full |" in report and " inf |" not in report
    alone = summarise(ours, bank(), "replay test")  # no random_full to reach: said, not "inf"
    assert "| (random_full not run) |" in alone and " inf |" not in alone


def test_budget_advice_plays_asha_as_a_replayed_study_does(local_ray: None, tmp_path: Path) -> None:
    """benchmarks.advice feeds the project's ASHA class without the Tune loop: for the configurations a real
    replayed study ran, in its order, it stops each at the same epoch; its measures and page follow."""
    table = curves(bank())
    real = run_study("random_asha", 3, table, trials=10, grace=1, reduction=2, storage=tmp_path)
    order = [int(c) for c in real["config_id"]]
    assert (real["epochs"] < EPOCHS).any()
    assert play(order, table, grace=1, reduction=2, folder=tmp_path / "none") == real["epochs"].tolist()

    def setting(trials: int, grace: int, reduction: int) -> dict[str, Any]:
        return advise(table, trials=trials, grace=grace, reduction=reduction, orders=200, seed=0, folder=tmp_path)

    rows = [setting(t, 1, r) for r in (2, 4) for t in (8, 24)]
    assert all(0 <= r["kept"] <= 1 and 0 <= r["bank_best"] <= r["kept"] and 0 < r["compute"] < 1 for r in rows)
    assert rows[1]["bank_best"] > rows[0]["bank_best"]  # 24 trials draw the bank's best more often than 8
    assert rows[2]["compute"] < rows[0]["compute"]  # keeping 1 in 4 at each rung spends less than 1 in 2
    assert min(r["kept"] for r in rows) < 1  # the late bloomers: ASHA stops some bests
    no_rungs = setting(8, EPOCHS, 2)  # the first rung at the full budget: every trial runs it
    assert no_rungs["kept"] == 1 and no_rungs["compute"] == 1 and no_rungs["rungs"] == ""
    text = page(pd.DataFrame([*rows, no_rungs]), "python -m benchmarks.advice", "a made-up bank")
    assert text.count("<tr>") == 1 + 5 and 'id="advice-kept"' in text and 'id="advice-bank_best"' in text


def test_a_real_study_and_its_replay_run_the_same_trials(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real study (the driver, real training) over the bank's grid (benchmarks/bank_space.py), trials one
    at a time; its trials' curves become a bank; the replay of that bank with the same seed runs the same
    configurations in the same order, stops each at the same epoch and tells Optuna the same. 12 trials:
    TPE's 10 random start-up trials, then 2 that TPE chooses from the values it was told."""
    import optuna

    # 80 frames an epoch, not the bank's 120 (11 s more for the suite): the replay reads this study's own curves. With
    # 48 or fewer, every trial scored the same at the first rung, and ASHA stopped none
    cfg = SearchConfig(
        space="curve_bank", data=str(synth_root), budget="smoke", samples=12, max_concurrent=1, seed=5,
        out=str(tmp_path), name="real", dashboard=False, overrides=("set epoch_samples=80",),
    )  # fmt: skip
    assert run_search(cfg) == 0
    # its frame segmenters answer with a rule on their masks: the command the summary gives names it (it failed)
    command = f"python -m tune.predict --experiment {tmp_path / 'real'} --rule extrapolate --split hidden --out"
    assert f"to submit it: {command} submission.pt\n" in capsys.readouterr().out
    smoke = budget_for("smoke", gpu=False)  # the study's epochs and ASHA, which the replay is given
    study = optuna.load_study(
        study_name=optuna_study_name("real", STAGE.name), storage=journal_storage(tmp_path / "real")
    )
    real, table, epochs = [], dict[int, list[float]](), smoke.max_epochs
    for trial in study.trials:  # each epoch's value: a finished trial's last is its value, not an intermediate
        values = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        values += [float(trial.value or 0)] if trial.state.name == "COMPLETE" and len(values) < epochs else []
        real.append((trial.number, config_id(trial.params), len(values), trial.state.name))
        curve = values + values[-1:] * (epochs - len(values))  # a stopped trial's curve goes on at its last value:
        # if the replay's ASHA let it go on, it would run more epochs than the real one did
        assert table.setdefault(config_id(trial.params), curve)[: len(values)] == values  # training is seeded
    assert len(real) == 12 and {state for *_, state in real} == {"PRUNED", "COMPLETE"}
    assert len(table) < len(real)  # some configurations ran twice (seed 5), and trained the same (above)
    replayed = run_study(
        "tpe_asha_pruned", 5, table, trials=12, grace=smoke.grace_period, reduction=smoke.reduction_factor,
        storage=tmp_path / "replay",
    )  # fmt: skip
    assert list(replayed[["order", "config_id", "epochs", "optuna_state"]].itertuples(index=False, name=None)) == real
