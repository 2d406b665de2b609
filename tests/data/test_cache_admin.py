"""python -m data.cache_admin: the cache's entries listed with what they were made from, and --prune removing
those whose sources are gone (decoded splits of a deleted root, tracks of their masks, pseudo-labels of a deleted
checkpoint), not the live ones, not an unfinished build, not one another process is building."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from data.cache import decode_split
from data.cache_admin import main, scan
from data.locking import file_lock
from data.tracks import tracks_folder, write_tracks


def test_entries_whose_sources_are_gone_are_listed_and_pruned(
    synth_root: Path, copy_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    live = decode_split(synth_root, "val", cache_dir=cache, progress=False)
    moved = decode_split(copy_root, "val", cache_dir=cache, progress=False)
    (decoded,) = [p for p in cache.glob("val-*") if p.is_dir() and (p / "manifest.json").is_file()
                  and json.loads((p / "manifest.json").read_text())["source"] == str(moved.source)]  # fmt: skip
    masks = decoded / "masks.npy"
    tracks = write_tracks(moved.ids, masks, tracks_folder(cache, masks), workers=1)
    pseudo = cache / "pseudo-0123456789abcdef"  # a segmenter's pseudo-labels, its study since deleted
    pseudo.mkdir()
    (pseudo / "val.npy").write_bytes(b"x" * 1000)
    (pseudo / "manifest.json").write_text(
        json.dumps({"checkpoint": str(tmp_path / "gone.pt"), "root": str(synth_root)})
    )
    unfinished = cache / "unlabeled-0123456789abcdef.building"
    unfinished.mkdir()
    (unfinished / "frames.npy").write_bytes(b"x" * 10)
    assert len(scan(cache)) == 5 and [e.path for e in scan(cache) if e.stale] == [pseudo]

    shutil.rmtree(copy_root)  # the data root moved away: its decoded split, and the tracks of its masks, are stale
    assert main(["--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"{cache}: 5 entries" in out and "3 of them" in out and f"--cache {cache} --prune removes them" in out
    assert f"GONE: {copy_root / 'val'}" in out and f"GONE: {tmp_path / 'gone.pt'}" in out
    assert f"GONE: {masks}" in out  # the tracks, made from masks of an entry that goes
    assert "an unfinished build" in out

    with file_lock(pseudo.with_name(pseudo.name + ".lock")):  # another process building it: left as it is
        assert main(["--cache", str(cache), "--prune"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 entries" in out and f"left {pseudo.name}: another process is building it" in out
    assert not decoded.exists() and not tracks.exists() and pseudo.exists() and unfinished.exists()
    assert not decoded.with_name(decoded.name + ".lock").exists()
    assert main(["--cache", str(cache), "--prune"]) == 0
    assert "removed 1 entry whose sources are gone" in capsys.readouterr().out and not pseudo.exists()
    # the live split is kept, and read from the cache as it was
    manifest = next(cache.glob("val-*/manifest.json"))
    stamp = manifest.stat().st_mtime_ns
    assert decode_split(synth_root, "val", cache_dir=cache, progress=False).ids.tolist() == live.ids.tolist()
    assert manifest.stat().st_mtime_ns == stamp  # not decoded again
    assert sorted(e.path.name for e in scan(cache)) == sorted([manifest.parent.name, unfinished.name])


def test_a_cache_folder_that_does_not_exist_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cache", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none'}: no such cache folder\n"


def test_a_folder_that_is_not_a_cache_is_refused_and_nothing_in_it_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --cache (a home folder) whose folders hold records that name files that are gone: not pruned."""
    home = tmp_path / "home"
    photos = home / "photos_2023"
    photos.mkdir(parents=True)
    (photos / "manifest.json").write_text(json.dumps({"source": str(tmp_path / "sd-card")}))
    (home / "tracks" / "notes").mkdir(parents=True)
    (home / "tracks" / "notes" / "done.json").write_text(json.dumps({"root": str(tmp_path / "gone")}))
    for argv in (["--cache", str(home)], ["--cache", str(home), "--prune"]):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"error: {home} is not a segtune cache: it holds photos_2023, and no entry (a folder named SPLIT-HASH, "
            "pseudo-HASH or tracks/NAME-HASH); nothing was listed or removed\n"
        )
    assert (photos / "manifest.json").is_file() and (home / "tracks" / "notes" / "done.json").is_file()
    assert main(["--cache", str(photos / "manifest.json")]) == 2
    assert capsys.readouterr().err == f"error: {photos / 'manifest.json'}: not a folder\n"

    # in a cache, a folder not named as its entries are is neither listed nor removed
    entry = home / "val-0123456789abcdef"
    entry.mkdir()
    (entry / "manifest.json").write_text(json.dumps({"source": str(tmp_path / "moved" / "val")}))
    assert main(["--cache", str(home), "--prune"]) == 0
    assert "removed 1 entry whose sources are gone" in capsys.readouterr().out
    assert not entry.exists() and photos.is_dir() and (home / "tracks" / "notes").is_dir()


def test_a_copy_a_killed_build_left_behind_is_listed_and_pruned_and_its_entry_kept(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """data.files.build_folder renames the entry it replaces to NAME.old-PID and removes it after the swap: a
    process killed between the two leaves a whole copy (a decoded split: up to 38 GB)."""
    cache = tmp_path / "cache"
    decode_split(synth_root, "val", cache_dir=cache, progress=False)
    (live,) = [p for p in cache.glob("val-*") if p.is_dir()]
    left = live.with_name(live.name + ".old-4242")
    shutil.copytree(live, left)
    assert main(["--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"{left.name}  {synth_root / 'val'}  GONE: a newer build replaced it" in out and "1 of them" in out
    with file_lock(live.with_name(live.name + ".lock")):  # its entry being rebuilt: left alone
        assert main(["--cache", str(cache), "--prune"]) == 0
    assert f"left {left.name}: another process is building it" in capsys.readouterr().out and left.exists()
    assert main(["--cache", str(cache), "--prune"]) == 0
    assert "removed 1 entry whose sources are gone" in capsys.readouterr().out
    assert not left.exists() and live.is_dir() and live.with_name(live.name + ".lock").exists()
