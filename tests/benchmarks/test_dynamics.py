"""benchmarks/dynamics.py on the generated root: its rule row is the project's rule (extrapolate_masks) to the
digit, and the platform's object-dynamics model trains on the train videos' tracks (true masks, or a segmenter's)
and is scored beside it at each train size."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.args import segmenter_checkpoint
from benchmarks.dynamics import main
from data.cache import decode_split
from data.classes import INPUT_FRAMES, TARGET_FRAME
from data.metric import competition_iou
from models.motion import extrapolate_masks
from reports.checkpoints import best_checkpoint
from reports.schema import STUDY_FILE, ranked
from tune.train import main as train
from tune.training.checkpoints import load_checkpoint, load_model
from tune.training.tasks import segment_frames


def _scores(table: str) -> dict[str, float]:
    return {name.strip(): float(value) for name, value in re.findall(r"^\| (.+?) \| (\d\.\d{4}) \|$", table, re.M)}


def _true_val_masks(root: Path) -> tuple[torch.Tensor, float]:
    """The val split's true masks (N, 22, H, W) and the rule's score on them."""
    val = decode_split(root, "val", progress=False)
    assert val.masks is not None
    masks = torch.from_numpy(np.array(val.masks)).long()
    return masks, competition_iou(extrapolate_masks(masks[:, list(INPUT_FRAMES)]), masks[:, TARGET_FRAME])


@pytest.mark.slow
def test_the_table_scores_the_rule_as_the_pipelines_do_and_the_model_beside_it(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.md"
    args = ["--data", str(synth_root), "--cache", str(tmp_path / "cache"), "--train-sizes", "2", "8", "99"]
    args += ["--more-train", str(synth_root), "--samples", "16", "--epochs", "2", "--set", "width=8"]  # 8 in the pool
    assert main([*args, "--out", str(out)]) == 0
    table = out.read_text()
    scores = _scores(table)
    sizes = re.findall(r"object_dynamics, (\d+) train videos \(\d+ s\)", table)
    assert sizes == ["2", "8"]  # 99 train videos: more than the roots have, left out
    assert list(scores) == [
        "copy last (mask 11)",
        "the rule (extrapolate)",
        *(name for name in scores if name.startswith("object_dynamics")),
        "rigid ceiling (each object moved by its true move)",
    ]
    assert len(scores) == 5 and "4 val videos" not in table and "(2 val videos, true masks)" in table
    _, rule = _true_val_masks(synth_root)
    assert scores["the rule (extrapolate)"] == pytest.approx(rule, abs=5e-5)
    assert scores["rigid ceiling (each object moved by its true move)"] >= scores["the rule (extrapolate)"]


@pytest.mark.filterwarnings("ignore:object_dynamics. no object:UserWarning")  # an untrained segmenter finds none
def test_on_a_segmenters_masks_the_rules_rows_are_the_rules_on_its_masks(
    synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segmenter = tmp_path / "seg"
    sets = ["width=4", "depth=2", "batch_size=2", "eval_batch_size=2", "input_scale=0.5"]
    assert train(["--model", "frame_segmenter", "--data", str(synth_root), "--out", str(segmenter), "--epochs", "1",
                  "--device", "cpu", "--quiet", *(x for s in sets for x in ("--set", s))]) == 0  # fmt: skip
    args = ["--data", str(synth_root), "--segmenter", str(segmenter / "checkpoint.pt"), "--train-sizes", "4"]
    assert main([*args, "--samples", "8", "--epochs", "1", "--set", "width=8"]) == 0
    printed = capsys.readouterr().out
    assert "(2 val videos, a segmenter's masks)" in printed
    assert "tracks of 4 train and 2 val videos (a segmenter's masks)" in printed  # its unlabeled ones took as train
    assert main([*args[:-1], "6", "--samples", "8", "--epochs", "1", "--set", "width=8", "--unlabeled", "all"]) == 0
    more = capsys.readouterr().out  # asked: after the train videos, as the space trains, counted by --train-sizes
    assert "tracks of 4 train (and 2 unlabeled) and 2 val videos" in more and "object_dynamics, 6 train videos" in more
    scores = _scores(printed)
    # an untrained segmenter at one epoch: its masks are all or nearly all background, and so is every answer
    masks, rule = _true_val_masks(synth_root)
    truth = competition_iou(masks[:, 10], masks[:, TARGET_FRAME])
    assert scores["copy last (mask 11)"] != pytest.approx(truth, abs=1e-4)  # not the true mask 11's copy-last
    assert scores["the rule (extrapolate)"] != pytest.approx(rule, abs=1e-4)  # nor the rule on the true masks
    run, model = load_model(segmenter / "checkpoint.pt")  # the rules' rows on its masks, to the digit
    val = decode_split(synth_root, "val", progress=False)
    seg = torch.from_numpy(segment_frames(run, model, val.frames, INPUT_FRAMES, "cpu")).long()
    target = masks[:, TARGET_FRAME]
    assert scores["copy last (mask 11)"] == pytest.approx(competition_iou(seg[:, -1], target), abs=5e-5)
    assert scores["the rule (extrapolate)"] == pytest.approx(competition_iou(extrapolate_masks(seg), target), abs=5e-5)
    assert len(scores) == 4


def test_the_segmenter_may_be_given_as_tune_predict_takes_a_checkpoint(dynamics_study: Path) -> None:
    """--segmenter (benchmarks.dynamics, rules, quality) took a frame_segmenter's checkpoint file alone: a study folder,
    a trial's checkpoint folder or a dynamics model's checkpoint (tune.predict takes each) failed. Each now names the
    segmenter its masks come from."""
    trials = pd.read_parquet(dynamics_study / "results" / "trials.parquet")
    segmenter = Path(ranked(trials, "segmenter")["checkpoint"].iloc[0])
    assert load_model(segmenter)[0].model == "frame_segmenter"  # the segmenter stage's best, which dynamics trains on
    assert segmenter_checkpoint(dynamics_study) == segmenter  # the study's best answers from it
    assert segmenter_checkpoint(best_checkpoint(dynamics_study).parent) == segmenter  # its checkpoint folder
    assert segmenter_checkpoint(best_checkpoint(dynamics_study)) == segmenter  # the dynamics model's checkpoint
    assert segmenter_checkpoint(segmenter) == segmenter  # the segmenter's own


PLUGIN = """from models.registry import register_model
from models.unet import FrameSegmenterConfig, UNet


