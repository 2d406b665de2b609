"""benchmarks/synth_speed.py's breakdown of a video's generation time: its parts are MuJoCo's two render passes
and the rest, and they add up to the whole."""

from __future__ import annotations

import re

import pytest

from benchmarks.synth_speed import main, phases


def test_phases_split_a_videos_time_into_the_rgb_pass_the_segmentation_pass_and_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = phases(2)
    found = re.fullmatch(
        r"2 labelled videos, (\d+) ms a video on one core: rgb (\d+) ms \((\d+)%\), "
        r"segmentation (\d+) ms \((\d+)%\), the rest (\d+) ms \((\d+)%\)",
        text,
    )
    assert found, text
    total, rgb, _, seg, _, rest, _ = (int(v) for v in found.groups())
    assert rgb > 0 and seg > 0 and rest > 0
    assert abs(rgb + seg + rest - total) <= 2  # rounding of each part
    assert sum(int(v) for v in found.groups()[2::2]) in (99, 100, 101)
    assert main(["--phases", "1"]) == 0 and "1 labelled videos" in capsys.readouterr().out
