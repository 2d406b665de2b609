"""benchmarks/gpu_packing.py: a packed trial that fails ends the benchmark with its reason (the GPU suite once
waited at its time limit for a result a crashed trial process would never send)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gpu_packing import main


@pytest.mark.slow
def test_a_failing_packed_trial_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    """The split each trial streams is a file of the workdir, kept for the next run: one damaged fails the trial as
    it loads it, in the trial's process (a bad count is refused before any trial starts)."""
    (tmp_path / "frames-2.npy").write_bytes(b"not an array")
    sizes = ["--trials", "1", "--width", "4", "--batch", "2", "--videos", "2", "--epochs", "1", "--epoch-samples", "2"]
    with pytest.raises(SystemExit, match=r"1 packed trials: trial 0: ValueError: This file contains pickled"):
        main(["--device", "cpu", *sizes, "--stream-videos", "2", "--workdir", str(tmp_path)])
