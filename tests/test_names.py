"""Names written once (../shared/STYLE.md): a trial status (reports.schema.Status) or a metric name
(reports.schema.METRICS) spelled as a bare string outside reports/schema.py fails here, so that renaming one
or adding a leaderboard column touches one file. Read from the source with ast; tests and docs left out.
Each training task declares the metrics it reports, and each stage of a space is measured by one of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models.registry import list_models
from reports.schema import METRICS, Status
from tune.search.spaces import get_space, list_spaces
from tune.training.tasks import task_for

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("data", "models", "tune", "reports", "benchmarks")
DECLARED_IN = Path("reports/schema.py")
NAMES = {status.value for status in Status} | set(METRICS)


def bare_names(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line: 'name'` for each string literal of `path` that is exactly a declared status or metric."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES
    ]


def test_statuses_and_metric_names_are_spelled_only_where_they_are_declared() -> None:
    files = sorted(p for package in SCANNED for p in (ROOT / package).rglob("*.py"))
    found = [hit for path in files if path.relative_to(ROOT) != DECLARED_IN for hit in bare_names(path)]
    print(f"bare statuses or metric names outside {DECLARED_IN}: {len(found)}")
    assert not found, f"use the names of {DECLARED_IN} instead: " + "; ".join(found)


def test_the_scan_finds_a_bare_status_or_metric_and_nothing_else(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        '"""Trials stopped early."""\nSTOPPED = "stopped"\nshown = {"val_iou": 0.5, "val": f"{STOPPED}"}\n'
    )
    assert bare_names(module, tmp_path) == ["probe.py:2: 'stopped'", "probe.py:3: 'val_iou'"]


@pytest.mark.parametrize("space", list_spaces())
def test_each_stage_is_measured_by_a_metric_its_task_reports(space: str) -> None:
    for stage in get_space(space).stages:
        task = task_for(stage.model)
        assert stage.metric in task.metrics, f"{space}/{stage.name}: {stage.metric} not in {task.name}'s {task.metrics}"


@pytest.mark.parametrize("model", list_models())
def test_each_task_declares_metrics_the_schema_names(model: str) -> None:
    task = task_for(model)
    assert task.metrics and set(task.metrics) <= set(METRICS), task.metrics
