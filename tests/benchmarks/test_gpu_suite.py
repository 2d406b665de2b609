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


def dry_run(synth_root: Path, tmp_path: Path, *only: str) -> tuple[str, list[str]]:
    """`gpu_suite.sh --dry-run` (with `--only` the steps named) on the test's data; returns what it wrote and the
    exit status of each step it ran."""
    out = tmp_path / "figures.md"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SEGTUNE_SUITE_DATA": str(synth_root),
        "SEGTUNE_CACHE": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path),
        "RAY_TMPDIR": os.environ.get("RAY_TMPDIR", "/tmp"),  # not TMPDIR: Ray's socket paths must stay under 108 bytes
    }
    done = subprocess.run(
        ["bash", "benchmarks/gpu_suite.sh", "--dry-run", str(out), *(["--only", *only] if only else [])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    return text, re.findall(r"^exit (\d+) after \d+ s$", text, flags=re.M)


@pytest.mark.slow
def test_the_gpu_suite_runs_every_step_on_the_cpu(synth_root: Path, tmp_path: Path) -> None:
    text, steps = dry_run(synth_root, tmp_path)
    assert steps == ["0"] * 4, text[-3000:]  # the named-only step (dynamics) is not among the defaults, nor pack64
    assert "#### Object dynamics" not in text and "U-Net width 64" not in text  # (pack32's command, at toy sizes)
    for figure in (
        r"GPU tests \(pytest -m gpu\).*?\d+ skipped",  # no CUDA here
        r"trials started [1-9]\d*, finished [1-9]\d*, failed 0",
        r"GPU busy \(the study's epochs, NVML in each trial\): not recorded",
        r"Packed trials on one GPU, U-Net width 32.*?1 trial\(s\): \d+ samples/s",
        r"unet width 4.*?streamed / held: \d+\.\d+",
        r"bare loop's first step: \d+\.\d s",
    ):
        assert re.search(figure, text, flags=re.S), figure


@pytest.mark.slow
def test_the_dynamics_step_runs_when_named(synth_root: Path, tmp_path: Path) -> None:
    text, steps = dry_run(synth_root, tmp_path, "dynamics")
    assert steps == ["0"], text[-3000:]
    assert "#### Object dynamics" in text and "#### The main job" not in text
    for row in (
        r"\| the rule \(extrapolate\) \| \d\.\d{4} \|",
        r"\| object_dynamics, 4 train videos \(\d+ s\) \| \d\.\d{4} \|",
    ):
        assert re.search(row, text), row
