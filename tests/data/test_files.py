"""data.files: an OSError told as one line naming its path; warnings as a command shows them; a Ctrl-C as a command
starts is one line."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from data import files
from data.files import ensure_writable, not_a, os_error_line

ROOT = Path(__file__).resolve().parents[2]


def test_a_folder_asked_for_where_a_file_is_says_so(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError) as err:  # --out a-file/x.pt: its folder is a file
        ensure_writable(tmp_path / "a-file")
    assert os_error_line(err.value) == f"{tmp_path / 'a-file'}: a file, where a folder is needed"  # "File exists"
    with pytest.raises(OSError) as err:
        ensure_writable(tmp_path / "a-file" / "sub")
    assert os_error_line(err.value) == f"{tmp_path / 'a-file'}: a file, where a folder is needed"  # "Not a directory"
    assert [not_a("folder", tmp_path / "a-file"), not_a("file", tmp_path), not_a("file", tmp_path / "nope")] == [
        "a file, where a folder is needed",
        "a folder, where a file is needed",
        "no such file",
    ]


def test_a_command_s_own_warnings_are_one_line_each_said_once(tmp_path: Path) -> None:
    """As every command shows them (warnings_as_lines): this project's as `warning: ...` once a process, however
    often raised (a split listed again and again); another package's as Python shows it."""
    (tmp_path / "train" / "video_0").mkdir(parents=True)
    (tmp_path / "train" / "notes.txt").write_text("not a video")
    code = (
        "import warnings\n"
        "from data.files import warnings_as_lines\n"
        "from data.layout import shared_ids\n"
        "warnings_as_lines()\n"
        "for _ in range(3):\n"
        "    with warnings.catch_warnings():\n"  # as the driver lists a split: a registry reset each time
        f"        shared_ids({str(tmp_path)!r}, ['train'])\n"  # (the warning is this project's code's)
        f"    shared_ids({str(tmp_path)!r}, ['train'])\n"
        "warnings_as_lines(again=True)\n"  # a Ray worker's next trial: said again, once
        f"shared_ids({str(tmp_path)!r}, ['train'])\n"
        f"shared_ids({str(tmp_path)!r}, ['train'])\n"
        "warnings.warn('from elsewhere', UserWarning)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    own = f"warning: {tmp_path / 'train'}: left out 1 entries that are not video_N folders: notes.txt"
    assert lines.count(own) == 2 and not any("data/layout.py" in line for line in lines), done.stderr
    assert any(line.endswith("UserWarning: from elsewhere") for line in lines), done.stderr  # Python's own form


def test_a_command_ends_as_python_ends_its_threads_and_exit_handlers_done(tmp_path: Path) -> None:
    """run_command ends at once after its exit handlers (the teardown of torch's and Ray's modules skipped), but as
    Python's own exit does otherwise: a thread still at work finishes, each exit handler runs (Ray's shutdown is one),
    all that was printed reaches a pipe, and the exit status is main's."""
    code = (
        "import atexit, threading, time\n"
        "from data.files import run_command\n"
        "atexit.register(lambda: print('exit handler'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))).start()\n"
        "def main():\n"
        "    print('main ' + 'x' * 100000)\n"  # more than a pipe's buffer
        "    return 3\n"
        "run_command(main)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["main " + "x" * 100000, "thread done", "exit handler"], done.stderr


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["tune.search", "--space", "unet", "--name", "made"], ""),
        (["tune.train", "--model", "unet", "--epochs", "1"], ": nothing trained yet"),
        (["tune.predict", "--checkpoint", "c.pt", "--data", "d", "--split", "val"], ": nothing written"),
        (["reports.build", "study"], ": no report written"),
    ],
    ids=["tune.search", "tune.train", "tune.predict", "reports.build"],
)
def test_ctrl_c_as_a_command_imports_its_modules_is_one_line(tmp_path: Path, command: list[str], said: str) -> None:
    """Ctrl-C in the first second of a command, amid its imports (torch, Ray, plotly: 2-5 s here; each of these
    imports its module inside data.files.run_module): one line, no traceback, ended by SIGINT (a shell's $? 130),
    nothing made."""
    out = tmp_path / "made"
    run = subprocess.Popen(
        [sys.executable, "-m", *command, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # (not ignored, as in a background job)
    )
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGINT and output.strip() == f"stopped (SIGINT){said}", output
    assert not out.exists()


def test_a_ctrl_c_that_lands_where_python_drops_exceptions_is_raised_again_out_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C as Ray starts landed in logging's at-fork hook (`_releaseLock`, run at each fork), whose exceptions
    Python prints as "Exception ignored" and drops: the study ran on to its end. The handler raises it again a
    moment later, out of the hook, as the first Ctrl-C (not a repeat to ignore)."""

    def _releaseLock() -> Any:  # named as logging's hook: a frame of it, as the handler is given one
        return sys._getframe()

    monkeypatch.setattr(files._ctrl_c_once, "last", -math.inf, raising=False)
    previous = signal.signal(signal.SIGINT, files._ctrl_c_once)
    try:
        files._ctrl_c_once(signal.SIGINT, _releaseLock())  # returns: there it would be dropped
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            time.sleep(5)
        assert time.monotonic() - began < 4  # not the sleep's 5 s
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_array_that_the_disk_cannot_hold_is_refused_before_it_is_written_not_with_a_bus_error(
    tmp_path: Path,
) -> None:
    """A memory-mapped array (the decoded cache's) on a disk that another command filled after the free-space
    check: its writes ended the process with SIGBUS and no word. Its blocks are held first: an error naming it."""
    from tests.small_disk import on_small_disk

    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
import numpy as np
from pathlib import Path
from data.files import error_line, reserve_blocks
path = Path({str(disk / "frames.npy")!r})
array = np.lib.format.open_memmap(path, "w+", np.uint8, (400_000,))  # 400 kB on 128 kB: sparse until written
try:
    reserve_blocks(path, what="the decoded train split")
except OSError as err:
    print(error_line(err))
array[:] = 1  # what the cache writes next: a Bus error where the blocks were not held
"""
    argv = [sys.executable, "-c", script]
    done = subprocess.run(on_small_disk(str(disk), "128k", argv), capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.stdout.splitlines()[:1] == [
        f"{disk / 'frames.npy'}: no room on its disk for the decoded train split (0.4 MB); free some space"
    ], (done.returncode, done.stdout, done.stderr)
