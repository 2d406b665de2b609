"""After a search: the best model's per-class IoU on val and a small gallery, written next to the
results so that the report (which reads files only) can show them.

OUT/NAME/results/per_class_iou.parquet: class_id, class_name, iou (NaN where a class is absent from both
sides), target_pixels, predicted_pixels. OUT/NAME/results/gallery/: PNGs per val video (input frames 1,
6, 11; the true mask 22; the predicted mask 22; the true mask 11, which is what copy-last answers at
best) and gallery.parquet listing them. OUT/NAME/results/references.parquet: the best model's competition IoU
beside all-background's and the rules' on the true masks, on the same videos (reports.schema, REFERENCES_FILE),
and, for a study scored on the first --val-videos, the best model's and all-background's on the other val videos.
OUT/NAME/submission.pt: the best checkpoint's masks of the hidden split, as `tune.predict --split hidden` writes
them, and OUT/NAME/results/submission.json what made it (SUBMISSION_INFO_FILE).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from data.cache import OnError, decode_split
from data.classes import LAST_INPUT_FRAME, NUM_CLASSES, TARGET_FRAME, class_names, class_palette, colour_masks
from data.files import atomic_write, error_line
from data.layout import has_split
from data.metric import competition_iou, per_class_iou
from reports.checkpoints import best_checkpoint
from reports.records import read_submission
from reports.schema import (
    ANSWER,
    ANSWER_BACKGROUND,
    ANSWER_BEST,
    ANSWER_UNSEEN,
    ANSWER_UNSEEN_BACKGROUND,
    CHECKPOINT,
    CLASS_ID,
    CLASS_IDS,
    CLASS_NAME,
    COLOUR,
    FILE,
    GALLERY_DIR,
    GALLERY_FILE,
    IOU,
    LABEL,
    ORDER,
    PER_CLASS_FILE,
    PREDICTED_PIXELS,
    REFERENCES_FILE,
    RESULTS_DIR,
    RULE_COPY_LAST,
    SEGMENTER_MASKS,
    SUBMISSION_FILE,
    SUBMISSION_INFO_FILE,
    TARGET_PIXELS,
    TRUE_MASKS,
    VIDEO_ID,
    VIDEOS,
)
from tune.search.results import write_parquet
from tune.training.checkpoints import torch_save
from tune.training.prediction import RULE_FRAMES, RULES, predict, predict_rules, rule_source

GALLERY_FRAMES = (0, 5, 10)
# the gallery's last picture: the true mask 11 (what copy_last answers at best), or, for a model answering from a
# segmenter's masks, that segmenter's mask 11
TRUE_LAST = "mask 11 (copy_last's answer, at best)"
SEGMENTER_LAST = "its segmenter's mask 11 (what it answers from)"


def evaluate_best(
    experiment: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    *,
    videos: int = 4,
    device: str = "auto",
    on_error: OnError = "raise",
    val_videos: int | None = None,
) -> Path:
    """Write the per-class IoU and the gallery of the study's best checkpoint (on the first `val_videos` val
    videos where given, as its trials were scored); returns the results folder."""
    results = Path(experiment) / RESULTS_DIR
    checkpoint = best_checkpoint(experiment)
    masks, ids, iou = predict(checkpoint, data_root, "val", device=device, on_error=on_error, first=val_videos)
    assert iou is not None  # val has masks
    whole = decode_split(data_root, "val", progress=False, on_error=on_error)
    val = whole.head(val_videos)
    assert val.masks is not None
    target = torch.from_numpy(np.array(val.masks[:, TARGET_FRAME]))
    scores = per_class_iou(masks.long(), target.long())
    names = class_names()
    table = pd.DataFrame(
        {
            CLASS_ID: range(NUM_CLASSES),
            CLASS_NAME: names,
            IOU: scores.numpy(),
            TARGET_PIXELS: torch.bincount(target.reshape(-1).long(), minlength=NUM_CLASSES).numpy(),
            PREDICTED_PIXELS: torch.bincount(masks.reshape(-1).long(), minlength=NUM_CLASSES).numpy(),
            COLOUR: ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in class_palette()],
        }
    )
    table[CHECKPOINT] = str(checkpoint)
    write_parquet(table, results / PER_CLASS_FILE)
    answers: dict[str, float | None] = {ANSWER_BEST: iou}  # the IoU the prediction scored
    last = (TRUE_LAST, val.masks[:, LAST_INPUT_FRAME])  # the gallery's last picture (or its segmenter's, below)
    if rule_source(checkpoint) != str(checkpoint):  # the segmenter's it answers from: each rule on its masks (the
        ruled, _ = predict_rules(  # epochs' at its best epoch, on the same masks)
            checkpoint, data_root, "val", tuple(RULES), device=device, on_error=on_error, first=val_videos
        )
        answers |= {f"{name} {SEGMENTER_MASKS}": iou for name, (_, iou) in ruled.items()}
        last = (SEGMENTER_LAST, ruled[RULE_COPY_LAST][0].numpy())
    answers.update(_references(val.masks, target))
    counts = dict.fromkeys(answers, len(target))
    _write_references(answers, counts, results)

    folder = results / GALLERY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in _gallery_rows(val.masks, videos):
        vid = int(ids[row])
        pictures = {f"frame {t + 1}": np.asarray(val.frames[row, t]) for t in GALLERY_FRAMES}
        shown = {  # the class-id masks, coloured below
            "true mask 22": np.asarray(val.masks[row, TARGET_FRAME]),
            "predicted mask 22": masks[row].numpy(),
            last[0]: np.asarray(last[1][row]),
        }
        pictures |= {label: colour_masks(mask) for label, mask in shown.items()}
        for order, (label, picture) in enumerate(pictures.items()):
            name = f"video_{vid}_{order}.png"
            Image.fromarray(picture).save(folder / name)
            classes = np.unique(shown[label]).tolist() if label in shown else []
            rows.append({VIDEO_ID: vid, ORDER: order, LABEL: label, FILE: f"{GALLERY_DIR}/{name}", CLASS_IDS: classes})
    write_parquet(pd.DataFrame(rows), results / GALLERY_FILE)
    if len(whole) > len(val):  # trials scored on the first --val-videos: the best on the others too (last: the longest)
        try:
            answers[ANSWER_UNSEEN] = predict(
                checkpoint, data_root, "val", device=device, on_error=on_error, skip=len(val)
            )[2]
        except (OSError, ValueError, RuntimeError) as err:  # what was written above stays
            print(
                f"no score of the best model on the val videos after the first {len(val)}: {error_line(err)}",
                file=sys.stderr,
            )
            return results
        assert whole.masks is not None  # (val's are)
        rest = torch.from_numpy(np.array(whole.masks[len(val) :, TARGET_FRAME])).long()
        answers[ANSWER_UNSEEN_BACKGROUND] = competition_iou(torch.zeros_like(rest), rest)
        counts |= dict.fromkeys((ANSWER_UNSEEN, ANSWER_UNSEEN_BACKGROUND), len(whole) - len(val))
        _write_references(answers, counts, results)
    return results


def _write_references(answers: dict[str, float | None], counts: dict[str, int], results: Path) -> None:
    """The references table (REFERENCES_FILE): each answer's IoU, over `counts` val videos."""
    frame = pd.DataFrame({ANSWER: list(answers), IOU: list(answers.values()), VIDEOS: list(counts.values())})
    write_parquet(frame, results / REFERENCES_FILE)


