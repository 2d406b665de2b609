"""Parts of the driver that need no Ray cluster: which splits a study decodes, the dashboard token made
private and the state a resume trusts."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest

from reports.records import read_study_settings
from tune.search.config import SearchConfig, prepare_study
from tune.search.driver import init_ray, open_study, splits_used, start_study
from tune.search.ray_env import private_token
from tune.search.resources import Cluster, Node
from tune.search.spaces import get_space
from tune.search.stages import check_trusted, forget_empty_state
from tune.search.state_writes import check_state


@pytest.mark.parametrize(
    ("space", "splits"),
    [
        ("unet", ["train", "val"]),  # a broken unlabeled video cannot fail a unet study
        ("dual_phase", ["unlabeled", "train", "val"]),
        ("mask_space", ["train", "val", "unlabeled"]),  # unlabeled: through the segmenter's pseudo-labels
        ("dynamics", ["train", "val", "unlabeled"]),
    ],
)
def test_a_study_decodes_only_the_splits_its_stages_read(space: str, splits: list[str]) -> None:
    assert splits_used(get_space(space)) == splits


def test_the_dashboard_token_is_made_readable_by_its_owner_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)
    private_token()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def _stage_folder(tmp_path: Path) -> Path:
    stage = tmp_path / "study" / "main"
    stage.mkdir(parents=True)
    (stage / "tuner.pkl").write_bytes(b"state")
    return stage


def test_a_private_stage_folder_may_be_restored(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    (stage / "searcher-state.pkl").write_bytes(b"state")
    # every file a restore unpickles was checked, with the folders holding them
    assert check_trusted(stage) == [stage.parent, stage, stage / "searcher-state.pkl", stage / "tuner.pkl"]


def test_a_state_file_others_can_write_is_refused(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    (stage / "tuner.pkl").chmod(0o664)
    with pytest.raises(ValueError, match=r"tuner\.pkl is writable by group or others.*`chmod go-w .*tuner\.pkl`"):
        check_trusted(stage)


def test_a_group_writable_study_folder_is_refused(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    stage.parent.chmod(0o775)
    with pytest.raises(ValueError, match=r"refusing to resume: .*study is writable by group or others"):
        check_trusted(stage)


@pytest.mark.skipif(os.geteuid() != 0, reason="planting a file of another user needs root")
def test_a_state_file_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    os.chown(stage / "tuner.pkl", 65534, 65534)
    with pytest.raises(ValueError, match=r"tuner\.pkl is owned by uid 65534, not you"):
        check_trusted(stage)


def test_a_stage_the_deadline_ended_before_its_first_trial_starts_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ray saved a state of no trial, which it cannot restore (IndexError), and then ran as interrupted at every
    resume (measured: `--samples 12 --time-budget 5`, then --resume ran 1 trial and said SIGINT, each time). Its
    state is removed and the stage runs anew (measured: the resume then ran its 12 trials); one with trials is kept."""
    stage = _stage_folder(tmp_path)
    state = {
        "tuner.pkl": pickle.dumps({"trainable": "train_trial"}),
        "experiment_state-2026-12-06_01-00-20.json": json.dumps({"trial_data": [], "runner_data": {}}).encode(),
        "search_gen_state-2026-12-06_01-00-20.json": pickle.dumps({"finished": True}),
        "searcher-state-2026-12-06_01-00-20.pkl": pickle.dumps({"study": []}),
    }
    for name, data in state.items():
        (stage / name).write_bytes(data)
    (stage / "experiment_state-2026-12-06_01-00-40.json").write_text(json.dumps({"trial_data": [["t", "x"]]}))
    assert not forget_empty_state(stage, "main")  # the newest names a trial: restored
    assert all((stage / name).exists() for name in state)
    (stage / "experiment_state-2026-12-06_01-00-40.json").unlink()
    assert forget_empty_state(stage, "main")
    assert capsys.readouterr().out == "stage main: no trial of it had started; starting it anew\n"
    assert not any((stage / name).exists() for name in state)
    (stage / "experiment_state-2026-12-06_01-00-20.json").write_bytes(b"{")  # damaged: for check_state to name
    assert not forget_empty_state(stage, "main")


@pytest.mark.parametrize("tuner", [pickle.dumps({"trainable": "train_trial"}), b"\x80\x05\x95"], ids=["whole", "cut"])
def test_a_stage_whose_driver_was_killed_as_it_began_starts_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tuner: bytes
) -> None:
    """A kill -9 in a stage's first seconds, after Ray wrote tuner.pkl (or as it wrote it) and before its first
    experiment state: Ray's restore logged "no experiment state file" with a traceback, ran 1 of 2 trials and ended as
    interrupted (SIGINT, exit 130), at every resume (measured). The stage starts anew."""
    stage = _stage_folder(tmp_path)
    (stage / "tuner.pkl").write_bytes(tuner)
    assert forget_empty_state(stage, "main")
    said = "stage main: Ray had saved no state of it (its driver stopped as it began); starting it anew\n"
    assert capsys.readouterr().out == said and not (stage / "tuner.pkl").exists()


