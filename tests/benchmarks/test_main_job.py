"""benchmarks/main_job.py stopped as the GPU suite's step limit stops it (`timeout`: SIGTERM to the process
group): the study gets the signal once and saves its state for --resume, and the job still prints its figures of
what the study wrote. The whole run (the figures of a study that ends) is tested by the suite's dry run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.main_job import end_study
from reports.schema import EPOCHS_FILE, RESULTS_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_job_stopped_by_its_time_limit_prints_what_the_study_wrote(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "job"
    study = ["--space", "unet", "--data", str(synth_root), "--budget", "smoke", "--samples", "6"]
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    kill = ["--kill-after", "150"]  # as the suite passes it, longer than the study takes to save its state
    job = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.main_job", "--out", str(out), *kill, "--", *study, "--max-concurrent", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, signalled as a whole as `timeout` does
    )
    epochs = out / "main" / RESULTS_DIR / EPOCHS_FILE
    deadline = time.monotonic() + 300
    while not epochs.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.poll() is None, "the study ended before the test could stop it"
    os.killpg(job.pid, signal.SIGTERM)
    output, _ = job.communicate(timeout=180)  # to the study's end: it writes to the same pipe
    assert "main job: stopped by SIGTERM (the study's results so far)" in output, output
    assert re.search(r"trials started [1-5], finished \d, failed 0", output), output  # stopped before its 6th
    assert "first trial start to last trial end" in output, output
    # the study took one SIGTERM, not two: it saved its state and says how to go on (two stop it at once)
    assert "Resume with: python -m tune.search" in output and "stopped at once" not in output, output
    assert "the study had not ended" not in output, output


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent's wait has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_after_ends_a_study_that_outlives_it_with_its_whole_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The suite's step limit cannot reach a study in its own session, nor its Ray: --kill-after kills the group."""
    # a stand-in study: a process in a session of its own with a child, as the driver starts its local Ray
    # (its PID written to a file it renames: the shell creates `child` before it writes the number in)
    study = subprocess.Popen(
        ["bash", "-c", "sleep 60 & echo $! > pid; mv pid child; wait"], cwd=tmp_path, start_new_session=True
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "child").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int((tmp_path / "child").read_text())
    end_study(study, time.monotonic() + 0.3)
    assert study.returncode == -signal.SIGKILL and "the study had not ended: killed" in capsys.readouterr().out
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)

    ends = subprocess.Popen(["sleep", "0.2"], start_new_session=True)
    end_study(ends, time.monotonic() + 10)  # one that ends in time is left to end
    assert ends.returncode == 0 and capsys.readouterr().out == ""
