"""benchmarks/rules.py on hand-made masks: the fitted retention of an object that keeps 0.8 of its speed a frame,
and the rows and errors it reports for a segmenter's masks."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.rules import fit_retention, segmenter_errors, segmenter_rows
from models.motion import TRACKED, extrapolate_masks, travel


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


def _moving_video() -> torch.Tensor:
    """True masks of one video (1, 22, H, W): class 3 moving 2 px a frame to the right, class 5 still."""
    masks = torch.zeros(1, 22, 30, 240, dtype=torch.long)
    for t in range(22):
        masks[0, t, 5:9, 10 + 2 * t : 14 + 2 * t] = 3
    masks[0, :, 20:25, 100:105] = 5
    return masks


def test_a_segmenter_that_gets_the_shape_wrong_finds_every_object_pixel_and_no_class() -> None:
    true = _moving_video()[:, 10]
    wrong_shape = torch.where(true > 0, true + 16, 0)  # the same colour and material, the next shape
    assert segmenter_errors(wrong_shape, true) == (1.0, 0.0)
    half = true.clone()
    half[0, 20:25, 100:105] = 0  # class 5 missed: 16 of 41 foreground pixels found, all right
    assert segmenter_errors(half, true) == (pytest.approx(16 / 41), 1.0)
    found, right = segmenter_errors(torch.zeros_like(true), true)  # it finds nothing: no share to give ("nan%")
    assert found == 0.0 and math.isnan(right)


def test_on_true_masks_the_perfect_track_is_the_rule_and_the_ceiling_is_exact() -> None:
    masks = _moving_video()
    rows = segmenter_rows(masks[:, :11], masks, masks[:, 21])
    assert torch.equal(rows["oracle (the segmenter's mask 22)"], masks[:, 21])
    track = next(pred for name, pred in rows.items() if name.startswith("perfect track"))
    assert torch.equal(track, extrapolate_masks(masks[:, list(TRACKED)]))
    assert torch.equal(rows["ceiling: each object moved by its true displacement"], masks[:, 21])
    assert torch.equal(rows["copy last (mask 11)"], masks[:, 10])


def test_the_bound_of_known_objects_keeps_them_and_blanks_the_ones_that_enter() -> None:
    from benchmarks.rules import known_objects

    last = torch.zeros(1, 10, 10, dtype=torch.long)
    last[0, 0:2, 0:2] = 3
    target = torch.zeros_like(last)
    target[0, 5:7, 5:7] = 3  # moved: kept where it is in frame 22
    target[0, 8:10, 8:10] = 9  # entered after frame 11: background
    expected = torch.zeros_like(last)
    expected[0, 5:7, 5:7] = 3
    assert torch.equal(known_objects(last, target), expected)
