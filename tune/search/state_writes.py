"""Ray's saved state of a stage: what each file holds, and each written whole or not at all.

Ray 2.60 writes a stage's state (experiment_state-*.json, the searcher's pickles) to a staging folder, then copies
that folder into the study's folder from a background thread of the driver, each file opened, truncated and
written in place. A kill -9 (or a spot machine's end) in that copy left the file the next `--resume` reads cut
short: the resume refused it as damaged, and the study could not go on (1 of 7 kill -9s of a smoke study here;
the copy follows every trial checkpoint). The copy into a local folder goes through `replace_files` instead: each
file is written beside its place, parsed, and renamed over it, so the folder holds the last whole copy or the new
one. A remote storage (`pyarrow.fs` other than local) keeps Ray's own copy."""

from __future__ import annotations

import fnmatch
import json
import pickletools
from pathlib import Path
from typing import Any

from data.files import atomic_write

EXPERIMENT_STATE = "experiment_state-*.json"  # Ray's saved trials of a stage (a restore reads the newest)
# the files a restore reads, each as what it holds (Ray's search_gen_state-*.json is a cloudpickle)
RAY_STATE = {
    "tuner.pkl": "pickle",
    EXPERIMENT_STATE: "json",
    "search_gen_state-*.json": "pickle",
    "searcher-state-*.pkl": "pickle",
}
RAY_TEMPORARY = ".*-tmp-*"  # a file of Ray's state as it writes it (Searcher.save_to_dir), renamed into place after


def parse_state(name: str, data: bytes) -> None:
    """Parse a file of Ray's state named `name` without running anything (JSON as JSON, a pickle opcode by opcode):
    an exception where it is cut short or damaged; nothing for a file of another kind."""
    kind = next((kind for pattern, kind in RAY_STATE.items() if fnmatch.fnmatch(name, pattern)), None)
    if kind == "json":
        json.loads(data)
    elif kind == "pickle":
        for _ in pickletools.genops(data):
            pass


# each per-trial file of Ray's (params.json, result.json, progress.csv, its TensorBoard events) as this process last
# copied it: (source, destination) -> the source's (inode, size, mtime in ns) then
_COPIED: dict[tuple[Path, Path], tuple[int, int, int]] = {}


def replace_files(source: Path, destination: Path) -> None:
    """Copy the file `source`, or the files under the folder `source`, to `destination` (a file, or a folder whose
    missing parents are made), each by a rename over the old one. A file of Ray's state that does not parse (read
    as Ray rewrote it in the staging folder) is left out: the last whole one stays, and the next copy brings it; so
    is a file gone as it was read (Ray renames its temporary files into place as it writes the next state), and
    those temporary files themselves. A per-trial file unchanged since this process copied it is not copied again:
    Ray copies the whole staging folder after every checkpoint, some 5 files a trial, and reading and writing each
    every time made the gap between trial starts grow with the trials run (1.4 s a trial at the start of a smoke
    study on 2 CPUs, 4.4 s 180 trials on); Ray's state files, a handful, are copied each time."""
    pairs = (
        [(source, destination)]
        if source.is_file()
        else [(path, destination / path.relative_to(source)) for path in source.rglob("*") if path.is_file()]
    )
    pairs = [(src, dst) for src, dst in pairs if not fnmatch.fnmatch(src.name, RAY_TEMPORARY)]
    for src, dst in pairs:
        try:
            stat = src.stat()
            version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            state = any(fnmatch.fnmatch(src.name, pattern) for pattern in RAY_STATE)
            if not state and _COPIED.get((src, dst)) == version and dst.exists():
                continue
            data = src.read_bytes()
        except FileNotFoundError:  # renamed or removed by Ray as it was listed (its temporary files): not a state
            continue
        try:
            parse_state(dst.name, data)
        except Exception:
            continue
        with atomic_write(dst) as partial:  # .NAME.PID.tmp: not a name a restore looks for
            partial.write_bytes(data)
        if not state and len(data) == version[1]:  # (what was read is what was stat'ed, unless Ray wrote between)
            _COPIED[(src, dst)] = version


def atomic_state_copies() -> None:
    """Make this process's copies of Ray's state into a local folder go through `replace_files` (once; Ray's copy
    stays for a remote storage, or where a Ray version lacks the function this replaces)."""
    import pyarrow.fs
    from ray.train._internal import storage

    ray_copy = getattr(storage, "_upload_to_fs_path", None)
    if ray_copy is None or getattr(ray_copy, "whole_files", False):
        return

    def upload(local_path: str, fs: Any, fs_path: str, exclude: list[str] | None = None) -> None:
        if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem):
            ray_copy(local_path, fs, fs_path, exclude)
        else:
            replace_files(Path(local_path), Path(fs_path))

    upload.whole_files = True  # type: ignore[attr-defined]
    storage._upload_to_fs_path = upload


def newest(stage_dir: Path, pattern: str) -> Path | None:
    """The file of a kind of Ray's state that a restore reads: the newest name (they are timestamped), as Ray picks."""
    found = sorted(stage_dir.glob(pattern))
    return found[-1] if found else None


def check_state(stage_dir: Path) -> list[Path]:
    """Refuse to restore from a state file cut short or damaged (a full disk, an edit): with a damaged experiment
    or searcher state, Ray logs the error and starts the stage with none of its trials, or waits for ever; with a
    damaged tuner.pkl, a traceback. The file of each kind a restore reads (the newest name, as Ray picks it) is
    parsed without running anything (`state_writes.parse_state`). Returns the files it read."""
    checked = []
    for pattern in RAY_STATE:
        found = newest(stage_dir, pattern)
        if found is None:
            continue
        data = found.read_bytes()
        try:
            parse_state(found.name, data)
        except Exception as err:
            raise ValueError(
                f"cannot resume: {found} is damaged ({len(data)} bytes; {' '.join(str(err).split())}): Ray "
                "cannot restore the stage from it; restore it from a copy"
            ) from None
        checked.append(found)
    return checked
