"""A stage whose first trials all fail with one error stops at once, with one line naming the error, its
traceback's file and the resume command; a resume after the fix finishes it. Through the real command (real
Ray, Optuna and Parquet files), with a plugin model whose constructor raises."""

from __future__ import annotations

import logging
import re
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from reports.load import load_experiment
from tune.search.cli import main
from tune.search.failfast import SYSTEMATIC_FILE, SystematicFailure, first_failures
from tune.search.failures import error_signature

PLUGIN = """
from dataclasses import dataclass
from typing import Any

import optuna
from torch import nn

from data.classes import N_INPUT_FRAMES, NUM_CLASSES
from models.registry import register_model
from tune.search.spaces import Budget, SearchSpace, Stage, optimisation, register_space

BROKEN = True


@dataclass(frozen=True)
class FlakyConfig:
    width: int = 4


@register_model("flaky_net", FlakyConfig, input_kind="stacked")
def build(cfg: FlakyConfig) -> nn.Module:
    if BROKEN:
        raise ValueError(f"cannot build a net of width {cfg.width} at {id(cfg):#x} in /tmp/x{id(cfg)}/net.py\\nits own fault")
    return nn.Conv2d(3 * N_INPUT_FRAMES, NUM_CLASSES, 3, padding=1)


def define(trial: optuna.Trial, budget: Budget, parents: Any) -> dict[str, Any]:
    return {**optimisation(trial, budget), "width": trial.suggest_categorical("width", [4, 5, 6])}


register_space(SearchSpace("flaky", (Stage("main", "flaky_net", "val_iou", "max", define),)))
"""


def test_error_signatures_strip_what_differs_between_trials() -> None:
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {} GiB. GPU 0 has a total capacity of {} GiB"
    assert error_signature(oom.format("2.00", "139.8")) == error_signature(oom.format("512.50", "79.1"))
    assert error_signature("ValueError: bad file /a/b/video_1/mask.npy") == error_signature(
        "ValueError: bad file /c/video_22/mask.npy"
    )
    assert error_signature("ValueError: trial 3fa2c_00001 at 0x7f3a") == error_signature(
        "ValueError: trial 9b1d0_00017 at 0x55aa"
    )
    assert error_signature("ValueError: got cuda") != error_signature("TypeError: got cuda")
    assert error_signature("ValueError: got cuda") != error_signature("ValueError: got cpu")


def _trial(n: int, tmp_path: Path, error: str) -> Any:
    """What the callback reads of a Ray trial: its id and its error file."""
    path = tmp_path / f"error_{n}.txt"
    path.write_text(f"Traceback (most recent call last):\n  File x.py\n{error}\n")
    return SimpleNamespace(trial_id=f"t{n}", error_file=str(path), path=str(tmp_path))


