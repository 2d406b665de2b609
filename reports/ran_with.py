"""What a study's last run ran with, in one sentence of the report (run.json's record, search.json's seed): enough
for a reader to run it again as it ran, or to tell why a rerun differs."""

from __future__ import annotations

from typing import Any

from reports.schema import RUN_BUDGET, RUN_COMMAND, RUN_RESOURCES, RUN_SOFTWARE


def ran_with(settings: dict[str, Any], run: dict[str, Any]) -> str:
    """The sentence ("" where run.json holds none of it: a study older than the record): its seed, its budget's values
    as sized to the machine, its trials' resources, the software's versions and its command."""
    if not any(key in run for key in (RUN_BUDGET, RUN_RESOURCES, RUN_SOFTWARE)):
        return ""
    parts = [f"seed {settings.get('seed', '?')}"]
    if budget := dict(run.get(RUN_BUDGET) or {}):
        name = budget.pop("name", "?")
        values = ", ".join(f"{key} {_value(v)}" for key, v in budget.items())
        # a stage of its own kind searches its own (dynamics: widths and batch sizes of tracks, not of frames)
        parts.append(f"budget {name} ({values}: what the stages draw on; each stage's own values in its leaderboard)")
    if resources := run.get(RUN_RESOURCES):
        parts.append(str(resources))
    if software := run.get(RUN_SOFTWARE):
        parts.append(", ".join(f"{package} {version}" for package, version in software.items()))
    if command := run.get(RUN_COMMAND):
        parts.append(f"command: {command}")
    return "Its last run ran with " + "; ".join(parts) + "."


def _value(value: Any) -> str:
    return "/".join(map(str, value)) if isinstance(value, list) else str(value)  # (a budget's choices: 16/32/64)
