"""benchmarks/gpu_packing.py: a packed trial that fails ends the benchmark with its reason (the GPU suite once
waited at its time limit for a result a crashed trial process would never send)."""

from __future__ import annotations

import pytest

from benchmarks.gpu_packing import main


@pytest.mark.slow
def test_a_failing_packed_trial_ends_the_run_with_its_reason() -> None:
    with pytest.raises(SystemExit, match=r"1 packed trials: trial 0: ValueError: TrainConfig.batch_size must be >= 1"):
        main(["--device", "cpu", "--trials", "1", "--width", "4", "--batch", "0", "--videos", "2", "--epochs", "1"])
