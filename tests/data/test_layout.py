"""The layout reader on real files: the generated root, and malformed copies of its videos."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.layout import DataError, has_split, index_split, read_frame, read_mask, read_video, shared_ids, split_dir


def test_reads_the_generated_root_in_global_id_order(synth_root: Path) -> None:
    ids = {
        split: [e.video_id for e in index_split(synth_root, split)] for split in ("train", "val", "unlabeled", "hidden")
    }
    assert ids == {"train": [0, 1, 2, 3], "val": [4, 5], "unlabeled": [6, 7], "hidden": [8, 9]}
    frames, mask = read_video(index_split(synth_root, "val")[0])
    assert frames.shape == (22, 160, 240, 3) and frames.dtype == np.uint8
    assert mask is not None and mask.shape == (22, 160, 240) and mask.dtype == np.uint8
    hidden_frames, hidden_mask = read_video(index_split(synth_root, "hidden")[0])
    assert hidden_frames.shape == (11, 160, 240, 3) and hidden_mask is None


def test_padded_and_unpadded_names_sort_by_number(copy_root: Path) -> None:
    train = copy_root / "train"
    (train / "video_2").rename(train / "video_00002")
    (train / "video_3").rename(train / "video_10")
    (train / "notes.txt").write_text("not a video")
    with pytest.warns(UserWarning, match=r"left out 1 entries that are not video_N folders: notes\.txt"):
        assert [e.video_id for e in index_split(copy_root, "train")] == [0, 1, 2, 10]


def test_two_folders_for_one_video_is_an_error(copy_root: Path) -> None:
    shutil.copytree(copy_root / "train" / "video_1", copy_root / "train" / "video_001")
    with pytest.raises(DataError, match="two folders for video 1"):
        index_split(copy_root, "train")


def test_hidden_split_can_live_elsewhere(copy_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "hidden_release"
    shutil.move(copy_root / "hidden", elsewhere / "hidden")
    for path in (elsewhere, elsewhere / "hidden"):
        assert split_dir(copy_root, "hidden", hidden=path) == elsewhere / "hidden"
        assert [e.video_id for e in index_split(copy_root, "hidden", hidden=path)] == [8, 9]
    with pytest.raises(DataError, match="does not exist"):
        index_split(copy_root, "hidden")
    # whether there is one to predict (a study's submission): the folder, given or not, holds a video
    assert has_split(copy_root, "hidden", hidden=elsewhere) and not has_split(copy_root, "hidden")
    (copy_root / "hidden").mkdir()
    (copy_root / "hidden" / "notes.txt").write_text("")
    (copy_root / "hidden" / "video_3").write_text("")  # a file, not a video's folder
    assert not has_split(copy_root, "hidden")
    # --hidden given another split: a submission of its videos, refused
    for other, holds in (("val", "mask.npy"), ("train", "mask.npy"), ("unlabeled", "image_11.png")):
        with pytest.raises(DataError, match=rf"^{copy_root / other} is not the hidden split: video_\d+ holds {holds}"):
            index_split(copy_root, "hidden", hidden=copy_root / other)


def test_empty_split_names_its_folder(copy_root: Path) -> None:
    for child in (copy_root / "unlabeled").iterdir():
        shutil.rmtree(child)
    with pytest.raises(DataError, match=r"split 'unlabeled' is empty: no video_N folders in .*unlabeled"):
        index_split(copy_root, "unlabeled")


def test_missing_frame_is_named(copy_root: Path) -> None:
    (copy_root / "train" / "video_1" / "image_5.png").unlink()
    with pytest.raises(DataError, match=r"missing frame .*train/video_1/image_5\.png"):
        read_video(index_split(copy_root, "train")[1])


def test_wrong_image_size_is_named(copy_root: Path) -> None:
    path = copy_root / "val" / "video_4" / "image_3.png"
    Image.new("RGB", (320, 240)).save(path)
    with pytest.raises(DataError, match=r"expected a 240x160 \(WxH\) frame, got 320x240 in .*video_4/image_3\.png"):
        read_frame(path)


def test_truncated_png_is_named(copy_root: Path) -> None:
    path = copy_root / "train" / "video_0" / "image_7.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot decode image .*video_0/image_7\.png"):
        read_frame(path)


def test_garbage_file_is_named(copy_root: Path) -> None:
    path = copy_root / "train" / "video_0" / "image_8.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"cannot decode image .*image_8\.png"):
        read_frame(path)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L"])
def test_non_rgb_frames_are_converted(copy_root: Path, mode: str) -> None:
    path = copy_root / "train" / "video_0" / "image_2.png"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    converted = Image.fromarray(rgb).convert(mode)
    converted.save(path)
    frame = read_frame(path)
    assert frame.shape == (160, 240, 3) and frame.dtype == np.uint8
    stored = np.asarray(converted)  # what the file holds, read without PIL's conversion
    if mode == "RGBA":
        assert np.array_equal(frame, rgb) and np.array_equal(frame, stored[..., :3])
    if mode == "L":  # gray: each channel the stored value
        assert all(np.array_equal(frame[..., c], stored) for c in range(3))
    if mode == "P":  # a palette: each index looked up
        palette = np.asarray(converted.getpalette(), dtype=np.uint8).reshape(-1, 3)
        assert np.array_equal(frame, palette[stored])


def test_a_16_bit_frame_is_refused_not_clipped_to_white(copy_root: Path) -> None:
    path = copy_root / "train" / "video_0" / "image_2.png"
    Image.fromarray(np.full((160, 240), 40_000, dtype=np.uint16)).save(path)  # read back as I;16 or I
    with pytest.raises(
        DataError, match=r"cannot decode image .*image_2\.png: a I.* image \(16- or 32-bit\); frames are 8-bit RGB"
    ):
        read_frame(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.uint16])
def test_any_integer_mask_dtype_is_accepted(copy_root: Path, dtype: type) -> None:
    path = copy_root / "train" / "video_0" / "mask.npy"
    original = np.load(path)
    np.save(path, original.astype(dtype))
    mask = read_mask(path)
    assert mask.dtype == np.uint8 and np.array_equal(mask, original)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((21, 160, 240), np.uint8), r"expected shape \(22, 160, 240\), got \(21, 160, 240\)"),
        (np.zeros((22, 240, 160), np.int32), r"expected shape \(22, 160, 240\), got \(22, 240, 160\)"),
        (np.zeros((22, 160, 240), np.float32), "expected integer class ids, got dtype float32"),
        (np.zeros((22, 160, 240), np.bool_), "expected integer class ids, got dtype bool"),
        (np.full((22, 160, 240), 49, np.int32), r"expected class ids in 0\.\.48, got values 49\.\.49"),
        (np.full((22, 160, 240), -1, np.int64), r"expected class ids in 0\.\.48, got values -1\.\.-1"),
    ],
)
def test_bad_masks_are_named(copy_root: Path, array: np.ndarray, message: str) -> None:
    path = copy_root / "val" / "video_5" / "mask.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=message + r".* in .*val/video_5/mask\.npy"):
        read_mask(path)


def test_missing_and_unreadable_masks_are_named(copy_root: Path) -> None:
    path = copy_root / "val" / "video_5" / "mask.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"cannot read mask .*video_5/mask\.npy"):
        read_mask(path)
    path.unlink()
    with pytest.raises(DataError, match=r"missing mask .*video_5/mask\.npy"):
        read_video(index_split(copy_root, "val")[1])


def test_folders_not_named_video_n_are_named_in_a_warning_and_hidden_ones_ignored(copy_root: Path) -> None:
    (copy_root / "train" / "video_abc").mkdir()
    (copy_root / "train" / ".video_9.partial").mkdir()  # a generator's half-written video
    with pytest.warns(UserWarning, match=r"left out 1 entries that are not video_N folders: video_abc$"):
        index_split(copy_root, "train")
    shutil.rmtree(copy_root / "train" / "video_abc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index_split(copy_root, "train")


def test_a_mask_that_is_not_a_numpy_file_says_so(copy_root: Path) -> None:
    path = copy_root / "val" / "video_5" / "mask.npy"
    path.write_text("0 0 0\n1 1 1\n")
    with pytest.raises(DataError, match=r"video_5/mask\.npy is not a numpy \.npy file"):
        read_mask(path)


def test_an_id_held_by_two_splits_is_found(copy_root: Path) -> None:
    assert shared_ids(copy_root, ["train", "val", "unlabeled"]) == {}
    shutil.copytree(copy_root / "val" / "video_5", copy_root / "train" / "video_5")
    assert shared_ids(copy_root, ["train", "val", "unlabeled"]) == {5: ["train", "val"]}


def test_a_data_root_that_is_no_folder_is_named_not_its_split(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(DataError, match=r"data root .*nowhere does not exist \(expected a folder of train/"):
        index_split(tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match=r"data root .*notes.txt is not a folder"):
        index_split(tmp_path / "notes.txt", "val")
    with pytest.raises(DataError, match=r"split folder .*val does not exist"):  # the root is there, the split not
        index_split(tmp_path, "val")
    with pytest.raises(DataError, match=r"split folder .*notes.txt is a file \(expected hidden/video_N folders\)"):
        index_split(tmp_path, "hidden", hidden=tmp_path / "notes.txt")  # tune.predict --hidden FILE
    with pytest.raises(
        DataError, match=r"hidden does not exist \(.*; a hidden split shipped apart from the data root: "
    ):
        index_split(tmp_path, "hidden")  # the data root's: where --hidden names another
