"""tune.predict on a finished study: shape, dtype, video-id order, and the val IoU as the competition
computes it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from data.cache import decode_split
from data.metric import competition_iou
from reports.checkpoints import best_checkpoint
from reports.records import read_submission
from reports.schema import ranked
from tests.small_disk import on_small_disk
from tune.predict import main

pytestmark = pytest.mark.slow


# mask_space: segmenter, then predictor; dynamics: segmenter, then the objects' moves from its masks' tracks
@pytest.mark.parametrize("study", ["unet_study", "dual_study", "mask_study", "dynamics_study"])
def test_hidden_predictions_have_the_submission_shape_and_order_and_are_the_studys_own(
    study: str, request: pytest.FixtureRequest, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "submission.pt"
    folder = request.getfixturevalue(study)
    assert main(["--experiment", str(folder), "--split", "hidden", "--out", str(out)]) == 0  # the study's data
    masks = torch.load(out, weights_only=True)
    assert masks.shape == (2, 160, 240) and masks.dtype == torch.uint8
    assert int(masks.max()) < 49
    printed = capsys.readouterr().out
    assert "videos 8..9 in id order" in printed and f"data: {synth_root} (the study's; --data for another)" in printed
    # the study wrote the same submission at its end, and what made it
    assert torch.equal(torch.load(folder / "submission.pt", weights_only=True), masks)
    assert read_submission(folder) == {"checkpoint": str(best_checkpoint(folder)), "videos": 2}


def test_val_iou_is_the_competition_metric_over_the_whole_set(
    unet_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "val.pt"
    assert main(["--experiment", str(unet_study), "--data", str(synth_root), "--split", "val", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"data: {synth_root}\n" in printed  # as given
    masks = torch.load(out, weights_only=True)
    # a trial's checkpoint, as the study printed its best: its study's data; one copied out of it names none
    assert main(["--checkpoint", str(best_checkpoint(unet_study)), "--split", "val", "--out", str(out)]) == 0
    assert f"data: {synth_root} (the study's; --data for another)\n" in capsys.readouterr().out
    assert torch.equal(torch.load(out, weights_only=True), masks)
    shutil.copy(best_checkpoint(unet_study), tmp_path / "copied.pt")
    with pytest.raises(SystemExit) as usage:  # none is guessed
        main(["--checkpoint", str(tmp_path / "copied.pt"), "--split", "val", "--out", str(out)])
    assert usage.value.code == 2 and "give --data: the data root to predict" in capsys.readouterr().err
    val = decode_split(synth_root, "val", progress=False)
    assert val.masks is not None
    expected = competition_iou(masks.long(), torch.from_numpy(np.array(val.masks[:, 21])).long())
    assert f"val IoU (competition metric, whole set of 2 videos): {expected:.4f}" in printed
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet")
    chosen = trials[trials["checkpoint"] == str(best_checkpoint(unet_study))]
    assert len(chosen) == 1 and chosen["best_metric"].iloc[0] == trials["best_metric"].max()  # ties: any best
    assert expected == pytest.approx(trials["best_metric"].max(), abs=1e-6)


def test_a_checkpoint_that_does_not_predict_masks_is_refused(
    dual_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = pd.read_parquet(dual_study / "results" / "trials.parquet")
    predictor = trials[(trials["stage"] == "pretrain") & trials["checkpoint"].notna()].iloc[0]["checkpoint"]
    assert (
        main(["--checkpoint", predictor, "--data", str(synth_root), "--split", "val", "--out", str(tmp_path / "x.pt")])
        == 2
    )
    err = capsys.readouterr().err
    assert "a 'frame_predictor' checkpoint (frame_prediction) does not predict masks of frame 22; use one of " in err
    answering = err.split("use one of ")[1].strip().split(", ")  # the registry's (plugins' too, once loaded)
    assert {"dual_phase", "mask_predictor", "object_dynamics", "unet"} <= set(answering)
    assert not {"frame_predictor", "frame_segmenter"} & set(answering)
    # a trial of the study given by its id: said of its stage, and of the stage whose trials answer
    args = ["--experiment", str(dual_study), "--split", "val", "--out", str(tmp_path / "x.pt")]
    assert main([*args, "--trial", str(Path(predictor).parent.parent.name)]) == 2
    assert capsys.readouterr().err == (
        f"error: --trial {Path(predictor).parent.parent.name} is of stage pretrain, a 'frame_predictor' that predicts no "
        "mask 22: give a trial of stage finetune (the study's answers)\n"
    )


def test_a_checkpoint_with_other_classes_is_refused(
    synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tune.training.config import RunConfig
    from tune.training.trainer import Trainer, load_data

    run = RunConfig.from_values("unet", {"width": 4, "depth": 2, "num_classes": 10}, epochs=1)
    Trainer(run, load_data(run, synth_root, "cpu", progress=False)).save(tmp_path / "ten.pt")
    assert (
        main(
            [
                "--checkpoint",
                str(tmp_path / "ten.pt"),
                "--data",
                str(synth_root),
                "--split",
                "val",
                "--out",
                str(tmp_path / "x.pt"),
            ]
        )
        == 2
    )
    assert (
        "the checkpoint's model gives (10, 160, 240) (classes, H, W); the data needs (49, 160, 240)"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "x.pt").exists()


def test_a_study_folder_without_its_settings_is_not_taken_for_a_study_of_the_embedded_set(
    unet_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without search.json a study's data root is unknown: predicting (or training from it) on the embedded
    synthetic set, as a study of that set does, scored it on data it never saw, exit 0."""
    from tune.train import main as train

    study = Path(shutil.copytree(unet_study, tmp_path / "u"))
    (study / "search.json").unlink()
    missing = f"error: {study / 'search.json'} is missing, so the study's data root is unknown: give --data"
    assert main(["--experiment", str(study), "--split", "val", "--out", str(tmp_path / "v.pt")]) == 2
    assert capsys.readouterr().err.strip() == missing and not (tmp_path / "v.pt").exists()
    assert train(["--from", str(study), "--epochs", "1", "--out", str(tmp_path / "t"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == missing and not (tmp_path / "t").exists()
    args = ["--experiment", str(study), "--data", str(synth_root), "--split", "val", "--out", str(tmp_path / "v.pt")]
    assert main(args) == 0  # its data given


@pytest.mark.parametrize("rule", ["copy_last", "extrapolate"])
def test_a_rule_answers_from_the_segmenter_of_a_mask_study(
    rule: str, mask_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.motion import extrapolate_masks
    from tune.training.checkpoints import load_checkpoint, load_model
    from tune.training.tasks import segment_frames

    predictor = best_checkpoint(mask_study)  # a mask predictor that names its segmenter
    segmenter = load_checkpoint(predictor)["pipeline"]["segmenter"]
    outputs = {}
    for name, checkpoint in (("predictor", predictor), ("segmenter", segmenter)):
        outputs[name] = tmp_path / f"{name}.pt"
        args = ["--checkpoint", str(checkpoint), "--data", str(synth_root), "--split", "val", "--rule", rule]
        assert main([*args, "--out", str(outputs[name])]) == 0
    masks = torch.load(outputs["predictor"], weights_only=True)
    assert torch.equal(masks, torch.load(outputs["segmenter"], weights_only=True))

    val = decode_split(synth_root, "val", progress=False)
    run, model = load_model(segmenter)
    seg = torch.from_numpy(segment_frames(run, model, val.frames, (9, 10), "cpu")).long()
    expected = seg[:, -1] if rule == "copy_last" else extrapolate_masks(seg)
    assert masks.dtype == torch.uint8 and torch.equal(masks.long(), expected)
    assert val.masks is not None
    iou = competition_iou(expected, torch.from_numpy(np.array(val.masks[:, 21])).long())
    printed = capsys.readouterr().out
    assert f"val IoU (competition metric, whole set of 2 videos): {iou:.4f}" in printed
    assert f"checkpoint: {segmenter} (the rule {rule} on the segmenter's masks)\n" in printed
    assert f"checkpoint: {predictor}, whose segmenter {segmenter} answered (the rule {rule} on its masks)\n" in printed
    if rule == "copy_last":  # the study scored its trials on the first val video: a score of the whole set says so
        assert main(["--experiment", str(mask_study), "--split", "val", "--out", str(tmp_path / "v.pt")]) == 0
        assert "(competition metric, whole set of 2 videos; the study scored on its first video (--val-videos)): " in (
            capsys.readouterr().out
        )
    if rule == "extrapolate":  # without --rule, a segmenter is refused, saying what it answers with
        args = ["--checkpoint", segmenter, "--data", str(synth_root), "--split", "val"]
        assert main([*args, "--out", str(tmp_path / "x.pt")]) == 2
        assert capsys.readouterr().err.endswith(
            "it answers with a rule on its masks (tune.predict --rule extrapolate)\n"
        )


def test_the_rules_answer_together_from_one_segmentation(
    mask_study: Path, synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study's end scores every rule on its segmenter's masks (tune/search/evaluate.py): the val videos were
    segmented once per rule, the checkpoints loaded each time; now once for them all, with the answers each rule
    gives alone."""
    from tune.training import prediction
    from tune.training.checkpoints import load_checkpoint, load_model

    predictor = best_checkpoint(mask_study)
    val = decode_split(synth_root, "val", progress=False)
    assert val.masks is not None
    run, model = load_model(load_checkpoint(predictor)["pipeline"]["segmenter"])
    segmented = torch.from_numpy(prediction.segment_frames(run, model, val.frames, prediction.RULE_FRAMES, "cpu"))
    target = torch.from_numpy(np.array(val.masks[:, 21])).long()
    alone = {name: rule(segmented).to(torch.uint8) for name, rule in prediction.RULES.items()}  # each on its own
    calls = []
    segment = prediction.segment_frames

    def counted(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(args)
        return segment(*args, **kwargs)

    monkeypatch.setattr(prediction, "segment_frames", counted)
    together, ids = prediction.predict_rules(predictor, synth_root, "val", tuple(prediction.RULES))
    assert len(calls) == 1  # the 2 val videos in one batch, segmented once for both rules
    assert ids.tolist() == val.ids.tolist()
    for rule, masks in alone.items():
        assert torch.equal(together[rule][0], masks)
        assert together[rule][1] == pytest.approx(competition_iou(masks.long(), target), abs=1e-12)


def test_a_segmenter_trial_given_by_its_id_says_which_trials_answer_and_which_rule_answers_from_it(
    mask_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = pd.read_parquet(mask_study / "results" / "trials.parquet")
    segmenter = trials.loc[(trials["stage"] == "segmenter") & trials["checkpoint"].notna(), "trial_id"].iloc[0]
    args = ["--experiment", str(mask_study), "--split", "hidden", "--out", str(tmp_path / "s.pt"), "--trial", segmenter]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"error: --trial {segmenter} is of stage segmenter, a 'frame_segmenter' that predicts no mask 22: give a trial "
        "of stage predictor (the study's answers), or add --rule extrapolate to answer with the rule on its masks\n"
    )
    assert main([*args, "--rule", "extrapolate"]) == 0  # as it says


def test_a_rule_needs_a_segmenter(
    unet_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--experiment", str(unet_study), "--data", str(synth_root), "--split", "val", "--rule", "extrapolate"]
    assert main([*args, "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: --rule extrapolate: {best_checkpoint(unet_study)} is a unet checkpoint; a rule moves"
    )
    assert "give a frame_segmenter checkpoint, or one that names its segmenter" in err


def test_a_broken_hidden_video_is_still_predicted_with_skip_bad_videos(
    unet_study: Path,
    copy_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (copy_root / "hidden" / "video_9" / "image_10.png").write_bytes(b"broken")
    args = ["--experiment", str(unet_study), "--data", str(copy_root), "--split", "hidden"]
    assert main([*args, "--out", str(tmp_path / "strict.pt")]) == 2
    assert "(--skip-bad-videos: predicted, each frame that does not decode a copy of" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"predicting 1 broken video\(s\) .*video 9: frames \[10\] do not decode"):
        assert main([*args, "--out", str(tmp_path / "sub.pt"), "--skip-bad-videos"]) == 0
    assert torch.load(tmp_path / "sub.pt", weights_only=True).shape == (2, 160, 240)  # every hidden video
    # val: a broken video is left out, and the IoU says of how many videos it is
    (copy_root / "val" / "video_5" / "image_3.png").write_bytes(b"broken")
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"video_5"):
        assert main([*args[:-1], "val", "--out", str(tmp_path / "val.pt"), "--skip-bad-videos"]) == 0
    assert "val IoU (competition metric, 1 of its 2 videos): " in capsys.readouterr().out


def test_a_hidden_split_shipped_apart_is_found_from_the_study(
    unet_study: Path, copy_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study given --hidden DIR records it; tune.predict --experiment predicts that folder's videos without
    being told again."""
    apart = copy_root.parent / "hidden_set"
    (copy_root / "hidden").rename(apart)
    study = Path(shutil.copytree(unet_study, tmp_path / "study", ignore=shutil.ignore_patterns("*.pt")))
    settings = json.loads((study / "search.json").read_text())
    (study / "search.json").write_text(json.dumps({**settings, "hidden": str(apart)}))
    args = ["--experiment", str(study), "--data", str(copy_root), "--split", "hidden"]
    assert main([*args, "--out", str(tmp_path / "found.pt")]) == 0
    assert "videos 8..9 in id order" in capsys.readouterr().out
    (study / "search.json").write_text(json.dumps(settings))  # without it, the root has no hidden split
    assert main([*args, "--out", str(tmp_path / "lost.pt")]) == 2
    assert "hidden" in capsys.readouterr().err


def test_a_trial_named_predicts_with_its_checkpoint(
    unet_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet")
    other = trials[trials["checkpoint"].notna() & (trials["checkpoint"] != str(best_checkpoint(unet_study)))].iloc[0]
    args = ["--experiment", str(unet_study), "--data", str(synth_root), "--split", "val"]
    assert main([*args, "--trial", other["trial_id"], "--out", str(tmp_path / "t.pt")]) == 0
    assert f"checkpoint: {other['checkpoint']}\n" in capsys.readouterr().out
    named = best_checkpoint(unet_study, other["trial_id"])  # by its folder's name too, as a user copies it
    assert best_checkpoint(unet_study, f"trial_{other['trial_id']}") == named
    failed = trials.loc[trials["status"] == "failed", "trial_id"].iloc[0]  # the study's failing trial: no checkpoint
    for trial in ("nope", failed):
        assert main([*args, "--trial", trial, "--out", str(tmp_path / "n.pt")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --trial {trial}: no trial of {unet_study} by that id left a checkpoint"), err
        assert (
            f"(its final stage's best: {', '.join(ranked(trials, 'main', with_checkpoint=True)['trial_id'][:5])})"
            in err
        )


def test_a_trials_checkpoint_folder_is_taken_for_the_file_it_holds(
    unet_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user points --checkpoint at what they see in the trial's folder, checkpoint_NNNNNN: it was refused as
    "give --data" (a folder is no checkpoint of a study), then as a folder."""
    best = best_checkpoint(unet_study)
    assert main(["--checkpoint", str(best.parent), "--split", "val", "--out", str(tmp_path / "f.pt")]) == 0
    assert f"checkpoint: {best}\n" in capsys.readouterr().out
    assert main(["--checkpoint", str(tmp_path), "--split", "val", "--out", str(tmp_path / "g.pt")]) == 2
    assert capsys.readouterr().err == f"error: --checkpoint {tmp_path} is a folder, where a checkpoint file is needed\n"
    assert main(["--checkpoint", str(unet_study), "--split", "val", "--out", str(tmp_path / "g.pt")]) == 2
    assert capsys.readouterr().err.endswith(
        "is a folder, where a checkpoint file is needed (a study's folder: give it as --experiment)\n"
    )
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(best), "--split", "val", "--out", str(tmp_path / "h.pt"), "--batch-size", "0"])
    assert "argument --batch-size: must be a whole number >= 1, got '0'" in capsys.readouterr().err


def test_a_copied_study_predicts_with_its_own_checkpoints(
    mask_study: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its results name the original's files; the copy's are read (the original may since hold another model)."""
    from tune.training.checkpoints import load_checkpoint

    copy = tmp_path / "copy"
    shutil.copytree(mask_study, copy, ignore=shutil.ignore_patterns("*.journal*", "gallery"))
    predictor = best_checkpoint(copy)
    assert predictor.is_relative_to(copy) and predictor.read_bytes() == best_checkpoint(mask_study).read_bytes()
    args = ["--experiment", str(copy), "--data", str(synth_root), "--split", "val", "--out", str(tmp_path / "v.pt")]
    assert main(args) == 0
    assert f"checkpoint: {predictor}\n" in capsys.readouterr().out
    recorded = Path(load_checkpoint(predictor)["pipeline"]["segmenter"])  # the original's segmenter
    segmenter = copy / recorded.relative_to(mask_study)
    segmenter.write_bytes(b"damaged in the copy only")
    assert main([*args, "--rule", "copy_last"]) == 2
    assert str(segmenter) in capsys.readouterr().err and recorded.is_file()


def test_masks_written_to_a_full_disk_are_one_line_naming_the_file(unet_study: Path, tmp_path: Path) -> None:
    """torch.save, given a path, says a full disk as "[enforce fail at inline_container.cc:672] . unexpected pos";
    the command says it as the system does, naming the file."""
    full = tmp_path / "full"
    full.mkdir()
    out = full / "val.pt"  # 2 videos' masks: 77 kB, on 16 kB
    argv = [sys.executable, "-m", "tune.predict", "--experiment", str(unet_study), "--split", "val", "--out", str(out)]
    done = subprocess.run(on_small_disk(str(full), "16k", argv), capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == f"error: {out}: No space left on device", done.stderr
    assert "Traceback" not in done.stderr
