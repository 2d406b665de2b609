"""The study's summary, from results written by hand: the rules it names as better than the best trial."""

from __future__ import annotations

import pandas as pd

from tune.search.summary import rule_scores, rules_above, split_text, unbeaten_text


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
        "the best mask_predictor (a) ties copy_last, and no rule beats it, on the same val masks: "
        "copy_last 0.1613 (+0.0000), extrapolate 0.1000 (+0.0612)"
    )
    assert unbeaten_text("mask_predictor", best, {"copy_last": 0.1, "extrapolate": 0.1}).startswith(
        "the best mask_predictor (a) beats every rule on the same val masks: copy_last 0.1000 (+0.0612)"
    )


def test_the_summary_counts_the_trials_that_split_their_batches() -> None:
    epochs = pd.DataFrame({"trial_id": ["a", "a", "b", "c"], "micro_batches": [1.0, 2.0, 4.0, 1.0]})
    assert split_text(epochs) == (
        "2 trials ran out of GPU memory on a whole batch and took each batch in parts since (gradients accumulated; "
        "slower): a larger --gpus-per-trial gives a trial more memory"
    )
    assert split_text(epochs[epochs["trial_id"] == "c"]) is None
    assert split_text(epochs.drop(columns="micro_batches")) is None  # a study from before they were recorded
