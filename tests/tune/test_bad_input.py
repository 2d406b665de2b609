"""The bad-input table, through the real commands: each bad file, folder or flag a user may meet is one
line on stderr (`error: ...`, naming the file or the flag and what was wrong), no traceback, exit 2,
before any trial starts. Every case errs before Ray starts, so the table runs in seconds."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tune.predict import main as predict
from tune.search.cli import main as search
from tune.train import main as train

Setup = Callable[[Path, Path], list[str]]  # (a damaged copy of the root, a scratch folder) -> the command line


def _search(root: Path, tmp: Path, *extra: str) -> list[str]:
    study = ["--budget", "smoke", "--out", str(tmp / "runs"), "--name", "s", "--no-dashboard"]
    return ["search", "--space", "unet", "--data", str(root), *study, *extra]


def _damage(path: str, content: bytes | None) -> Setup:
    """A study on a root whose file `path` holds `content` (None: deleted)."""

    def setup(root: Path, tmp: Path) -> list[str]:
        target = root / path
        if content is None:
            target.unlink()
        else:
            target.write_bytes(content)
        return _search(root, tmp)

    return setup


def _mask(array: np.ndarray) -> Setup:
    def setup(root: Path, tmp: Path) -> list[str]:
        np.save(root / "val" / "video_5" / "mask.npy", array)
        return _search(root, tmp)

    return setup


def _truncated(root: Path, tmp: Path) -> list[str]:
    frame = root / "train" / "video_2" / "image_7.png"
    frame.write_bytes(frame.read_bytes()[:200])
    return _search(root, tmp)


def _wrong_size(root: Path, tmp: Path) -> list[str]:
    from PIL import Image

    Image.new("RGB", (120, 80)).save(root / "train" / "video_1" / "image_3.png")
    return _search(root, tmp)


def _two_folders(root: Path, tmp: Path) -> list[str]:
    shutil.copytree(root / "train" / "video_1", root / "train" / "video_01")
    return _search(root, tmp)


def _empty_split(root: Path, tmp: Path) -> list[str]:
    for child in (root / "val").iterdir():
        shutil.rmtree(child)
    return _search(root, tmp)


def _started_study(root: Path, tmp: Path) -> list[str]:
    (tmp / "runs" / "s" / "main").mkdir(parents=True)
    (tmp / "runs" / "s" / "search.json").write_text("{}")
    return _search(root, tmp)


def _damaged_study(root: Path, tmp: Path) -> list[str]:
    (tmp / "runs" / "s").mkdir(parents=True)
    (tmp / "runs" / "s" / "search.json").write_text('{"space": "unet",')  # cut off mid-write
    return [*_search(root, tmp), "--resume"]


def _contradicting_resume(root: Path, tmp: Path) -> list[str]:
    folder = tmp / "runs" / "s"
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(
        json.dumps({"space": "unet", "budget": "default", "name": "s", "data": str(root)})
    )
    return ["search", "--out", str(tmp / "runs"), "--name", "s", "--resume", "--space", "dual_phase"]


def _moved_study(root: Path, tmp: Path) -> list[str]:
    folder = tmp / "runs" / "b"
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({"space": "unet", "budget": "default", "name": "a"}))
    return ["search", "--out", str(tmp / "runs"), "--name", "b", "--resume"]


def _file_as_out(root: Path, tmp: Path) -> list[str]:
    (tmp / "a-file").write_text("not a folder")
    return ["search", "--space", "unet", "--data", str(root), "--out", str(tmp / "a-file"), "--name", "s"]


def _broken_plugin(root: Path, tmp: Path) -> list[str]:
    (tmp / "mine.py").write_text("from models.registry import register_model\nregister_model('unet')\n")
    return _search(root, tmp, "--plugin", str(tmp / "mine.py"))


def _study_of_a_moved_plugin(root: Path, tmp: Path) -> Path:
    """A started study whose plugin, recorded in its search.json, is gone from where it was."""
    folder = tmp / "runs" / "s"
    (folder / "main").mkdir(parents=True)
    settings = {"space": "unet", "budget": "smoke", "name": "s", "data": str(root), "plugins": [str(tmp / "gone.py")]}
    (folder / "search.json").write_text(json.dumps(settings))
    return folder


def _bad_overrides_file(root: Path, tmp: Path) -> list[str]:
    (tmp / "o.toml").write_text("[set\nwidth = 8\n")
    return _search(root, tmp, "--overrides", str(tmp / "o.toml"))


def _not_a_study(root: Path, tmp: Path) -> list[str]:
    (tmp / "old").mkdir()
    return _search(root, tmp, "--warm-start", str(tmp / "old"))


def _planted_checkpoint(root: Path, tmp: Path) -> list[str]:
    import pickle

    class Planted:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {tmp / 'ran'}",))

    (tmp / "evil.pt").write_bytes(pickle.dumps(Planted()))
    return ["predict", "--checkpoint", str(tmp / "evil.pt"), *_predict_args(root, tmp)]


def _no_results(root: Path, tmp: Path) -> list[str]:
    (tmp / "empty-study").mkdir()
    return ["predict", "--experiment", str(tmp / "empty-study"), *_predict_args(root, tmp)]


def _results_folder(root: Path, tmp: Path) -> list[str]:
    """--experiment a study's results/ folder (said as "no results in S/results/results")."""
    (tmp / "study" / "results").mkdir(parents=True)
    _written(tmp / "study" / "search.json", b"{}")
    return ["predict", "--experiment", str(tmp / "study" / "results"), *_predict_args(root, tmp)]


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _hidden_without_videos(root: Path, tmp: Path) -> list[str]:
    """--hidden a folder that holds no video_N folder (the study ran, and only its end said so)."""
    (tmp / "hidden").mkdir()
    _written(tmp / "hidden" / "README.txt", b"the hidden videos, once downloaded")
    return _search(root, tmp, "--hidden", str(tmp / "hidden"))


