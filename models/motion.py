"""Motion by rule: each object of the last known mask moved along its track, no training.

The data has one object per class and rigid objects moving by physics, so the simplest predictor that
uses that structure moves each object's mask of frame 11 by its centroid velocity over frames 10-11,
11 frames on. Measured on 200 synthetic val videos with true input masks (competition IoU of mask 22):
copy-last 0.223, this 0.448, a straight-line fit over frames 7-11 0.425, the true displacement of each
object (the ceiling of rigid moves) 0.660. Objects that enter after frame 11 cannot be predicted by it.

Objects slide on a floor with friction and slow down. Keeping each object's speed at `RETENTION` (0.97) of the
frame before's, the rule scores 0.492 against 0.437 at constant speed on the 100 val videos of the CPU quality
set (true input masks; 0.489 against 0.438 on its 300 train videos, where 0.97 is also the best of 0.92-1.0).
`python -m benchmarks.rules --data DIR` scores it and fits it to a data set's true masks; the mask predictor
searches it (`motion_retention`).

A segmenter's masks are noisy, and so is a velocity from two of them: fitted over the last `TRACK_FRAMES` (3)
masks by least squares, the rule scores 0.234 against 0.223 from frames 10-11 on a scale-0.5 segmenter's masks
of the same val videos (its train videos: 0.249 / 0.247), at a small cost on true masks (0.480 / 0.492). The
pipelines always feed it a segmenter's masks, so 3 is the default; the mask predictor searches 2-5
(`motion_track_frames`).

Where two moved objects overlap, the nearer one is drawn: the one whose lowest pixel is lower in the
picture (the camera looks down on a floor). `extrapolate_masks` is vectorised over the batch and the
classes, on the masks' device; the baseline pipeline and the mask predictor's motion prior both use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from data.classes import FUTURE_FRAMES, LAST_INPUT_FRAME, NUM_CLASSES

RETENTION = 0.97  # the share of its speed an object keeps from one frame to the next (friction slows it)
TRACK_FRAMES = 3  # the last masks an object's velocity is fitted over (2: its move from frame 10 to 11)
TRACKED = tuple(range(LAST_INPUT_FRAME + 1 - TRACK_FRAMES, LAST_INPUT_FRAME + 1))  # their indices: frames 9-11


def travel(steps: int, retention: float = RETENTION) -> float:
    """How many frames' worth of its last velocity an object moves in `steps` frames when each frame keeps
    `retention` of the speed of the frame before: retention + retention**2 + ... (`steps` at retention 1)."""
    if not 0 < retention <= 1:
        raise ValueError(f"retention must be in (0, 1], got {retention}")
    return float(sum(retention**k for k in range(1, steps + 1)))


def object_tracks(mask: torch.Tensor, num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, ...]:
    """Per class of class-id masks (B, H, W): (pixel count, centroid row, centroid column, lowest row),
    each (B, num_classes) float; centroids and lowest rows are 0 where a class is absent."""
    b, h, w = mask.shape
    flat = mask.reshape(b, -1).long()
    rows = torch.arange(h, device=mask.device, dtype=torch.float32).repeat_interleave(w).expand(b, -1)
    cols = torch.arange(w, device=mask.device, dtype=torch.float32).repeat(h).expand(b, -1)
    zeros = torch.zeros(b, num_classes, device=mask.device)
    count = zeros.scatter_add(1, flat, torch.ones_like(rows))
    safe = count.clamp(min=1)
    row = zeros.scatter_add(1, flat, rows) / safe
    col = zeros.scatter_add(1, flat, cols) / safe
    lowest = zeros.scatter_reduce(1, flat, rows, reduce="amax", include_self=True)
    return count, row, col, lowest


def centroid_velocity(
    first: torch.Tensor, second: torch.Tensor, num_classes: int = NUM_CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the move of its centroid (rows, columns) from class-id masks `first` to `second`
    (B, H, W): two (B, num_classes) float tensors, 0 for a class missing from either."""
    count, row, col, _ = object_tracks(first, num_classes)
    later_count, later_row, later_col, _ = object_tracks(second, num_classes)
    both = (count > 0) & (later_count > 0)
    return torch.where(both, later_row - row, 0), torch.where(both, later_col - col, 0)


