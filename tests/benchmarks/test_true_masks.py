"""benchmarks/true_masks.py on the generated root: the predictor trains on the true masks of frames 1-11 and is
scored on them, beside the rules on the same masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.true_masks import main
from data.cache import decode_split
from data.metric import competition_iou
from models.motion import extrapolate_masks
from tune.training.checkpoints import load_checkpoint


def test_the_predictor_trains_and_is_scored_on_the_true_masks(synth_root: Path, tmp_path: Path) -> None:
    settings = ["hid_s=4", "hid_t=8", "n_t=2", "batch_size=2", "compile=false", "input_scale=0.5", "prior=motion"]
    assert (
        main(
            ["--data", str(synth_root), "--out", str(tmp_path), "--epochs", "1", "--device", "cpu"]
            + [f"--set={s}" for s in settings]
        )
        == 0
    )
    val = decode_split(synth_root, "val", progress=False)
    truth = torch.from_numpy(np.array(val.masks)).long()
    stored = np.load(tmp_path / "pseudo" / "val.npy")
    assert np.array_equal(stored, np.asarray(val.masks)[:, :11])
    assert np.array_equal(np.load(tmp_path / "pseudo" / "val_ids.npy"), val.ids)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    metrics = state["history"][-1]
    assert metrics["val_extrapolate_iou"] == competition_iou(extrapolate_masks(truth[:, :11]), truth[:, 21])
    assert metrics["val_copy_last_iou"] == competition_iou(truth[:, 10], truth[:, 21])
    assert state["pipeline"] == {}


def test_a_root_without_masks_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing" in err and len(err.strip().splitlines()) == 1
