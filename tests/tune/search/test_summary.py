"""The study's summary, from results written by hand: the rules it names as better than the best trial, the lines of
its failed trials."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from tune.search.config import SearchConfig
from tune.search.failures import ENDED_UNDER_IT
from tune.search.stages import stage_failure_text
from tune.search.summary import failures_text, rule_scores, rules_above, split_text, unbeaten_text


def test_the_summary_names_the_rules_that_scored_above_the_best_trial_on_its_own_masks() -> None:
    epochs = pd.DataFrame(
        {
            "trial_id": ["a", "a", "b"],
            "val_iou": [0.20, 0.25, 0.30],
            "val_copy_last_iou": [0.15, 0.15, 0.15],
            "val_extrapolate_iou": [0.26, 0.27, 0.40],  # b's segmenter is another one: its rule is not a's
        }
    )
    best = pd.Series({"trial_id": "a", "best_metric": 0.25})
    assert rules_above(epochs, best) == {"extrapolate": 0.27}
    assert rules_above(epochs, pd.Series({"trial_id": "a", "best_metric": 0.28})) == {}
    unet = pd.DataFrame({"trial_id": ["a"], "val_iou": [0.01]})  # a model that does not answer from masks
    assert rules_above(unet, best) == {}
    # every rule's score on the best trial's masks, for the summary's line when the trial beats them all
    assert rule_scores(epochs, best) == {"copy_last": 0.15, "extrapolate": 0.27}
    assert rule_scores(unet, best) == {}


def test_a_best_trial_that_ties_a_rule_is_not_said_to_beat_it() -> None:
    """On a tiny set every answer can be all background: the model and the rules score exactly the same."""
    best = pd.Series({"trial_id": "a", "best_metric": 0.16125})
    assert unbeaten_text("mask_predictor", best, {"copy_last": 0.16125, "extrapolate": 0.1}) == (
        "the best mask_predictor (a) ties copy_last, and no rule beats it, on the same val masks (its segmenter's): "
        "copy_last 0.1613 (+0.0000), extrapolate 0.1000 (+0.0612)"
    )
    assert unbeaten_text("mask_predictor", best, {"copy_last": 0.1, "extrapolate": 0.1}).startswith(
        "the best mask_predictor (a) beats every rule on the same val masks (its segmenter's): copy_last 0.1000 (+0.0612)"
    )
    # a margin the 4 digits round away (0.041030 against 0.041028, a few hundred pixels) was "beats ... (+0.0000)"
    hair = unbeaten_text(
        "object_dynamics", pd.Series({"trial_id": "b", "best_metric": 0.041030}), {"extrapolate": 0.041028}
    )
    assert hair == (
        "the best object_dynamics (b) beats every rule by a hair (as good as a tie: more val videos tell them apart) on "
        "the same val masks (its segmenter's): extrapolate 0.0410 (+2.0e-06)"
    )


def test_the_summary_counts_the_trials_that_split_their_batches() -> None:
    epochs = pd.DataFrame({"trial_id": ["a", "a", "b", "c"], "micro_batches": [1.0, 2.0, 4.0, 1.0]})
    assert split_text(epochs) == (
        "2 trials ran out of GPU memory on a whole batch and took each batch in parts since (gradients accumulated; "
        "slower): a larger --gpus-per-trial gives a trial more memory"
    )
    assert split_text(epochs[epochs["trial_id"] == "c"]) is None
    assert split_text(epochs.drop(columns="micro_batches")) is None  # a study from before they were recorded


def _study(tmp_path: Path, retries: int) -> Any:
    """What the lines read of a study: its folder, samples and settings (--retries)."""
    cfg = SearchConfig(out=str(tmp_path), name="s", samples=4, retries=retries)
    return SimpleNamespace(cfg=cfg, folder=cfg.experiment_dir, samples=4)


@pytest.mark.parametrize("retries", [0, 2])
def test_trials_whose_process_ended_say_what_retries_would_do_or_that_they_are_used_up(
    tmp_path: Path, retries: int
) -> None:
    """Without --retries, the summary and a stage's stop name it; with it, they say it was used up, not to use it."""
    ended = f"its process on 10.0.0.7 {ENDED_UNDER_IT}; Ray: The actor died unexpectedly"
    trials = pd.DataFrame(
        {"trial_id": ["a", "b", "c"], "stage": "main", "status": ["failed", "failed", "completed"]}
        | {"failure": [ended, "ValueError: bad width 3", None]}
    )
    lines = failures_text(_study(tmp_path, retries), trials)
    again = (
        "; --retries N runs trials whose process ended again, from their last checkpoint (a study's, or a --resume's "
        "for the trials it has left)"
    )
    assert lines == [
        f"  failed: 1 with {ended} (a{again if not retries else '; --retries 2 used up'})",
        "  failed: 1 with ValueError: bad width 3 (b)",
    ]
    stop = stage_failure_text(_study(tmp_path, retries), [{"error": ended, "file": "e.txt"}] * 3, left=1)
    assert stop.startswith(f"stopped: its first 3 trials all failed with the same error before any reported a result: "
                           f"{ended} (traceback: e.txt); where their nodes left the cluster, resume as it is: ")  # fmt: skip
    assert stop.endswith("; where it was memory (the OOM killer), start the study again under another --name with "
                         "fewer trials at once (--max-concurrent) or smaller ones"
                         + (again if not retries else " (each ran 3 times: --retries 2)"))  # fmt: skip
