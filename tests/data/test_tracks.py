"""Object tracks as data: a row per object and frame from class-id masks, written once per masks file as
Parquet parts in parallel, resumed after a kill, read back with pandas."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.cache import decode_split
from data.classes import TRACK_CHANNELS
from data.tracks import (
    COLUMNS,
    dense_tracks,
    main,
    read_tracks,
    tracks_folder,
    tracks_table,
    video_tracks,
    write_tracks,
)


def _masks() -> np.ndarray:
    masks = np.zeros((3, 160, 240), np.uint8)
    masks[0, 10:20, 30:50] = 5  # 200 px
    masks[1, 12:22, 35:55] = 5  # moved by (2, 5)
    masks[2, 0:5, 0:10] = 5  # 50 px in the corner: leaving the view
    masks[0, 100:110, 200:240] = 7  # at the right edge
    masks[2, 150:160, 100:120] = 7  # absent in frame 1, back at the bottom edge
    return masks


def test_a_video_has_a_row_per_object_and_frame() -> None:
    tracks = pd.DataFrame(video_tracks(_masks(), video_id=42))
    assert list(tracks.columns) == list(COLUMNS)
    assert (tracks["video_id"] == 42).all() and list(tracks["object"]) == [5, 5, 5, 7, 7, 7]
    assert list(tracks["frame"]) == [0, 1, 2, 0, 1, 2]
    five = tracks[tracks["object"] == 5].reset_index(drop=True)
    assert list(five["area"]) == [200, 200, 50] and five["present"].all()
    assert list(five["row"]) == [14.5, 16.5, 2.0] and list(five["col"]) == [39.5, 44.5, 4.5]
    assert list(five[["top", "bottom", "left", "right"]].iloc[1]) == [12, 21, 35, 54]
    assert list(five["visible"]) == [1.0, 1.0, 0.25] and list(five["edge"]) == [False, False, True]
    seven = tracks[tracks["object"] == 7].reset_index(drop=True)
    assert list(seven["present"]) == [True, False, True] and seven["row"].isna().tolist() == [False, True, False]
    assert list(seven[["top", "bottom", "left", "right"]].iloc[1]) == [-1, -1, -1, -1]
    assert list(seven["edge"]) == [True, False, True] and list(seven["visible"]) == [1.0, 0.0, 0.5]


def test_dense_tracks_give_each_object_its_slot_in_the_order_of_the_ids_asked() -> None:
    empty = np.zeros((3, 160, 240), np.uint8)
    tracks = tracks_table([42, 9], np.stack([_masks(), empty])).to_pandas()
    dense = dense_tracks(tracks, [9, 42, 5], frames=(2, 0))  # 5: a video the tracks do not hold
    assert dense.shape == (3, 2, 49, len(TRACK_CHANNELS)) and dense.dtype == np.float32
    assert not dense[0].any() and not dense[2].any()  # no objects: every slot 0
    c = {name: k for k, name in enumerate(TRACK_CHANNELS)}
    five = dense[1, :, 5]  # frames 2 then 0
    assert list(five[:, c["present"]]) == [1, 1] and list(five[:, c["area"]]) == [50, 200]
    assert list(five[:, c["row"]]) == [2.0, 14.5] and list(five[:, c["right"]]) == [9, 49]
    assert list(five[:, c["edge"]]) == [1, 0] and list(five[:, c["visible"]]) == [0.25, 1.0]
    assert list(dense[1, :, 7, c["present"]]) == [1, 1]
    absent = dense_tracks(tracks, [42], frames=(1,))[0, 0, 7]  # 7 is not in frame 1: all 0, not NaN or -1
    assert not absent.any()
    assert np.flatnonzero(dense[1].any(axis=(0, 2))).tolist() == [5, 7]  # the other slots stay empty


def test_a_video_without_objects_has_no_rows() -> None:
    assert len(video_tracks(np.zeros((22, 160, 240), np.uint8))["frame"]) == 0


def test_a_splits_tracks_are_written_once_and_resumed(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written in parallel as part files (a video a part here: 4 parts, 2 processes), kept while its masks are
    the same, and a build killed after its first part keeps that part and writes the others."""
    monkeypatch.setattr("data.tracks._CHUNK", 1)
    train = decode_split(synth_root, "train", cache_dir=tmp_path / "cache", progress=False)
    assert train.masks is not None
    masks_file = Path(train.masks.filename)  # type: ignore[attr-defined]
    target = tracks_folder(tmp_path / "cache", masks_file)
    folder = write_tracks(train.ids, masks_file, target, workers=2)
    parts = sorted(folder.glob("part-*.parquet"))
    assert [p.name for p in parts] == [f"part-{k:05d}.parquet" for k in range(len(train))] and len(parts) == 4
    tracks = read_tracks(folder)
    expected = pd.concat(
        [pd.DataFrame(video_tracks(np.asarray(train.masks[k]), int(v))) for k, v in enumerate(train.ids)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(tracks, expected)
    assert tracks.groupby(["video_id", "object"]).size().eq(22).all()  # every frame of every object
    made = (folder / "done.json").stat().st_mtime_ns
    assert write_tracks(train.ids, masks_file, target) == folder and (folder / "done.json").stat().st_mtime_ns == made

    # a build killed after its first part: the next run keeps that part and writes the rest
    killed = target.with_name(target.name + ".building")
    os.rename(folder, killed)
    (killed / "done.json").unlink()
    for part in parts[1:]:
        (killed / part.name).unlink()
    kept = (killed / parts[0].name).stat().st_mtime_ns
    assert write_tracks(train.ids, masks_file, target, workers=2) == folder and not killed.exists()
    assert (folder / parts[0].name).stat().st_mtime_ns == kept
    assert sorted(p.name for p in folder.glob("part-*.parquet")) == [p.name for p in parts]
    pd.testing.assert_frame_equal(read_tracks(folder), expected)
    assert json.loads((folder / "done.json").read_text())["videos"] == len(train)


def test_the_command_makes_a_splits_tracks(
    synth_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main([str(synth_root), "--split", "val", "--workers", "1"]) == 0
    said = capsys.readouterr()
    assert "objects of 2 videos" in said.out and "tracks: 2/2 videos in " in said.err  # its progress, in a log
    assert main([str(synth_root), "--split", "val"]) == 0 and "tracks: " not in capsys.readouterr().err  # made once
    with pytest.raises(SystemExit):  # no masks there: refused as argparse refuses a choice, before any decoding
        main([str(synth_root), "--split", "unlabeled"])
    assert "argument --split: invalid choice: 'unlabeled'" in capsys.readouterr().err
    for workers in ("0", "-2"):
        assert main([str(synth_root), "--split", "val", "--workers", workers]) == 2
        assert (
            capsys.readouterr().err == f"error: --workers must be >= 1 (leave it out for one per core), got {workers}\n"
        )
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SEGTUNE_CACHE", str(tmp_path / "a-file" / "cache"))  # a cache that cannot be made
    assert main([str(synth_root), "--split", "val"]) == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1]
        == f"error: {tmp_path / 'a-file'}: a file, where a folder is needed"
    )