@register_model("bench_plugin_segmenter", FrameSegmenterConfig, input_kind="frame")
def build(cfg: FrameSegmenterConfig) -> UNet:
    return UNet(cfg)
"""


@pytest.mark.slow
def test_a_plugins_segmenter_is_found_as_tune_predict_finds_it(synth_root: Path, tmp_path: Path) -> None:
    """A segmenter of a plugin's model: its study's plugins are loaded (search.json), or --plugin for a checkpoint of
    no study. The benchmarks had no --plugin and read no study's: such a segmenter was refused with "pass --plugin"."""
    plugin = tmp_path / "bench_segmenter.py"
    plugin.write_text(PLUGIN)
    # a frame_segmenter's checkpoint, as the plugin's model (the same net) would have written it; the plugin is not
    # loaded in this process (a plugin loaded stays so: the registry is the process's)
    settings = ["--set", "width=4", "--set", "depth=2", "--epochs", "1", "--quiet"]
    assert train(["--model", "frame_segmenter", "--data", str(synth_root), *settings, "--out", str(tmp_path)]) == 0
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    alone = tmp_path / "alone.pt"
    torch.save({**state, "run": {**state["run"], "model": "bench_plugin_segmenter"}, "plugin": str(plugin)}, alone)
    study = tmp_path / "study"
    in_study = study / "segmenter" / "trial_a" / "checkpoint_000000" / "checkpoint.pt"
    in_study.parent.mkdir(parents=True)
    shutil.copy(alone, in_study)
    (study / STUDY_FILE).write_text(json.dumps({"plugins": [str(plugin)]}))

    with pytest.raises(KeyError) as refused:
        segmenter_checkpoint(alone)  # a checkpoint of no study, no --plugin: the plugin named
    assert refused.value.args[0].endswith(f"comes from the plugin {plugin}: pass --plugin {plugin}")
    for given in ([str(in_study)], [str(alone), "--plugin", str(plugin)]):  # its study's plugins; --plugin
        scored = subprocess.run(  # each in a process of its own: a plugin loaded stays so (the registry is global)
            [sys.executable, "-m", "benchmarks.rules", "--data", str(synth_root), "--segmenter", *given],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert scored.returncode == 0 and "| oracle (the segmenter's mask 22) |" in scored.stdout, scored.stderr
