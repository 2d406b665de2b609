"""The motion rule on hand-made masks: where a moving object lands at constant speed and slowing down,
clipping at the edges, occlusion order, and objects with no track."""

from __future__ import annotations

import pytest
import torch

from models.motion import RETENTION, extrapolate_masks, track_velocity, travel


def _clip(frames: int = 11, height: int = 40, width: int = 120) -> torch.Tensor:
    return torch.zeros(1, frames, height, width, dtype=torch.long)


def _box(mask: torch.Tensor, cls: int) -> tuple[int, int, int, int]:
    rows, cols = (mask == cls).nonzero(as_tuple=True)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def test_an_object_moving_3_px_a_frame_lands_33_px_on() -> None:
    clip = _clip()
    for t in range(11):
        clip[0, t, 5:9, 2 + 3 * t : 6 + 3 * t] = 7
    clip[0, :, 20:24, 50:54] = 3  # still
    out = extrapolate_masks(clip, retention=1.0)[0]
    assert _box(out, 7) == (5, 8, 32 + 33, 35 + 33)
    assert _box(out, 3) == (20, 23, 50, 53)
    assert set(out.unique().tolist()) == {0, 3, 7}


def test_fewer_steps_move_it_less_and_only_the_last_two_frames_set_the_velocity() -> None:
    clip = _clip(frames=3)
    clip[0, 0, 10:12, 0:2] = 5  # frame 1 far away: ignored
    clip[0, 1, 10:12, 40:42] = 5
    clip[0, 2, 12:14, 42:44] = 5  # velocity (2, 2) per frame
    assert _box(extrapolate_masks(clip, steps=4, retention=1.0, track_frames=2)[0], 5) == (20, 21, 50, 51)


def test_a_track_over_more_frames_is_the_least_squares_slope_of_the_frames_with_the_object() -> None:
    clip = _clip(frames=5)
    for t, col in enumerate((0, 10, 18, 32, 40)):  # 10 px a frame with a jitter of +-2
        clip[0, t, 10:12, col : col + 2] = 5
    clip[0, 3:, 20:22, 100:102] = 6  # only in the last two frames of a window of 3
    clip[0, 4, 30:32, 50:52] = 7  # only in the last frame
    clip[0, :4, 5:7, 5:7] = 8  # not in the last frame
    vy, vx = track_velocity(clip, frames=5)
    assert vx[0, 5].item() == pytest.approx(10.2) and vy[0, 5].item() == 0  # slope of 0, 10, 18, 32, 40: 102 / 10
    assert track_velocity(clip, frames=2)[1][0, 5].item() == 8  # the last move alone
    assert track_velocity(clip, frames=3)[1][0, 5].item() == 11  # (40 - 18) / 2
    assert track_velocity(clip, frames=3)[1][0, 6].item() == 0 and track_velocity(clip, frames=3)[1][0, 7] == 0
    assert track_velocity(clip, frames=3)[1][0, 8].item() == 0
    clip[0, 3, 10:12, 32:34] = 0  # missing from frame 4: the line through the other three
    assert track_velocity(clip, frames=3)[1][0, 5].item() == 11
    with pytest.raises(ValueError, match="a track needs at least 2 frames, got 1"):
        track_velocity(clip, frames=1)


def test_a_slowing_object_travels_the_sum_of_its_shrinking_steps() -> None:
    clip = _clip(frames=2)
    clip[0, 0, 10:14, 10:14] = 6
    clip[0, 1, 10:14, 18:22] = 6  # 8 px a frame, then 4, 2, 1 at retention 0.5: 7 px in 3 frames
    assert _box(extrapolate_masks(clip, steps=3, retention=0.5)[0], 6) == (10, 13, 25, 28)
    assert travel(3, 0.5) == 0.875 and travel(11, 1.0) == 11
    assert travel(11) == pytest.approx(sum(RETENTION**k for k in range(1, 12))) and 9 < travel(11) < 10
    with pytest.raises(ValueError, match=r"retention must be in \(0, 1\], got 1.5"):
        travel(2, 1.5)


def test_an_object_leaving_the_picture_is_clipped() -> None:
    clip = _clip(frames=2)
    clip[0, 0, 5:9, 100:110] = 9
    clip[0, 1, 5:9, 105:115] = 9  # 5 px a frame to the right
    out = extrapolate_masks(clip, steps=1, retention=1.0)[0]
    assert _box(out, 9) == (5, 8, 110, 119)  # 110..119 of 110..119+5 fit in 120 columns
    assert int((out == 9).sum()) == 4 * 10
    assert not (extrapolate_masks(clip, steps=5)[0] == 9).any()


def test_where_two_moved_objects_overlap_the_lower_one_is_drawn() -> None:
    clip = _clip(frames=2)
    clip[0, 0, 10:20, 10:20] = 4  # far (higher in the picture), moving right into the other
    clip[0, 1, 10:20, 20:30] = 4
    clip[0, :, 15:25, 40:50] = 8  # nearer (lower), still
    out = extrapolate_masks(clip, steps=2, retention=1.0)[0]  # object 4 at columns 40..49, rows 10..19
    assert (out[15:20, 40:50] == 8).all()  # the overlap belongs to the nearer object
    assert (out[10:15, 40:50] == 4).all()


def test_an_object_missing_from_the_second_last_frame_stays_where_it_is() -> None:
    clip = _clip(frames=2)
    clip[0, 1, 30:33, 60:63] = 2  # it enters at the last frame: no velocity yet
    assert _box(extrapolate_masks(clip)[0], 2) == (30, 32, 60, 62)


def test_a_single_frame_is_refused() -> None:
    with pytest.raises(ValueError, match=r"needs masks \(B, T >= 2, H, W\)"):
        extrapolate_masks(_clip(frames=1))
