"""Fixtures of the search tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import ray


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray for the module (workers inherit SEGTUNE_CACHE, so the decoded cache is the test's)."""
    os.environ["SEGTUNE_CACHE"] = str(tmp_path_factory.mktemp("decoded"))
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()
    del os.environ["SEGTUNE_CACHE"]
