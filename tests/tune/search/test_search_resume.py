"""kill -9, Ctrl-C and SIGTERM of the search driver, then --resume: the study finishes with every trial in the results once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from reports.load import load_experiment
from reports.schema import OPTUNA_FILE, read_parquet

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _search(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tune.search", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill takes Ray's processes too
    )


def test_killed_study_resumes_to_the_end(synth_root: Path, tmp_path: Path) -> None:
    """kill -9 at three moments: during the first epoch, mid-study, while the report is made; each
    --resume goes on, and the end holds every trial and every epoch once."""
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    args = ["--space", "unet", "--data", str(synth_root), "--budget", "smoke", "--samples", "6"]
    args += ["--out", str(tmp_path), "--name", "k", "--no-dashboard"]
    results = tmp_path / "k" / "results"

    def kill_when(driver: subprocess.Popen[str], ready: Callable[[], bool], moment: str) -> None:
        """kill -9 the driver's process group once `ready()`. Fails when the driver ended first, or when the
        moment did not come in 360 s: the kill this test is about did not happen."""
        deadline = time.monotonic() + 360
        reached = False
        while driver.poll() is None and not (reached := ready()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if driver.poll() is not None:
            output = driver.stdout.read() if driver.stdout else ""
            pytest.fail(f"the study ended (exit {driver.returncode}) before {moment}: no kill then\n{output[-4000:]}")
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        assert reached, f"{moment} did not happen in 360 s: no kill then"

    def epochs() -> int:
        return len(read_parquet(results / "epochs.parquet"))  # read while the study rewrites it

    # 1. during the first epoch: a trial is running, no epoch is recorded yet
    kill_when(_search(args, env), lambda: (results / "trials.parquet").exists(), "its first trial started")
    assert epochs() == 0
    resume = f"python -m tune.search --out {tmp_path} --name k --resume"
    assert any(n.endswith(resume) for n in load_experiment(tmp_path / "k").notes)  # its report: what finishes it
    # 2. mid-study: a few epochs later. Every moment comes on any machine: each trial's end rewrites
    # epochs.parquet, so 4 epochs are recorded by the 4th of the 6 trials' ends at the latest, while
    # 2 are left to run
    kill_when(_search([*args, "--resume"], env), lambda: epochs() >= 4, "4 epochs were recorded")
    before = pd.read_parquet(results / "trials.parquet")
    assert len(before) < 6 or (before["status"] == "running").any()
    # 3. while the best model is evaluated and the report made (the stage is done, the report is not:
    # seconds, with the evaluation on val and the report's figures)
    done = tmp_path / "k" / "main" / ".done"
    kill_when(_search([*args, "--resume"], env), done.exists, "its stage was done")
    assert not (tmp_path / "k" / "report.html").exists()
    before = pd.read_parquet(results / "trials.parquet")

    # every stage is done: the resume only finishes the study, and starts no Ray for it (a Ray start makes its
    # session folder under RAY_TMPDIR; a short folder of /tmp: Ray's socket paths must stay under 108 bytes)
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    resumed = _search([*args, "--resume"], {**env, "RAY_TMPDIR": str(ray_tmp)})
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "stage main: already finished" in output and (tmp_path / "k" / "report.html").exists()
    sessions = list(ray_tmp.glob("**/session_*"))
    shutil.rmtree(ray_tmp)
    assert not sessions, "a Ray was started to finish a study whose stages were done"

    trials = pd.read_parquet(results / "trials.parquet")
    assert trials["trial_id"].is_unique
    assert set(before["trial_id"]) <= set(trials["trial_id"])
    # a trial started just before a kill but not yet in Ray's saved state is not resumed: it stays
    # in the results once, as failed with that reason; the study still runs its 6 trials
    lost = trials["failure"].fillna("").str.startswith("lost:")
    assert (trials.loc[lost, "status"] == "failed").all()
    assert (~lost).sum() == 6
    assert set(trials.loc[~lost, "status"]) <= {"completed", "stopped"}
    ran = pd.read_parquet(results / "epochs.parquet")
    assert not ran.duplicated(["trial_id", "epoch"]).any()
    for trial_id, count in zip(trials.loc[~lost, "trial_id"], trials.loc[~lost, "epochs"], strict=True):
        assert sorted(ran.loc[ran["trial_id"] == trial_id, "epoch"]) == list(range(1, int(count) + 1))  # each once
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "k" / OPTUNA_FILE)))
    study = optuna.load_study(study_name="k/main", storage=storage)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def _wait_for_epochs(driver: subprocess.Popen[str], epochs_file: Path, count: int) -> None:
    """Returns once `count` epochs are recorded; fails when the study ended first or 360 s passed (the
    interruption this test is about would not come mid-study)."""
    deadline = time.monotonic() + 360
    while time.monotonic() < deadline and driver.poll() is None:
        if len(read_parquet(epochs_file)) >= count:  # read while the study rewrites it
            return
        time.sleep(0.5)
    assert driver.poll() is None, "the study ended before it could be interrupted:\n" + (
        driver.stdout.read() if driver.stdout else ""
    )
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    pytest.fail(f"{count} epochs were not recorded in 360 s: no interruption then")


def test_ctrl_c_and_sigterm_stop_the_study_resumably(synth_root: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it), then SIGTERM to the driver during the
    resume (as a cluster scheduler sends it): each stops with a non-zero status, saying how to resume, and
    marks nothing finished; the second --resume completes with every trial once and every epoch once."""
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    args = ["--space", "unet", "--data", str(synth_root), "--budget", "smoke", "--samples", "6"]
    args += ["--out", str(tmp_path), "--name", "i", "--no-dashboard"]
    results = tmp_path / "i" / "results"

    driver = _search(args, env)
    _wait_for_epochs(driver, results / "epochs.parquet", 2)
    live = load_experiment(tmp_path / "i").notes  # a report built now: a snapshot of the study, its driver named
    assert any(n.startswith(f"the study is running now (pid {driver.pid} on ") for n in live), live
    os.killpg(driver.pid, signal.SIGINT)
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, output
    assert "(SIGINT)" in output and "--resume" in output
    assert "Token authentication is enabled" not in output  # Ray's warning at each local start: left out
    assert not (tmp_path / "i" / "main" / ".done").exists()
    seen = len(pd.read_parquet(results / "epochs.parquet"))

    resumed = _search([*args, "--resume"], env)
    _wait_for_epochs(resumed, results / "epochs.parquet", seen + 2)
    os.kill(resumed.pid, signal.SIGTERM)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 143, output
    assert "(SIGTERM)" in output and "--resume" in output
    assert not (tmp_path / "i" / "main" / ".done").exists()

    final = _search([*args, "--resume"], env)
    output, _ = final.communicate(timeout=600)
    assert final.returncode == 0, output
    trials = pd.read_parquet(results / "trials.parquet")
    assert trials["trial_id"].is_unique and len(trials) == 6, trials
    assert set(trials["status"]) <= {"completed", "stopped"}, trials[["trial_id", "status", "failure"]]
    epochs = pd.read_parquet(results / "epochs.parquet")
    for trial_id, rows in epochs.groupby("trial_id"):
        ran = int(trials.loc[trials["trial_id"] == trial_id, "epochs"].iloc[0])
        assert sorted(rows["epoch"].astype(int)) == list(range(1, ran + 1)), (trial_id, list(rows["epoch"]))
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "i" / OPTUNA_FILE)))
    study = optuna.load_study(study_name="i/main", storage=storage)
    assert len(study.trials) == 6
    assert {t.state for t in study.trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