def test_a_damaged_ray_state_file_is_refused_before_the_restore(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    state = {
        "tuner.pkl": pickle.dumps({"trainable": "train_trial", "param_space": {}}),
        "experiment_state-2026-12-06_01-00-20.json": json.dumps({"trial_data": [], "runner_data": {}}).encode(),
        "search_gen_state-2026-12-06_01-00-20.json": pickle.dumps({"finished": False, "counter": 3}),
        "searcher-state-2026-12-06_01-00-20.pkl": pickle.dumps({"study": list(range(100))}),
    }
    for name, data in state.items():
        (stage / name).write_bytes(data)
    (stage / "experiment_state-2026-12-05_09-00-00.json").write_bytes(b"{")  # an older state: Ray reads the newest
    assert check_state(stage) == [stage / name for name in state]
    for name, data in state.items():
        for damaged in (data[: len(data) // 2], b""):  # cut short while written; emptied by a full disk
            (stage / name).write_bytes(damaged)
            with pytest.raises(
                ValueError, match=rf"^cannot resume: {stage / name} is damaged \({len(damaged)} bytes; .*restore it"
            ):
                check_state(stage)
        (stage / name).write_bytes(data)


@pytest.mark.parametrize(
    ("name", "noise", "kept"),
    [
        (  # after a kill, a resumed stage's trials that had not reported have no metrics files: the study reads its own
            "ray.tune.analysis.experiment_analysis",
            "Failed to fetch metrics for 2 trial(s):\n- train_trial_ffb3247b: FileNotFoundError(...)",
            "Could not find any result for this experiment",
        ),
        (  # after Ctrl-C, Ray's way to resume, printed just before the study's own --resume line
            "ray.tune.tune",
            "Experiment has been interrupted, but the most recent state was saved.\nResume experiment with: "
            'Tuner.restore(path="/runs/s/main", trainable=...)',
            "Experiment has been interrupted.",
        ),
    ],
)
def test_rays_warnings_that_tell_a_study_s_user_nothing_are_left_out(
    name: str, noise: str, kept: str, local_ray: None
) -> None:
    """Ray's warnings that the study says better itself are left out; Ray's others are kept."""
    logger = logging.getLogger(name)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)  # (the suite's Ray logs errors only)
    try:
        init_ray(SearchConfig())  # the running Ray is kept; the filters are set
        logger.warning(noise)
        logger.warning(kept)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == [kept]


def test_a_new_study_keeps_the_gpus_per_trial_planned_at_its_start_for_every_resume(
    synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    """--gpus-per-trial unset: a GPU a trial where the cluster has one, else none, planned as the study starts and
    saved. A resume on a machine with a GPU plans this CPU study's trials as they were (its budget the CPU's, not
    wider models for more epochs), and takes `--gpus-per-trial 0` (it was refused: "the study has the default")."""
    cfg = SearchConfig(space="unet", data=str(synth_root), budget="default", out=str(tmp_path), name="g")
    study, _ = start_study(prepare_study(cfg, resume=False), new=True)
    assert study.cfg.gpus_per_trial == 0 and read_study_settings(tmp_path / "g")["gpus_per_trial"] == 0
    given = SearchConfig(space="unet", out=str(tmp_path), name="g", gpus_per_trial=0)
    resumed = prepare_study(given, resume=True, given=frozenset({"gpus_per_trial"}))
    on_gpu = open_study(resumed, Cluster((Node(cpus=16, gpus=1),)))
    assert not on_gpu.resources.on_gpu and on_gpu.budget == study.budget
    with pytest.raises(ValueError, match=r"--gpus-per-trial 1 \(the study has 0.0\)"):
        prepare_study(dataclasses.replace(given, gpus_per_trial=1), resume=True, given=frozenset({"gpus_per_trial"}))


def test_a_resume_refuses_data_that_changed_since_the_study_began(copy_root: Path, tmp_path: Path) -> None:
    """A study killed, its data root changed, then resumed: its old trials (scored on the old val videos) were
    ranked against new ones, and ASHA's rungs mixed both. The same data, copied anew (new times), resumes."""
    cfg = SearchConfig(space="unet", data=str(copy_root), budget="smoke", out=str(tmp_path), name="d", val_videos=1)
    start_study(prepare_study(cfg, resume=False), new=True)

    def resume() -> None:
        start_study(prepare_study(SearchConfig(out=str(tmp_path), name="d"), resume=True), new=False)

    for path in copy_root.rglob("*"):
        os.utime(path, (1.0, 1.0))  # copied again (cp without -a): the same data
    shutil.rmtree(copy_root / "val" / "video_5")  # past --val-videos 1: a video the study does not read
    resume()
    changes = [
        (lambda: (copy_root / "train" / "video_3" / "mask.npy").write_bytes(b"x"), "train: files of other sizes"),
        (lambda: (copy_root / "val" / "video_4").rename(copy_root / "val" / "video_9"), "val: other videos"),
        (lambda: shutil.rmtree(copy_root / "train" / "video_0"), "train: 4 videos then, 3 now"),
    ]
    for change, said in changes:
        change()
        with pytest.raises(ValueError) as err:
            resume()
        message = str(err.value)  # (each change said beside the ones before it)
        assert message.startswith(f"the data in {copy_root} changed since the study began (") and said in message