@pytest.mark.parametrize(
    ("events", "stops"),
    [
        (["E 1", "E 2", "E 3"], True),  # one error, numbers apart
        (["E 1", "E 2"], False),  # too few
        (["E 1", "R", "E 2", "E 3"], False),  # a trial reported: some configurations train
        (["E 1", "F 2", "E 3", "E 4"], False),  # the first three differ
    ],
)
def test_the_first_failures_decide(
    events: list[str], stops: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", interrupted.append)  # what the stop sends: Ray's Ctrl-C
    callback = SystematicFailure(tmp_path, first=3)
    callback.setup()
    for n, event in enumerate(events):
        if event == "R":
            callback.on_trial_result(0, [], _trial(n, tmp_path, ""), {"val_iou": 0.1})
            continue
        kind, number = event.split()
        error = f"ValueError: width {number}" if kind == "E" else "TypeError: nope"
        callback.on_trial_error(0, [], _trial(n, tmp_path, error))
    assert (tmp_path / SYSTEMATIC_FILE).exists() == stops
    assert interrupted == ([signal.SIGINT] if stops else [])


def test_first_failures_cover_the_first_wave_of_trials() -> None:
    assert first_failures(samples=32, concurrent=1) == 3
    assert first_failures(samples=32, concurrent=8) == 8
    assert first_failures(samples=2, concurrent=8) == 2


@pytest.mark.slow
def test_a_systematic_failure_stops_the_stage_and_a_resume_after_the_fix_finishes_it(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "flaky.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "runs"
    args = ["--plugin", str(plugin), "--space", "flaky", "--data", str(synth_root), "--budget", "smoke"]
    study = ["--out", str(out), "--name", "f", "--no-dashboard"]
    assert main([*args, *study, "--samples", "6"]) == 1
    err = capsys.readouterr().err
    assert "changed since this study last ran" not in err
    lines = [line for line in err.splitlines() if "stopped: its first" in line]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("stage main: stopped: its first 3 trials all failed with the same error")
    assert "ValueError: cannot build a net of width" in line and "/net.py its own fault (traceback: " in line  # 2 lines
    assert f"python -m tune.search --out {out} --name f --no-dashboard --resume" in line
    traceback = Path(re.search(r"\(traceback: (\S+)\)", line).group(1))  # type: ignore[union-attr]
    assert traceback.is_relative_to(out / "f" / "main") and traceback.is_file()
    assert "raise ValueError" in traceback.read_text()
    trials = pd.read_parquet(out / "f" / "results" / "trials.parquet")
    assert 3 <= len(trials) < 6 and (trials["status"] == "failed").sum() >= 3, trials[["status", "failure"]]
    notes = load_experiment(out / "f").notes  # its report says why the study stopped, not that its driver died
    assert f"stage main: {line.removeprefix('stage main: ')}" in notes, notes
    assert not any("driver died" in n for n in notes), notes
    running = int((trials["status"] == "running").sum())  # trials that were training at the stop, if any
    left = [n for n in notes if n.startswith(f"{running} trial(s) did not end: a stage stopped the study (below)")]
    assert len(left) == (1 if running else 0), notes

    plugin.write_text(PLUGIN.replace("BROKEN = True", "BROKEN = False"))  # the fix
    assert main(["--out", str(out), "--name", "f", "--resume", "--no-dashboard"]) == 0
    assert f"warning: the plugin {plugin} changed since this study last ran: its trials from now on run the new" in (
        capsys.readouterr().err
    )
    trials = pd.read_parquet(out / "f" / "results" / "trials.parquet")
    assert len(trials) == 6 and (trials["status"] != "running").all()
    # the trials still running at the stop were resumed and finished; only the systematic failures stay failed
    assert (trials["status"] == "failed").sum() == 3 and trials["status"].isin(["completed", "stopped"]).sum() == 3
    assert not (out / "f" / "main" / SYSTEMATIC_FILE).exists()
    assert not any("stopped: its first" in n for n in load_experiment(out / "f").notes)  # the fix's run ended well


@pytest.mark.slow
def test_a_systematic_failure_of_every_trial_says_to_start_again_not_to_resume(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All 3 trials of a 3-trial stage failed: failed trials stay failed, so a resume after the fix would run none
    (a user resumed as told, and it ran nothing); the line says to start the study again."""
    plugin = tmp_path / "flaky_all.py"  # its own names: another plugin file may not take the first test's
    plugin.write_text(PLUGIN.replace('"flaky_net"', '"flaky_all_net"').replace('"flaky"', '"flaky_all"'))
    args = ["--plugin", str(plugin), "--space", "flaky_all", "--data", str(synth_root), "--budget", "smoke"]
    assert main([*args, "--samples", "3", "--out", str(tmp_path), "--name", "all", "--no-dashboard"]) == 1
    err = capsys.readouterr().err
    assert "stage main: stopped: its first 3 trials all failed with the same error" in err, err
    assert "fix it, then start the study again under another --name (all its 3 trials ran: none is left" in err
    assert "--resume" not in err


@pytest.mark.slow
def test_failures_between_trials_that_train_do_not_stop_the_stage(
    local_ray: None, synth_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Trials 1, 3 and 4 fail with one error, trial 2 trains between them (one at a time, so the order is
    fixed): as many identical failures as stop a stage, but some configurations train, so all 5 run. Each failure
    is one line naming its traceback's file in the study (Ray logged 30 lines of its own calls around it)."""
    args = [
        "--space",
        "unet",
        "--data",
        str(synth_root),
        "--budget",
        "smoke",
        "--samples",
        "5",
        "--max-concurrent",
        "1",
    ]
    study = ["--fail-trials", "1", "3", "4", "--out", str(tmp_path), "--name", "mix", "--no-dashboard"]
    records: list[logging.LogRecord] = []  # Ray Tune's log (its handler writes to the stderr of the test that
    collect = logging.Handler(logging.ERROR)  # started the suite's Ray, not this one's)
    collect.emit = records.append  # type: ignore[method-assign, assignment]
    logging.getLogger("ray.tune").addHandler(collect)
    try:
        assert main([*args, *study]) == 0
    finally:
        logging.getLogger("ray.tune").removeHandler(collect)
    assert not [r.getMessage() for r in records], [r.getMessage() for r in records]  # ("Trial task failed for ...")
    out, err = capfd.readouterr()
    assert "stopped: its first" not in err
    trials = pd.read_parquet(tmp_path / "mix" / "results" / "trials.parquet")
    assert len(trials) == 5 and (trials["status"] == "failed").sum() == 3
    assert trials["failure"].dropna().str.contains("fails on purpose").all()
    reason = "RuntimeError: this trial fails on purpose (fault injection, --fail-trials)"
    for trial_id in trials.loc[trials["status"] == "failed", "trial_id"]:
        traceback = tmp_path / "mix" / "main" / f"trial_{trial_id}" / "error.txt"
        assert f"trial {trial_id} failed: {reason} (traceback: {traceback})\n" in err, err
        assert "raise RuntimeError" in traceback.read_text()
    assert "Traceback" not in out + err
    # the stage's own lines, not Ray's tables (a configuration and a result table for each trial, an error block)
    assert "stage main: 1 trial(s) starting; 0 of 5 trials ended, 0 running\n" in out
    assert re.search(r"^stage main: trial \w+ (completed|stopped by ASHA) after \d epoch\(s\), val_iou [\d.]+ at epoch \d; "
                     r"best so far [\d.]+ \(\w+\); 5 of 5 trials ended \(.*3 failed\), 0 running$", out, flags=re.M), out  # fmt: skip
    ray_tables = "Trial status|started with configuration|errored after|Configuration for experiment"  # its engines'
    assert not re.search(rf"{ray_tables}|== Status ==|Number of trials|Result for |Trial \S+ completed", out), out
    ids = ", ".join(trials.loc[trials["status"] == "failed", "trial_id"])  # and once more in the summary, together
    assert f"  failed: 3 with {reason} ({ids}; tracebacks: {tmp_path / 'mix' / 'main'}/trial_ID/error.txt)\n" in out


DYING = """
import os
import signal
from dataclasses import dataclass
from typing import Any

import optuna
from torch import nn

from models.registry import register_model
from tune.search.spaces import Budget, SearchSpace, Stage, optimisation, register_space


@dataclass(frozen=True)
class DyingConfig:
    width: int = 4


@register_model("dying_net", DyingConfig, input_kind="stacked")
def build(cfg: DyingConfig) -> nn.Module:
    os.kill(os.getpid(), signal.SIGKILL)  # the trial's process ends under it, as where its node leaves the cluster
    raise AssertionError


def define(trial: optuna.Trial, budget: Budget, parents: Any) -> dict[str, Any]:
    return {**optimisation(trial, budget), "width": 4}


register_space(SearchSpace("dying", (Stage("main", "dying_net", "val_iou", "max", define),)))
"""


@pytest.mark.slow
def test_a_trial_whose_process_ends_under_it_says_so_first(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed (the OOM killer), crashed, or its node gone: Ray's reason alone was its own terms ("The actor is dead
    because its worker process has died", or "RpcError ... Socket closed" where a node left). A stage of one trial
    stops on it, in the singular; the summary names --retries."""
    plugin = tmp_path / "dying.py"
    plugin.write_text(DYING)
    args = ["--plugin", str(plugin), "--space", "dying", "--data", str(synth_root), "--budget", "smoke"]
    assert main([*args, "--samples", "1", "--out", str(tmp_path), "--name", "d", "--no-dashboard"]) == 1
    failure = pd.read_parquet(tmp_path / "d" / "results" / "trials.parquet")["failure"].iloc[0]
    assert re.match(r"its process on \S+ ended under it \(its node left the cluster, the system's OOM killer, a crash\); "
                    r"Ray: The actor is dead because its worker process has died\.", failure), failure  # fmt: skip
    assert "Some common causes" not in failure  # (Ray's advice on its OOM killer, cut: the line is for the summary)
    out, err = capsys.readouterr()
    assert f"stage main: stopped: its one trial failed before it reported a result: {failure} (" in err
    # no "fix it": where nodes left there is nothing of the user's to fix (several lost at once stopped a study)
    assert re.search(r"\); where their nodes left the cluster, start the study again under another --name \(its one "
                     r"trial ran: none is left to resume\); where it was memory \(the OOM killer\), start the study "
                     r"again under another --name with fewer trials at once \(--max-concurrent\) or smaller ones; "
                     r"--retries N runs trials whose process ended again, from their last checkpoint \(a study's, or a "
                     r"--resume's for the trials it has left\)$",
                     err, flags=re.M), err  # fmt: skip
    assert re.search(r"^  failed: 1 with its process .+; --retries N runs trials whose process ended again, from "
                     r"their last checkpoint \(a study's, or a --resume's for the trials it has left\)\)$", out,
                     flags=re.M), out  # fmt: skip


DYING_ONCE = """
import dataclasses
import os
import signal
from pathlib import Path

from models.registry import register_model
from models.unet import UNet, UNetConfig
from tune.search.spaces import SearchSpace, get_space, register_space

MARKER, TOUCHED = Path({marker!r}), Path({touched!r})


class DyingOnce(UNet):
    evaluated = False  # in this process

    def forward(self, x):
        if not self.training:
            DyingOnce.evaluated = True
        elif DyingOnce.evaluated and not MARKER.exists():  # the second epoch's first step, once
            MARKER.touch()
            os.utime(TOUCHED, ns=(1, 1))  # a file of the study's data changed mid-study
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


@register_model("dying_once_net", UNetConfig, input_kind="stacked")
def build(cfg):
    return DyingOnce(cfg)


stage = dataclasses.replace(get_space("unet").stages[0], model="dying_once_net")
register_space(SearchSpace("dying_once", (stage,)))
"""


@pytest.mark.slow
def test_a_trial_whose_process_ends_under_it_runs_again_from_its_checkpoint_with_retries(
    local_ray: None, copy_root: Path, own_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--retries 1: a trial whose process is killed in its second epoch (as where its node leaves the cluster) runs
    again from its first epoch's checkpoint and completes, its epochs each recorded once; said in one line. A trial
    that fails on its own error (--fail-trials) is run again too (Ray's max_failures counts every failure), but
    fails there at once, with its first error's line, and for good. And the run again takes the driver's check of
    the decoded cache, as every trial does: a data file changed mid-study (by the first run) rebuilt no cache."""
    plugin = tmp_path / "dying_once.py"
    touched = copy_root / "train" / "video_0" / "image_0.png"
    plugin.write_text(DYING_ONCE.format(marker=str(tmp_path / "died"), touched=str(touched)))
    args = ["--plugin", str(plugin), "--space", "dying_once", "--data", str(copy_root), "--budget", "smoke"]
    study = ["--samples", "2", "--fail-trials", "2", "--retries", "1"]
    assert main([*args, *study, "--out", str(tmp_path), "--name", "r", "--no-dashboard"]) == 0
    assert (tmp_path / "died").exists()
    trials = pd.read_parquet(tmp_path / "r" / "results" / "trials.parquet")
    assert sorted(trials["status"]) == ["completed", "failed"], trials  # (in either order: they ran at once)
    done, failed = (trials[trials["status"] == status].iloc[0] for status in ("completed", "failed"))
    reason = "RuntimeError: this trial fails on purpose (fault injection, --fail-trials)"
    assert failed["failure"] == reason
    traceback = (tmp_path / "r" / "main" / f"trial_{failed['trial_id']}" / "error.txt").read_text()
    assert traceback.count("Failure # ") == 2 and "FailedBefore: " + reason in traceback, traceback
    epochs = pd.read_parquet(tmp_path / "r" / "results" / "epochs.parquet")
    assert list(epochs["epoch"]) == [1, 2, 3, 4]
    assert list(epochs["iterations_since_restore"]) == [1, 1, 2, 3]  # the second run began after epoch 1
    (manifest,) = own_cache.glob("train-*/manifest.json")
    assert manifest.stat().st_mtime_ns < touched.stat().st_ctime_ns
    assert (done["restarts"], failed["restarts"]) == (1, 0)  # (its own error's second run, failing at once, is none)
    out, err = capsys.readouterr()
    trial_id = done["trial_id"]
    assert f"; 1 trial ran again after its process ended (--retries, or its node drained): {trial_id}\n" in out
    assert re.search(rf"^trial {trial_id} failed: its process on \S+ ended under it \(its node left the cluster, the "
                     r"system's OOM killer, a crash\); Ray: .+; it runs again from its last checkpoint \(--retries 1, 1 "
                     r"used\)$", err, flags=re.M), err  # fmt: skip
    assert "Traceback" not in err
