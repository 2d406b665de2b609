"""kill -9, Ctrl-C and SIGTERM of the search driver, each followed by --resume: the study finishes with every trial
in the results once and every epoch once."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from reports.load import load_experiment
from reports.records import read_run
from reports.schema import (
    OPTUNA_FILE,
    RUN_COMMAND,
    RUN_ENDED,
    read_parquet,
)
from tests.small_disk import on_small_disk

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _search(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tune.search", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group (Ray's processes are in theirs, and end with the driver)
    )


def _wait_until(driver: subprocess.Popen[str], ready: Callable[[], bool], moment: str) -> None:
    """Returns once `ready()`. Fails when the driver ended first, or when the moment did not come in 360 s (the
    driver is killed then): the interruption that was to come then did not happen."""
    deadline = time.monotonic() + 360
    while driver.poll() is None and time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    if driver.poll() is not None:
        output = driver.stdout.read() if driver.stdout else ""
        pytest.fail(
            f"the study ended (exit {driver.returncode}) before {moment}: no interruption then\n{output[-4000:]}"
        )
    _kill(driver)
    pytest.fail(f"{moment} did not happen in 360 s: no interruption then")


def _kill(driver: subprocess.Popen[str]) -> None:
    """kill -9 of the driver's process group: the driver at once, and its Ray with it (Ray's kernel fate-sharing),
    nothing saved on the way out."""
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


def _stopped(driver: subprocess.Popen[str], sent: signal.Signals, folder: Path) -> str:
    """A driver sent `sent` names it and the --resume that goes on, marks nothing finished, and ends: by SIGINT
    after a Ctrl-C (as Python does, so that a calling script stops too), with 128 + 15 after SIGTERM; returns its
    output."""
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == (-sent if sent == signal.SIGINT else 128 + sent), output
    assert f"({sent.name})" in output and "--resume" in output, output
    assert not (folder / "main" / ".done").exists()
    return output


def test_a_study_stopped_every_way_resumes_to_the_end(synth_root: Path, tmp_path: Path) -> None:
    """One study of 8 trials stopped four times, each time another way, then finished by a fifth start:
    1. Ctrl-C (SIGINT to the process group, as a terminal sends it) as Ray starts the first trials (the stage says
       "2 trial(s) starting"): Ray ends them TERMINATED and saves them PENDING; the stage is interrupted, not done
       (it was once marked done, its study "no trial succeeded", and neither a resume nor a new start could go on);
    2. kill -9 in the resume, once 2 epochs are recorded (trials running, their checkpoints being written);
    3. SIGTERM as `timeout` sends it (to the driver alone, as Kubernetes does, then to its whole process group) an
       epoch into the next;
    4. kill -9 while the best model is evaluated and the report made (the stage done, the study not).
    Each --resume goes on where the last stopped; the end holds every trial and every epoch once."""
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    args = ["--space", "unet", "--data", str(synth_root), "--budget", "smoke", "--samples", "8"]
    args += ["--out", str(tmp_path), "--name", "k", "--no-dashboard"]
    folder, results = tmp_path / "k", tmp_path / "k" / "results"

    def epochs() -> int:
        return len(read_parquet(results / "epochs.parquet"))  # read while the study rewrites it

    # 1. Ctrl-C as the stage says its first trials start, their actors not yet started
    driver = _search(args, env)
    assert driver.stdout is not None
    lines = []
    for line in driver.stdout:
        lines.append(line)
        if pending := re.match(r"stage main: (\d+) trial\(s\) starting; ", line.strip()):
            os.killpg(driver.pid, signal.SIGINT)
            break
    output = "".join(lines) + _stopped(driver, signal.SIGINT, folder)
    assert pending, output
    started = pending.group(1)
    assert f"stage main was interrupted with {started} of {started} started trials unfinished (SIGINT)" in output
    assert f"; a report of what it ran: python -m reports.build {folder}. Resume with: " in output  # (none is written)
    assert "Token authentication is enabled" not in output  # Ray's warning at each local start: left out
    assert not (results / "epochs.parquet").exists()

    # 2. kill -9 once 2 epochs are recorded. Each moment below comes on any machine: each trial's end rewrites
    # epochs.parquet, and the 8 trials run 11 epochs or more (ASHA lets the first trial to reach each rung go on:
    # one trial runs all 4 epochs, the other 7 at least 1), and each stop below waits for one more
    driver = _search([*args, "--resume"], env)
    _wait_until(driver, lambda: epochs() >= 2, "2 epochs were recorded")
    _kill(driver)
    killed = pd.read_parquet(results / "trials.parquet")
    assert len(killed) < 8 or (killed["status"] == "running").any()  # mid-study: trials were left to run
    resume = f"python -m tune.search --out {tmp_path} --name k --no-dashboard --resume"  # as it ran
    assert any(n.endswith(resume) for n in load_experiment(folder).notes)  # its report: what finishes it

    # 3. SIGTERM as GNU `timeout` sends it, an epoch later: to the driver alone (as Kubernetes sends it), then to its
    # whole process group. The group's reached Ray's processes too, which ended the driver with status 1 and no word of
    # the study (after 60 s, or at once); they run in sessions of their own now. The second SIGTERM is the same stop,
    # not a second one ("at once")
    seen = epochs()
    driver = _search([*args, "--resume"], env)
    _wait_until(driver, lambda: epochs() > seen, f"{seen + 1} epochs were recorded")
    live = load_experiment(folder).notes  # a report built now: a snapshot of the study, its driver named
    assert any(n.startswith(f"the study is running now (pid {driver.pid} on ") for n in live), live
    os.kill(driver.pid, signal.SIGTERM)
    os.killpg(driver.pid, signal.SIGTERM)
    output = _stopped(driver, signal.SIGTERM, folder)
    assert "stopped at once" not in output and " was interrupted with " in output, output
    assert "Failed to fetch metrics" not in output  # for trials the kill -9 caught before they reported: left out
    assert "Restored on" not in output  # Ray's worker's line of a trial going on (the stage says it, test_progress)

    # 4. kill -9 once the stage is done (seconds before the end, with the evaluation on val and the report's figures)
    driver = _search([*args, "--resume"], env)
    _wait_until(driver, (folder / "main" / ".done").exists, "its stage was done")
    _kill(driver)
    assert not (folder / "report.html").exists()
    # its report, built now, says the study did not end, unless the kill came after its end was recorded (as the
    # report was written): then it says nothing of the kind
    said = any(n.startswith("every stage ended but the study did not") for n in load_experiment(folder).notes)
    assert said != read_run(folder)[RUN_ENDED]
    before = pd.read_parquet(results / "trials.parquet")

    # every stage is done: the last resume only finishes the study, and starts no Ray for it (a Ray start makes
    # its session folder under RAY_TMPDIR; a short folder of /tmp: Ray's socket paths must stay under 108 bytes)
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    driver = _search([*args, "--resume"], {**env, "RAY_TMPDIR": str(ray_tmp)})
    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output
    assert "stage main: already finished" in output and (folder / "report.html").exists()
    assert read_run(folder)[RUN_COMMAND] == "python -m tune.search " + shlex.join([*args, "--resume"])  # (to rerun)
    sessions = list(ray_tmp.glob("**/session_*"))
    shutil.rmtree(ray_tmp)
    assert not sessions, "a Ray was started to finish a study whose stages were done"

    trials = pd.read_parquet(results / "trials.parquet")
    assert trials["trial_id"].is_unique
    assert set(before["trial_id"]) <= set(trials["trial_id"])
    # a trial started just before a kill -9 but not yet in Ray's saved state is not resumed: it stays in the
    # results once, as failed with that reason; the study still runs its 8 trials
    lost = trials["failure"].fillna("").str.startswith("lost:")
    assert (trials.loc[lost, "status"] == "failed").all()
    assert (~lost).sum() == 8
    kept = trials.loc[~lost]
    assert set(kept["status"]) <= {"completed", "stopped"}, trials[["trial_id", "status", "failure"]]
    ran = pd.read_parquet(results / "epochs.parquet")
    assert not ran.duplicated(["trial_id", "epoch"]).any()
    for trial_id, count in zip(kept["trial_id"], kept["epochs"], strict=True):
        assert sorted(ran.loc[ran["trial_id"] == trial_id, "epoch"]) == list(range(1, int(count) + 1))  # each once
    storage = JournalStorage(JournalFileBackend(str(folder / OPTUNA_FILE)))
    states = [t.state for t in optuna.load_study(study_name="k/main", storage=storage).trials]
    done = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert optuna.trial.TrialState.RUNNING not in states and sum(s in done for s in states) == 8, states


def test_a_study_whose_disk_fills_stops_in_one_line_and_resumes_once_there_is_room(
    synth_root: Path, tmp_path: Path
) -> None:
    """The study's disk fills as its trials run (a file fills it once an epoch is recorded): the study stops with
    status 1, saying so and how to go on; with the file gone, --resume finishes it, and Optuna's journal agrees
    with the results (a trial that failed on the full disk and ran again at the resume was FAIL there)."""
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    search = f"{shlex.quote(sys.executable)} -m tune.search --out {disk} --name f"
    script = f"""
    {search} --space unet --data {synth_root} --budget smoke --samples 2 --no-dashboard > {tmp_path}/1.log 2>&1 &
    until [ -e {disk}/f/results/epochs.parquet ] || ! kill -0 $! 2>/dev/null; do sleep 0.1; done
    cat /dev/zero > {disk}/filler 2>/dev/null
    wait $!; echo $? > {tmp_path}/1.rc
    rm {disk}/filler
    {search} --resume > {tmp_path}/2.log 2>&1; echo $? > {tmp_path}/2.rc
    cp -a {disk}/f {kept}
    """
    env = {**os.environ, "SEGTUNE_CACHE": str(tmp_path / "decoded"), "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(on_small_disk(str(disk), "64m", ["sh", "-c", script]), cwd=ROOT, env=env, timeout=600, check=True)
    first, second = ((tmp_path / f"{k}.log").read_text() for k in (1, 2))
    assert (tmp_path / "1.rc").read_text().strip() == "1", first[-3000:]
    resume = f"python -m tune.search --out {disk} --name f --no-dashboard --resume"  # as it ran
    assert re.search(r"^stage main stopped: No space left on device \(0\.0 kB free for the study's folder\); "
                     rf"nothing unfinished is marked finished\. Free some space, then resume with: {re.escape(resume)}$",
                     first, flags=re.M), first[-3000:]  # fmt: skip
    assert (tmp_path / "2.rc").read_text().strip() == "0", second[-3000:]
    trials = pd.read_parquet(kept / "results" / "trials.parquet")
    assert len(trials) == 2 and trials["trial_id"].is_unique
    ended = trials[trials["status"].isin(["completed", "stopped"])]
    journal = optuna.load_study(
        study_name="f/main", storage=JournalStorage(JournalFileBackend(str(kept / OPTUNA_FILE)))
    )
    told = [t for t in journal.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(float(t.value or 0) for t in told) == pytest.approx(sorted(ended["last_metric"]))  # their last values
