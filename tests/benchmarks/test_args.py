"""The benchmarks' command lines: bad input is argparse's one line naming it (exit 2), before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import (
    advice,
    curve_bank,
    dynamics,
    full_scale,
    gpu_packing,
    predictor_memory,
    quality,
    replay,
    rules,
    ssim_speed,
    synth_speed,
    train_speed,
    trial_overhead,
)
from reports.checkpoints import best_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _refused(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def test_bad_input_to_a_benchmark_is_one_line(
    tmp_path: Path, synth_root: Path, unet_study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unet = str(best_checkpoint(unet_study))  # not a frame_segmenter's: found after training (quality), or a
    # RuntimeError's traceback of a convolution's channels (rules)
    (tmp_path / "empty.parquet").write_bytes(b"")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    expected = {  # (command, its arguments): what its error line says
        (
            advice.main,
            ("--bank", str(tmp_path / "none.parquet")),
        ): "none.parquet: no curve bank (python -m benchmarks.curve_bank makes it)",
        (
            replay.main,
            ("--bank", str(tmp_path / "empty.parquet")),
        ): "empty.parquet: not a curve bank (Could not open Parquet",
        (
            advice.main,
            ("--bank", str(tmp_path / "other.parquet")),
        ): "other.parquet: not a curve bank (no column config_id, epoch, seed, val_iou)",
        (advice.main, ("--reduction", "1")): "argument --reduction: must be a whole number >= 2, got '1'",
        (replay.main, ("--trials", "0")): "argument --trials: must be a whole number >= 1, got '0'",
        (
            curve_bank.main,
            ("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b.parquet")),
        ): "nowhere does not exist",
        (
            rules.main,
            ("--data", str(synth_root), "--segmenter", str(tmp_path / "s.pt")),
        ): f"no checkpoint at {tmp_path / 's.pt'}",
        (
            quality.main,
            ("--data", str(synth_root), "--width", "0"),
        ): "argument --width: must be a whole number >= 1, got '0'",
        (quality.main, ("--data", str(synth_root), "--segmenter", unet)): f"--segmenter {unet}: a 'unet' checkpoint;",
        (rules.main, ("--data", str(synth_root), "--segmenter", unet)): f"--segmenter {unet}: a 'unet' checkpoint;",
        # a --plugin that is not there: refused without --segmenter too (the table was printed, exit 0)
        (rules.main, ("--data", str(synth_root), "--plugin", str(tmp_path / "p.py"))): f"--plugin {tmp_path / 'p.py'}:",
        (dynamics.main, ("--data", str(synth_root), "--plugin", "no_such_module_x")): "no_such_module_x",
        (quality.main, ("--data", str(synth_root), "--out", str(tmp_path))): f"--out {tmp_path}: a folder, where",
        # counts and devices: tracebacks (a ZeroDivisionError, a StatisticsError), or accepted with exit status 0
        (train_speed.main, ("--videos", "0")): "argument --videos: must be a whole number >= 1, got '0'",
        (train_speed.main, ("--device", "gpu0")): "device 'gpu0': ",
        (synth_speed.main, ("--workers", "1", "0")): "argument --workers: must be a whole number >= 1, got '0'",
        (ssim_speed.main, ("--runs", "1")): "argument --runs: must be a whole number >= 2, got '1'",
        (gpu_packing.main, ("--trials", "0")): "argument --trials: must be a whole number >= 1, got '0'",
        (
            dynamics.main,
            ("--data", str(synth_root), "--epochs", "0"),
        ): "argument --epochs: must be a whole number >= 1, got '0'",
        (dynamics.main, ("--data", str(synth_root), "--out", str(tmp_path))): f"--out {tmp_path}: a folder, where",
        (dynamics.main, ("--data", str(synth_root), "--segmenter", str(unet_study))): (
            f"--segmenter {unet_study}: a 'unet' checkpoint; a frame_segmenter's is needed"  # its best is a unet's
        ),
        (dynamics.main, ("--data", str(synth_root), "--cache", str(tmp_path / "empty.parquet"))): (
            f"--cache {tmp_path / 'empty.parquet'}: a file, where a folder is needed"  # (named no flag)
        ),
        (full_scale.main, ("--fraction", "0")): "argument --fraction: must be a number > 0, got '0'",
        (full_scale.main, ("--spaces", "unet", "bogus")): "argument --spaces: invalid choice: 'bogus'",
        (
            full_scale.main,
            ("--spaces", "unet", "mask_space", "--unlabeled", "2"),
        ): "--unlabeled 2: no stage of unet reads",
        (trial_overhead.main, ("--data", str(tmp_path / "nowhere"))): "nowhere does not exist",
        (quality.main, ("--data", str(tmp_path), "--out", str(tmp_path / "q.md"))): "split folder",
        (predictor_memory.main, ("--batch", "0")): "argument --batch: must be a whole number >= 1, got '0'",
        # the shipped bank's trials run 10 epochs: a grace period past them stopped no trial (a KeyError's
        # traceback in advice, the rows dropped without a word where another grace was given; replay's budget's)
        (advice.main, ("--grace", "1", "10", "20")): "--grace 10 20: the bank's trials run 10 epochs; a grace period",
        (replay.main, ("--grace", "11")): "--grace 11: the bank's trials run 10 epochs; a grace period must not",
        # an output that is a folder: refused before the work (IsADirectoryError's traceback once it was done)
        (advice.main, ("--html", str(tmp_path))): f"--html {tmp_path}: a folder, where a file is needed",
        (replay.main, ("--report", str(tmp_path))): f"--report {tmp_path}: a folder, where a file is needed",
    }
    for (main, argv), said in expected.items():
        line = _refused(main, list(argv), capsys)
        assert line.startswith(f"python -m {main.__module__}: error: "), line  # the command, not its file
        assert said in line.partition(": error: ")[2], (argv, line)
    assert not (tmp_path / "b.parquet").exists() and not (tmp_path / "q.md").exists()


def test_a_benchmark_stopped_by_ctrl_c_says_so_in_one_line(tmp_path: Path) -> None:
    """Each benchmark's command runs through data.files.run_command (main_job stops its study itself): Ctrl-C is one
    line, not a traceback (every one of them printed KeyboardInterrupt's), and the command ends by SIGINT."""
    commands = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text())
    assert [c for c in commands if "run_command(main" not in (ROOT / "benchmarks" / f"{c}.py").read_text()] == [
        "main_job"
    ]
    job = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.synth_speed", "--videos", "60", "--workers", "1"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert job.stdout is not None
    job.stdout.readline()  # its first line: the videos are being made
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == -signal.SIGINT and err.strip() == "stopped (SIGINT)", err
