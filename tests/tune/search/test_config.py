"""A study's folder and settings, without Ray: a study that never started can be started again, a resume refuses
settings that differ from the saved study's and a folder moved away from its name, and a study runs in one driver
at a time."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reports.schema import STAGE_DONE, STUDY_FILE
from tune.search.cli import STUDY_FLAGS, main
from tune.search.config import SearchConfig, one_driver, prepare_study
from tune.search.driver import run_search


def _saved(tmp_path: Path, **settings: object) -> SearchConfig:
    cfg = SearchConfig(space="unet", out=str(tmp_path), name="s", **settings)  # type: ignore[arg-type]
    return prepare_study(cfg, resume=False)


def test_a_study_whose_stages_never_started_is_started_anew(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _saved(tmp_path, budget="smoke")  # then it failed on bad data, say, before any stage
    again = prepare_study(SearchConfig(space="unet", out=str(tmp_path), name="s", budget="default"), resume=False)
    assert "stages never started: starting it anew" in capsys.readouterr().out
    assert json.loads((tmp_path / "s" / STUDY_FILE).read_text())["budget"] == again.budget == "default"


def test_a_refused_start_keeps_the_unstarted_study_it_would_have_replaced(tmp_path: Path) -> None:
    """A study cut by its time budget before its first trial was told to --resume; the same command with a bad flag,
    refused, deleted its search.json (nothing to resume then): it is put back as it was."""
    _saved(tmp_path, budget="smoke", samples=3)
    before = (tmp_path / "s" / STUDY_FILE).read_bytes()
    cfg = SearchConfig(space="unet", out=str(tmp_path), name="s", budget="smoke", gpus_per_trial=1.5)
    with pytest.raises(ValueError, match="more than one GPU per trial must be a whole number"):
        run_search(cfg)
    assert (tmp_path / "s" / STUDY_FILE).read_bytes() == before
    same = SearchConfig(
        space="unet", out=str(tmp_path), name="s", budget="smoke", samples=3, hidden=str(tmp_path / "x")
    )
    with pytest.raises(FileNotFoundError, match="--hidden"):  # refused before search.json was written again
        run_search(same)
    assert (tmp_path / "s" / STUDY_FILE).read_bytes() == before


def test_a_started_study_is_not_overwritten(tmp_path: Path) -> None:
    cfg = _saved(tmp_path)
    (cfg.experiment_dir / "main").mkdir()
    with pytest.raises(FileExistsError, match="already holds a study; pass --resume"):
        prepare_study(cfg, resume=False)


def test_resume_reads_the_saved_settings_and_takes_the_runtime_ones_given(tmp_path: Path) -> None:
    _saved(tmp_path, budget="smoke", seed=3)
    given = SearchConfig(space="dual_phase", out=str(tmp_path), name="s", dashboard=False, address="ray://x:1")
    resumed = prepare_study(given, resume=True)
    assert (resumed.space, resumed.budget, resumed.seed) == ("unet", "smoke", 3)
    assert (resumed.dashboard, resumed.address) == (False, "ray://x:1")


def test_a_resume_without_the_address_of_the_cluster_the_study_ran_on_says_where_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _saved(tmp_path, budget="smoke", address="10.0.0.5:6379")
    resumed = prepare_study(SearchConfig(out=str(tmp_path), name="s"), resume=True)
    assert resumed.address is None  # (a runtime flag: taken as given)
    assert capsys.readouterr().err == (
        "note: this study ran on the Ray cluster at 10.0.0.5:6379; this resume runs on a Ray of its own here "
        "(--address 10.0.0.5:6379 to go on there)\n"
    )
    prepare_study(SearchConfig(out=str(tmp_path), name="s", address="10.0.0.5:6379"), resume=True)
    assert capsys.readouterr().err == ""


def test_resume_refuses_settings_that_differ_from_the_saved_study(tmp_path: Path) -> None:
    _saved(tmp_path, budget="smoke")
    given = SearchConfig(space="dual_phase", out=str(tmp_path), name="s", budget="smoke")
    with pytest.raises(ValueError, match=r"--space 'dual_phase' \(the study has 'unet'\)") as err:
        prepare_study(given, resume=True, given=frozenset({"space", "budget"}))
    assert "budget" not in str(err.value)  # the same as saved: not a contradiction
    given = SearchConfig(space="unet", out=str(tmp_path), name="s", budget="smoke", gpus_per_trial=0)
    with pytest.raises(ValueError, match=r"--gpus-per-trial 0 \(the study has the default \(unset\)\)"):
        prepare_study(given, resume=True, given=frozenset({"gpus_per_trial"}))  # (it said "has None")
    given = SearchConfig(space="unet", out=str(tmp_path), name="s", budget="smoke", val_videos=5)
    with pytest.raises(ValueError, match=r"--val-videos 5 \(the study has all\)"):  # every video: as given, all
        prepare_study(given, resume=True, given=frozenset({"val_videos"}))


def test_paths_given_relative_are_saved_absolute_from_python_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line made them absolute; a study started from Python saved "../data", which its resume from
    another folder (and tune.train/predict) did not find."""
    (tmp_path / "data" / "hidden").mkdir(parents=True)
    (tmp_path / "mine.py").write_text("")
    monkeypatch.chdir(tmp_path)
    given = {"data": "data", "hidden": "data/hidden", "plugins": ("mine.py", "json"), "mlflow": "mlruns"}
    _saved(tmp_path / "out", budget="smoke", **given)
    saved = json.loads((tmp_path / "out" / "s" / STUDY_FILE).read_text())
    assert (saved["data"], saved["hidden"]) == (str(tmp_path / "data"), str(tmp_path / "data" / "hidden"))
    assert saved["plugins"] == [str(tmp_path / "mine.py"), "json"]  # a module's name as given
    assert saved["mlflow"] == (tmp_path / "mlruns").as_uri()  # (as --mlflow FOLDER gives it)


