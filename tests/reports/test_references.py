"""The best model beside answers that need no training, in words: against all background, the rules on its
segmenter's masks (with the verdict) and on the true masks."""

from __future__ import annotations

import pandas as pd

from reports import schema
from reports.references import references_text


def test_the_references_sentence_sets_the_best_model_against_the_floor_and_the_rules_on_true_masks() -> None:
    answers = [schema.ANSWER_BEST, schema.ANSWER_BACKGROUND, f"copy_last {schema.TRUE_MASKS}", f"x {schema.TRUE_MASKS}"]
    table = pd.DataFrame({schema.ANSWER: answers, schema.IOU: [0.06, 0.02, 0.28, 0.48], schema.VIDEOS: 20})
    assert references_text(table) == (
        "on 20 val videos: the best model 0.0600, 3.0x all background (0.0200); the rules on the true masks (a "
        "ceiling: what they score from a perfect segmenter's masks): copy_last 0.2800, x 0.4800"
    )
    # a model that answers from a segmenter's masks: the rules on them first (what it must beat), then the ceiling
    mine = pd.DataFrame({schema.ANSWER: [f"copy_last {schema.SEGMENTER_MASKS}"], schema.IOU: [0.05], schema.VIDEOS: 20})
    assert references_text(pd.concat([table.iloc[:2], mine, table.iloc[2:]])) == (
        "on 20 val videos: the best model 0.0600, 3.0x all background (0.0200); the rules on its segmenter's masks "
        "(what it must beat): copy_last 0.0500 (it beats them); the rules on the true masks (a ceiling: what they score from a perfect "
        "segmenter's masks): copy_last 0.2800, x 0.4800"
    )
    # an all-background truth (a floor of 0) has no ratio; no rules, no second part
    floor = table.iloc[:2].copy()
    floor[schema.IOU], floor[schema.VIDEOS] = [0.5, 0.0], 1
    assert references_text(floor) == "on 1 val video: the best model 0.5000, all background (0.0000)"
    # a model under the floor is said to be (a ratio of 0.97 read "1.0x")
    under = table.iloc[:2].copy()
    under[schema.IOU] = [0.0315, 0.0326]
    assert references_text(under) == (
        "on 20 val videos: the best model 0.0315, below all background (0.0326). The metric averages the IoU of every "
        "class in the true or the predicted masks: each class predicted where it is not lowers it, so predicting "
        "background everywhere can score more than a model"
    )


def test_a_best_model_below_the_background_is_shown_with_the_digits_that_tell_them_apart() -> None:
    table = pd.DataFrame(
        {
            schema.ANSWER: [schema.ANSWER_BEST, schema.ANSWER_BACKGROUND],
            schema.IOU: [0.107512, 0.107538],
            schema.VIDEOS: [2, 2],
        }
    )  # both 0.1075 at 4 digits: "the best model 0.1075, below all background (0.1075)"
    assert references_text(table).startswith(
        "on 2 val videos: the best model 0.10751, below all background (0.10754). "
    )
    table[schema.IOU] = [0.2, 0.1]
    assert references_text(table) == "on 2 val videos: the best model 0.2000, 2.0x all background (0.1000)"


def test_the_verdict_against_the_rules_on_its_segmenters_masks_is_said_as_the_summary_says_it() -> None:
    """The report's references gave the rules' numbers and no verdict (the summary alone said beats, ties, or which
    rule to submit); a model equal to all background read "1.0x all background"."""

    def said(best: float, copy_last: float, extrapolate: float) -> str:
        answers = [schema.ANSWER_BEST, schema.ANSWER_BACKGROUND]
        answers += [f"copy_last {schema.SEGMENTER_MASKS}", f"extrapolate {schema.SEGMENTER_MASKS}"]
        table = pd.DataFrame(
            {schema.ANSWER: answers, schema.IOU: [best, 0.01, copy_last, extrapolate], schema.VIDEOS: 4}
        )
        return references_text(table)

    assert said(0.05, 0.04, 0.06).endswith(
        "copy_last 0.0400, extrapolate 0.0600 (extrapolate above it: tune.predict --rule extrapolate submits its answer)"
    )
    assert said(0.05, 0.04, 0.05).endswith("(it ties extrapolate)")
    assert said(0.05, 0.04, 0.03).endswith("(it beats them)")
    floor = pd.DataFrame(
        {schema.ANSWER: [schema.ANSWER_BEST, schema.ANSWER_BACKGROUND], schema.IOU: [0.05, 0.05], schema.VIDEOS: 4}
    )
    assert references_text(floor) == "on 4 val videos: the best model 0.0500, equal to all background (0.0500)"


def test_rules_on_the_segmenters_masks_at_all_background_say_the_segmenter_holds_it_back() -> None:
    """Every answer at all background, its verdict a tie: the segmenter's masks are empty, the thing to fix first."""
    answers = [schema.ANSWER_BEST, schema.ANSWER_BACKGROUND]
    answers += [f"copy_last {schema.SEGMENTER_MASKS}", f"extrapolate {schema.SEGMENTER_MASKS}"]
    table = pd.DataFrame({schema.ANSWER: answers, schema.IOU: [0.16, 0.16, 0.16, 0.16], schema.VIDEOS: 1})
    assert references_text(table).endswith(
        "(it ties copy_last, extrapolate); on its segmenter's masks the rules score as all background: the segmenter "
        "finds (next to) no objects, and a better one comes first"
    )
    table[schema.IOU] = [0.16, 0.16, 0.05, 0.04]  # below: its masks hold objects, in the wrong places
    assert references_text(table).endswith(
        "the rules score below all background: the segmenter marks objects where there are none, or of the wrong "
        "class, and a better one comes first"
    )
    table[schema.IOU] = [0.16, 0.1, 0.12, 0.11]  # its masks hold objects the rules move: nothing said of it
    assert "the segmenter" not in references_text(table)
