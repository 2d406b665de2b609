"""Datasets and device-resident batches over a decoded split (the device is the CPU here; the same
code runs on a GPU)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from data.cache import DecodedSplit, decode_split
from data.datasets import (
    DeviceSplit,
    FrameMaskDataset,
    FramePredictionDataset,
    MaskClips,
    SegmentationDataset,
    batch_indices,
    concat_splits,
    stream_batches,
    with_pseudo,
)
from data.streaming import StreamMaskClips, StreamSplit

INPUT_FRAMES_AND_TARGET = (*range(11), 21)


@pytest.fixture(scope="module")
def splits(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, DecodedSplit]:
    cache = tmp_path_factory.mktemp("cache")
    return {s: decode_split(synth_root, s, cache_dir=cache, progress=False) for s in ("train", "unlabeled", "hidden")}


def test_segmentation_items_are_frames_1_to_11_and_mask_22(splits: dict[str, DecodedSplit]) -> None:
    train = splits["train"]
    assert train.masks is not None
    dataset = SegmentationDataset(train)
    frames, mask = dataset[2]
    assert len(dataset) == 4
    assert frames.shape == (11, 3, 160, 240) and frames.dtype == torch.uint8
    assert mask.shape == (160, 240) and mask.dtype == torch.uint8
    assert torch.equal(frames[10].permute(1, 2, 0), torch.from_numpy(np.array(train.frames[2, 10])))
    assert torch.equal(mask, torch.from_numpy(np.array(train.masks[2, 21])))


def test_frame_prediction_items_target_frame_22(splits: dict[str, DecodedSplit]) -> None:
    unlabeled = splits["unlabeled"]
    frames, target = FramePredictionDataset(unlabeled)[1]
    assert frames.shape == (11, 3, 160, 240) and target.shape == (3, 160, 240)
    assert torch.equal(target.permute(1, 2, 0), torch.from_numpy(np.array(unlabeled.frames[1, 21])))


def test_frame_mask_pairs_cover_every_frame(splits: dict[str, DecodedSplit]) -> None:
    train = splits["train"]
    assert train.masks is not None
    dataset = FrameMaskDataset(train)
    assert len(dataset) == 4 * 22
    frame, mask = dataset[22 + 5]  # video 1, frame 5
    assert torch.equal(frame.permute(1, 2, 0), torch.from_numpy(np.array(train.frames[1, 5])))
    assert torch.equal(mask, torch.from_numpy(np.array(train.masks[1, 5])))


def test_tasks_refuse_splits_that_lack_what_they_need(splits: dict[str, DecodedSplit]) -> None:
    with pytest.raises(ValueError, match="needs masks, but split 'unlabeled'"):
        SegmentationDataset(splits["unlabeled"])
    with pytest.raises(ValueError, match="needs 22 frames per video, but split 'hidden' has 11"):
        FramePredictionDataset(splits["hidden"])
    with pytest.raises(ValueError, match="needs masks, but split 'hidden'"):
        FrameMaskDataset(splits["hidden"])


def test_device_split_gathers_the_same_samples_as_the_datasets(splits: dict[str, DecodedSplit]) -> None:
    train = splits["train"]
    device_split = DeviceSplit(train, "cpu")
    index = torch.tensor([3, 0])
    frames, masks = device_split.segmentation_batch(index)
    dataset = SegmentationDataset(train)
    assert frames.shape == (2, 11, 3, 160, 240) and frames.dtype == torch.uint8
    for k, i in enumerate(index.tolist()):
        assert torch.equal(frames[k], dataset[i][0]) and torch.equal(masks[k], dataset[i][1])
    _, target = device_split.frame_prediction_batch(index)
    assert target.shape == (2, 3, 160, 240)
    assert target.is_contiguous(memory_format=torch.channels_last)
    pair_frames, pair_masks = device_split.frame_mask_batch(torch.tensor([22 + 5]))
    assert torch.equal(pair_frames[0], FrameMaskDataset(train)[22 + 5][0])
    assert torch.equal(pair_masks[0], FrameMaskDataset(train)[22 + 5][1])


def test_device_split_keeps_only_the_frames_asked_for(splits: dict[str, DecodedSplit]) -> None:
    device_split = DeviceSplit(splits["train"], "cpu", frames=[*range(11), 21])
    assert device_split.frames.shape == (4, 12, 160, 240, 3)
    frames, _ = device_split.segmentation_batch(torch.tensor([1]))
    assert torch.equal(frames[0], SegmentationDataset(splits["train"])[1][0])
    with pytest.raises(ValueError, match="frame 15 is not held on the device"):
        device_split.gather_frames(torch.tensor([0]), [15])
    with pytest.raises(ValueError, match="out of range for 11-frame split 'hidden'"):
        DeviceSplit(splits["hidden"], "cpu", frames=[21])


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [4, 4, 2]), (True, [4, 4])])
def test_batch_indices_cover_an_epoch_once(drop_last: bool, sizes: list[int]) -> None:
    gen = torch.Generator().manual_seed(0)
    batches = list(batch_indices(10, 4, shuffle=True, generator=gen, drop_last=drop_last))
    assert [len(b) for b in batches] == sizes
    seen = torch.cat(batches).tolist()
    assert len(set(seen)) == len(seen)
    if not drop_last:
        assert sorted(seen) == list(range(10))
    assert torch.cat(list(batch_indices(5, 2, shuffle=False))).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("n", "samples"), [(10, 4), (10, 25), (7, 7)])
def test_fixed_size_epochs_walk_every_item_once_per_pass_and_are_stateless(n: int, samples: int) -> None:
    epochs = [list(stream_batches(n, samples, e, 3, seed=5)) for e in range(6)]
    assert all(sum(len(b) for b in batches) == samples for batches in epochs)
    stream = torch.cat([torch.cat(batches) for batches in epochs]).tolist()
    for start in range(0, len(stream) - n + 1, n):  # each whole pass holds every item once
        assert sorted(stream[start : start + n]) == list(range(n))
    again = list(stream_batches(n, samples, 3, 3, seed=5))  # epoch 3 drawn alone, as a resumed run draws it
    assert len(again) == len(epochs[3]) and all(torch.equal(a, b) for a, b in zip(epochs[3], again, strict=True))
    assert torch.cat(list(stream_batches(n, samples, 0, 3, seed=6))).tolist() != stream[:samples]  # the seed counts


@pytest.mark.parametrize("frames", [None, (*range(11), 21)])
def test_streamed_batches_are_the_held_batches_byte_for_byte(
    splits: dict[str, DecodedSplit], frames: tuple[int, ...] | None
) -> None:
    train = splits["train"]
    held, streamed = DeviceSplit(train, "cpu", frames=frames), StreamSplit([train], "cpu", frames=frames)
    assert len(streamed) == len(held) and torch.equal(streamed.ids, held.ids)
    index = torch.tensor([3, 0, 3, 1])
    for name in ("segmentation_batch", "frame_prediction_batch"):
        for a, b in zip(getattr(held, name)(index), getattr(streamed, name)(index), strict=True):
            assert a.dtype == b.dtype == torch.uint8 and torch.equal(a, b), name
    flat = torch.tensor([0, 5, len(held.frame_index) * 2 + 7, len(held.frame_index) * 4 - 1])
    for a, b in zip(held.frame_mask_batch(flat), streamed.frame_mask_batch(flat), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(held.class_counts(), streamed.class_counts())
    with pytest.raises(ValueError, match="frame 15 is not held") if frames else contextlib.nullcontext():
        streamed.gather_frames(index, [15])


def test_a_streamed_join_of_splits_is_the_held_concatenation(splits: dict[str, DecodedSplit]) -> None:
    parts = [splits["unlabeled"], splits["train"]]
    held = concat_splits([DeviceSplit(s, "cpu", frames=INPUT_FRAMES_AND_TARGET) for s in parts])
    streamed = StreamSplit(parts, "cpu", frames=INPUT_FRAMES_AND_TARGET)
    assert len(streamed) == len(held) == 6 and torch.equal(streamed.ids, held.ids)
    index = torch.tensor([5, 0, 2, 1, 3])  # across both parts, out of order
    for a, b in zip(held.frame_prediction_batch(index), streamed.frame_prediction_batch(index), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="has no masks"):
        streamed.gather_masks(index, 21)  # unlabeled has none


def test_streamed_mask_clips_are_the_held_ones_byte_for_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = []
    for n in (3, 4):  # two parts (train, unlabeled), memory-mapped as the cache and pseudo-labels are
        part = []
        for name, frames in (("inputs", 11), ("pseudo", 11), ("target", 11)):
            path = tmp_path / f"{name}{n}.npy"
            np.save(path, rng.integers(0, 49, (n, frames, 8, 12), dtype=np.uint8))
            part.append(np.load(path, mmap_mode="r"))
        arrays.append(tuple(part))
    held = MaskClips.concat([MaskClips(*(torch.from_numpy(np.array(a)) for a in part)) for part in arrays])
    streamed = StreamMaskClips(arrays, "cpu")
    assert len(streamed) == len(held) == 7
    index, use_pseudo = torch.tensor([6, 0, 3, 2, 6]), torch.tensor([True, False, True, False, False])
    pairs = [
        *zip(held.batch(index), streamed.batch(index), strict=True),  # scoring
        *zip(held.read(index), streamed.read(index), strict=True),  # what a training batch reads ahead
        *zip(with_pseudo(held.read(index), use_pseudo), with_pseudo(streamed.read(index), use_pseudo), strict=True),
    ]
    for a, b in pairs:
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.equal(held.class_counts(), streamed.class_counts())
