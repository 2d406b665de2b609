"""The decoded cache on real files: decode once, memory-map after, notice changes, handle bad videos."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.cache import decode_split, default_cache_dir
from data.files import check_free_space, error_line, size_text
from data.layout import DataError, index_split, read_video


def test_decoded_arrays_equal_the_files(synth_root: Path, cache_dir: Path) -> None:
    decoded = decode_split(synth_root, "train", cache_dir=cache_dir, progress=False)
    assert decoded.ids.tolist() == [0, 1, 2, 3]
    assert decoded.frames.shape == (4, 22, 160, 240, 3) and decoded.frames.dtype == np.uint8
    assert decoded.masks is not None and decoded.masks.shape == (4, 22, 160, 240)
    for row, entry in enumerate(index_split(synth_root, "train")):
        frames, masks = read_video(entry)
        assert masks is not None
        assert np.array_equal(decoded.frames[row], frames)
        assert np.array_equal(decoded.masks[row], masks)
    hidden = decode_split(synth_root, "hidden", cache_dir=cache_dir, progress=False)
    assert hidden.frames.shape == (2, 11, 160, 240, 3) and hidden.masks is None


def test_second_load_memory_maps_without_decoding(synth_root: Path, cache_dir: Path) -> None:
    decode_split(synth_root, "val", cache_dir=cache_dir, progress=False)
    (built,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    stamp = (built / "frames.npy").stat().st_mtime_ns
    again = decode_split(synth_root, "val", cache_dir=cache_dir, progress=False)
    assert isinstance(again.frames, np.memmap) and isinstance(again.masks, np.memmap)
    assert (built / "frames.npy").stat().st_mtime_ns == stamp


def test_changed_added_and_removed_videos_are_noticed(copy_root: Path, cache_dir: Path) -> None:
    first = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)
    kept_row = np.array(first.frames[2])
    path = copy_root / "train" / "video_1" / "image_4.png"
    Image.new("RGB", (240, 160), (255, 0, 255)).save(path)
    os.utime(path, ns=(1, 1))  # a changed file with an old mtime is still noticed by its size
    changed = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)
    assert (changed.frames[1, 4] == [255, 0, 255]).all()
    assert np.array_equal(changed.frames[2], kept_row)

    shutil.copytree(copy_root / "train" / "video_3", copy_root / "train" / "video_30")
    shutil.rmtree(copy_root / "train" / "video_0")
    updated = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)
    assert updated.ids.tolist() == [1, 2, 3, 30]
    assert np.array_equal(updated.frames[3], updated.frames[2])


def test_a_check_made_before_is_trusted_while_the_cache_is_the_one_checked(copy_root: Path, cache_dir: Path) -> None:
    """A study's trials take its driver's check of a split's cache (DecodedSplit.check) without listing the split's
    files again: a file changed since is not seen by them. A cache rebuilt since is not the one checked: checked
    again, and a build whose manifest differs is never trusted."""
    first = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)
    assert first.check is not None and first.check.videos == 4
    path = copy_root / "train" / "video_1" / "image_4.png"
    Image.new("RGB", (240, 160), (255, 0, 255)).save(path)
    trusting = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False, trusted=[first.check])
    assert trusting.check == first.check and not (trusting.frames[1, 4] == [255, 0, 255]).all()
    changed = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)  # checked: rebuilt
    assert changed.check != first.check and (changed.frames[1, 4] == [255, 0, 255]).all()
    again = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False, trusted=[first.check])
    assert again.check == changed.check and (again.frames[1, 4] == [255, 0, 255]).all()
    shutil.rmtree(copy_root / "train" / "video_0")  # a check of another split's cache is not this one's
    other = decode_split(copy_root, "val", cache_dir=cache_dir, progress=False).check
    assert other is not None
    after = decode_split(copy_root, "train", cache_dir=cache_dir, progress=False, trusted=[other]).check
    assert after is not None and after.videos == 3


def test_bad_video_fails_the_load_by_default(copy_root: Path, cache_dir: Path) -> None:
    (copy_root / "train" / "video_2" / "image_9.png").write_bytes(b"broken")
    with pytest.raises(
        DataError, match=r"1 bad video\(s\) in .*train: video 2: cannot decode image .*video_2/image_9\.png"
    ):
        decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)


def test_bad_video_can_be_skipped_with_a_warning_and_a_count(copy_root: Path, cache_dir: Path) -> None:
    (copy_root / "train" / "video_2" / "image_9.png").write_bytes(b"broken")
    np.save(copy_root / "train" / "video_0" / "mask.npy", np.full((22, 160, 240), 60, np.int32))
    with pytest.warns(UserWarning, match=r"skipping 2 bad video\(s\) of 4 in .*video 0: expected class ids"):
        decoded = decode_split(copy_root, "train", cache_dir=cache_dir, on_error="skip", progress=False)
    assert decoded.ids.tolist() == [1, 3]
    assert [vid for vid, _ in decoded.skipped] == [0, 2]
    assert decoded.frames.shape[0] == 2 and decoded.masks is not None and decoded.masks.shape[0] == 2
    expected, _ = read_video(index_split(copy_root, "train")[3])
    assert np.array_equal(decoded.frames[1], expected)
    # said once a process, however many readers decode the split again (a study, then its evaluation)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("default")  # Python's own: once per place and message
        for _ in range(2):
            decode_split(copy_root, "train", cache_dir=cache_dir, on_error="skip", progress=False)
        decode_split(copy_root, "train", cache_dir=cache_dir, on_error="skip", progress=False)
    assert len([w for w in said if "skipping 2 bad video(s)" in str(w.message)]) == 1
    # the same bad files under the strict policy still fail, from the cache's record
    with pytest.raises(DataError, match=r"2 bad video\(s\)"):
        decode_split(copy_root, "train", cache_dir=cache_dir, progress=False)


def test_a_split_whose_every_video_is_bad_fails_even_when_bad_videos_are_skipped(
    copy_root: Path, cache_dir: Path
) -> None:
    """Nothing would be left to train or predict on: a run would train on no video and say it succeeded."""
    for video in sorted((copy_root / "val").iterdir()):
        (video / "mask.npy").unlink()
    with pytest.raises(DataError, match=r"^2 bad video\(s\) in .*val \(all of them: none is left to use\): video "):
        decode_split(copy_root, "val", cache_dir=cache_dir, on_error="skip", progress=False)
    with pytest.raises(DataError, match=r"^2 bad video\(s\) in .*val \(all of them"):  # the strict policy says so too
        decode_split(copy_root, "val", cache_dir=cache_dir, progress=False)


def test_parallel_decoding_matches_serial(synth_root: Path, tmp_path: Path) -> None:
    serial = decode_split(synth_root, "train", cache_dir=tmp_path / "a", workers=1, progress=False)
    parallel = decode_split(synth_root, "train", cache_dir=tmp_path / "b", workers=2, progress=False)
    assert np.array_equal(serial.frames, parallel.frames)
    assert serial.masks is not None and parallel.masks is not None
    assert np.array_equal(serial.masks, parallel.masks)


def test_bad_policy_is_refused(synth_root: Path, cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        decode_split(synth_root, "train", cache_dir=cache_dir, on_error="ignore")  # type: ignore[arg-type]


def test_a_cache_folder_that_cannot_be_made_is_named_with_where_it_came_from(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGTUNE_CACHE", "/proc/segtune-cache")  # no folder can be made in /proc, even by root
    with pytest.raises(OSError) as err:
        decode_split(synth_root, "val", progress=False)
    assert error_line(err.value) == "/proc/segtune-cache: No such file or directory (the decoded cache, $SEGTUNE_CACHE)"
    with pytest.raises(OSError) as err:
        decode_split(synth_root, "val", cache_dir="/proc/segtune-cache", progress=False)
    assert error_line(err.value) == "/proc/segtune-cache: No such file or directory (the decoded cache)"


def test_a_cache_cut_short_is_decoded_again(synth_root: Path, cache_dir: Path) -> None:
    """A cache file cut short after it was built (a full disk, a copy stopped half-way) failed every reader with
    "mmap length is greater than file size", naming nothing."""
    first = decode_split(synth_root, "val", cache_dir=cache_dir, progress=False)
    expected = np.array(first.masks)
    del first
    (masks,) = cache_dir.glob("val-*/masks.npy")
    with masks.open("r+b") as file:
        file.truncate(masks.stat().st_size // 2)
    again = decode_split(synth_root, "val", cache_dir=cache_dir, progress=False)
    assert again.masks is not None and np.array_equal(again.masks, expected)


def test_a_build_that_cannot_fit_on_the_disk_is_refused_before_it_starts(tmp_path: Path) -> None:
    check_free_space(tmp_path, 1, "a byte")
    with pytest.raises(
        OSError, match=r"the decoded train split needs 1000000000\.00 GB and [\d.]+ [kMG]B are free"
    ) as err:
        check_free_space(tmp_path, 10**18, "the decoded train split")
    assert err.value.filename == str(tmp_path)
    # sizes read at every scale (a small set needed "0.0 GB")
    assert [size_text(n) for n in (3_000, 2_500_000, 38e9)] == ["3.0 kB", "2.5 MB", "38.00 GB"]


def test_a_broken_hidden_video_is_kept_from_the_frames_that_decode(copy_root: Path, cache_dir: Path) -> None:
    """A submission needs a row for every hidden video: a broken one is made whole (frames copied from the
    nearest good one) under the skip policy, and refused, named, under the strict one."""
    (copy_root / "hidden" / "video_8" / "image_3.png").write_bytes(b"broken")
    truncated = copy_root / "hidden" / "video_8" / "image_4.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match=r"1 broken video\(s\) in .*hidden: video 8: frames \[3, 4\] do not decode"):
        decode_split(copy_root, "hidden", cache_dir=cache_dir, progress=False)
    with pytest.warns(UserWarning, match=r"predicting 1 broken video\(s\) .*video 8: frames \[3, 4\] do not decode"):
        decoded = decode_split(copy_root, "hidden", cache_dir=cache_dir, on_error="skip", progress=False)
    assert decoded.ids.tolist() == [8, 9] and [vid for vid, _ in decoded.repaired] == [8]
    entry = index_split(copy_root, "hidden")[0]
    good = {t: np.asarray(Image.open(entry.frame_path(t)).convert("RGB")) for t in (2, 5)}
    assert np.array_equal(decoded.frames[0, 3], good[2]) and np.array_equal(decoded.frames[0, 4], good[5])
    assert np.array_equal(decoded.frames[0, 2], good[2])


def test_a_hidden_video_with_no_frame_that_decodes_is_left_out(copy_root: Path, cache_dir: Path) -> None:
    for frame in (copy_root / "hidden" / "video_9").glob("image_*.png"):
        frame.write_bytes(b"broken")
    with pytest.warns(UserWarning, match=r"skipping 1 bad video\(s\) of 2 .*video 9: no frame of .*video_9 decodes"):
        decoded = decode_split(copy_root, "hidden", cache_dir=cache_dir, on_error="skip", progress=False)
    assert decoded.ids.tolist() == [8]


def test_a_killed_decode_carries_on_where_it_stopped(synth_root: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of a first decode; the next decode decodes only the videos not finished (one
    finished video's frame is replaced, same size and time, by bytes that do not decode: read again, it
    would be refused) and its arrays are the files' videos."""
    root, cache_dir = tmp_path / "root", tmp_path / "cache"
    sources = index_split(synth_root, "train")
    for k in range(96):  # 96 videos, hard links to the 4 generated ones: seconds to decode on one core
        folder = root / "train" / f"video_{k}"
        folder.mkdir(parents=True)
        for file in sources[k % 4].source_files():
            os.link(file, folder / file.name)
    code = f"from data.cache import decode_split; decode_split({str(root)!r}, 'train', cache_dir={str(cache_dir)!r}, workers=1, progress=False)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    log = None
    while proc.poll() is None:
        log = next(cache_dir.glob("train-*.building*/decoded.jsonl"), None)
        if log is not None and len(log.read_text().splitlines()) >= 2:
            proc.kill()
            break
        time.sleep(0.01)
    assert proc.wait() == -signal.SIGKILL, "the decode finished before it could be killed"
    assert log is not None
    finished = [json.loads(line)[0] for line in log.read_text().splitlines()]
    assert 2 <= len(finished) < 96
    frame = root / "train" / f"video_{finished[0]}" / "image_5.png"
    stat = frame.stat()
    frame.unlink()  # a file of its own (the others keep the hard-linked original)
    frame.write_bytes(b"\0" * stat.st_size)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    decoded = decode_split(root, "train", cache_dir=cache_dir, progress=False)  # would raise, had it re-read it
    assert decoded.ids.tolist() == list(range(96))
    assert not list(cache_dir.glob("*.building*"))
    assert decoded.masks is not None
    for row in (0, finished[0], 95):
        frames, masks = read_video(sources[row % 4])
        assert masks is not None
        assert np.array_equal(decoded.frames[row], frames) and np.array_equal(decoded.masks[row], masks)