def test_a_resume_may_change_retries_and_the_resumes_after_it_keep_it(tmp_path: Path) -> None:
    """--retries at a resume (a study whose trials met the OOM killer): refused as another study's setting, where
    it is the unfinished trials' and those to come (failures.grant_retries, progress.as_resumed)."""
    _saved(tmp_path, budget="smoke")
    given = SearchConfig(space="unet", out=str(tmp_path), name="s", budget="smoke", retries=2)
    assert prepare_study(given, resume=True, given=frozenset({"retries", "budget"})).retries == 2
    assert prepare_study(SearchConfig(out=str(tmp_path), name="s"), resume=True).retries == 2  # kept
    assert json.loads((tmp_path / "s" / STUDY_FILE).read_text())["retries"] == 2
    show = ["--out", str(tmp_path), "--name", "s", "--resume", "--retries", "5", "--show-space"]
    assert main(show) == 0  # a command that shows the space changes no setting
    assert json.loads((tmp_path / "s" / STUDY_FILE).read_text())["retries"] == 2


def test_a_study_whose_data_root_moved_says_to_put_it_back_not_to_leave_out_data(tmp_path: Path) -> None:
    """Its data moved: `--resume --data NEW` is refused (another setting; nothing says the data is the same), and
    without it the resume failed on the old path's absence; neither said what resumes it."""
    root = tmp_path / "data"
    root.mkdir()
    _saved(tmp_path, budget="smoke", data=str(root))
    root.rename(tmp_path / "moved")
    for given, flags in (({}, frozenset()), ({"data": str(tmp_path / "moved")}, frozenset({"data"}))):
        cfg = SearchConfig(space="unet", out=str(tmp_path), name="s", **given)  # type: ignore[arg-type]
        with pytest.raises(FileNotFoundError) as err:
            prepare_study(cfg, resume=True, given=flags)
        assert str(err.value) == (
            f"the study's data root {root} (in {tmp_path / 's' / STUDY_FILE}) does not exist now: put the data back "
            f"there, or a link to where it is (ln -s NEW_PATH {root}), to resume the study (its trials read it there)"
        )


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ({"samples": "many"}, "'<' not supported"),
        ({"bogus_key": 1}, "unexpected keyword argument 'bogus_key'"),
        ({"samples": -4}, "--samples must be >= 1"),
    ],
)
def test_resume_of_hand_edited_settings_names_the_file(tmp_path: Path, edit: dict[str, object], why: str) -> None:
    cfg = _saved(tmp_path)
    path = cfg.experiment_dir / STUDY_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(ValueError, match=f"^{path}: not the settings of a study this version can resume") as err:
        prepare_study(cfg, resume=True)
    assert why in str(err.value)


