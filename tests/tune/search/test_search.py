"""The search on a real local Ray with real Optuna and real Parquet files, on the tiny synthetic root."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from data.cache import decode_split
from data.metric import competition_iou
from reports.references import references_text
from reports.schema import (
    ANSWER_UNSEEN,
    ANSWER_UNSEEN_BACKGROUND,
    CHECKPOINT_S,
    CPUS,
    DATA_WAIT_S,
    EPOCH_END,
    EPOCH_SECONDS,
    EVAL_S,
    GPU_BUSY,
    GPUS,
    OPTUNA_FILE,
    PER_CLASS_FILE,
    PLUGINS_FILE,
    REFERENCES_FILE,
    TORCH_THREADS,
    TRAIN_S,
    ranked,
)
from tune.search.cli import main
from tune.search.config import SearchConfig
from tune.search.driver import run_search
from tune.search.evaluate import SEGMENTER_LAST, TRUE_LAST
from tune.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow


def _study(exp: Path, stage: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(exp / OPTUNA_FILE)))
    return optuna.load_study(study_name=f"{exp.name}/{stage}", storage=storage)


def test_unet_smoke_records_completed_stopped_and_failed_trials(unet_study: Path) -> None:
    exp = unet_study
    trials = pd.read_parquet(exp / "results" / "trials.parquet")
    epochs = pd.read_parquet(exp / "results" / "epochs.parquet")

    assert len(trials) == 8 and trials["trial_id"].is_unique
    assert sorted(trials["trial_number"]) == list(range(1, 9))  # as the searcher made them
    assert not (exp / PLUGINS_FILE).exists()  # no plugin: nothing to record of one
    counts = trials["status"].value_counts().to_dict()
    assert counts.get("failed") == 1 and counts.get("stopped", 0) >= 1 and counts.get("completed", 0) >= 1
    failed = trials[trials["status"] == "failed"].iloc[0]
    assert "fails on purpose" in failed["failure"]
    assert {
        "config/lr",
        "config/width",
        "config/depth",
        "best_metric",
        "last_metric",
        "epochs",
        "wall_time_s",
        "gpu_hours",
        "checkpoint",
    } <= set(trials.columns)
    assert (trials["space"] == "unet").all() and (trials["stage"] == "main").all()
    assert (trials.loc[trials["status"] == "completed", "epochs"] == 4).all()
    assert (trials.loc[trials["status"] == "stopped", "epochs"] < 4).all()
    # one epoch row per trial per epoch run, holding every reported metric
    assert len(epochs) == trials["epochs"].sum()
    assert {"val_iou", "val_loss", "train_loss", "lr"} <= set(epochs.columns)
    assert epochs["epoch"].dtype.kind == "i"  # 1, 2, ... (it was the float of the trial's own metric)
    # where each epoch's time went, and the resources Ray gave each trial (2 CPUs, 2 trials at once: 1 each)
    timed = [DATA_WAIT_S, TRAIN_S, EVAL_S, CHECKPOINT_S, EPOCH_END, EPOCH_SECONDS]
    assert epochs[timed].notna().all().all() and (epochs[TRAIN_S] > 0).all() and (epochs[DATA_WAIT_S] == 0).all()
    assert (epochs[TORCH_THREADS] == 1).all() and GPU_BUSY not in epochs
    assert {epochs[c].dtype.kind for c in (TORCH_THREADS, "pid", "training_iteration")} == {"i"}  # (were floats)
    typed = pq.read_schema(exp / "results" / "trials.parquet")  # text where no trial has one (Parquet's null type)
    assert typed.field("parent_trial").type == typed.field("trial_id").type == pa.large_string()
    assert (trials[CPUS] == 1).all() and (trials[GPUS] == 0).all()
    # Optuna's stored study: ASHA-stopped trials are PRUNED at their last rung, the failure FAIL
    study = _study(exp, "main")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == counts["stopped"]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    for frozen in study.trials:  # a curve as long as its epochs, ending in its value (the journal's last step)
        if frozen.state in (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE):
            ran = trials.loc[trials["trial_id"] == frozen.user_attrs["segtune.trial_id"], "epochs"].item()
            assert sorted(frozen.intermediate_values) == list(range(1, ran + 1)), (frozen.intermediate_values, ran)
            assert frozen.last_step is not None and frozen.value == frozen.intermediate_values[frozen.last_step]
    best = trials.sort_values("best_metric", ascending=False).iloc[0]
    assert load_checkpoint(best["checkpoint"])["run"]["model"] == "unet"
    # the budget's epoch_samples reaches each run on the stage's job (not in Optuna's config) and is recorded
    assert (trials["config/epoch_samples"] == 4).all()
    assert load_checkpoint(best["checkpoint"])["run"]["train"]["epoch_samples"] == 4
    assert all("epoch_samples" not in t.params for t in study.trials)


def test_dual_phase_smoke_fine_tunes_from_the_best_pretraining_trials(dual_study: Path) -> None:
    trials = pd.read_parquet(dual_study / "results" / "trials.parquet")
    pretrain, finetune = trials[trials["stage"] == "pretrain"], trials[trials["stage"] == "finetune"]
    assert len(pretrain) == 4 and len(finetune) == 4
    assert (pretrain["metric"] == "val_frame_mse").all() and (finetune["metric"] == "val_iou").all()
    assert finetune["parent_trial"].notna().all()
    # parents come from the 2 best pretraining trials (by value: with ties, any of the tied ones)
    done = pretrain[pretrain["status"].isin(["completed", "stopped"])].set_index("trial_id")["best_metric"]
    second_best = sorted(done)[1]
    assert all(done[parent] <= second_best for parent in finetune["parent_trial"])
    for path in finetune["checkpoint"].dropna():
        run = load_checkpoint(path)["run"]
        assert run["model"] == "dual_phase"


def test_the_best_model_is_scored_beside_all_background_and_the_rules_on_the_true_masks(
    dual_study: Path, synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from data.cache import decode_split
    from data.metric import competition_iou
    from tune.search.driver import open_study
    from tune.search.resources import Cluster
    from tune.search.summary import print_summary

    table = pd.read_parquet(dual_study / "results" / REFERENCES_FILE)
    scores = dict(zip(table["answer"], table["iou"], strict=True))
    assert list(scores) == [
        "the best model",
        "all background",
        "copy_last on the true masks",
        "extrapolate on the true masks",
    ]
    trials = pd.read_parquet(dual_study / "results" / "trials.parquet")
    best = trials.loc[trials["stage"] == "finetune", "best_metric"].max()
    assert scores["the best model"] == pytest.approx(best, abs=1e-6)  # its checkpoint, on the videos it was scored on
    val = decode_split(synth_root, "val", progress=False)
    assert (table["videos"] == len(val.ids)).all()
    truth = torch.from_numpy(np.array(val.masks))
    assert scores["all background"] == pytest.approx(competition_iou(torch.zeros_like(truth[:, 21]), truth[:, 21]))
    assert scores["copy_last on the true masks"] == pytest.approx(competition_iou(truth[:, 10], truth[:, 21]))
    assert scores["all background"] < scores["copy_last on the true masks"] < scores["extrapolate on the true masks"]
    # the summary says it in one line
    cfg = SearchConfig(space="dual_phase", data=str(synth_root), out=str(dual_study.parent), name="d", budget="smoke")
    capsys.readouterr()
    print_summary(open_study(cfg, Cluster.local()))
    printed = capsys.readouterr().out
    assert references_text(table) in printed and "all background (" in printed
    # only the rules' ceiling: nothing beside them on a segmenter's masks, which the space has none of
    assert "no per-frame segmenter's masks in space dual_phase for the rules to answer from (" in printed
    # and what to do next: the commands name this study (whose data they read)
    assert (  # the study wrote it (tests/tune/test_predict.py: it is what tune.predict writes)
        f"submission: {dual_study / 'submission.pt'} (the best checkpoint's masks of the 2 hidden videos; another "
        f"trial's: python -m tune.predict --experiment {dual_study} --split hidden "
        "--out submission.pt --trial ID)\n" in printed
    )
    assert "to submit it" not in printed
    assert (
        "(the budget's 4 epochs; --epochs N for more, --trial ID for another above; on the study's data): " in printed
    )
    assert f"python -m tune.train --from {dual_study}\n" in printed
    for row in trials[trials["stage"] == "finetune"].to_dict("records"):  # the top trials, a line each
        line = next(line for line in printed.splitlines() if f" {row['trial_id']}  " in line)
        assert f"[{row['status']}, {row['epochs']} epoch{'' if row['epochs'] == 1 else 's'}]" in line


def test_a_stage_with_no_successful_trial_exits_non_zero(local_ray: None, synth_root: Path, tmp_path: Path) -> None:
    cfg = SearchConfig(
        space="unet",
        data=str(synth_root),
        budget="smoke",
        samples=2,
        out=str(tmp_path),
        name="f",
        dashboard=False,
        fail_trials=(1, 2),
    )
    assert run_search(cfg) == 1
    trials = pd.read_parquet(tmp_path / "f" / "results" / "trials.parquet")
    assert (trials["status"] == "failed").all() and len(trials) == 2


@pytest.mark.slow
def test_a_resume_whose_results_are_gone_or_broken_is_refused_and_leaves_the_study_as_it_was(
    unet_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = Path(shutil.copytree(unet_study, tmp_path / "u"))  # finished: its stage's trials are only in results
    trials = study / "results" / "trials.parquet"
    kept = {path: path.read_bytes() for path in (study / "submission.pt", study / "report.html")}
    resume = ["--out", str(tmp_path), "--name", "u", "--resume", "--no-dashboard"]
    trials.unlink()
    assert main(resume) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: cannot resume: {trials} is missing, though that stage finished; restore it from a copy"
    )
    trials.write_bytes(b"not parquet")
    assert main(resume) == 2
    assert f"error: cannot resume: {trials}: not a Parquet file that can be read (" in capsys.readouterr().err
    assert all(path.read_bytes() == data for path, data in kept.items())  # no evaluation, submission or report


def test_cli_refuses_to_overwrite_a_study_or_resume_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken" / "main").mkdir(parents=True)  # a stage of it started
    (tmp_path / "taken" / "search.json").write_text("{}")
    assert main(["--space", "unet", "--out", str(tmp_path), "--name", "taken"]) == 2
    assert "already holds a study; pass --resume" in capsys.readouterr().err
    assert main(["--space", "unet", "--out", str(tmp_path), "--name", "nothing", "--resume"]) == 2
    assert f"nothing to resume: {tmp_path / 'nothing' / 'search.json'} does not exist; the studies in " in (
        err := capsys.readouterr().err
    ) and err.rstrip().endswith(": taken")  # the ones it could be
    assert main(["--space", "unet", "--out", str(tmp_path), "--resume"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: --resume needs the --name of the study to continue; the studies in {tmp_path}: taken"
    )
    assert main(["--out", str(tmp_path / "taken"), "--resume"]) == 2  # the study's folder as --out
    assert capsys.readouterr().err.strip() == (
        f"error: --resume needs the --name of the study to continue: {tmp_path / 'taken'} is a study, resumed by "
        f"python -m tune.search --out {tmp_path} --name taken --resume"
    )


def test_mask_space_trains_the_predictor_on_the_best_segmenters_pseudo_labels(
    mask_study: Path, synth_root: Path
) -> None:
    trials = pd.read_parquet(mask_study / "results" / "trials.parquet")
    segmenter, predictor = trials[trials["stage"] == "segmenter"], trials[trials["stage"] == "predictor"]
    assert len(segmenter) == 4 and len(predictor) == 4
    parent = predictor["parent_trial"].iloc[0]
    assert (predictor["parent_trial"] == parent).all()
    best = segmenter.set_index("trial_id").loc[parent]  # the segmenter with the best value (any, if tied)
    assert best["best_metric"] == segmenter["best_metric"].max()
    done = predictor[predictor["checkpoint"].notna()]
    assert len(done)
    state = load_checkpoint(done.iloc[0]["checkpoint"])
    assert state["run"]["model"] == "mask_predictor" and state["pipeline"]["segmenter"] == best["checkpoint"]
    # the pseudo-labels: frames 1-11 of train and val, every frame of unlabeled, in id order; not hidden (a
    # prediction segments its frames itself)
    from tune.training.pseudo_store import has_pseudo, load_pseudo, pseudo_label_dir

    # the study's cache; only the unlabeled and val videos it uses (--unlabeled 1 --val-videos 1)
    folder = pseudo_label_dir(best["checkpoint"], synth_root, mask_study.parent / "decoded", unlabeled=1, val=1)
    for split, frames, ids in (("train", 11, [0, 1, 2, 3]), ("val", 11, [4]), ("unlabeled", 22, [6])):
        masks, found = load_pseudo(folder, split)
        assert masks.shape == (len(ids), frames, 160, 240) and masks.dtype == "uint8"
        assert found.tolist() == ids
    assert not has_pseudo(folder, "hidden")
    epochs = pd.read_parquet(mask_study / "results" / "epochs.parquet")
    assert epochs.loc[epochs["stage"] == "predictor", "val_copy_last_iou"].notna().all()
    # the best model beside the rules on its segmenter's masks (what it must beat), as its best epoch scored them
    top = ranked(trials, "predictor").iloc[0]
    at_best = epochs[(epochs["trial_id"] == top["trial_id"]) & (epochs["epoch"] == top["best_epoch"])].iloc[0]
    table = pd.read_parquet(mask_study / "results" / REFERENCES_FILE)
    scores = dict(zip(table["answer"], table["iou"], strict=True))
    for rule in ("copy_last", "extrapolate"):
        assert scores[f"{rule} on its segmenter's masks"] == pytest.approx(at_best[f"val_{rule}_iou"], abs=1e-6)
    assert "; the rules on its segmenter's masks (what it must beat): copy_last " in references_text(table)
    # scored on the first val video, the best model is scored on the other too, which chose no trial: its score on
    # the whole set's second video (the study's first says nothing of how it does on videos it was not chosen on)
    from tune.training.prediction import predict

    answer, answered, _ = predict(top["checkpoint"], synth_root, "val", skip=1)
    val = decode_split(synth_root, "val", progress=False)
    assert val.masks is not None and answered.tolist() == [5]
    second = torch.from_numpy(np.array(val.masks[1:, 21])).long()
    unseen = competition_iou(answer.long(), second)
    floor = competition_iou(torch.zeros_like(second), second)
    assert scores[ANSWER_UNSEEN] == pytest.approx(unseen, abs=1e-9)
    assert scores[ANSWER_UNSEEN_BACKGROUND] == pytest.approx(floor, abs=1e-9)
    assert dict(zip(table["answer"], table["videos"], strict=True))[ANSWER_UNSEEN] == 1
    said = f"; on the 1 other val video, which no trial was scored on (--val-videos 1), the best model {unseen:.4f}, "
    assert said in references_text(table) and f"all background there ({floor:.4f}): a score its choice" in (
        references_text(table)
    )
    labels = pd.read_parquet(mask_study / "results" / "gallery.parquet")["label"]  # the mask 11 it moves, not the true
    assert SEGMENTER_LAST in set(labels) and TRUE_LAST not in set(labels)
    # the best model's per-class IoU counts the pixels of the one val video scored, not of both
    from reports.load import load_experiment

    per_class = pd.read_parquet(mask_study / "results" / PER_CLASS_FILE)
    assert per_class["target_pixels"].sum() == 160 * 240
    # the parts of unlabeled and val it used are in its config and its report
    settings = json.loads((mask_study / "search.json").read_text())
    assert settings["unlabeled"] == 1 and settings["val_videos"] == 1
    notes = load_experiment(mask_study).notes
    assert "the study trained on the first 1 unlabeled videos only (--unlabeled)" in notes
    assert (
        "trials and the best model were scored on the first 1 val videos only (--val-videos); the best model on the "
        "others too, as a score its choice did not flatter"
    ) in notes


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_as_the_study_ends_says_how_to_see_what_it_ran_and_how_to_finish_it(
    sent: signal.Signals,
    unet_study: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C or SIGTERM while the best model is evaluated (the stages done, a copy of a finished study resumed): the
    line said how to resume but not the report command a stop inside a stage gives (docs: the stop's line says it);
    SIGTERM stops it as Ctrl-C does there too (the caller's handler, here one that records it, put back after)."""
    import tune.search.driver

    shutil.copytree(unet_study, tmp_path / "u")
    caught: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    # Python's own Ctrl-C, as a command starts with (a test before may leave another handler: Ray Tune's flag)
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)

    def stop(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), sent)
        time.sleep(30)  # (the signal stops it first)

    monkeypatch.setattr(tune.search.driver, "_answer", stop)  # the end's evaluation and submission
    try:
        assert main(["--out", str(tmp_path), "--name", "u", "--resume", "--no-dashboard"]) == 130
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, interrupt)
    assert capsys.readouterr().err.endswith(
        f"interrupted; a report of what it ran: python -m reports.build {tmp_path / 'u'}; resume with: python -m "
        f"tune.search --out {tmp_path} --name u --no-dashboard --resume\n"
    )
    assert caught == []  # the study's own handler took it, not the caller's


