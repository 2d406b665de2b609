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

from reports.schema import EPOCHS_FILE, RESULTS_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_job_stopped_by_its_time_limit_prints_what_the_study_wrote(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "job"
    study = ["--space", "unet", "--data", str(synth_root), "--budget", "smoke", "--samples", "6"]
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    job = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.main_job", "--out", str(out), "--", *study, "--max-concurrent", "1"],
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
