"""`python -m data.cache_admin [--cache DIR] [--prune]`: what the decoded cache holds, and removing what no run can
use again.

The cache ($SEGTUNE_CACHE, default ~/.cache/segtune/decoded) keeps each decoded split of each data root, each
segmenter's pseudo-labels and each masks file's object tracks, keyed by where they came from. None of them is ever
removed by the runs that made them: a data root moved or deleted, a study's folder deleted, leave their entries
behind (at the real data's size, 38 GB of decoded splits and 13 GB of pseudo-labels a mask_space study). An entry's
record names what it was made from (`SOURCE_KEYS`: a split folder, a segmenter checkpoint and its data root, a
masks file); `--prune` removes the entries whose sources are gone, each under its build lock (an entry being built
is left alone). Unfinished builds are listed, not removed: the next run that needs them carries on from them.
Only folders named as the cache names its entries (`SPLIT-HASH`, `pseudo-HASH`, `tracks/NAME-HASH`, 16 hex digits)
are entries: a folder that holds none and holds something else is refused, so that a mistyped `--cache` (a data root,
a home folder) is never pruned.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from data.cache import default_cache_dir
from data.files import run_command, size_text
from data.locking import try_lock

RECORDS = ("manifest.json", "done.json")  # a decoded split's or pseudo-labels' record; a tracks folder's
SOURCE_KEYS = ("source", "checkpoint", "root", "masks")  # what a record names as the files it was made from
KINDS = {"pseudo": "pseudo-labels", "tracks": "tracks"}  # by name prefix; other entries are decoded splits
# an entry's folder (NAME-HASH), its build in progress (.building[-PID]), or the copy a build replaced (.old-PID),
# left where the build was killed before removing it
ENTRY_NAME = re.compile(r"(?P<name>.+-[0-9a-f]{16})(\.building(-\d+)?|(?P<old>\.old-\d+))?")
REPLACED = "a newer build replaced it"  # why a left .old-PID copy is stale


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str
    size: int  # bytes
    sources: tuple[str, ...]  # what its record names; empty for an unfinished build
    gone: tuple[str, ...]  # those that no longer exist

    @property
    def finished(self) -> bool:
        return bool(self.sources)

    @property
    def stale(self) -> bool:
        return bool(self.gone)


def scan(cache: Path) -> list[Entry]:
    """Every entry of a cache folder, largest first. Tracks made from the masks of a stale entry are stale too."""
    folders = _entry_folders(cache) + _entry_folders(cache / "tracks")
    entries = [_entry(p, cache) for p in folders]
    stale = [e.path for e in entries if e.stale]
    entries = [e if e.stale else Entry(e.path, e.kind, e.size, e.sources, _inside(e.sources, stale)) for e in entries]
    return sorted(entries, key=lambda e: (-e.size, e.path.name))


def _entry_folders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and ENTRY_NAME.fullmatch(p.name)] if folder.is_dir() else []


def foreign(cache: Path) -> list[str]:
    """The names of what a folder holds that is not the cache's (an entry, its lock, the tracks folder)."""
    ours = {p.name for p in _entry_folders(cache)} | {"tracks"}
    return sorted(p.name for p in cache.iterdir() if p.name not in ours and not p.name.endswith(".lock"))


def _entry(folder: Path, cache: Path) -> Entry:
    kind = "tracks" if folder.parent != cache else KINDS.get(folder.name.split("-")[0], "decoded split")
    record = next((folder / name for name in RECORDS if (folder / name).is_file()), None)
    sources: tuple[str, ...] = ()
    if record is not None and ".building" not in folder.name:
        try:
            found = json.loads(record.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            found = {}
        sources = tuple(str(found[key]) for key in SOURCE_KEYS if isinstance(found, dict) and found.get(key))
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    if (named := ENTRY_NAME.fullmatch(folder.name)) and named.group("old"):
        return Entry(folder, kind, size, sources or (REPLACED,), (REPLACED,))
    return Entry(folder, kind, size, sources, tuple(s for s in sources if not os.path.exists(s)))


def _inside(sources: tuple[str, ...], folders: list[Path]) -> tuple[str, ...]:
    return tuple(s for s in sources if any(Path(s).is_relative_to(f) for f in folders))


def prune(entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Remove the stale entries (and their lock files); returns (removed, left: being built by another process)."""
    removed, left = [], []
    for entry in entries:
        if not entry.stale:
            continue
        named = ENTRY_NAME.fullmatch(entry.path.name)
        assert named is not None
        lock = entry.path.with_name(named.group("name") + ".lock")  # a replaced copy's: its entry's (build_folder)
        with try_lock(lock) as held:
            if not held:
                left.append(entry)
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry)
        if not named.group("old"):  # (the entry that replaced a copy lives on, and keeps its lock)
            lock.unlink(missing_ok=True)
    return removed, left


def describe(entry: Entry) -> str:
    if not entry.finished:
        what = "an unfinished build (the next run that needs it carries on from it)"
    else:
        what = ", ".join(entry.sources) + (f"  GONE: {', '.join(entry.gone)}" if entry.stale else "")
    return f"{size_text(entry.size):>10}  {entry.kind:<13}  {entry.path.name}  {what}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.cache_admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=None, help="the cache folder (default: $SEGTUNE_CACHE)")
    parser.add_argument("--prune", action="store_true", help="remove the entries whose sources are gone")
    args = parser.parse_args(argv)
    cache = args.cache or default_cache_dir()
    if not cache.is_dir():
        print(f"error: {cache}: {'not a folder' if cache.exists() else 'no such cache folder'}", file=sys.stderr)
        return 2
    entries = scan(cache)
    others = [] if entries else foreign(cache)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        print(
            f"error: {cache} is not a segtune cache: it holds {shown}, and no entry (a folder named SPLIT-HASH, "
            "pseudo-HASH or tracks/NAME-HASH); nothing was listed or removed",
            file=sys.stderr,
        )
        return 2
    stale = [e for e in entries if e.stale]
    waste = size_text(sum(e.size for e in stale))
    if not args.prune:
        for entry in entries:
            print(describe(entry))
        held = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {size_text(sum(e.size for e in entries))}"
        print(
            f"{cache}: {held}; {len(stale)} of them ({waste}) made from files that are gone"
            + (f": python -m data.cache_admin --cache {cache} --prune removes them" if stale else "")
        )
        return 0
    removed, left = prune(entries)
    what = "entry whose sources are" if len(removed) == 1 else "entries whose sources are"
    print(f"{cache}: removed {len(removed)} {what} gone, {size_text(sum(e.size for e in removed))}")
    for entry in left:
        print(f"left {entry.path.name}: another process is building it")
    return 0


if __name__ == "__main__":
    run_command(main)
