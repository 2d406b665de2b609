from __future__ import annotations

import math

import pytest
import torch

from data.metric import IoUMeter, competition_iou, per_class_iou


def test_class_absent_from_both_sides_is_left_out_of_the_mean() -> None:
    # class 0: 1/1; class 1: tp 1, fp 1 -> 1/2; class 2: tp 1, fn 1 -> 1/2; classes 3..48 absent
    preds = torch.tensor([[[0, 1], [1, 2]]])
    target = torch.tensor([[[0, 1], [2, 2]]])
    assert competition_iou(preds, target) == pytest.approx((1 + 0.5 + 0.5) / 3)
    per_class = per_class_iou(preds, target)
    assert per_class[:3].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert torch.isnan(per_class[3:]).all()


def test_background_counts_like_any_class() -> None:
    # all background predicted; the target has one object pixel of class 7
    preds = torch.zeros(1, 2, 2, dtype=torch.long)
    target = torch.tensor([[[0, 0], [0, 7]]])
    # class 0: tp 3, fp 1 -> 3/4; class 7: tp 0, fn 1 -> 0
    assert competition_iou(preds, target) == pytest.approx((0.75 + 0.0) / 2)


def test_class_only_in_the_prediction_scores_zero() -> None:
    preds = torch.tensor([[[0, 5]]])
    target = torch.tensor([[[0, 0]]])
    # class 0: tp 1, fn 1 -> 1/2; class 5: fp 1 -> 0
    assert competition_iou(preds, target) == pytest.approx(0.25)


def test_score_is_over_the_stacked_set_not_a_mean_over_videos() -> None:
    preds = torch.tensor([[[1, 1]], [[0, 0]]])
    target = torch.tensor([[[1, 1]], [[0, 1]]])
    stacked = competition_iou(preds, target)
    # stacked: class 0: tp 1, fp 1 -> 1/2... ; class 1: tp 2, fn 1 -> 2/3
    assert stacked == pytest.approx((0.5 + 2 / 3) / 2)
    per_video_mean = (competition_iou(preds[:1], target[:1]) + competition_iou(preds[1:], target[1:])) / 2
    assert not math.isclose(stacked, per_video_mean)


def test_meter_over_batches_equals_the_whole_set() -> None:
    gen = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 49, (6, 16, 24), generator=gen)
    target = torch.randint(0, 49, (6, 16, 24), generator=gen)
    target[:, :8] = preds[:, :8]
    meter = IoUMeter()
    for k in range(0, 6, 2):
        meter.update(preds[k : k + 2], target[k : k + 2])
    assert meter.compute() == pytest.approx(competition_iou(preds, target))
    meter.reset()
    meter.update(target, target)
    assert meter.compute() == pytest.approx(1.0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        competition_iou(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class ids"):
        competition_iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_the_meter_refuses_ids_that_are_no_class() -> None:
    meter = IoUMeter()
    meter.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), 49))
    with pytest.raises(ValueError, match=r"16 predicted or target pixels are not class ids in 0\.\.48"):
        meter.compute()
    meter.reset()
    meter.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long))
    assert meter.compute() == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_are_torchmetrics_jaccard_index_bit_for_bit(seed: int) -> None:
    """The competition's definition is torchmetrics' MulticlassJaccardIndex: the project's own confusion matrix
    gives the same float32 numbers, whole and batch by batch, with classes absent from both sides."""
    from torchmetrics.classification import MulticlassJaccardIndex
    from torchmetrics.functional.classification import multiclass_jaccard_index

    gen = torch.Generator().manual_seed(seed)
    classes = torch.randperm(49, generator=gen)[: 5 + 10 * seed]  # the rest absent from both sides
    preds = classes[torch.randint(0, len(classes), (8, 20, 30), generator=gen)]
    target = classes[torch.randint(0, len(classes), (8, 20, 30), generator=gen)]
    target[:, :12] = preds[:, :12]
    reference = multiclass_jaccard_index(preds, target, num_classes=49, average="macro")
    assert competition_iou(preds, target) == float(reference)
    per_class = multiclass_jaccard_index(preds, target, num_classes=49, average="none")
    ours = per_class_iou(preds, target)
    present = ~torch.isnan(ours)
    assert set(present.nonzero().flatten().tolist()) == set(classes.tolist())
    assert torch.equal(ours[present], per_class[present])
    meter, theirs = IoUMeter(), MulticlassJaccardIndex(num_classes=49, average="macro")
    for k in range(0, 8, 3):
        meter.update(preds[k : k + 3], target[k : k + 3])
        theirs.update(preds[k : k + 3], target[k : k + 3])
    assert meter.compute() == float(theirs.compute())


def test_competition_iou_refuses_ids_that_are_no_class() -> None:
    with pytest.raises(ValueError, match=r"4 predicted or target pixels are not class ids in 0\.\.48"):
        competition_iou(torch.full((1, 2, 2), -1), torch.zeros(1, 2, 2, dtype=torch.long))
