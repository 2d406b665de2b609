"""`python -m data.synth OUT --train N --val N --unlabeled N --hidden N --seed S [--workers W]`"""

from __future__ import annotations

import argparse
import sys

from data.files import error_line, run_command
from data.synth.generate import SynthSpec, generate


def main(argv: list[str] | None = None) -> int:
    defaults = SynthSpec()
    parser = argparse.ArgumentParser(prog="python -m data.synth", description=__doc__)
    parser.add_argument("out", help="folder to write the data root into (created; resumable)")
    for split in ("train", "val", "unlabeled", "hidden"):
        parser.add_argument(
            f"--{split}", type=int, default=getattr(defaults, split), help=f"{split} videos (default: %(default)s)"
        )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="data set seed (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not any(getattr(args, split) for split in ("train", "val", "unlabeled", "hidden")):
        parser.error("no videos asked for: give --train N (and --val, --unlabeled, --hidden)")
    try:
        spec = SynthSpec(train=args.train, val=args.val, unlabeled=args.unlabeled, hidden=args.hidden, seed=args.seed)
        report = generate(args.out, spec, workers=args.workers, progress=not args.quiet)
    except (OSError, ValueError) as err:  # OUT of another data set; it cannot be made or written, a small disk
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.written} videos to {args.out} in {report.seconds:.1f}s with {report.workers} workers "
        f"({report.videos_per_minute_per_core:.0f} videos/min/core); {report.skipped} already there"
    )
    return 0


if __name__ == "__main__":
    run_command(main, stopped="the videos written are kept; the same command draws the rest")
