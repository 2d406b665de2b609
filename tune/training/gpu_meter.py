"""How busy a GPU is while a trial trains: NVML's utilisation (the share of the last sample period in which
a kernel ran), sampled in a background thread over an epoch. Packed trials share their GPU, so each sees the
whole GPU's business, theirs and their neighbours'. Needs NVML's Python binding (nvidia-ml-py, which
`torch.cuda.utilization` uses); without it the meter reads nothing and the epoch has no GPU_BUSY."""

from __future__ import annotations

import math
import threading

import torch

SAMPLE_EVERY_S = 0.2  # NVML's own sample period is 1/6 to 1 s


class GpuMeter:
    """`start()` before the epoch, `busy()` after it: the mean utilisation (0-1) over the samples taken,
    NaN where NVML cannot be read."""

    def __init__(self, device: torch.device, every_s: float = SAMPLE_EVERY_S) -> None:
        self.device = device
        self.every_s = every_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def readable(device: torch.device) -> bool:
        """Whether NVML answers for `device` (a CUDA device with the binding installed)."""
        if device.type != "cuda":
            return False
        try:
            torch.cuda.utilization(device)
        except Exception:  # no binding (ModuleNotFoundError), no NVML library, a device it cannot map
            return False
        return True

    def start(self) -> GpuMeter:
        self._samples.clear()
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="segtune-gpu-meter", daemon=True)
        self._thread.start()
        return self

    def busy(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._sample()
        return sum(self._samples) / len(self._samples) if self._samples else math.nan

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def _sample(self) -> None:
        try:
            self._samples.append(torch.cuda.utilization(self.device) / 100)
        except Exception:  # NVML went away: the samples so far stand
            self._stop.set()