def write_submission(
    experiment: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    *,
    hidden: str | os.PathLike[str] | None = None,
    device: str = "auto",
    on_error: OnError = "raise",
) -> Path | None:
    """Write the study's submission (SUBMISSION_FILE): its best checkpoint's masks of the hidden split, with
    what made them in SUBMISSION_INFO_FILE; None, writing nothing, for data with no hidden split. An earlier
    submission of another checkpoint is removed first, so that none is left from another best checkpoint if this
    one fails; one of the same checkpoint (a resume that trained nothing better) is kept until it is replaced: a
    failure to load that checkpoint again (a plugin edited since) does not lose it."""
    folder = Path(experiment)
    out, info = folder / SUBMISSION_FILE, folder / RESULTS_DIR / SUBMISSION_INFO_FILE
    earlier, kept = read_submission(folder), False
    try:
        checkpoint = best_checkpoint(experiment) if has_split(data_root, "hidden", hidden=hidden) else None
        kept = checkpoint is not None and earlier is not None and earlier[CHECKPOINT] == str(checkpoint)
    finally:
        if not kept:
            out.unlink(missing_ok=True)
            info.unlink(missing_ok=True)
    if checkpoint is None:
        return None
    masks, _, _ = predict(checkpoint, data_root, "hidden", hidden=hidden, device=device, on_error=on_error)
    torch_save(masks, out)
    with atomic_write(info) as tmp:
        tmp.write_text(json.dumps({CHECKPOINT: str(checkpoint), VIDEOS: len(masks)}, indent=1))
    return out


def _references(masks: np.ndarray, target: torch.Tensor, chunk: int = 64) -> dict[str, float]:
    """Answers that need no training, scored on `target` (mask 22 of the videos of `masks`, (N, T, H, W)):
    every pixel background, and each rule (tune.predict --rule) on the true masks, a chunk of videos at a time."""
    found = {ANSWER_BACKGROUND: competition_iou(torch.zeros_like(target, dtype=torch.long), target.long())}
    for name, rule in RULES.items():
        answer = torch.cat(
            [
                rule(torch.from_numpy(np.array(masks[start : start + chunk, list(RULE_FRAMES)]))).to(torch.uint8)
                for start in range(0, len(masks), chunk)
            ]
        )
        found[f"{name} {TRUE_MASKS}"] = competition_iou(answer.long(), target.long())
    return found


def _gallery_rows(masks: np.ndarray, count: int) -> list[int]:
    """The val videos with the most objects in mask 22, as the most telling examples."""
    objects = [len(np.unique(masks[k, TARGET_FRAME])) for k in range(len(masks))]
    return sorted(np.argsort(objects, kind="stable")[::-1][:count].tolist())