def test_resume_of_settings_without_the_study_budget_names_the_file(tmp_path: Path) -> None:
    """A search.json without its budget resumed as the default budget, whatever the study ran."""
    cfg = _saved(tmp_path, budget="smoke")
    path = cfg.experiment_dir / STUDY_FILE
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "budget"}))
    with pytest.raises(
        ValueError, match=rf"^{path}: not the settings of a study this version can resume \(no budget\)$"
    ):
        prepare_study(cfg, resume=True)


def test_resume_of_a_moved_folder_says_where_its_state_belongs(tmp_path: Path) -> None:
    cfg = _saved(tmp_path)
    cfg.experiment_dir.rename(tmp_path / "moved")
    with pytest.raises(ValueError, match=r"belongs to the study 's'.*give the folder its name again"):
        prepare_study(dataclasses.replace(cfg, name="moved"), resume=True)


def test_resume_of_a_folder_moved_or_copied_to_another_out_says_where_its_state_writes(tmp_path: Path) -> None:
    """Ray's and Optuna's saved state write to the folder a study was made in: a copy resumed elsewhere wrote stale
    results over the original's, then failed on the journal's path with a traceback. A study with no stage to go on
    with (none started, or all ended) has no such state: taken where it is, and the folder recorded anew."""
    cfg = _saved(tmp_path / "a")
    (cfg.experiment_dir / "main").mkdir()
    (cfg.experiment_dir / "main" / "tuner.pkl").touch()  # its first stage started, and has not ended
    copy = dataclasses.replace(cfg, out=str(tmp_path / "b"))
    shutil.copytree(cfg.experiment_dir, copy.experiment_dir)
    there = f"python -m tune.search --out {tmp_path / 'a'} --name s --resume"
    with pytest.raises(ValueError) as err:
        prepare_study(copy, resume=True)
    assert str(err.value) == (
        f"{copy.experiment_dir} holds a study made in {cfg.experiment_dir}, and its saved state (Ray's, Optuna's) "
        f"writes there: resume the study there ({there}), or start a new one here"
    )
    shutil.rmtree(cfg.experiment_dir)  # moved
    with pytest.raises(ValueError, match=f"writes there: move the folder back to {cfg.experiment_dir} to resume it$"):
        prepare_study(copy, resume=True)
    cfg.experiment_dir.symlink_to(copy.experiment_dir)  # the same folder by another path
    assert prepare_study(copy, resume=True).experiment_dir == copy.experiment_dir
    cfg.experiment_dir.unlink()
    (copy.experiment_dir / "main" / STAGE_DONE).touch()  # ended: nothing of Ray's is restored
    assert prepare_study(copy, resume=True).experiment_dir == copy.experiment_dir
    assert json.loads((copy.experiment_dir / STUDY_FILE).read_text())["folder"] == str(copy.experiment_dir)
    (copy.experiment_dir / "main" / STAGE_DONE).unlink()  # (a stage that starts now writes here)
    assert prepare_study(copy, resume=True).experiment_dir == copy.experiment_dir


def test_every_study_flag_is_a_setting() -> None:
    assert set(STUDY_FLAGS) <= {f.name for f in dataclasses.fields(SearchConfig)}


