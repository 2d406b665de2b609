"""Training recipes on real (tiny) synthetic data on the CPU: every model trains through the CLI and
writes a checkpoint; a resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from data.datasets import DeviceSplit
from data.locking import run_lock
from data.streaming import StreamSplit
from models.frame_predictor import FramePredictorConfig
from models.registry import list_models
from reports.checkpoints import best_checkpoint
from reports.schema import DATA_WAIT_S, EVAL_S, GPU_BUSY, GPU_PEAK_GB, METRICS, TRAIN_LOSS, TRAIN_S
from tune.predict import main as predict_main
from tune.train import main
from tune.training.checkpoints import load_checkpoint, load_model, save_checkpoint
from tune.training.config import RunConfig, TrainConfig
from tune.training.losses import inverse_sqrt_class_weights, segmentation_loss, soft_dice_loss, ssim
from tune.training.pseudo_store import pseudo_label_dir
from tune.training.run import RUN_LOCK, build_run
from tune.training.tasks import task_for
from tune.training.trainer import TIMING_METRICS, Trainer, load_data

ROOT = Path(__file__).resolve().parents[3]
TINY_SETS = {
    "unet": ["width=4", "depth=2"],
    "frame_segmenter": ["width=4", "depth=2", "frames_per_video=2"],
    "frame_predictor": ["width=4", "hidden=4"],
    "mask_predictor": [
        *("hid_s=4", "hid_t=8", "n_t=2", "embed=4", "pseudo_input_end=1.0"),
        *("horizon=4", "future_weight=0.5", "copy_prior=8"),  # rolled out, with a loss on masks 12-21
        "input_scale=0.25",  # its rollouts of whole frames took 12 s of the CLI test at 1 (4 s at 0.25)
    ],
    "dual_phase": ["predictor.width=4", "predictor.hidden=4", "seg_width=4", "seg_depth=2", "use_features=true"],
    "object_dynamics": ["width=8"],
}
STAGE_METRIC = {
    "unet": "val_iou",
    "frame_segmenter": "val_oracle_iou",
    "frame_predictor": "val_frame_mse",
    "dual_phase": "val_iou",
    "mask_predictor": "val_copy_last_iou",
    "object_dynamics": "val_extrapolate_iou",
}


def _args(model: str, root: Path, out: Path, epochs: int = 1) -> list[str]:
    sets = [x for s in [*TINY_SETS[model], "batch_size=2", "eval_batch_size=2"] for x in ("--set", s)]
    return [
        "--model",
        model,
        "--data",
        str(root),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--device",
        "cpu",
        "--quiet",
        *sets,
    ]


@pytest.mark.filterwarnings("ignore:object_dynamics. no object:UserWarning")  # an untrained segmenter finds none
@pytest.mark.parametrize("model", list_models())
def test_cli_trains_each_model_and_writes_a_loadable_checkpoint(
    model: str, synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = []
    if task_for(model).needs_segmenter:  # it trains on a segmenter's masks: make one first
        assert main(_args("frame_segmenter", synth_root, tmp_path / "seg")) == 0
        extra = ["--segmenter", str(tmp_path / "seg" / "checkpoint.pt")]
        capsys.readouterr()
    assert main([*_args(model, synth_root, tmp_path / "run"), *extra]) == 0
    out = capsys.readouterr().out
    assert f"[{model}] epoch 1/1" in out and STAGE_METRIC[model] in out
    # it ends with the command that submits what it trained, and that command writes a submission
    last = out.strip().splitlines()[-1]
    if model == "frame_predictor":  # dual_phase's pretrained part answers nothing alone
        assert last.startswith("a frame_predictor does not predict masks of frame 22 (models that do: dual_phase, ")
    else:
        command = last[last.index("python -m tune.predict") :].split()
        checkpoint = str(tmp_path / "run" / "checkpoint.pt")
        assert command[3:9] == ["--checkpoint", checkpoint, "--data", str(synth_root), "--split", "hidden"]
        if model == "frame_segmenter":  # it answers with the motion rule on its masks
            assert command[-2:] == ["--rule", "extrapolate"]
        else:
            assert last.startswith("to submit it: ")
        assert predict_main([*command[3:], "--out", str(tmp_path / "submission.pt")]) == 0  # the last --out counts
        assert torch.load(tmp_path / "submission.pt", weights_only=True).shape == (2, 160, 240)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 1 and state["run"]["model"] == model
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "history"}
    reported = {name for name in state["history"][-1] if name in METRICS and name != TRAIN_LOSS}
    assert reported == set(task_for(model).metrics)  # what the task declares it reports
    if task_for(model).needs_segmenter:
        assert state["pipeline"] == {"segmenter": str(tmp_path / "seg" / "checkpoint.pt")}
    if model == "dual_phase":
        assert "[pretrain] epoch 1/1" in out
        assert load_checkpoint(tmp_path / "run" / "pretrain" / "checkpoint.pt")["run"]["model"] == "frame_predictor"


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("unet", ["dropout=0.2"]),
        ("unet", ["epoch_samples=5", "input_scale=0.5"]),  # fixed-size epochs: passes span epochs
        ("frame_segmenter", []),
        ("frame_segmenter", ["epoch_samples=7", "input_scale=0.25"]),
        ("dual_phase", ["freeze_predictor=false"]),
        ("dual_phase", ["frame_weight=2", "frames_per_video=2", "input_scale=0.25"]),
    ],
)
def test_resumed_run_matches_an_uninterrupted_one(
    model: str, extra: list[str], synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    run = build_run(model, [*TINY_SETS[model], *extra, "batch_size=2", "eval_batch_size=2"], epochs=3)
    data = load_data(run, synth_root, "cpu", progress=False)

    straight = Trainer(run, data)
    straight_metrics = list(straight.epochs())

    first = Trainer(run, data)
    next(first.epochs())
    first.save(tmp_path / "ckpt.pt")
    del first
    resumed = Trainer.resume(tmp_path / "ckpt.pt", data)
    assert resumed.epoch == 1
    resumed_metrics = list(resumed.epochs())

    timing = TIMING_METRICS
    assert [{k: v for k, v in m.items() if k not in timing} for m in straight_metrics[1:]] == [
        {k: v for k, v in m.items() if k not in timing} for m in resumed_metrics
    ]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_cli_resume_continues_after_the_last_saved_epoch(
    synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = build_run("unet", [*TINY_SETS["unet"], "batch_size=2", "eval_batch_size=2"], epochs=2)
    trainer = Trainer(run, load_data(run, synth_root, "cpu", progress=False))
    next(trainer.epochs())
    trainer.save(tmp_path / "run" / "checkpoint.pt")  # as if the process died after epoch 1
    assert main([*_args("unet", synth_root, tmp_path / "run", epochs=2), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "after epoch 1" in out
    assert "epoch 2/2" in out and "epoch 1/2" not in out
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 2
    # other settings than the run's are refused in one line naming them (they were ignored before); how the run is
    # computed (compiling, the evaluation's batch) may change
    saved = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    assert main([*_args("unet", synth_root, tmp_path / "run", epochs=3), "--set", "width=8", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "epochs 3 (the checkpoint has 2); width 8 (the checkpoint has 4)" in err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved
    # while another process trains it (here: holds its lock), a second one is refused before it writes, naming it
    with run_lock(tmp_path / "run" / RUN_LOCK, "the run"):
        assert main([*_args("unet", synth_root, tmp_path / "run", epochs=2), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: the run in {tmp_path / 'run'} is running (pid {os.getpid()} on "), err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved
    assert main([*_args("unet", synth_root, tmp_path / "run", epochs=2), "--set", "eval_batch_size=1", "--resume"]) == 0
    assert "after epoch 2" in capsys.readouterr().out  # finished: nothing left to train
    # a new run into a folder that holds one (a dual_phase run's pretrained part too) is refused: it overwrote it
    saved = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    assert main(_args("unet", synth_root, tmp_path / "run", epochs=1)) == 2
    assert "run already holds a run (" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved
    (tmp_path / "run" / "checkpoint.pt").rename(tmp_path / "run" / "pretrain.pt")
    (tmp_path / "run" / "pretrain").mkdir()
    (tmp_path / "run" / "pretrain.pt").rename(tmp_path / "run" / "pretrain" / "checkpoint.pt")
    assert main(_args("dual_phase", synth_root, tmp_path / "run", epochs=1)) == 2
    assert "pretrain/checkpoint.pt); pass --resume to continue it" in capsys.readouterr().err
    # a resume of another model is refused before it trains (it trained a whole pretrain phase into the folder first)
    (tmp_path / "run" / "pretrain" / "checkpoint.pt").rename(tmp_path / "run" / "checkpoint.pt")
    assert main([*_args("dual_phase", synth_root, tmp_path / "run", epochs=1), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'run' / 'checkpoint.pt'} holds a run with other settings than those given: model "
        "'dual_phase' (the checkpoint is of a 'unet' run). Give its settings to resume it, or another --out for a new "
        "run\n"
    )
    assert not any((tmp_path / "run" / "pretrain").iterdir())
    # a folder that holds no run (a mistyped --out): refused, not a new run begun where a resume was asked
    assert main([*_args("unet", synth_root, tmp_path / "new", epochs=1), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"error: --resume: {tmp_path / 'new'} holds no run to resume (no checkpoint.pt); leave --resume out to start "
        "one there\n"
    )
    assert not (tmp_path / "new").exists()


def test_ctrl_c_stops_a_run_in_one_line_that_says_how_to_go_on(
    synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    """Ctrl-C amid a run: no traceback, the command that resumes it (which does), and ended by SIGINT as Python
    ends on a Ctrl-C (a shell's $? 130), so that a calling script stops too."""
    args = _args("unet", synth_root, tmp_path / "run", epochs=50)
    run = subprocess.Popen(
        [sys.executable, "-m", "tune.train", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SEGTUNE_CACHE": str(own_cache)},
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "checkpoint.pt").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGINT and "Traceback" not in output, output
    command = output.strip().splitlines()[-1]
    assert command.startswith(f"stopped (SIGINT): {tmp_path / 'run'} keeps every epoch done; go on with: "), output
    assert command.endswith(" --resume") and shlex.split(command.split("go on with: ")[1])[3:-1] == args
    done = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"]
    assert 1 <= done < 50


def _from(source: Path, root: Path | None, out: Path | None) -> list[str]:
    """tune.train of `source`'s configuration for 1 epoch on `root` (None: the study's) into `out` (None: the
    default)."""
    return [
        "--from",
        str(source),
        "--epochs",
        "1",
        *(["--data", str(root)] if root else []),
        *(["--out", str(out)] if out else []),
    ]


def test_from_a_study_trains_its_best_configuration_anew_with_settings_on_top(
    unet_study: Path,
    synth_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    best_path = best_checkpoint(unet_study)
    best = load_checkpoint(best_path)
    study_run = RunConfig.from_dict(best["run"])
    capsys.readouterr()
    assert main(["--from", str(unet_study), "--show-config", "--set", "lr=0.01", "--set", "width=8"]) == 0
    shown = RunConfig.from_dict(json.loads(capsys.readouterr().out))
    assert shown == study_run.updated({"lr": 0.01, "width": 8})  # every other setting the best trial's
    assert shown.train.epochs == study_run.train.epochs == 4  # the study's budget
    monkeypatch.chdir(tmp_path)
    assert main(_from(unet_study, None, None)) == 0  # on the study's data, not the embedded set
    printed = capsys.readouterr().out
    assert f"from {best_checkpoint(unet_study)}: unet, 1 epoch" in printed
    assert f"data: {synth_root} (the study's; --data for another)" in printed
    state = load_checkpoint(tmp_path / "runs" / "train-u" / "checkpoint.pt")  # named by the study, not the model
    assert RunConfig.from_dict(state["run"]) == study_run.with_epochs(1) and state["epoch"] == 1
    # trained anew: from a fresh start, exactly as a run of that configuration (seeded), not on from the best's weights
    again = study_run.with_epochs(1)
    fresh = Trainer(again, load_data(again, synth_root, "cpu", progress=False))
    list(fresh.epochs())
    assert torch.equal(state["model"]["head.weight"], fresh.model.state_dict()["head.weight"])
    assert not torch.equal(state["model"]["head.weight"], best["model"]["head.weight"])
    assert main(["--from", str(unet_study), "--model", "unet"]) == 2  # one or the other
    assert capsys.readouterr().err == (
        "error: --model and --from: give one (--from trains the model its study or checkpoint has)\n"
    )
    # --trial: another trial's configuration than the best's
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet").dropna(subset=["checkpoint"])
    trial, other = next(
        (t, c) for t, c in zip(trials["trial_id"], trials["checkpoint"], strict=True) if c != str(best_path)
    )
    assert main(["--from", str(unet_study), "--trial", trial, "--show-config"]) == 0
    shown = RunConfig.from_dict(json.loads(capsys.readouterr().out))
    assert shown == RunConfig.from_dict(load_checkpoint(other)["run"]) != study_run
    assert main(["--from", str(best_path), "--trial", trial, "--show-config"]) == 2  # a trial of a study only
    assert "--trial " + trial + ": a trial of a study; --from" in capsys.readouterr().err


def test_from_a_dual_phase_study_pretrains_as_its_best_trial_was_pretrained(
    dual_study: Path,
    synth_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parent = RunConfig.from_dict(load_checkpoint(load_checkpoint(best_checkpoint(dual_study))["pretrained"])["run"])
    assert parent.model == "frame_predictor" and parent.train.epochs > 1
    assert main([*_from(dual_study, synth_root, tmp_path / "d"), "--pretrain-epochs", "1"]) == 0
    assert "its pretrained part with the training settings it had there: frame_predictor, 1 epoch\n" in (
        capsys.readouterr().out
    )
    pretrained = load_checkpoint(tmp_path / "d" / "pretrain" / "checkpoint.pt")
    assert RunConfig.from_dict(pretrained["run"]) == parent.with_epochs(1)  # the parent trial's settings
    assert load_checkpoint(tmp_path / "d" / "checkpoint.pt")["pretrained"] == str(
        tmp_path / "d" / "pretrain" / "checkpoint.pt"
    )


def test_from_a_dual_phase_study_stops_its_pretrained_part_where_asha_stopped_the_parent(
    dual_study: Path, synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a parent that ASHA stopped after epoch 1 of 2, amid its learning-rate schedule: its checkpoint of epoch 1
    best = load_checkpoint(best_checkpoint(dual_study))
    study_run = RunConfig.from_dict(best["run"])
    parent_run = RunConfig.from_dict(load_checkpoint(best["pretrained"])["run"])
    parent_run = RunConfig("frame_predictor", study_run.model_config.predictor, parent_run.train).with_epochs(2)
    parent = Trainer(parent_run, load_data(parent_run, synth_root, "cpu", progress=False))
    next(parent.epochs())
    parent.save(tmp_path / "parent.pt")
    save_checkpoint({**best, "pretrained": str(tmp_path / "parent.pt")}, tmp_path / "best.pt")
    assert main([*_from(tmp_path / "best.pt", synth_root, tmp_path / "d"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "its pretrained part with the training settings it had there: frame_predictor, 2 epochs, stopped " in (
        printed
    )
    assert "[pretrain] epoch 1/2" in printed and "[pretrain] epoch 2/2" not in printed
    assert "[pretrain] stopped after epoch 1 of 2" in printed
    again = load_checkpoint(tmp_path / "d" / "pretrain" / "checkpoint.pt")
    assert again["epoch"] == 1 and RunConfig.from_dict(again["run"]) == parent_run  # its schedule: 2 epochs'
    assert all(torch.equal(again["model"][k], v) for k, v in parent.model.state_dict().items())  # the same weights
    # --resume of it trains no further epoch of the part; one asking another stop is refused, the part kept as it was
    assert main([*_from(tmp_path / "best.pt", synth_root, tmp_path / "d"), "--quiet", "--resume"]) == 0
    assert "[pretrain] epoch" not in capsys.readouterr().out
    part = (tmp_path / "d" / "pretrain" / "checkpoint.pt").read_bytes()
    assert main([*_from(tmp_path / "best.pt", synth_root, tmp_path / "d"), "--resume", "--pretrain-epochs", "2"]) == 2
    assert "is of a run that stops after epoch 1 of 2, and this one trains all 2 epochs: resume it as it was " in (
        capsys.readouterr().err
    )
    assert (tmp_path / "d" / "pretrain" / "checkpoint.pt").read_bytes() == part
    # --pretrain-epochs N: a whole schedule of N epochs, not stopped
    assert main([*_from(tmp_path / "best.pt", synth_root, tmp_path / "e"), "--quiet", "--pretrain-epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "[pretrain] epoch 2/2" in printed and "stopped" not in printed
    assert load_checkpoint(tmp_path / "e" / "pretrain" / "checkpoint.pt")["epoch"] == 2


def test_from_a_study_on_its_data_uses_the_videos_it_used(
    mask_study: Path,
    synth_root: Path,
    copy_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    segmenter = load_checkpoint(best_checkpoint(mask_study))["pipeline"]["segmenter"]
    assert main([*_from(mask_study, None, tmp_path / "m"), "--quiet"]) == 0  # run with --unlabeled 1 --val-videos 1
    printed = capsys.readouterr().out
    assert "videos: the first 1 unlabeled videos (the study's), the first 1 val videos (the study's)\n" in printed
    assert pseudo_label_dir(segmenter, synth_root, own_cache, unlabeled=1, val=1).is_dir()
    assert not pseudo_label_dir(segmenter, synth_root, own_cache).exists()  # not every video's labels
    # as given: every video of a split ("all"), or N; said before anything is computed (here a segmenter that is
    # not there stops the run right after)
    nowhere = ["--segmenter", str(tmp_path / "nowhere.pt")]
    assert main([*_from(mask_study, None, tmp_path / "all"), *nowhere, "--unlabeled", "all"]) == 2
    assert "videos: every unlabeled video (the study took the first 1), the first 1 val videos (the study's)\n" in (
        capsys.readouterr().out
    )
    for flag, value in (("--val-videos", "0"), ("--unlabeled", "-1"), ("--unlabeled", "some")):
        with pytest.raises(SystemExit) as usage:
            main([*_from(mask_study, None, tmp_path / "x"), flag, value])
        assert usage.value.code == 2
        assert f"argument {flag}: takes a number of videos >= " in capsys.readouterr().err
    assert main([*_from(mask_study, None, tmp_path / "x"), "--val-videos", "3"]) == 2  # more than the split has
    assert f"error: --val-videos 3: {synth_root / 'val'} has 2 videos; --val-videos all takes them all" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "x").exists()
    # another --data: every video of it, and said (a data root elsewhere; its subset was the study's data's)
    assert main([*_from(mask_study, copy_root, tmp_path / "y"), *nowhere]) == 2
    assert (
        "videos: every unlabeled video of --data (the study took the first 1), every val video of --data (the study "
        "took the first 1)\n"
    ) in capsys.readouterr().out


def test_from_a_mask_space_checkpoint_trains_on_its_segmenters_masks(
    mask_study: Path,
    synth_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = best_checkpoint(mask_study)
    segmenter = load_checkpoint(checkpoint)["pipeline"]["segmenter"]
    assert main(_from(checkpoint, None, tmp_path / "m")) == 0  # a trial's checkpoint: on its study's data and videos
    printed = capsys.readouterr().out
    assert f"data: {synth_root} (the study's; --data for another)\n" in printed
    assert "videos: the first 1 unlabeled videos (the study's), the first 1 val videos (the study's)\n" in printed
    assert f"  on the masks of the segmenter {segmenter}, as it was\n" in printed  # (which one, said)
    state = load_checkpoint(tmp_path / "m" / "checkpoint.pt")
    assert state["run"]["model"] == "mask_predictor" and state["pipeline"] == {"segmenter": segmenter}


def test_nan_loss_fails_the_run_with_its_reason(synth_root: Path, tmp_path: Path, own_cache: Path) -> None:
    run = build_run("unet", [*TINY_SETS["unet"], "batch_size=2"], epochs=1)
    trainer = Trainer(run, load_data(run, synth_root, "cpu", progress=False))
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("nan"))  # type: ignore[union-attr, operator]
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 1 of unet"):
        next(trainer.epochs())


def test_bad_checkpoints_and_mismatched_pretraining_are_refused(
    synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    torch.save({"weights": torch.zeros(64)}, tmp_path / "whole.pt")
    for name, content in (
        ("garbage", b"not a checkpoint"),
        ("empty", b""),
        ("cut", (tmp_path / "whole.pt").read_bytes()[:300]),
    ):
        (tmp_path / f"{name}.pt").write_bytes(content)
        with pytest.raises(
            ValueError, match=rf"{name}\.pt is not a checkpoint of this project: not a file torch\.save wrote"
        ):
            load_checkpoint(tmp_path / f"{name}.pt")
    torch.save({"run": Path("x")}, tmp_path / "pickled.pt")  # an object weights-only loading refuses
    with pytest.raises(ValueError, match=r"cannot load checkpoint .*pickled\.pt: it holds objects other than tensors"):
        load_checkpoint(tmp_path / "pickled.pt")
    for foreign, found in (
        ({"weights": torch.zeros(1)}, r"it has no format field \(a state_dict, or another tool's file\?\)"),
        ({"format": 99, "run": {}}, r"its format is 99, this version reads format 1"),
        ({"format": 1}, r"it has no run settings"),
        (torch.zeros(1), r"it holds a Tensor, not the dict of a checkpoint"),
    ):
        torch.save(foreign, tmp_path / "foreign.pt")
        with pytest.raises(ValueError, match=rf"foreign\.pt is not a checkpoint of this project: {found}$"):
            load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    unet = build_run("unet", ["width=4", "depth=2"], epochs=1)
    Trainer(unet, load_data(unet, synth_root, "cpu", progress=False)).save(tmp_path / "unet.pt")
    state = load_checkpoint(tmp_path / "unet.pt")
    edits = {
        "weights": {**state, "model": {k: v[:1] if v.dim() else v for k, v in state["model"].items()}},
        "settings": {**state, "run": {**state["run"], "model_config": {"widht": 4}}},
    }
    assert state["plugin"] is None  # a model of the package's own
    for plugin, said in (  # a model this process has not registered: the plugin that made it, where recorded
        (None, r"unknown model 'gone_net'; valid: .* \(a plugin's model: pass its --plugin\)$"),
        ("/p/gone.py", r"its model 'gone_net' comes from the plugin /p/gone\.py: pass --plugin /p/gone\.py$"),
    ):
        torch.save({**state, "run": {**state["run"], "model": "gone_net"}, "plugin": plugin}, tmp_path / "gone.pt")
        with pytest.raises(KeyError) as refused:
            load_model(tmp_path / "gone.pt")
        assert re.match(rf"^{tmp_path}/gone\.pt: {said}", refused.value.args[0]), refused.value.args[0]
    diverged = {k: v.clone() for k, v in state["model"].items()}
    diverged["head.weight"][0] = float("nan")
    torch.save({**state, "model": diverged}, tmp_path / "diverged.pt")
    with pytest.raises(
        ValueError,
        match=rf"^{tmp_path}/diverged\.pt: 1 of its \d+ weight tensors hold NaN or infinity \(first: head\.weight\)",
    ):
        load_model(tmp_path / "diverged.pt")
    for name, edited in edits.items():  # a checkpoint edited by hand, or written by another version
        torch.save(edited, tmp_path / f"{name}.pt")
        with pytest.raises(
            ValueError, match=rf"^{tmp_path / name}\.pt: its settings and weights do not make its model"
        ):
            load_model(tmp_path / f"{name}.pt")

    predictor_run = build_run("frame_predictor", [*TINY_SETS["frame_predictor"], "batch_size=2"], epochs=1)
    data = load_data(predictor_run, synth_root, "cpu", progress=False)
    Trainer(predictor_run, data).save(tmp_path / "predictor.pt")
    other = build_run("dual_phase", ["predictor.width=8", "predictor.hidden=4", "seg_width=4", "seg_depth=2"], epochs=1)
    seg_data = load_data(other, synth_root, "cpu", progress=False)
    with pytest.raises(
        ValueError, match=r"predictor\.pt holds a frame predictor with config .*width=4.*expects .*width=8"
    ):
        Trainer(other, seg_data, pretrained=tmp_path / "predictor.pt")


def test_cli_refuses_unknown_fields_and_shows_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "unet", "--set", "colour=red"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: a unet run has no setting 'colour': its model's are background_prior, depth, ")
    assert "; its training's are " in err and ", lr, " in err
    assert main(["--model", "unet", "--set", "width=wide"]) == 2
    assert "UNetConfig.width expects int, got 'wide'" in capsys.readouterr().err
    assert main(["--model", "dual_phase", "--set", "predictor.cell=gru", "--set", "lr=0.01", "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert '"cell": "gru"' in shown and '"lr": 0.01' in shown


def test_run_config_round_trips_through_a_dict() -> None:
    run = build_run("dual_phase", ["predictor.hidden=16", "use_features=true", "dice_weight=0.5"], epochs=4)
    again = RunConfig.from_dict(run.to_dict())
    assert again == run
    assert again.model_config.predictor == FramePredictorConfig(hidden=16)


def test_losses_and_weights_behave() -> None:
    target = torch.randint(0, 5, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 49).movedim(-1, 1).float() * 50
    assert soft_dice_loss(perfect, target) < 0.01
    assert soft_dice_loss(torch.zeros(2, 49, 8, 8), target) > 0.5
    image = torch.rand(1, 3, 16, 16)
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-4)
    assert ssim(image, torch.rand(1, 3, 16, 16)).item() < 0.5
    weights = inverse_sqrt_class_weights(torch.tensor([0, 0, 0, 0, 1]))
    assert weights[0] < weights[1] and weights[2] == 0
    assert weights[:2].mean() == pytest.approx(1.0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dice", [0.0, 0.5])
def test_the_mask_predictors_loss_on_masks_12_to_22_is_mask_22s_plus_the_weighted_mean_on_the_others(
    weighted: bool, dice: float
) -> None:
    """The loss over the masks at once (no copy of the logits) is what the plain formula gives: mask 22's
    segmentation loss plus future_weight times the (class-weighted) mean cross-entropy over masks 12-21."""
    torch.manual_seed(0)
    logits = torch.randn(3, 11, 49, 6, 7, requires_grad=True)
    target = torch.randint(0, 49, (3, 11, 6, 7), dtype=torch.uint8)
    weights = torch.rand(49) if weighted else None
    cfg = TrainConfig(future_weight=0.7, dice_weight=dice)
    ours = task_for("mask_predictor").loss(logits, target, cfg, weights)
    (grad,) = torch.autograd.grad(ours, logits)
    future = torch.nn.functional.cross_entropy(logits[:, :-1].movedim(2, 1), target[:, :-1].long(), weight=weights)
    plain = segmentation_loss(logits[:, -1], target[:, -1], cfg, weights) + 0.7 * future
    (plain_grad,) = torch.autograd.grad(plain, logits)
    assert ours.item() == pytest.approx(plain.item(), rel=1e-6)
    assert torch.allclose(grad, plain_grad, rtol=1e-5, atol=1e-9)


def test_cli_checks_it_can_write_before_it_trains(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    assert main(_args("unet", synth_root, tmp_path / "a-file" / "run")) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"error: {tmp_path / 'a-file'}: a file, where a folder is needed"
    assert "epoch" not in out and "Traceback" not in err


def test_from_a_checkpoint_of_no_study_says_it_trains_on_the_embedded_set(
    synth_root: Path,
    tmp_path: Path,
    own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A tune.train run's checkpoint names no study, so no data: the run says before training that it takes the
    embedded set (the embedded set is the tiny root here: generating the real one takes minutes)."""
    assert main(_args("unet", synth_root, tmp_path / "first")) == 0
    import data.synth.default

    monkeypatch.setattr(data.synth.default, "default_data_root", lambda progress=True: synth_root)
    capsys.readouterr()
    checkpoint = tmp_path / "first" / "checkpoint.pt"
    assert main(["--from", str(checkpoint), "--epochs", "1", "--out", str(tmp_path / "again"), "--quiet"]) == 0
    said = f"data: {synth_root}, the embedded synthetic set ({checkpoint} names no study; --data for another)\n"
    assert capsys.readouterr().out.startswith(said)  # before anything trains


BROKEN_FORWARD = """
from dataclasses import dataclass

import torch
from torch import nn

from data.classes import N_INPUT_FRAMES, NUM_CLASSES
from models.registry import register_model


@dataclass(frozen=True)
class BrokenConfig:
    width: int = 4


class Broken(nn.Module):
    def __init__(self, error: type[Exception]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3 * N_INPUT_FRAMES, NUM_CLASSES, 3, padding=1)
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.error("mat1 and mat2 shapes cannot be multiplied (4x33 and 34x8)\\nmore lines")


@register_model("wrong_forward", BrokenConfig, input_kind="stacked")
def build(cfg: BrokenConfig) -> nn.Module:
    return Broken(RuntimeError)


@register_model("wrong_batch", BrokenConfig, input_kind="stacked")
def build_batch(cfg: BrokenConfig) -> nn.Module:
    return Broken(ValueError)  # as torch's cross-entropy on a wrong batch size: not the project's bad-input check
"""


def test_cli_run_that_fails_in_training_is_one_line_with_its_traceback_kept(
    synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model's own error in training (a plugin's, as a user met it: 74 lines of traceback): one line, as a failed
    trial says it, exit 1, the traceback in the run's folder."""
    (tmp_path / "wrong_forward.py").write_text(BROKEN_FORWARD)
    for model, error in (("wrong_forward", "RuntimeError"), ("wrong_batch", "ValueError")):
        run = tmp_path / model
        args = ["--plugin", str(tmp_path / "wrong_forward.py"), "--model", model, "--data", str(synth_root)]
        assert main([*args, "--out", str(run), "--epochs", "1", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"error: the run failed: {error}: mat1 and mat2 shapes cannot be multiplied (4x33 and 34x8) "
            f"(traceback: {run / 'error.txt'}; {run} keeps every epoch done)\n"
        )
        assert 'raise self.error("mat1 and mat2' in (run / "error.txt").read_text()


def test_a_study_may_train_on_part_of_unlabeled_and_score_on_part_of_val(
    synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    run = build_run("frame_predictor", TINY_SETS["frame_predictor"], epochs=1)
    sizes = {n: len(load_data(run, synth_root, "cpu", progress=False, unlabeled=n).train) for n in (None, 1, 0)}
    unet = build_run("unet", TINY_SETS["unet"], epochs=1)
    train = len(load_data(unet, synth_root, "cpu", progress=False).train)
    assert sizes == {None: train + 2, 1: train + 1, 0: train}  # the tiny root has 2 unlabeled videos
    for model in (run, unet):  # the first val video (id 4) alone, or both
        whole = load_data(model, synth_root, "cpu", progress=False).val
        first = load_data(model, synth_root, "cpu", progress=False, val_videos=1).val
        assert (len(whole), len(first)) == (2, 1)
        assert torch.equal(
            first.gather_frames(torch.tensor([0]), (0, 21)), whole.gather_frames(torch.tensor([0]), (0, 21))
        )


def test_cli_skips_bad_videos_when_asked(
    copy_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy_root / "train" / "video_2" / "image_9.png").write_bytes(b"broken")
    assert main(_args("unet", copy_root, tmp_path / "strict")) == 2
    assert "video_2/image_9.png" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"skipping 1 bad video\(s\) of 4 .*video 2: cannot decode"):
        assert main([*_args("unet", copy_root, tmp_path / "skip"), "--skip-bad-videos"]) == 0
    assert load_checkpoint(tmp_path / "skip" / "checkpoint.pt")["epoch"] == 1


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("unet", ["class_weighting=inverse_sqrt"]),
        ("frame_predictor", []),  # unlabeled + train joined
        ("frame_segmenter", ["class_weighting=inverse_sqrt"]),
        ("dual_phase", ["frame_weight=2", "frames_per_video=2"]),
    ],
)
def test_a_split_over_the_memory_cap_streams_and_trains_exactly_as_a_held_one(
    model: str, extra: list[str], synth_root: Path, tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = build_run(model, [*TINY_SETS[model], *extra, "batch_size=2", "eval_batch_size=2"], epochs=2)
    held = load_data(run, synth_root, "cpu", progress=False)
    monkeypatch.setenv("SEGTUNE_HOLD_GB", "0.0001")  # a 100 KB cap: every split streams from the cache
    streamed = load_data(run, synth_root, "cpu", progress=False)
    assert isinstance(held.train, DeviceSplit) and isinstance(streamed.train, StreamSplit)
    assert isinstance(streamed.val, StreamSplit)
    trainers = Trainer(run, held), Trainer(run, streamed)
    timing = TIMING_METRICS
    epochs = [list(t.epochs()) for t in trainers]
    metrics = [[{k: v for k, v in m.items() if k not in timing} for m in e] for e in epochs]
    assert metrics[0] == metrics[1]
    # where the epochs' time went: a held split waits for no batch (its gather is training), a streamed one may
    for held_epoch, streamed_epoch in zip(*epochs, strict=True):
        assert held_epoch[DATA_WAIT_S] == 0 and 0 <= streamed_epoch[DATA_WAIT_S] < math.inf
        for epoch in (held_epoch, streamed_epoch):
            assert epoch[TRAIN_S] > 0 and epoch[EVAL_S] > 0
            assert epoch[DATA_WAIT_S] + epoch[TRAIN_S] + epoch[EVAL_S] <= epoch["epoch_seconds"]
            assert GPU_BUSY not in epoch and GPU_PEAK_GB not in epoch  # on CUDA only
    for (name, a), b in zip(*(t.model.state_dict().items() for t in trainers), strict=True):
        assert torch.equal(a, b[1]), name


@pytest.mark.slow
def test_a_model_that_cannot_be_compiled_here_trains_uncompiled_with_a_warning(
    synth_root: Path, tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compile=true on a machine whose toolchain cannot build the kernels (here: no C++ compiler for the CPU's
    kernels; on a GPU machine, no C compiler for Triton) trains the same model uncompiled, saying why."""
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor, "fx_graph_cache", False)  # no kernels built earlier on this machine
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    sets = [*TINY_SETS["unet"], "batch_size=2", "eval_batch_size=2"]
    plain = build_run("unet", sets, epochs=1)
    data = load_data(plain, synth_root, "cpu", progress=False)
    compiled = Trainer(build_run("unet", [*sets, "compile=true"], epochs=1), data)
    with pytest.warns(UserWarning, match="torch.compile failed for unet, training it uncompiled: .*C\\+\\+ compiler"):
        compiled_metrics = next(compiled.epochs())
    assert compiled.compile_error is not None and "nonexistent" in compiled.compile_error
    eager = Trainer(plain, data)
    eager_metrics = next(eager.epochs())
    assert eager.compile_error is None
    assert compiled_metrics["train_loss"] == eager_metrics["train_loss"]
    assert compiled_metrics["val_iou"] == eager_metrics["val_iou"]


def test_memory_a_training_step_freed_goes_back_to_the_system() -> None:
    """glibc keeps a training step's freed CPU tensors in the process (measured: 1 GiB after one mask-predictor
    step of 2 clips at 160x240); release_freed_memory, called by the trainer after each epoch's training and
    evaluation, hands it back."""
    from benchmarks.predictor_memory import training_loss
    from models.mask_predictor import MaskPredictor, MaskPredictorConfig
    from tune.training.memory import _resident_bytes, release_freed_memory

    def resident() -> float:  # GiB
        return _resident_bytes() / 2**30

    torch.manual_seed(0)
    model = MaskPredictor(MaskPredictorConfig(embed=4, hid_s=4, hid_t=8, n_s=2, n_t=2, horizon=1))
    masks, target = (torch.randint(0, 49, (2, 11, 160, 240), dtype=torch.uint8) for _ in range(2))
    release_freed_memory()
    before = resident()
    training_loss(model, masks, target).backward()
    held = resident()
    release_freed_memory()
    assert held - before > 0.3, "the step did not leave freed memory in the process: nothing to measure"
    assert resident() - before < 0.1
