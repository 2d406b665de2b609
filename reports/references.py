"""The best model on val beside answers that need no training (results/references.parquet, REFERENCES_FILE): all
background (the floor), the rules on its segmenter's masks (what a model answering from them must beat) and on the
true masks (the rules' ceiling), in the words of the summary, the report and its side-by-side table."""

from __future__ import annotations

import math

import pandas as pd

from reports.schema import (
    ANSWER,
    ANSWER_BACKGROUND,
    ANSWER_BEST,
    ANSWER_UNSEEN,
    ANSWER_UNSEEN_BACKGROUND,
    IOU,
    SEGMENTER_MASKS,
    TRUE_MASKS,
    VIDEOS,
)


def times_floor(best: float, floor: float) -> str:
    """The best model against all background's score: "2.6x ", "below " (not "1.0x"), "equal to " (a model that
    answers all background, or as good as: "1.0x" read as a real score), "" where the floor is 0 or unknown (NaN)."""
    if not floor > 0:
        return ""
    return "equal to " if best == floor else "below " if best < floor else f"{best / floor:.1f}x "


def against_floor(table: pd.DataFrame | None) -> str:
    """The references table (REFERENCES_FILE) in a few words: "2.6x all background, on 20 val videos"; "" without."""
    if table is None or not len(table) or ANSWER not in table:
        return ""
    scores = dict(zip(table[ANSWER], table[IOU], strict=True))
    times = times_floor(scores.get(ANSWER_BEST, math.nan), scores.get(ANSWER_BACKGROUND, math.nan))
    videos = _videos(table)
    return f"{times}{ANSWER_BACKGROUND}, on {videos} val video{'s' * (videos != 1)}" if times else ""


def _videos(table: pd.DataFrame, answer: str = ANSWER_BEST) -> int:
    """How many val videos the answer's IoU is over (the first row's, in a table without it)."""
    counts = dict(zip(table[ANSWER], table[VIDEOS], strict=True))
    return int(counts.get(answer, table[VIDEOS].iloc[0]))


def _digits(score: float, floor: float) -> int:
    """The decimals that tell a score from all background's (4 at least): not "0.1075, below ... (0.1075)"."""
    return next((d for d in range(4, 9) if f"{score:.{d}f}" != f"{floor:.{d}f}"), 4)


def no_segmenter_text(space: str) -> str:
    """Said beside the references of a study whose model answers from no segmenter's masks: the rules were measured
    on the true masks only (their ceiling), and the comparison that tells whether learning pays is another space's."""
    return (
        f"no per-frame segmenter's masks in space {space} for the rules to answer from (what says whether learning "
        "frame 22 pays): the mask_space space trains one and sets its model beside them"
    )


def references_text(table: pd.DataFrame) -> str:
    """The references table (REFERENCES_FILE) in a sentence: "on 20 val videos: the best model 0.0573, 2.6x all
    background (0.0217); the rules on the true masks (...): copy_last 0.2766, extrapolate 0.4811"."""
    scores = dict(zip(table[ANSWER], table[IOU], strict=True))
    best, floor = scores.pop(ANSWER_BEST, math.nan), scores.pop(ANSWER_BACKGROUND, math.nan)
    unseen, unseen_floor = scores.pop(ANSWER_UNSEEN, None), scores.pop(ANSWER_UNSEEN_BACKGROUND, math.nan)
    times = times_floor(best, floor)
    videos = _videos(table)
    digits = _digits(best, floor)
    text = (
        f"on {videos} val video{'s' * (videos != 1)}: {ANSWER_BEST} {best:.{digits}f}, {times}{ANSWER_BACKGROUND} "
        f"({floor:.{digits}f})"
    )
    if unseen is not None:  # the study scored its trials on the first --val-videos: the others chose nothing
        others, apart = _videos(table, ANSWER_UNSEEN), _digits(unseen, unseen_floor)
        text += (
            f"; on the {others} other val video{'s' * (others != 1)}, which no trial was scored on (--val-videos "
            f"{videos}), {ANSWER_BEST} {unseen:.{apart}f}, {times_floor(unseen, unseen_floor)}{ANSWER_BACKGROUND} "
            f"there ({unseen_floor:.{apart}f}): a score its choice among the trials did not flatter"
        )
    for masks, what in (
        (SEGMENTER_MASKS, "what it must beat"),
        (TRUE_MASKS, "a ceiling: what they score from a perfect segmenter's masks"),
    ):
        rules = [
            f"{answer.removesuffix(masks).strip()} {iou:.4f}"
            for answer, iou in scores.items()
            if answer.endswith(masks)
        ]
        text += f"; the rules {masks} ({what}): {', '.join(rules)}" if rules else ""
        if masks == SEGMENTER_MASKS and rules:  # the verdict, as the summary says it
            mine = {a.removesuffix(masks).strip(): iou for a, iou in scores.items() if a.endswith(masks)}
            above, tied = [r for r, s in mine.items() if s > best], [r for r, s in mine.items() if s == best]
            text += (
                f" ({', '.join(above)} above it: tune.predict --rule {above[0]} submits its answer)"
                if above
                else f" (it ties {', '.join(tied)})"
                if tied
                else " (it beats them)"
            )
            if all(math.isclose(s, floor) for s in mine.values()):  # masks with nothing the rules could move
                text += (
                    "; on its segmenter's masks the rules score as all background: the segmenter finds (next to) no "
                    "objects, and a better one comes first"
                )
            elif all(s < floor for s in mine.values()):
                text += (
                    "; on its segmenter's masks the rules score below all background: the segmenter marks objects "
                    "where there are none, or of the wrong class, and a better one comes first"
                )
    if best < floor:  # a model below doing nothing reads as a broken metric
        text += (
            ". The metric averages the IoU of every class in the true or the predicted masks: each class predicted "
            "where it is not lowers it, so predicting background everywhere can score more than a model"
        )
    return text
