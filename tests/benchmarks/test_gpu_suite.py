"""benchmarks/gpu_suite.sh in its dry-run mode: every step of the GPU suite runs on the CPU at toy sizes and
writes its figure line, so the one script a session lent a GPU runs first is known to work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_suite_runs_every_step_on_the_cpu(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures.md"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SEGTUNE_SUITE_DATA": str(synth_root),
        "SEGTUNE_CACHE": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", "benchmarks/gpu_suite.sh", "--dry-run", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    text = out.read_text()
    assert done.returncode == 0, done.stdout + done.stderr
    steps = re.findall(r"^exit (\d+) after \d+ s$", text, flags=re.M)
    assert steps == ["0"] * 5, text[-3000:]
    for figure in (
        r"unet width 4.*?streamed / held: \d+\.\d+",
        r"frame_predictor width 4.*?streamed / held: \d+\.\d+",
        r"1 trial\(s\): \d+ samples/s",
        r"streaming 16 videos.*?2 trial\(s\): \d+ samples/s",
        r"\| mask_space, one step, motion prior \| \d\.\d{3} \|",
    ):
        assert re.search(figure, text, flags=re.S), figure
