"""`python -m reports.build EXPERIMENT_DIR [EXPERIMENT_DIR ...] [--out report.html]`

One self-contained HTML report (plotly.js embedded; opens offline) built from the studies' result files.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

# `python -m reports.build`: the module is imported anew here, so that a Ctrl-C amid its imports (pandas, plotly:
# 1-2 s) is taken as one later is (reports import no other package: data.files.run_module is not at hand)
if __name__ == "__main__":

    def _quiet_ctrl_c(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, traceback)

    try:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # a Ctrl-C amid third-party imports: once
        try:  # they are done (raised inside them, it could leave one half imported: data.files.run_module)
            import importlib

            command = importlib.import_module("reports.build")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise SystemExit(command.main())
    except KeyboardInterrupt:  # the report is written whole or not at all
        print("\nstopped (SIGINT): no report written", file=sys.stderr)
        sys.excepthook = _quiet_ctrl_c  # no traceback: Python ends by SIGINT on it, and a calling script stops too
        raise

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from reports.load import CANNOT_READ, Experiment, load_experiment
from reports.page import build_page
from reports.records import is_study
from reports.schema import REPORT_FILE, RESULTS_DIR, STUDY_FILE


def build_report(
    folders: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    damaged: Callable[[str], None] | None = None,
) -> Path:
    """Write the report of one or more study folders to `out`; `damaged` is told each file it could not read (the
    report says so too, and shows the rest)."""
    missing = [
        f"{f}: {'a file, not' if Path(f).exists() else 'no such folder, nor'} a study folder"
        for f in folders
        if not Path(f).is_dir()
    ]
    if missing:
        raise FileNotFoundError("; ".join(missing))
    for folder in map(Path, folders):
        if not is_study(folder):  # e.g. the --out folder of the studies (runs/), not one of them (runs/NAME)
            inside = [str(c) for c in sorted(folder.iterdir()) if c.is_dir() and is_study(c)]
            raise FileNotFoundError(
                f"not a study folder: {folder} holds neither {STUDY_FILE} nor {RESULTS_DIR}/"
                + (f"; the studies in it: {' '.join(inside)}" if inside else "")
            )
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name the HTML file, e.g. {out / 'report.html'}")
    if blocker := next((p for p in out.parents if p.is_file()), None):
        raise ValueError(f"--out {out}: {blocker} is a file, where a folder is needed")
    seen: dict[Path, str] = {}
    for given in map(str, folders):  # (the side-by-side table would hold one study twice)
        if (same := seen.setdefault(Path(given).resolve(), given)) != given:
            raise ValueError(f"{given} and {same} are the same study folder: name it once")
    experiments = distinct([load_experiment(f) for f in folders])
    for exp in experiments:
        for note in exp.notes:
            if damaged is not None and note.startswith(CANNOT_READ):
                damaged(f"{exp.folder}: {note}")
    page = build_page(experiments)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as err:  # a full disk: no half file is left, and the error names the report
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(out)) from None
    return out


def distinct(experiments: list[Experiment]) -> list[Experiment]:
    """The studies, those of the same name (OUT/NAME under two --out, a copy) named by as much of their folders'
    paths as tells them apart (runs/b, copy/b): the side-by-side table and figure, and the headings, name them."""
    names = given = [exp.name for exp in experiments]
    parts = [exp.folder.resolve().parts for exp in experiments]
    for depth in range(2, max(map(len, parts)) + 1):
        if len(set(names)) == len(names):
            break
        names = [n if given.count(n) == 1 else "/".join(p[-depth:]) for n, p in zip(given, parts, strict=True)]
    return [dataclasses.replace(exp, name=name) for exp, name in zip(experiments, names, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__)
    parser.add_argument("experiments", nargs="+", help="study folders (OUT/NAME)")
    parser.add_argument(
        "--out", default=None, help="HTML file (default: report.html in the only study, else ./report.html)"
    )
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.strip():
        print("error: --out is empty; name the HTML file, e.g. --out report.html", file=sys.stderr)
        return 2
    out = args.out or (Path(args.experiments[0]) / REPORT_FILE if len(args.experiments) == 1 else Path(REPORT_FILE))
    try:
        path = build_report(args.experiments, out, lambda note: print(f"warning: {note}", file=sys.stderr))
    except ValueError as err:  # a damaged search.json, a folder as --out
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # not a study folder (ours: no errno); read-only, full disk, no such parent: the path
        where = f"{err.filename}: " if err.errno and err.filename else ""
        print(f"error: {where}{err.strerror if err.errno else err}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
