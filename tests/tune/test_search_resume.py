"""kill -9 of the search driver, then --resume: the study finishes with every trial in the results once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


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
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    args = [
        "--space",
        "unet",
        "--data",
        str(synth_root),
        "--budget",
        "smoke",
        "--samples",
        "6",
        "--out",
        str(tmp_path),
        "--name",
        "k",
        "--no-dashboard",
    ]
    epochs_file = tmp_path / "k" / "results" / "epochs.parquet"

    driver = _search(args, env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if epochs_file.exists() and len(pd.read_parquet(epochs_file)) >= 3:
            break
        time.sleep(0.5)
    assert driver.poll() is None, "the study ended before it could be killed:\n" + (
        driver.stdout.read() if driver.stdout else ""
    )
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = pd.read_parquet(tmp_path / "k" / "results" / "trials.parquet")
    assert len(before) < 6 or (before["status"] == "running").any()

    resumed = _search([*args, "--resume"], env)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming" in output

    trials = pd.read_parquet(tmp_path / "k" / "results" / "trials.parquet")
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "stopped"}
    epochs = pd.read_parquet(tmp_path / "k" / "results" / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert set(before["trial_id"]) <= set(trials["trial_id"])
