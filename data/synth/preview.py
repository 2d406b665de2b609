"""`python -m data.synth.preview ROOT OUT.png [--videos 0 1 ...] [--frames 0 5 10 21]`

A picture of a data root: for each chosen video a row of frames and, under it, their masks in the
classes' display colours. Works on any root in the competition layout, real or synthetic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image

from data.classes import colour_masks
from data.layout import DataError, index_split, read_video


def video_strip(frames: np.ndarray, masks: np.ndarray | None, times: Sequence[int], *, gap: int = 2) -> np.ndarray:
    """Frames `times` side by side (H, len(times) * (W + gap), 3), with their masks in a row below."""
    rows = [frames[list(times)]]
    if masks is not None:
        rows.append(colour_masks(masks[list(times)]))
    pad = ((0, 0), (0, gap), (0, gap), (0, 0))
    return np.concatenate([np.concatenate(list(np.pad(r, pad, constant_values=255)), axis=1) for r in rows], axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.synth.preview", description=__doc__)
    parser.add_argument("root", help="data root in the competition layout")
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--split", default="train", help="split to draw from (default: train)")
    parser.add_argument("--videos", type=int, nargs="+", default=[0, 1], help="row numbers of videos in the split")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 4, 8, 10, 14, 18, 21], help="frame indices")
    args = parser.parse_args(argv)
    try:
        entries = index_split(args.root, args.split)
        if bad := [row for row in args.videos if not 0 <= row < len(entries)]:
            raise DataError(f"--videos {bad}: split {args.split!r} of {args.root} has rows 0..{len(entries) - 1}")
        strips = []
        for row in args.videos:
            frames, masks = read_video(entries[row])
            if bad := [t for t in args.frames if not 0 <= t < len(frames)]:
                raise DataError(f"--frames {bad}: video {entries[row].video_id} has frames 0..{len(frames) - 1}")
            strips.append(video_strip(frames, masks, args.frames))
        Image.fromarray(np.concatenate(strips, axis=0)).save(args.out)
    except (DataError, OSError, ValueError) as err:  # a bad root or video, an unwritable or unknown OUT type
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