def test_a_relative_segtune_cache_is_taken_from_where_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study's trials run in folders of their own: with the relative path as it was given, each decoded every
    split again into its own folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGTUNE_CACHE", "decoded")
    assert default_cache_dir() == tmp_path / "decoded"


def test_a_cache_on_read_only_media_is_read_where_it_is_current_and_named_where_it_is_not(
    synth_root: Path, tmp_path: Path
) -> None:
    """A decoded cache built, then on read-only media (a shared copy, a disk remounted read-only): it was refused
    for its lock file, "train-....lock: Read-only file system", which named neither the cache nor $SEGTUNE_CACHE."""
    from tests.small_disk import on_small_disk

    disk, decode = tmp_path / "disk", tmp_path / "decode.py"
    disk.mkdir()
    decode.write_text(
        "import sys\n"
        "from data.cache import decode_split\n"
        "from data.files import error_line\n"
        "try:\n"
        f"    print(len(decode_split({str(synth_root)!r}, sys.argv[1], progress=False)))\n"
        "except OSError as err:\n"
        "    print(error_line(err))\n"
    )
    python = f"{sys.executable} {decode}"
    script = f"{python} val && mount -o remount,ro {disk} && {python} val && {python} train"
    env = {**os.environ, "SEGTUNE_CACHE": str(disk)}
    done = subprocess.run(
        on_small_disk(str(disk), "64m", ["sh", "-c", script]), env=env, capture_output=True, text=True, check=False
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["2", "2"], (done.stdout, done.stderr)  # built, then read from the read-only disk
    assert re.fullmatch(
        rf"{re.escape(str(disk))}/train-[0-9a-f]{{16}}\.lock: Read-only file system \(the decoded cache, \$SEGTUNE_CACHE\)",
        lines[2],
    ), lines
