"""benchmarks/dynamics.py on the generated root: its rule row is the project's rule (extrapolate_masks) to the
digit, and the learned correction trains on the train videos' tracks and is scored beside it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.dynamics import main
from data.cache import decode_split
from data.classes import INPUT_FRAMES, TARGET_FRAME
from data.metric import competition_iou
from models.motion import extrapolate_masks


def test_the_table_scores_the_rule_as_the_pipelines_do_and_a_learned_correction_beside_it(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.md"
    args = ["--data", str(synth_root), "--cache", str(tmp_path / "cache"), "--train-sizes", "2", "8", "99"]
    args += ["--more-train", str(synth_root)]  # its 4 train videos once more: 8 in the pool
    assert main([*args, "--out", str(out)]) == 0
    table = out.read_text()
    scores = {name.strip(): float(value) for name, value in re.findall(r"^\| (.+?) \| (\d\.\d{4}) \|$", table, re.M)}
    assert list(scores) == [
        "copy last (mask 11)",
        "the rule (extrapolate)",
        *(
            f"rule + learned correction, {n} train videos ({k} objects)"
            for n, k in re.findall(r"correction, (\d) train videos \((\d+) objects", table)
        ),
        "rigid ceiling (each object moved by its true move)",
    ]
    assert len(scores) == 5  # 99 train videos: more than the roots have, left out
    assert "correction, 8 train videos" in table
    val = decode_split(synth_root, "val", progress=False)
    assert val.masks is not None
    masks = torch.from_numpy(np.array(val.masks)).long()
    rule = competition_iou(extrapolate_masks(masks[:, list(INPUT_FRAMES)]), masks[:, TARGET_FRAME])
    assert scores["the rule (extrapolate)"] == pytest.approx(rule, abs=5e-5)
    assert scores["rigid ceiling (each object moved by its true move)"] >= scores["the rule (extrapolate)"]
