"""data.progress: a bar on a terminal; in a log, lines now and then and one at the end, never a bar redrawn with \\r."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from data.cache import decode_split
from data.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_a_job_writes_whole_lines_now_and_then_and_one_at_its_end() -> None:
    log = io.StringIO()
    with Progress(3, "decoding val", every_s=0, stream=log) as bar:
        for _ in range(3):
            bar.update()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(",")[0] for line in lines[:2]] == ["decoding val: 1/3 videos", "decoding val: 2/3 videos"]
    assert lines[2].startswith("decoding val: 3/3 videos in ") and lines[2].endswith(" videos/s")

    quiet = io.StringIO()  # a job shorter than the interval: its end line only
    with Progress(4, "pseudo-labels val", initial=2, stream=quiet) as bar:
        bar.update(2)
    assert len(quiet.getvalue().splitlines()) == 1 and quiet.getvalue().startswith("pseudo-labels val: 4/4 videos in")
    done = io.StringIO()  # an earlier run did it all: nothing to say
    with Progress(4, "pseudo-labels val", initial=4, every_s=0, stream=done):
        pass
    assert done.getvalue() == ""


def test_a_terminal_gets_the_bar_and_a_disabled_job_writes_nothing() -> None:
    terminal = Terminal()
    with Progress(2, "generating", stream=terminal) as bar:
        bar.update(2)
    assert "\r" in terminal.getvalue() and "2/2" in terminal.getvalue() and "videos in" not in terminal.getvalue()
    silent = io.StringIO()
    with Progress(2, "generating", enabled=False, every_s=0, stream=silent) as bar:
        bar.update(2)
    assert silent.getvalue() == ""


def test_decoding_into_a_log_says_so_in_one_line(
    synth_root: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decode_split(synth_root, "val", progress=True)  # pytest's stderr is no terminal, as a log's
    err = capsys.readouterr().err
    assert "\r" not in err and err.startswith("decoding val: 2/2 videos in "), err
