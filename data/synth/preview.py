"""`python -m data.synth.preview ROOT OUT.png [--videos 0 1 ...] [--frames 0 5 10 21]`

A picture of a data root: for each chosen video a row of frames and, under it, their masks in the
classes' display colours. Works on any root in the competition layout, real or synthetic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from data.classes import colour_masks
from data.files import os_error_line, run_command
from data.layout import DataError, index_split, read_video

DEFAULT_FRAMES = (0, 4, 8, 10, 14, 18, 21)


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
    parser.add_argument(
        "--frames", type=int, nargs="+", default=None, help=f"frame indices (default: those of {DEFAULT_FRAMES} it has)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        if out.is_dir():
            raise ValueError(f"OUT {out} is a folder; name the picture file, e.g. {out / 'preview.png'}")
        if Image.registered_extensions().get(out.suffix.lower()) not in Image.SAVE:  # .txt; .psd, read-only
            raise ValueError(f"OUT {out}: not a picture type it can write (.png, .jpg, ...)")
        if out.exists() and out.resolve().is_relative_to(Path(args.root).resolve()):
            raise ValueError(f"OUT {out} is a file of the data root {args.root}: writing it would change the data")
        entries = index_split(args.root, args.split)
        if bad := [row for row in args.videos if not 0 <= row < len(entries)]:
            raise DataError(f"--videos {bad}: split {args.split!r} of {args.root} has rows 0..{len(entries) - 1}")
        strips = []
        for row in args.videos:
            frames, masks = read_video(entries[row])
            times = args.frames or [t for t in DEFAULT_FRAMES if t < len(frames)]  # a hidden video has 11
            if bad := [t for t in times if not 0 <= t < len(frames)]:
                raise DataError(f"--frames {bad}: video {entries[row].video_id} has frames 0..{len(frames) - 1}")
            strips.append(video_strip(frames, masks, times))
        Image.fromarray(np.concatenate(strips, axis=0)).save(out)
    except (DataError, ValueError) as err:  # a bad root or video, OUT of no picture type
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable OUT, a full disk: one line naming the path, no part of a picture left
        if out.is_file() and not out.stat().st_size:
            out.unlink()
        print(f"error: {os_error_line(err) if err.filename else f'{out}: {err.strerror or err}'}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_command(main)
