"""The benchmarks' command lines: bad input is argparse's one line naming it (exit 2), before any work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import advice, curve_bank, predictor_memory, quality, replay, rules


def _refused(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def test_bad_input_to_a_benchmark_is_one_line(
    tmp_path: Path, synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
        (advice.main, ("--reduction", "1")): "argument --reduction: 1 must be >= 2",
        (replay.main, ("--trials", "0")): "argument --trials: 0 must be >= 1",
        (
            curve_bank.main,
            ("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b.parquet")),
        ): "nowhere does not exist",
        (
            rules.main,
            ("--data", str(synth_root), "--segmenter", str(tmp_path / "s.pt")),
        ): f"no checkpoint at {tmp_path / 's.pt'}",
        (quality.main, ("--data", str(synth_root), "--width", "0")): "UNetConfig.width must be >= 1, got 0",
        (quality.main, ("--data", str(tmp_path), "--out", str(tmp_path / "q.md"))): "split folder",
        (predictor_memory.main, ("--batch", "0")): "argument --batch: 0 must be >= 1",
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
