"""One shape per object on hand-made masks: a piece of mixed shapes takes its majority, pieces apart (in the
frame, across frames, of other looks, touching only at a corner) vote apart, and true masks stay as they are."""

from __future__ import annotations

import torch

from data.classes import class_id
from models.objects import BLOCK_FRAMES, one_shape_per_object

RED_CUBE, RED_SPHERE, RED_CYLINDER = (class_id(shape, "metal", "red") for shape in ("cube", "sphere", "cylinder"))
BLUE_CUBE, BLUE_SPHERE = (class_id(shape, "rubber", "blue") for shape in ("cube", "sphere"))


def test_a_piece_of_mixed_shapes_takes_the_shape_most_of_its_pixels_have() -> None:
    mask = torch.zeros(20, 30, dtype=torch.uint8)
    mask[2:8, 2:8] = RED_CUBE  # 36 pixels
    mask[4:6, 4:8] = RED_SPHERE  # 8 of them sphere
    mask[2:4, 2:4] = RED_CYLINDER  # 4 cylinder: 24 cube
    out = one_shape_per_object(mask)
    assert out.shape == mask.shape and out.dtype == torch.uint8
    assert (out[2:8, 2:8] == RED_CUBE).all() and (out[mask == 0] == 0).all()


def test_pieces_apart_vote_apart() -> None:
    masks = torch.zeros(2, 20, 30, dtype=torch.long)
    masks[0, 2:6, 2:6] = RED_SPHERE
    masks[0, 2:4, 2:4] = RED_CUBE  # 4 of 16: this piece is a sphere
    masks[0, 12:16, 20:24] = RED_CUBE
    masks[0, 12:13, 20:24] = RED_SPHERE  # 4 of 16: this one, far from it, a cube
    masks[0, 2:6, 6:10] = BLUE_CUBE  # touching the first piece, another look: its own piece
    masks[0, 2:3, 6:8] = BLUE_SPHERE
    masks[0, 6:8, 6:8] = RED_CYLINDER  # meets the first piece's corner only: a piece of its own
    masks[1, 2:6, 2:6] = RED_CUBE  # the same place in the next frame, mostly cube: frames do not join
    masks[1, 2:3, 2:6] = RED_SPHERE
    out = one_shape_per_object(masks)
    assert out.dtype == torch.long
    assert (out[0, 2:6, 2:6] == RED_SPHERE).all() and (out[0, 12:16, 20:24] == RED_CUBE).all()
    assert (out[0, 2:6, 6:10] == BLUE_CUBE).all() and (out[0, 6:8, 6:8] == RED_CYLINDER).all()
    assert (out[1, 2:6, 2:6] == RED_CUBE).all()
    assert (out[masks == 0] == 0).all()


def test_masks_with_one_class_per_object_stay_as_they_are_whatever_the_threads() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(3, BLOCK_FRAMES, 40, 60, dtype=torch.uint8)  # 48 frames: three blocks
    for video in range(3):
        for k, cls in enumerate(torch.randperm(48, generator=generator)[:6].tolist()):
            top, left = 2 + 6 * k, int(torch.randint(0, 50, (1,), generator=generator))
            masks[video, :, top : top + 5, left : left + 8] = cls + 1
    assert torch.equal(one_shape_per_object(masks, threads=1), masks)
    assert torch.equal(one_shape_per_object(masks, threads=3), masks)
    mixed = masks.clone()
    mixed[:, :, 2:4] = torch.where(mixed[:, :, 2:4] > 0, (mixed[:, :, 2:4] - 1 + 16) % 48 + 1, 0)  # 2 of 5 rows
    assert torch.equal(one_shape_per_object(mixed, threads=1), masks)
    assert torch.equal(one_shape_per_object(mixed, threads=3), masks)
