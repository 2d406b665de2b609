"""The MuJoCo generator: layout, determinism, scene content, and what the pictures show."""

from __future__ import annotations

import filecmp
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data.cache import decode_split
from data.classes import COLOR_RGB, N_INPUT_FRAMES, ObjectClass, object_class
from data.synth.__main__ import main
from data.synth.generate import SynthSpec, generate
from data.synth.render import SceneRenderer
from data.synth.scene import ObjectSpec, SceneConfig, SceneSpec, sample_scene


def test_layout_has_global_unpadded_ids_and_competition_files(synth_root: Path) -> None:
    assert sorted(p.name for p in (synth_root / "train").iterdir()) == ["video_0", "video_1", "video_2", "video_3"]
    assert sorted(p.name for p in (synth_root / "hidden").iterdir()) == ["video_8", "video_9"]
    train_files = sorted(p.name for p in (synth_root / "train" / "video_0").iterdir())
    assert train_files == sorted([f"image_{t}.png" for t in range(22)] + ["mask.npy"])
    assert sorted(p.name for p in (synth_root / "unlabeled" / "video_6").iterdir()) == sorted(
        f"image_{t}.png" for t in range(22)
    )
    assert sorted(p.name for p in (synth_root / "hidden" / "video_9").iterdir()) == sorted(
        f"image_{t}.png" for t in range(11)
    )


def test_ctrl_c_stops_generation_in_one_line_that_says_what_is_kept(tmp_path: Path) -> None:
    """Ctrl-C amid generation (its pool of workers too, as a terminal sends it to the process group), pressed
    again and again as the pool is ended (a key held; `timeout` sends two): no traceback, no hang, ended by SIGINT
    (a shell's $? 130: a calling script stops too), one
    line saying that the videos written stay for the same command to go on from. (A second one cut the pool's
    terminate() short and its join() waited forever, or raised amid its locks with a traceback.)"""
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "data.synth", str(out), "--train", "40", "--seed", "3", "--quiet", "--workers", "2"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "train" / "video_0" / "mask.npy").exists() and run.poll() is None:
            assert time.monotonic() < deadline, "no video written in 60 s"
            time.sleep(0.05)
        for _ in range(15):  # a held key repeats ~30 times a second
            os.killpg(run.pid, signal.SIGINT)
            time.sleep(0.02)
        output, _ = run.communicate(timeout=60)
    finally:  # a hang (the defect) leaves no process behind
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == -signal.SIGINT and "Traceback" not in output, output
    assert output.strip().splitlines()[-1] == (
        "stopped (SIGINT): the videos written are kept; the same command draws the rest"
    ), output
    assert len(list((out / "train").glob("video_*"))) < 40