def test_a_study_run_from_python_and_stopped_leaves_no_ray_running_nor_its_sigterm_handler(
    own_ray: None, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study run from a notebook, stopped by Ctrl-C as its stage ran: run_search returned 130 and left its local Ray
    running (the next study ran on it, said it as a cluster's, and never stopped it) and its SIGTERM handler in place
    (the kernel no longer ended on SIGTERM)."""
    import ray

    import tune.search.driver

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.search.driver, "run_stage", ctrl_c)
    before = signal.getsignal(signal.SIGTERM)
    cfg = SearchConfig(
        space="unet", data=str(synth_root), budget="smoke", samples=1, out=str(tmp_path), name="n", dashboard=False
    )
    assert run_search(cfg) == 128 + signal.SIGINT
    assert "stopped at once (SIGINT); nothing unfinished is marked finished" in capsys.readouterr().err
    assert not ray.is_initialized() and signal.getsignal(signal.SIGTERM) is before


def test_bad_videos_fail_a_study_in_one_line_or_are_skipped_and_listed(
    local_ray: None,
    synth_root: Path,
    copy_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (copy_root / "train" / "video_1" / "image_5.png").write_bytes(b"broken")
    truncated = copy_root / "val" / "video_5" / "image_2.png"
    truncated.write_bytes(truncated.read_bytes()[:300])
    (copy_root / "unlabeled" / "video_6" / "image_0.png").write_bytes(b"broken")  # a unet study never reads it
    (copy_root / "hidden" / "video_9" / "image_3.png").write_bytes(b"broken")  # the submission's split
    monkeypatch.chdir(copy_root.parent)  # --data as a path relative to here
    args = ["--space", "unet", "--data", copy_root.name, "--budget", "smoke", "--samples", "2"]
    args += ["--out", str(tmp_path), "--no-dashboard"]
    assert main([*args, "--name", "b"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the decoding progress bar, one line, no traceback
    assert "Traceback" not in err and last.startswith("error: 1 bad video(s) in") and "video_1/image_5.png" in last

    before = signal.getsignal(signal.SIGINT)
    with pytest.warns(UserWarning, match=r"^(skipping 1 bad video\(s\)|predicting 1 broken video\(s\))") as said:
        assert main([*args, "--name", "b", "--skip-bad-videos"]) == 0  # the failed study never started: no --resume
    # Ray Tune's handler does not outlive the stage: a Ctrl-C after it (the next stage's second, the evaluation,
    # the report) only set that ended experiment's flag, and the study went on
    assert signal.getsignal(signal.SIGINT) is before
    assert {str(w.message).split(" of ")[0] for w in said} == {
        "skipping 1 bad video(s)",
        "predicting 1 broken video(s)",
    }
    left_out = json.loads((tmp_path / "b" / "skipped_videos.json").read_text())
    assert list(left_out) == ["train", "val"] and list(left_out["train"]) == ["1"] and list(left_out["val"]) == ["5"]
    settings = json.loads((tmp_path / "b" / "search.json").read_text())
    assert settings["skip_bad_videos"] is True
    assert settings["data"] == str(copy_root)  # absolute: a resume, tune.train --from, tune.predict from elsewhere
    # the submission keeps every hidden video: the broken one predicted from the frames that decode
    assert torch.load(tmp_path / "b" / "submission.pt", weights_only=True).shape == (2, 160, 240)
    from reports.load import load_experiment

    notes = load_experiment(tmp_path / "b").notes
    assert any(n.startswith("1 bad train video(s) left out (--skip-bad-videos): video 1: cannot decode") for n in notes)
    assert any(n.startswith("1 bad val video(s) left out") for n in notes)
    # a broken hidden video alone fails the study before any trial, not at its end when the submission is written
    for split, video in (("train", "video_1/image_5.png"), ("val", "video_5/image_2.png")):
        shutil.copy(synth_root / split / video, copy_root / split / video)
    capsys.readouterr()
    assert main([*args, "--name", "h"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 1 broken video(s) in") and "hidden: video 9" in last, last
    assert "--skip-bad-videos" in last and not (tmp_path / "h").exists()


def test_dynamics_learns_object_moves_on_the_best_segmenters_tracks_beside_the_rules(
    dynamics_study: Path, synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = pd.read_parquet(dynamics_study / "results" / "trials.parquet")
    segmenter, dynamics = trials[trials["stage"] == "segmenter"], trials[trials["stage"] == "dynamics"]
    assert len(segmenter) == 3 and len(dynamics) == 3 and (dynamics["status"] == "completed").all()
    parent = dynamics["parent_trial"].iloc[0]
    assert (dynamics["parent_trial"] == parent).all()
    best = segmenter.set_index("trial_id").loc[parent]
    assert best["best_metric"] == segmenter["best_metric"].max()
    # the measured settings are tried first, the rest sampled; an epoch is 8 of the budget's (tracks are cheap)
    assert ((dynamics["config/width"] == 64) & (dynamics["config/rounds"] == 1)).any()
    assert (dynamics["config/epoch_samples"] == 8 * 4).all()
    state = load_checkpoint(dynamics.iloc[0]["checkpoint"])
    assert state["run"]["model"] == "object_dynamics" and state["pipeline"]["segmenter"] == best["checkpoint"]
    epochs = pd.read_parquet(dynamics_study / "results" / "epochs.parquet")
    mine = epochs[epochs["stage"] == "dynamics"]
    for column in ("val_iou", "val_loss", "val_copy_last_iou", "val_extrapolate_iou"):
        assert mine[column].notna().all(), column
    # the tracks of the segmenter's masks (train, val, unlabeled) and of the true masks, made once into the cache
    assert len(list((dynamics_study.parent / "decoded" / "tracks").glob("*/done.json"))) == 5
    # the summary sets the best trial beside every rule on the same masks, and says which to submit
    from tune.search.driver import open_study
    from tune.search.resources import Cluster
    from tune.search.summary import print_summary

    settings = json.loads((dynamics_study / "search.json").read_text())
    cfg = SearchConfig(space="dynamics", data=str(synth_root), out=str(dynamics_study.parent), name="o", budget="smoke")
    assert settings["space"] == "dynamics"
    capsys.readouterr()
    print_summary(open_study(cfg, Cluster.local()))
    printed = capsys.readouterr().out
    top = dynamics.sort_values("best_metric", ascending=False).iloc[0]
    rules = mine[mine["trial_id"] == top["trial_id"]].iloc[-1]
    value, ceiling = top["best_metric"], max(rules["val_copy_last_iou"], rules["val_extrapolate_iou"])
    assert ("beats every rule" in printed) == (value > ceiling)  # (by a hair, where the 4 digits cannot tell)
    assert ("and no rule beats it, on the same val masks (its segmenter's): copy_last" in printed) == (value == ceiling)
    assert ("above it (no training)" in printed) == (value < ceiling)
