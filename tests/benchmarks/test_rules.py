"""benchmarks/rules.py's fitted retention on hand-made masks: an object that keeps 0.8 of its speed a frame."""

from __future__ import annotations

import pytest
import torch

from benchmarks.rules import fit_retention
from models.motion import travel


def test_the_fitted_retention_is_the_one_the_objects_moved_by() -> None:
    inputs = torch.zeros(1, 2, 20, 240, dtype=torch.long)
    target = torch.zeros(1, 20, 240, dtype=torch.long)
    inputs[0, 0, 5:9, 10:14] = 3
    inputs[0, 1, 5:9, 26:30] = 3  # 16 px a frame
    moved = round(16 * travel(11, 0.8))  # 58 px in the 11 frames to frame 22
    target[0, 5:9, 26 + moved : 30 + moved] = 3
    target[0, 12:16, 0:4] = 5  # an object that entered: no track, left out
    assert fit_retention(inputs, target) == pytest.approx(0.8, abs=0.005)
    faster = torch.zeros_like(target)
    faster[0, 5:9, 206:210] = 3  # further than constant speed would take it: no slowing down
    assert fit_retention(inputs, faster) == 1.0