@pytest.mark.slow
def test_same_seed_writes_byte_identical_files_whatever_the_workers(tmp_path: Path) -> None:
    spec = SynthSpec(train=2, val=1, hidden=1, seed=11)
    generate(tmp_path / "a", spec, workers=1, progress=False)
    generate(tmp_path / "b", spec, workers=2, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 1 + 2 * 23 + 23 + 11
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []
    generate(tmp_path / "c", SynthSpec(train=2, val=1, hidden=1, seed=12), workers=1, progress=False)
    assert not filecmp.cmp(
        tmp_path / "a" / "train" / "video_0" / "mask.npy",
        tmp_path / "c" / "train" / "video_0" / "mask.npy",
        shallow=False,
    )


def test_generation_resumes_and_refuses_other_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([str(out), "--train", "1", "--seed", "3", "--quiet", "--workers", "1"]) == 0
    assert "wrote 1 videos" in capsys.readouterr().out
    assert main([str(out), "--train", "2", "--seed", "3", "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err  # one line naming each setting that differs, not the whole manifest
    assert "synth.json records a data set generated with other settings: train 1 (this command: train 2);" in err
    assert len(err.strip().splitlines()) == 1
    manifest = json.loads((out / "synth.json").read_text())
    (out / "synth.json").write_text(json.dumps({**manifest, "scene": {**manifest["scene"], "friction": 0.2}}))
    assert main([str(out), "--train", "1", "--seed", "3", "--quiet", "--workers", "1"]) == 2
    assert "other settings: scene.friction 0.2 (this command: scene.friction 0.1);" in capsys.readouterr().err
    (out / "synth.json").write_text(json.dumps(manifest))
    (out / "train" / "video_0").rename(out / "train" / ".video_0.partial")  # as if killed mid-write
    assert main([str(out), "--train", "1", "--seed", "3", "--quiet", "--workers", "1"]) == 0
    assert (out / "train" / "video_0" / "mask.npy").exists()
    whole = (out / "train" / "video_0" / "mask.npy").read_bytes()
    (out / "train" / "video_0" / "mask.npy").unlink()  # a file of a finished video deleted since
    capsys.readouterr()
    assert main([str(out), "--train", "1", "--seed", "3", "--quiet", "--workers", "1"]) == 0
    assert "wrote 1 videos" in capsys.readouterr().out
    assert (out / "train" / "video_0" / "mask.npy").read_bytes() == whole
    frame = (out / "train" / "video_0" / "image_5.png").read_bytes()
    (out / "train" / "video_0" / "image_5.png").unlink()  # a frame amid the others
    assert main([str(out), "--train", "1", "--seed", "3", "--quiet", "--workers", "1"]) == 0
    assert "wrote 1 videos" in capsys.readouterr().out
    assert (out / "train" / "video_0" / "image_5.png").read_bytes() == frame
    assert main([str(tmp_path), "--train", "1", "--quiet"]) == 2  # not empty, no manifest
    capsys.readouterr()
    assert main([str(tmp_path / "w"), "--train", "1", "--quiet", "--workers", "0"]) == 2
    assert "error: --workers must be >= 1" in capsys.readouterr().err and not (tmp_path / "w").exists()


@pytest.mark.slow
def test_settings_that_cannot_be_generated_are_refused_in_one_line_before_anything_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative seed failed in the first video, after synth.json recorded it: the corrected command was then
    refused as "other settings"; a count too large for the disk built its list of videos for ever."""
    out = tmp_path / "out"
    assert main([str(out), "--train", "1", "--seed", "-5", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: --seed must be >= 0, got -5"
    assert main([str(out), "--train", "-3", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: --train must be >= 0 (videos), got -3"
    assert main([str(out), "--unlabeled", "99999999999999", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}: the data set needs 12000000000.00 GB and ") and err.endswith(
        "GB are free; free some space or generate fewer videos"
    )
    assert not (out / "synth.json").exists()
    (tmp_path / "a-file").write_text("")
    assert main([str(tmp_path / "a-file" / "root"), "--train", "1", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'a-file'}: a file, where a folder is needed"
    assert main([str(tmp_path / "a-file"), "--train", "1", "--quiet"]) == 2  # OUT itself a file
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'a-file'}: a file, where a folder is needed"
    with pytest.raises(SystemExit) as usage:  # no counts: it wrote 0 videos and said it succeeded
        main([str(tmp_path / "none"), "--quiet"])
    assert usage.value.code == 2 and "no videos asked for: give --train N" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_scenes_hold_distinct_classes_and_late_entries() -> None:
    cfg = SceneConfig()
    late = 0
    for seed in range(200):
        scene = sample_scene(np.random.default_rng(seed), cfg)
        classes = [o.cls.class_id for o in scene.objects]
        assert len(set(classes)) == len(classes)
        initial = [o for o in scene.objects if o.enter_frame == 0]
        assert cfg.min_initial <= len(initial) <= cfg.max_initial
        for a in initial:
            assert cfg.camera.in_view(np.array(a.xy), a.bound)
            for b in initial:
                assert a is b or math.dist(a.xy, b.xy) > a.bound + b.bound
        for o in scene.objects:
            if o.enter_frame:
                assert cfg.camera.out_of_view(np.array(o.xy), o.bound)
        late += any(o.enter_frame >= N_INPUT_FRAMES for o in scene.objects)
    assert 0.4 < late / 200 < 0.9


def test_masks_show_objects_in_their_colours_moving_and_entering(synth_root: Path, tmp_path: Path) -> None:
    decoded = decode_split(synth_root, "train", cache_dir=tmp_path, progress=False)
    assert decoded.masks is not None
    names = list(COLOR_RGB)
    chroma = np.array([COLOR_RGB[c] for c in names], float)
    chroma /= chroma.sum(axis=1, keepdims=True)
    right = total = moved = entered = 0
    for v in range(len(decoded)):
        frames, masks = decoded.frames[v].astype(float), decoded.masks[v]
        assert 0 < masks.max() < 49
        for cid in np.unique(masks[0])[1:]:
            pixels = frames[0][masks[0] == cid]
            if len(pixels) < 30:
                continue
            mean = pixels.mean(axis=0)
            guess = names[int(np.argmin(((chroma - mean / mean.sum()) ** 2).sum(axis=1)))]
            right += guess == object_class(int(cid)).color
            total += 1
            later = np.argwhere(masks[10] == cid)
            if len(later):
                moved += bool(np.linalg.norm(np.argwhere(masks[0] == cid).mean(0) - later.mean(0)) > 2)
        entered += bool(set(np.unique(masks[21])) - set(np.unique(masks[:N_INPUT_FRAMES])))
    assert total >= 8 and right / total >= 0.9
    assert moved >= 2
    assert entered >= 1


def _single_frame(objects: list[ObjectSpec]) -> tuple[np.ndarray, np.ndarray]:
    with SceneRenderer(SceneConfig(n_frames=1)) as renderer:
        frames, masks = renderer.simulate(SceneSpec(tuple(objects)))
    return frames[0], masks[0]


def test_metal_is_shinier_than_rubber() -> None:
    metal = ObjectSpec(ObjectClass("sphere", "metal", "blue"), 0.5, (-1.2, 1.0), 0.0, (0.0, 0.0), 0)
    rubber = ObjectSpec(ObjectClass("sphere", "rubber", "blue"), 0.5, (1.2, 1.0), 0.0, (0.0, 0.0), 0)
    frame, mask = _single_frame([metal, rubber])
    brightness = frame.astype(float).sum(axis=-1)
    metal_peak = brightness[mask == metal.cls.class_id].max()
    rubber_peak = brightness[mask == rubber.cls.class_id].max()
    assert metal_peak > rubber_peak + 150


def test_an_object_entering_after_frame_11_is_absent_before_and_present_at_22() -> None:
    cfg = SceneConfig()
    still = ObjectSpec(ObjectClass("cube", "rubber", "red"), 0.4, (0.0, 1.0), 0.3, (0.0, 0.0), 0)
    newcomer = ObjectSpec(ObjectClass("cylinder", "metal", "green"), 0.4, (-7.5, 1.0), 0.0, (4.0, 0.0), 14)
    assert cfg.camera.out_of_view(np.array(newcomer.xy), newcomer.bound)
    with SceneRenderer(cfg) as renderer:
        _, masks = renderer.simulate(SceneSpec((still, newcomer)))
    present = [bool((m == newcomer.cls.class_id).any()) for m in masks]
    assert not any(present[:14]) and present[21]
    assert all((m == still.cls.class_id).sum() > 100 for m in masks)


def test_default_root_is_generated_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from data.synth.default import default_data_root

    monkeypatch.setenv("SEGTUNE_SYNTH", str(tmp_path))
    spec = SynthSpec(train=1, val=1, seed=5)
    root = default_data_root(spec, progress=False)
    assert root.parent == tmp_path and (root / ".complete").exists()
    stamp = (root / "train" / "video_0" / "mask.npy").stat().st_mtime_ns
    assert default_data_root(spec, progress=False) == root
    assert (root / "train" / "video_0" / "mask.npy").stat().st_mtime_ns == stamp
    assert default_data_root(SynthSpec(train=1, val=1, seed=6), progress=False) != root


def test_a_relative_segtune_synth_is_taken_from_where_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a study's trials, in folders of their own, read the embedded set where the driver found it)"""
    from data.synth.default import default_synth_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGTUNE_SYNTH", "synth")
    assert default_synth_dir() == tmp_path / "synth"
