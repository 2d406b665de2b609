"""Objects in a segmenter's masks: each connected piece of one colour and material gets one shape.

A class is a shape, a material and a colour (data.classes). A small segmenter finds the objects and gets their
colour and material right, but it mixes up their shapes pixel by pixel: on the CPU quality set (300/100/300
videos) a scale-0.5 segmenter's mask of val frame 11 separates objects from background at 0.879 IoU, yet gives
only 61% of the object pixels it finds their right class, and about 96% of the wrong ones have the right colour
and material and the wrong shape. One object then shows as fragments of two or three classes, and the motion rule
tracks each fragment's centroid on its own.

`one_shape_per_object` gives every 4-connected piece of pixels of one colour and material the shape most of its
pixels have. Measured on that segmenter's masks of the 100 val videos (`python -m benchmarks.rules --data
runs/cpuq/data --segmenter runs/cpuq/seg05/checkpoint.pt`, 2026-11-29): the motion rule's mask 22 scores 0.256
instead of 0.234 (copy-last 0.139 -> 0.140, frame 11 itself 0.460 -> 0.468, its mask 22 0.457 -> 0.486); moving
its objects by their true velocities, 0.274 instead of 0.266. A motion-prior mask predictor given the new masks:
0.253 instead of 0.235 (docs/models.md, "One shape per object"). Pieces joined by 8-connectivity: 0.256; linked
across frames 9-11 as well: 0.255; a vote in a square window around each pixel instead of its piece (5 to 41
pixels wide): 0.234 to 0.246, and ten times slower. On true masks it changes almost nothing (0.003% of the pixels,
where two objects of one look touch). It runs on the CPU (scipy.ndimage) in threads over blocks of frames: about
3 ms a 160x240 frame on one core.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from data.classes import COLORS, MATERIALS, SHAPES

LOOKS = len(COLORS) * len(MATERIALS)  # 16: class id - 1 = shape * 16 + (material * 8 + colour)
BLOCK_FRAMES = 16  # frames labelled in one call: small blocks stay in the CPU's caches (twice as fast as 1,100)
# 4-connectivity within a frame, none between frames
_LINKS = np.array(
    [[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]]
)


def one_shape_per_object(masks: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """Class ids (..., H, W) with each 4-connected piece of one colour and material (its look) given the shape
    most of its pixels have (ties: the first shape); background stays. Pieces never join across frames. Same
    dtype and device as `masks`; the work runs on the CPU, `threads` (default: torch's) blocks of frames at once."""
    frames = masks.detach().to("cpu", torch.uint8).reshape(-1, *masks.shape[-2:]).numpy()
    out = np.empty_like(frames)
    blocks = [slice(start, start + BLOCK_FRAMES) for start in range(0, len(frames), BLOCK_FRAMES)]
    workers = max(1, min(threads or torch.get_num_threads(), len(blocks)))

    def run(block: slice) -> None:
        out[block] = _vote(frames[block])

    if workers == 1:
        for block in blocks:
            run(block)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, blocks))
    return torch.from_numpy(out).reshape(masks.shape).to(masks.device, masks.dtype)


def _vote(frames: np.ndarray) -> np.ndarray:
    """`one_shape_per_object` of frames (F, H, W) uint8."""
    from scipy import ndimage  # here: 0.2 s of every trial process's start, where most never call it

    out = frames.copy()
    found = frames > 0
    index = frames.astype(np.int16) - 1
    look, shape = index % LOOKS, index // LOOKS
    for value in np.unique(look[found]):
        piece = found & (look == value)
        labels, count = ndimage.label(piece, structure=_LINKS)
        of = labels[piece]
        votes = np.bincount(of * len(SHAPES) + shape[piece], minlength=(count + 1) * len(SHAPES))
        votes = votes.reshape(count + 1, len(SHAPES))
        out[piece] = (votes.argmax(axis=1)[of] * LOOKS + value + 1).astype(np.uint8)
    return out
