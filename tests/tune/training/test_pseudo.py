"""Pseudo-labels of a real (tiny) segmenter on the synthetic root: a build cut short carries on from the
videos it had finished, and starts a split over where what it finds was made for other videos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tune.train import main
from tune.training.pseudo import pseudo_label
from tune.training.pseudo_store import MANIFEST, load_pseudo, pseudo_label_dir, pseudo_of

SPLITS = ("train", "val", "unlabeled")  # not hidden: a prediction segments the frames it is given


@pytest.fixture
def segmenter(synth_root: Path, tmp_path: Path, own_cache: Path) -> Path:
    out = tmp_path / "segmenter"
    sets = ["width=4", "depth=2", "frames_per_video=2", "batch_size=2", "eval_batch_size=2"]
    args = ["--model", "frame_segmenter", "--data", str(synth_root), "--out", str(out), "--epochs", "1"]
    args += ["--device", "cpu", "--quiet"]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 0
    return out / "checkpoint.pt"


def test_a_cut_build_keeps_what_it_finished_and_labels_the_rest(
    segmenter: Path, synth_root: Path, tmp_path: Path
) -> None:
    reference = pseudo_label(segmenter, synth_root, cache_dir=tmp_path / "whole", progress=False)
    target = pseudo_label_dir(segmenter, synth_root, tmp_path / "cut")
    partial = target.with_name(target.name + ".building")  # what a killed build leaves
    shutil.copytree(reference, partial)
    (partial / MANIFEST).unlink()
    (partial / "unlabeled.npy").unlink()  # not reached before the kill
    (partial / "unlabeled_ids.npy").unlink()
    train = np.load(partial / "train.npy", mmap_mode="r+")
    train[:2], train[2:] = 255, 254  # no class: 255 stays only if the first two videos are not labelled again,
    # 254 goes only if the other two are (0, background, is what an untrained segmenter may well answer)
    train.flush()
    (partial / "train.done").write_text("2")
    val = np.load(partial / "val.npy", mmap_mode="r+")
    val[:] = 255
    val.flush()
    (partial / "val.done").write_text("2")  # finished, but for other videos: it must be made again
    np.save(partial / "val_ids.npy", np.load(partial / "val_ids.npy") + 100)
    del train, val

    folder = pseudo_label(segmenter, synth_root, cache_dir=tmp_path / "cut", progress=False)

    assert folder == target and not partial.exists() and not list(folder.glob("*.done"))
    assert json.loads((folder / MANIFEST).read_text())["frames"].keys() == set(SPLITS)
    for split in SPLITS:
        masks, ids = load_pseudo(folder, split)
        want, want_ids = load_pseudo(reference, split)
        np.testing.assert_array_equal(ids, want_ids)
        if split == "train":
            assert (masks[:2] == 255).all()
            np.testing.assert_array_equal(masks[2:], want[2:])
        else:
            np.testing.assert_array_equal(masks, want)
    assert (load_pseudo(reference, "train")[0] < 49).all()


def test_pseudo_labels_are_read_only_for_the_videos_they_were_made_of(tmp_path: Path) -> None:
    """The tasks read a split's pseudo-labels for the videos the data holds now: the same ones or the first of
    them (a run scored on the first val videos); other videos, or more than were labelled, are refused."""
    np.save(tmp_path / "val.npy", np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 2, 2))
    np.save(tmp_path / "val_ids.npy", np.array([4, 5, 9]))
    masks, ids = pseudo_of(tmp_path, "val", np.array([4, 5, 9]))
    assert masks.shape == (3, 2, 2, 2) and ids.tolist() == [4, 5, 9]
    assert pseudo_of(tmp_path, "val", np.array([4, 5]))[1].tolist() == [4, 5, 9]
    for other in ([5, 4], [4, 6], [4, 5, 9, 10]):
        with pytest.raises(ValueError, match="were made for other val videos than the data holds now"):
            pseudo_of(tmp_path, "val", np.array(other))
    with pytest.raises(FileNotFoundError, match="no pseudo-labels for split 'train'"):
        pseudo_of(tmp_path, "train", np.array([0]))
