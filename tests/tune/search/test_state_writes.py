"""Ray's state of a stage copied into the study's folder whole or not at all: a kill -9 in the copy leaves the last
whole file, which a resume reads."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune.search.state_writes import parse_state, replace_files

ROOT = Path(__file__).resolve().parents[3]
# Ray's own copy function, as its background thread calls it after every snapshot, called without a pause
COPY_LOOP = """
import sys
import pyarrow.fs
from ray.train._internal import storage
from tune.search.state_writes import atomic_state_copies
atomic_state_copies()
print("copying", flush=True)
while True:
    storage._upload_to_fs_path(sys.argv[1], pyarrow.fs.LocalFileSystem(), sys.argv[2])
"""


def _state(folder: Path, size: int) -> dict[str, bytes]:
    """A staging folder as Ray leaves it: an experiment state and a searcher's pickle of about `size` bytes each."""
    files = {
        "experiment_state-2026-12-06_10-00-00.json": json.dumps({"trial_data": [[str(i), "{}"] for i in range(size // 16)]}).encode(),
        "searcher-state-2026-12-06_10-00-00.pkl": pickle.dumps(list(range(size // 5))),
    }  # fmt: skip
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_kill_during_the_copy_of_the_state_leaves_the_last_whole_file(tmp_path: Path) -> None:
    """A process that copies the state again and again, as Ray's syncer does (4 MB files: each copy takes
    milliseconds), killed with -9 at a random moment, twice: each time the study's folder holds whole files.
    Ray's own copy (truncate, then write) left them cut short at most of these moments."""
    files = _state(tmp_path / "staging", 4 << 20)
    stage = tmp_path / "study" / "main"
    for _ in range(2):
        copier = subprocess.Popen(
            [sys.executable, "-c", COPY_LOOP, str(tmp_path / "staging"), str(stage)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert copier.stdout is not None and copier.stdout.readline() == "copying\n"
        began = time.monotonic()
        while not all((stage / name).exists() for name in files):
            assert copier.poll() is None and time.monotonic() - began < 120, "the copier died or never copied"
            time.sleep(0.01)
        time.sleep(random.uniform(0.05, 0.3))
        os.kill(copier.pid, signal.SIGKILL)
        copier.wait()
        for name, data in files.items():
            assert (stage / name).read_bytes() == data, f"{name} was left cut short"


def test_a_state_file_read_while_ray_rewrote_it_is_not_put_in_place(tmp_path: Path) -> None:
    """Ray rewrites the staging folder for its next snapshot while its last is being copied: a file read then
    (cut short) does not replace the whole one in the study's folder; the others are copied."""
    files = _state(tmp_path / "staging", 1 << 16)
    stage = tmp_path / "main"
    replace_files(tmp_path / "staging", stage)
    state, searcher = sorted(files)
    (tmp_path / "staging" / state).write_bytes(files[state][:1000])  # cut short, as Ray's rewrite was read
    (tmp_path / "staging" / searcher).write_bytes(pickle.dumps("newer"))
    replace_files(tmp_path / "staging", stage)
    assert (stage / state).read_bytes() == files[state]
    assert pickle.loads((stage / searcher).read_bytes()) == "newer"
    assert sorted(path.name for path in stage.iterdir()) == [state, searcher]  # no copy left behind
    with pytest.raises(ValueError):
        parse_state(state, files[state][:1000])
    parse_state("anything_else.bin", b"\x00")  # not Ray's state: not parsed


def test_a_file_gone_from_the_staging_folder_as_it_is_copied_is_left_out(tmp_path: Path) -> None:
    """Ray writes its state to temporary files it renames into place: one listed, then renamed before it was read,
    stopped the copy with FileNotFoundError (its traceback in a study's output). Here a thread does that as fast
    as it can while the folder is copied again and again."""
    import threading

    staging, study = tmp_path / "staging", tmp_path / "study"
    staging.mkdir()
    (staging / "experiment_state.json").write_text(json.dumps({"trials": []}))
    done = threading.Event()

    def ray_writing() -> None:
        while not done.is_set():
            temporary = staging / f".{random.randrange(10**6)}-tmp-searcher-state.pkl"  # as Ray names them
            temporary.write_bytes(pickle.dumps({"state": 1}))
            temporary.replace(staging / "searcher-state.pkl")

    writer = threading.Thread(target=ray_writing)
    writer.start()
    try:
        for _ in range(300):
            replace_files(staging, study)
    finally:
        done.set()
        writer.join()
    assert json.loads((study / "experiment_state.json").read_text()) == {"trials": []}
    assert pickle.loads((study / "searcher-state.pkl").read_bytes()) == {"state": 1}
    assert not list(study.glob(".*-tmp-*"))  # Ray's temporary files are not copied (one would stay for good)


def test_a_trials_file_unchanged_since_its_last_copy_is_not_copied_again(tmp_path: Path) -> None:
    """Ray copies its whole staging folder after every checkpoint, with some 5 files of each trial of the run: each
    read and written again every time, the gap between trial starts grew with the trials run. A trial's file is
    copied when it changed (Ray appends each result); Ray's state files each time."""
    files = _state(tmp_path / "staging", 1 << 10)
    trial = tmp_path / "staging" / "trial_a"
    trial.mkdir()
    (trial / "result.json").write_text('{"epoch": 1}\n')
    stage = tmp_path / "main"
    replace_files(tmp_path / "staging", stage)
    for name in [*files, "trial_a/result.json"]:  # marks: a file copied again loses its mark
        (stage / name).write_bytes(b"mark")
    replace_files(tmp_path / "staging", stage)
    assert (stage / "trial_a" / "result.json").read_bytes() == b"mark"
    assert {name: (stage / name).read_bytes() for name in files} == files
    with (trial / "result.json").open("a") as log:
        log.write('{"epoch": 2}\n')
    (stage / "trial_a" / "result.json").unlink()
    (trial / "params.json").write_text("{}")
    replace_files(tmp_path / "staging", stage)
    assert (stage / "trial_a" / "result.json").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    assert (stage / "trial_a" / "params.json").read_text() == "{}"
