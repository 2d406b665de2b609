"""The object-dynamics task: its mirror augmentation is the tracks of mirrored masks; trained through the Trainer
on a pseudo-label folder (here the true masks, as benchmarks/true_masks.py writes one), it starts as the rule and
learns from there, each epoch scored beside copy-last and the rule on the same masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data.cache import decode_split
from data.classes import INPUT_FRAMES
from data.tracks import dense_tracks, tracks_table
from reports.schema import VAL_COPY_LAST_IOU, VAL_EXTRAPOLATE_IOU, VAL_IOU, VAL_LOSS
from tune.training.pseudo_store import MANIFEST
from tune.training.run import build_run
from tune.training.tasks import task_for
from tune.training.trainer import Trainer, load_data


def test_the_mirror_of_a_videos_tracks_is_the_tracks_of_its_mirrored_masks(synth_root: Path, tmp_path: Path) -> None:
    train = decode_split(synth_root, "train", cache_dir=tmp_path, progress=False)
    masks = np.asarray(train.masks)[:, :11]
    ids = np.arange(len(masks))
    tracks = torch.from_numpy(dense_tracks(tracks_table(ids, masks).to_pandas(), ids, INPUT_FRAMES))
    mirrored = torch.from_numpy(dense_tracks(tracks_table(ids, masks[..., ::-1]).to_pandas(), ids, INPUT_FRAMES))
    moves = torch.randn(len(ids), 49, 3)
    task = task_for("object_dynamics")
    x, y = task.augment(tracks, moves, torch.Generator().manual_seed(1))  # flips videos 1 and 2
    flipped = [k for k in range(len(ids)) if not torch.equal(x[k], tracks[k])]
    assert 0 < len(flipped) < len(ids)  # each video by chance
    for k in range(len(ids)):
        if k in flipped:
            torch.testing.assert_close(x[k], mirrored[k])
            assert torch.equal(y[k, :, 0], moves[k, :, 0]) and torch.equal(y[k, :, 1], -moves[k, :, 1])
        else:
            assert torch.equal(y[k], moves[k])


@pytest.fixture(scope="module")
def true_pseudo(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pseudo-label folder holding the true masks of frames 1-11 of train and val, and every frame of none."""
    folder = tmp_path_factory.mktemp("pseudo")
    for split in ("train", "val"):
        decoded = decode_split(synth_root, split, cache_dir=folder / "cache", progress=False)
        np.save(folder / f"{split}.npy", np.ascontiguousarray(np.asarray(decoded.masks)[:, :11]))
        np.save(folder / f"{split}_ids.npy", decoded.ids)
    (folder / MANIFEST).write_text(json.dumps({"truth": str(synth_root)}))
    return folder


def test_trained_on_tracks_it_starts_as_the_rule_and_learns(synth_root: Path, true_pseudo: Path) -> None:
    run = build_run("object_dynamics", ["width=16", "lr=1e-2", "batch_size=2", "epoch_samples=64"], epochs=6)
    data = load_data(run, synth_root, "cpu", pseudo=true_pseudo, cache_dir=true_pseudo / "cache", progress=False)
    assert len(data.train) == 4 and len(data.val) == 2
    trainer = Trainer(run, data)
    untrained = trainer.evaluate()
    assert set(untrained) == set(task_for("object_dynamics").metrics)
    assert untrained[VAL_IOU] == untrained[VAL_EXTRAPOLATE_IOU] > untrained[VAL_COPY_LAST_IOU]  # true masks: 2x
    history = list(trainer.epochs())
    assert len(history) == 6 and all(np.isfinite(h["train_loss"]) for h in history)
    assert history[-1]["train_loss"] < 0.75 * history[0]["train_loss"]  # it fits the train moves
    assert history[-1][VAL_LOSS] != untrained[VAL_LOSS]  # and moves val's objects otherwise than the rule
    for metrics in history:  # the rules on the same masks, beside each epoch
        assert metrics[VAL_EXTRAPOLATE_IOU] == untrained[VAL_EXTRAPOLATE_IOU]
        assert metrics[VAL_COPY_LAST_IOU] == untrained[VAL_COPY_LAST_IOU]


def test_it_needs_a_segmenters_pseudo_labels(synth_root: Path, tmp_path: Path) -> None:
    run = build_run("object_dynamics", [], epochs=1)
    with pytest.raises(ValueError, match="needs the pseudo-label folder of a segmenter"):
        load_data(run, synth_root, "cpu", cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="takes no input scale"):
        Trainer(build_run("object_dynamics", ["input_scale=0.5"], epochs=1), data=None)  # type: ignore[arg-type]


def test_masks_that_hold_no_object_are_said_not_trained_on_silently(synth_root: Path, tmp_path: Path) -> None:
    """A segmenter that finds nothing: its train loss was 0 each epoch and nothing said why."""
    empty = tmp_path / "pseudo"
    empty.mkdir()
    for split in ("train", "val"):
        decoded = decode_split(synth_root, split, cache_dir=tmp_path / "cache", progress=False)
        np.save(empty / f"{split}.npy", np.zeros((len(decoded), 11, 160, 240), np.uint8))
        np.save(empty / f"{split}_ids.npy", decoded.ids)
    (empty / MANIFEST).write_text(json.dumps({"truth": "none"}))
    run = build_run("object_dynamics", ["width=16"], epochs=1)
    with pytest.warns(UserWarning, match=r"no object of the segmenter's mask 11 has a move to learn in the 4 train"):
        load_data(run, synth_root, "cpu", pseudo=empty, cache_dir=tmp_path / "cache", progress=False)