def test_an_out_folder_that_cannot_be_written_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    assert main(["--space", "unet", "--out", str(tmp_path / "a-file"), "--name", "s", "--no-dashboard"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --out {tmp_path / 'a-file'}: {tmp_path / 'a-file'} is a file, where a folder is needed"
    )


@pytest.mark.parametrize("count", ["-3", "abc", "2.5"])
def test_a_count_of_unlabeled_videos_that_is_none_is_refused_in_one_line(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--unlabeled", count])
    assert stop.value.code == 2
    assert f"argument --unlabeled: takes a number of videos >= 0, or all; got '{count}'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--unlabeled must be >= 0"):
        SearchConfig(unlabeled=-1)


def test_every_video_is_all_as_tune_train_takes_it(capsys: pytest.CaptureFixture[str]) -> None:
    """--unlabeled all / --val-videos all: every video, the study's default (tune.train took "all", tune.search
    refused it); a count that must be >= 1 says so for a word as for 0."""
    assert main(["--unlabeled", "all", "--val-videos", "all", "--show-space"]) == 0
    for value in ("0", "some"):
        with pytest.raises(SystemExit):
            main(["--val-videos", value])
        assert f"argument --val-videos: takes a number of videos >= 1, or all; got '{value}'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--max-concurrent", "-1"])
    assert "argument --max-concurrent: must be a whole number >= 0, got '-1'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"), [("--gpus-per-trial", "nan"), ("--cpus-per-trial", "inf"), ("--gpu-hours", "NaN")]
)
def test_a_resource_that_is_no_finite_number_is_refused_in_one_line(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """nan passed every "< 0" check and left the study's trials pending for ever; inf raised OverflowError."""
    with pytest.raises(SystemExit) as stop:
        main(["--space", "unet", flag, value])
    assert stop.value.code == 2
    assert f"argument {flag}: must be a finite number, got '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_hold_limit_in_the_environment_is_refused_before_the_study_starts(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SEGTUNE_HOLD_GB=abc: each trial failed with "could not convert string to float: 'abc'", naming nothing."""
    monkeypatch.setenv("SEGTUNE_HOLD_GB", value)
    assert main(["--space", "unet", "--out", str(tmp_path), "--name", "s", "--no-dashboard"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: $SEGTUNE_HOLD_GB='{value}': expected GiB, a number >= 0 (0: every split streamed)"
    )
    assert not (tmp_path / "s").exists()


def test_a_second_driver_of_a_running_study_is_refused_before_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two drivers of one study (a --resume typed twice, the same --name started again while the first decodes
    its data) both ran it to the end: 14 trials in the Optuna study of an 8-trial study, results of one of them."""
    cfg = _saved(tmp_path, budget="smoke")
    saved = (cfg.experiment_dir / STUDY_FILE).read_text()
    with one_driver(cfg.experiment_dir, new=False):  # the study's driver, running
        for again in (["--resume"], ["--space", "dual_phase", "--budget", "default"]):
            assert main(["--out", str(tmp_path), "--name", "s", "--no-dashboard", *again]) == 2
            line = capsys.readouterr().err.strip()
            assert line.startswith(f"error: the study in {cfg.experiment_dir} is running (pid {os.getpid()} on ")
            assert line.endswith("wait for it to end, or stop it (Ctrl-C) and resume it with --resume")
    assert (cfg.experiment_dir / STUDY_FILE).read_text() == saved
    with one_driver(cfg.experiment_dir, new=False):  # ended: free
        pass


def test_a_driver_killed_with_sigkill_leaves_its_study_free_to_resume(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    code = "import sys, time; from tune.search.config import one_driver; from pathlib import Path\n"
    code += "with one_driver(Path(sys.argv[1]), new=True):\n    print('held', flush=True); time.sleep(600)"
    driver = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert driver.stdout and driver.stdout.readline() == "held\n"
    with pytest.raises(FileExistsError, match="is running"), one_driver(folder, new=False):
        pass
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    with one_driver(folder, new=False):  # what a stale lock file would refuse
        pass


def test_the_resume_command_a_study_prints_can_be_pasted_into_a_shell() -> None:
    """Quoted as a shell reads it back (a --name with a space was printed bare), with the cluster the study joined
    (a resume without --address starts a Ray of its own where it runs)."""
    cfg = SearchConfig(out="/tmp/my runs", name="study 2", address="10.0.0.5:6379")
    command = cfg.resume_command()
    assert command == "python -m tune.search --out '/tmp/my runs' --name 'study 2' --address 10.0.0.5:6379 --resume"
    assert shlex.split(command)[3:] == [
        "--out",
        "/tmp/my runs",
        "--name",
        "study 2",
        "--address",
        "10.0.0.5:6379",
        "--resume",
    ]
    assert SearchConfig(out="runs", name="u").resume_command() == "python -m tune.search --out runs --name u --resume"
    quiet = SearchConfig(out="runs", name="u", dashboard=False)  # --no-dashboard: a resume would start one
    assert quiet.resume_command() == "python -m tune.search --out runs --name u --no-dashboard --resume"
    assert dataclasses.replace(cfg, dashboard=False).resume_command() == command  # a cluster's: never started


def test_address_defaults_to_ray_address_as_ray_job_submit_sets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study in a job `ray job submit` started joins the job's cluster (RAY_ADDRESS), not a Ray of its own; here
    nothing listens there, which the start says in one line, naming the address it took."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert main(["--space", "unet", "--budget", "smoke", "--out", str(tmp_path), "--name", "j", "--no-dashboard"]) == 2
    assert f"$RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers there" in capsys.readouterr().err
