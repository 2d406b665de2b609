"""The environment a study's Ray starts with, read where Ray reads it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from ray._private.worker import print_worker_logs

from tune.search.ray_env import ray_defaults


def test_ray_s_lines_of_its_workers_carry_no_colour_codes_in_a_log_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose output goes to a file (here pytest's capture): Ray's "(raylet) A worker died ..." line came
    wrapped in colour codes."""
    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    lines: Any = {"pid": "raylet", "ip": "10.0.0.7", "localhost": "10.0.0.1", "lines": ["A worker died or was killed"]}
    before = io.StringIO()
    print_worker_logs(lines, before)
    assert "\x1b[" in before.getvalue()  # Ray's own default
    ray_defaults()  # (the suite's output is captured: no terminal)
    after = io.StringIO()
    print_worker_logs(lines, after)
    assert after.getvalue() == "(raylet, ip=10.0.0.7) A worker died or was killed\n"