def _predict_args(root: Path, tmp: Path, out: Path | None = None) -> list[str]:
    return ["--data", str(root), "--split", "val", "--out", str(out or tmp / "p.pt")]


def _predict_val(root: Path, tmp: Path, out: Path) -> list[str]:
    """tune.predict writing to `out`, from a checkpoint that is never read: `out` is refused before it."""
    return ["predict", "--checkpoint", str(tmp / "never-read.pt"), *_predict_args(root, tmp, out)]


def _train_out_under_a_file(root: Path, tmp: Path) -> list[str]:
    (tmp / "a-file").write_text("not a folder")
    return ["train", "--model", "unet", "--data", str(root), "--out", str(tmp / "a-file" / "run"), "--epochs", "1"]


CASES: dict[str, tuple[Setup, str]] = {
    "a missing frame": (_damage("train/video_0/image_4.png", None), "missing frame"),
    "a truncated PNG": (_truncated, "cannot decode image"),
    "a file that is no image": (_damage("val/video_4/image_0.png", b"hello"), "cannot decode image"),
    "a frame of the wrong size": (_wrong_size, "expected a 240x160 (WxH) frame, got 120x80"),
    "a missing mask": (_damage("train/video_3/mask.npy", None), "missing mask"),
    "a mask that is a text file": (_damage("val/video_5/mask.npy", b"0 0 0\n"), "is not a numpy .npy file"),
    "a mask of the wrong shape": (_mask(np.zeros((21, 160, 240), np.uint8)), "expected shape (22, 160, 240)"),
    "a mask of floats": (_mask(np.zeros((22, 160, 240), np.float32)), "expected integer class ids"),
    "a mask with class 49": (_mask(np.full((22, 160, 240), 49, np.int32)), "expected class ids in 0..48"),
    "a pickled mask": (_mask(np.array([{"a": 1}] * 3, dtype=object)), "video_5/mask.npy"),
    "two folders for one video": (_two_folders, "holds two folders for video 1"),
    "an empty split": (_empty_split, "split 'val' is empty"),
    "a data root that does not exist": (lambda r, t: _search(t / "nowhere", t), "nowhere does not exist (expected a"),
    "a study folder that already started": (_started_study, "already holds a study; pass --resume"),
    "nothing to resume": (lambda r, t: [*_search(r, t), "--resume"], "nothing to resume"),
    "a damaged search.json": (_damaged_study, "search.json: not a study's settings (not valid JSON"),
    "a resume with other settings": (_contradicting_resume, "--space 'dual_phase' (the study has 'unet')"),
    "a study folder moved away from its name": (_moved_study, "give the folder its name again ("),
    "an out folder that is a file": (_file_as_out, "a-file is a file, where a folder is needed"),
    "an unknown parameter": (lambda r, t: _search(r, t, "--set", "widht=8"), "no parameter 'widht'"),
    "a value out of bounds": (lambda r, t: _search(r, t, "--set", "dropout=1.5"), "UNetConfig.dropout must be"),
    "a plugin that fails": (_broken_plugin, "mine.py: TypeError"),
    "a plugin that does not exist": (lambda r, t: _search(r, t, "--plugin", "nope.py"), "--plugin nope.py: no such"),
    "a plugin that is a folder": (lambda r, t: _search(r, t, "--plugin", str(t)), "scratch: a folder, where a file is"),
    "--model with --from": (
        lambda r, t: ["train", "--model", "unet", "--from", str(t), "--out", str(t / "run")],
        "--model and --from: give one",
    ),
    "no epochs": (
        lambda r, t: ["train", "--model", "unet", "--data", str(r), "--out", str(t / "run"), "--epochs", "0"],
        "--epochs 0: must be >= 1",
    ),
    "a submission under a file": (
        lambda r, t: [
            "predict",
            "--checkpoint",
            str(t / "never-read.pt"),
            *_predict_args(r, t, _written(t / "f", b"x") / "p.pt"),
        ],
        "scratch/f/p.pt: ",  # --out named (then its folder: a file, where a folder is needed)
    ),
    "an empty plugin": (lambda r, t: _search(r, t, "--plugin", ""), "--plugin '': empty: give a Python file (NAME.py)"),
    "a resume whose plugin was moved": (
        lambda r, t: [*_search(r, t), "--resume"] if _study_of_a_moved_plugin(r, t) else [],
        "gone.py: no such file (a plugin the study recorded in ",
    ),
    "a prediction from a study whose plugin was moved": (
        lambda r, t: ["predict", "--experiment", str(_study_of_a_moved_plugin(r, t)), *_predict_args(r, t)],
        "gone.py: no such file (a plugin the study recorded in ",
    ),
    "an overrides file that is not TOML": (_bad_overrides_file, "o.toml: not valid TOML"),
    "a warm start from no study": (_not_a_study, "not a study folder"),
    "a warm start from a path that is not there": (
        lambda r, t: _search(r, t, "--warm-start", str(t / "gone")),
        "gone: no such folder (an earlier study's, OUT/NAME)",
    ),
    "GPU-hours without a GPU": (lambda r, t: _search(r, t, "--gpu-hours", "2"), "--gpu-hours needs trials on GPUs"),
    "more GPUs a trial than any node has": (
        lambda r, t: _search(r, t, "--gpus-per-trial", "2"),
        "no trial can start: --gpus-per-trial 2 asks more than any one node has (",  # this machine / the Ray cluster has
    ),
    "more CPUs a trial than any node has": (
        lambda r, t: _search(r, t, "--cpus-per-trial", "4096"),
        "--cpus-per-trial 4096 asks more than any one node has (",  # (a Ray already running in the process: the cluster)
    ),
    "no trials": (lambda r, t: _search(r, t, "--samples", "0"), "--samples must be >= 1"),
    "an address where no Ray cluster answers": (
        lambda r, t: _search(r, t, "--address", "nohost.invalid:6379"),
        "--address nohost.invalid:6379: no Ray cluster answers there (no host named 'nohost.invalid')",
    ),
    "more val videos than val has": (lambda r, t: _search(r, t, "--val-videos", "3"), "val has 2 videos; leave"),
    "a hidden folder that does not exist": (
        lambda r, t: _search(r, t, "--hidden", str(t / "nowhere")),
        "nowhere: no such folder (the hidden split's",
    ),
    "a hidden folder with no videos": (
        _hidden_without_videos,
        "split 'hidden' is empty: no video_N folders in ",
    ),
    "unlabeled videos for a space that reads none": (
        lambda r, t: _search(r, t, "--unlabeled", "1"),
        "--unlabeled 1: space unet reads no unlabeled videos; leave it out",
    ),
    "a hidden folder that is a file": (
        lambda r, t: _search(r, t, "--hidden", str(_written(t / "h.zip", b"PK"))),
        "h.zip: a file, where a folder is needed (the hidden split's",
    ),
    "a hidden folder that is a labeled split": (
        lambda r, t: _search(r, t, "--hidden", str(r / "val")),
        "val is not the hidden split: video_4 holds mask.npy",
    ),
    "a seed the sampler cannot take": (lambda r, t: _search(r, t, "--seed", "-1"), "--seed must be in 0..4294967295"),
    "a name that is a path": (lambda r, t: _search(r, t, "--name", "../../x"), "--name must be one folder name"),
    "a planted checkpoint": (_planted_checkpoint, "evil.pt"),
    "a study with no results": (_no_results, "empty-study"),
    "a study that is not there": (  # said as "no results in X/results: is X a study folder?"
        lambda r, t: ["predict", "--experiment", str(t / "gone"), *_predict_args(r, t)],
        "scratch/gone: no such folder (a study's, OUT/NAME)",
    ),
    "a study's results folder for the study": (_results_folder, "results is inside the study "),
    "a study folder that is a file": (
        lambda r, t: ["predict", "--experiment", str(_written(t / "s.tar", b"")), *_predict_args(r, t)],
        "s.tar is a file, not a study folder",
    ),
    "a checkpoint that is a folder": (
        lambda r, t: ["predict", "--checkpoint", str(t), *_predict_args(r, t)],
        "scratch is a folder, where a checkpoint file is needed",
    ),
    "a training folder that cannot be made": (_train_out_under_a_file, "a-file: a file, where a folder is needed"),
    "a config shown for a data root that does not exist": (
        lambda r, t: ["train", "--model", "unet", "--data", str(t / "nope"), "--out", str(t / "run"), "--show-config"],
        "nope does not exist",
    ),
    "a config shown for more val videos than val has": (
        lambda r, t: [
            "train",
            "--model",
            "unet",
            "--data",
            str(r),
            "--val-videos",
            "5",
            "--out",
            str(t / "run"),
            "--show-config",
        ],
        "--val-videos 5: ",
    ),
    "no pretraining epochs": (
        lambda r, t: [
            "train",
            "--model",
            "dual_phase",
            "--data",
            str(r),
            "--out",
            str(t / "run"),
            "--pretrain-epochs",
            "0",
        ],
        "--pretrain-epochs 0: must be >= 1 (leave it out for --epochs)",
    ),
    "pretraining epochs for a model without a pretrained part": (
        lambda r, t: ["train", "--model", "unet", "--data", str(r), "--out", str(t / "run"), "--pretrain-epochs", "2"],
        "--pretrain-epochs 2: unet has no pretrained part",
    ),
    "a segmenter checkpoint that is not there": (
        lambda r, t: [
            "train",
            "--model",
            "mask_predictor",
            "--data",
            str(r),
            "--out",
            str(t / "run"),
            "--segmenter",
            str(t / "s.pt"),
        ],
        "scratch/s.pt: no such file",
    ),
    "a segmenter for a model that does not train on one": (
        lambda r, t: ["train", "--model", "unet", "--data", str(r), "--out", str(t / "run"), "--segmenter", "s.pt"],
        "--segmenter s.pt: unet does not train on a segmenter's masks",
    ),
    "a submission file that is a folder": (
        lambda r, t: _predict_val(r, t, t),
        "scratch is a folder; name the file to write, e.g. ",
    ),
    "a submission file named as numpy's": (
        lambda r, t: _predict_val(r, t, t / "val.npy"),
        "val.npy: the masks are written with torch.save (the competition's format); name it .pt",
    ),
    "a run to train anew that does not exist": (
        lambda r, t: ["train", "--from", str(t / "nowhere"), "--data", str(r), "--out", str(t / "run")],
        "scratch/nowhere: no such study folder or checkpoint",
    ),
    "a run to train anew that is no checkpoint": (
        lambda r, t: [
            "train",
            "--from",
            str(_written(t / "notes.txt", b"hello")),
            "--data",
            str(r),
            "--out",
            str(t / "run"),
        ],
        "notes.txt",
    ),
    "an out folder that cannot be made": (  # the system's error: one line naming the path, not "[Errno 2] ..."
        lambda r, t: ["train", "--model", "unet", "--data", str(r), "--out", "/proc/segtune-run"],
        "error: /proc/segtune-run: No such file or directory",
    ),
    "a setting of the wrong type": (  # said as the model config's field alone, not the --set it came from
        lambda r, t: ["train", "--model", "unet", "--data", str(r), "--out", str(t / "run"), "--set", "width=abc"],
        "error: --set width=abc: UNetConfig.width expects int, got 'abc'",
    ),
    "a device this machine lacks": (
        lambda r, t: ["train", "--model", "unet", "--data", str(r), "--out", str(t / "run"), "--device", "cuda:99"],
        "device 'cuda:99': this machine has",
    ),
}
COMMANDS = {"search": search, "predict": predict, "train": train}
# refused before the study prints its plan (a mistyped --data is said first, not after the plan's lines)
BEFORE_THE_PLAN = (  # refused before the study's plan (its name, its TensorBoard folder) is printed
    "a data root that does not exist",
    "an empty split",
    "two folders for one video",
    "more val videos than val has",
    "unlabeled videos for a space that reads none",
)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_what_is_wrong(
    case: str,
    copy_root: Path,
    tmp_path: Path,
    own_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, expected = CASES[case]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command, *args = setup(copy_root, scratch)
    study_file = scratch / "runs" / "s" / "search.json"
    planted, had_runs = study_file.exists(), (scratch / "runs").exists()
    assert COMMANDS[command](args) == 2
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]  # after a decoding progress bar, if any
    assert out == "" or case not in BEFORE_THE_PLAN, out
    assert "Traceback" not in err and last.startswith("error: ") and expected in last, err
    assert not (scratch / "ran").exists()  # nothing planted ran
    assert study_file.exists() == planted  # a refused start leaves no study behind; one set up stays
    assert (scratch / "runs").exists() == had_runs  # nor an empty --out folder
    if command == "train":  # a refused run leaves no empty folder behind
        assert not Path(args[args.index("--out") + 1]).exists()


def test_a_refused_run_in_a_folder_that_was_there_leaves_it_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    args = ["--model", "unet", "--data", str(tmp_path / "nowhere"), "--out", str(out), "--epochs", "1"]
    assert train(args) == 2
    assert "nowhere" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # no lock left behind