def track_velocity(
    masks: torch.Tensor, frames: int = TRACK_FRAMES, num_classes: int = NUM_CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, its centroid's velocity (rows, columns a frame) over the last `frames` of class-id masks
    (B, T, H, W): the slope of the least-squares line through the frames of that window where the object is
    present; two (B, num_classes) float tensors, 0 for a class missing from the last frame or from all the others.
    frames=2 is `centroid_velocity` of the last two."""
    if frames < 2:
        raise ValueError(f"a track needs at least 2 frames, got {frames}")
    if frames == 2 or masks.shape[1] == 2:
        return centroid_velocity(masks[:, -2], masks[:, -1], num_classes)
    window = masks[:, -frames:]
    b, t = window.shape[:2]
    count, row, col, _ = (x.unflatten(0, (b, t)) for x in object_tracks(window.flatten(0, 1), num_classes))
    return fit_velocity(count > 0, row, col)


def fit_velocity(present: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The least-squares velocity (rows, columns a frame) of centroids (B, T, K) over the T frames where each
    object is `present` (B, T, K) bool: two (B, K) tensors, 0 for an object missing from the last frame or seen
    in fewer than 2. `track_velocity` on masks, and the same from tracks (data.tracks) for the dynamics model."""
    present = present.float()
    times = torch.arange(present.shape[1], device=present.device, dtype=torch.float32)[None, :, None]
    seen = present.sum(1)
    centred = (times - (present * times).sum(1, keepdim=True) / seen.clamp(min=1)[:, None]) * present
    spread = (centred * centred).sum(1)
    tracked = (present[:, -1] > 0) & (seen >= 2)
    return tuple(  # type: ignore[return-value]
        torch.where(tracked, (centred * torch.nan_to_num(y)).sum(1) / spread.clamp(min=1e-9), 0) for y in (row, col)
    )


def extrapolate_masks(
    masks: torch.Tensor,
    steps: int = FUTURE_FRAMES,
    num_classes: int = NUM_CLASSES,
    *,
    retention: float = RETENTION,
    track_frames: int = TRACK_FRAMES,
) -> torch.Tensor:
    """Class-id masks of consecutive frames (B, T, H, W), T >= 2 -> the last one moved `steps` frames on
    (B, H, W) long: each object (class) shifted along its centroid velocity over the last `track_frames`
    (`track_velocity`), slowing down by `retention` a frame (`travel`; 1: constant speed), not moved if it is
    missing from the window's other frames, clipped at the picture's edges, the nearer object drawn where two
    overlap."""
    return extrapolate_steps(masks, (steps,), num_classes, retention=retention, track_frames=track_frames)[:, 0]


def extrapolate_steps(
    masks: torch.Tensor,
    steps: Sequence[int],
    num_classes: int = NUM_CLASSES,
    *,
    retention: float = RETENTION,
    track_frames: int = TRACK_FRAMES,
) -> torch.Tensor:
    """`extrapolate_masks` for each of `steps` at once, the tracks measured once: (B, len(steps), H, W)."""
    if masks.dim() != 4 or masks.shape[1] < 2:
        raise ValueError(f"extrapolate_masks needs masks (B, T >= 2, H, W), got {tuple(masks.shape)}")
    last = masks[:, -1]
    vy, vx = track_velocity(masks, track_frames, num_classes)  # (B, K) pixels a frame
    lowest = object_tracks(last, num_classes)[3]
    moved = []
    for s in steps:
        frames = travel(s, retention)
        moved.append(
            move_objects(last, (vy * frames).round().long(), (vx * frames).round().long(), num_classes, lowest=lowest)
        )
    return torch.stack(moved, dim=1)


def move_objects(
    mask: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    num_classes: int = NUM_CLASSES,
    *,
    lowest: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-id masks (B, H, W) with each object (class c) shifted by (dy[:, c], dx[:, c]) pixels (B, K),
    clipped at the edges; where two land on one pixel, the one whose lowest row after the move is lower
    in the picture (the nearer) is drawn. Background does not move. (B, H, W) long. `lowest`: the
    objects' lowest rows in `mask` where the caller has them (object_tracks)."""
    b, h, w = mask.shape
    flat = mask.reshape(b, -1).long()  # (B, H * W)
    if lowest is None:
        lowest = object_tracks(mask, num_classes)[3]
    pixel = torch.arange(h * w, device=mask.device)
    to_row = pixel.div(w, rounding_mode="floor") + dy.gather(1, flat)  # where each pixel goes
    to_col = pixel % w + dx.gather(1, flat)
    inside = (flat > 0) & (to_row >= 0) & (to_row < h) & (to_col >= 0) & (to_col < w)
    # the drawing order: a key that grows with the object's lowest row after the move, then its class
    depth = (lowest.long() + dy).clamp(-h, 2 * h) + h  # (B, K), >= 0
    key = depth.gather(1, flat) * num_classes + flat  # > 0 for object pixels
    out = torch.zeros(b, h * w, dtype=torch.long, device=mask.device)
    target = torch.where(inside, to_row * w + to_col, 0)
    out.scatter_reduce_(1, target, torch.where(inside, key, 0), reduce="amax", include_self=True)
    return (out % num_classes).reshape(b, h, w)
