"""A study folder's small records, read: its settings (search.json, the one reader of them), its driver's last run
(run.json), what made its submission, and the command that resumes it. The file names are reports.schema's."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from reports.schema import (
    CHECKPOINT,
    RESULTS_DIR,
    RUN_BUDGET,
    RUN_ENDED,
    RUN_FILE,
    RUN_SOFTWARE,
    RUN_STAGES,
    RUN_STOPPED,
    STUDY_FILE,
    SUBMISSION_FILE,
    SUBMISSION_INFO_FILE,
    VIDEOS,
)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON object a study keeps (budget.json, run.json, ...): {} where there is none, or where it cannot be read
    (not JSON, not an object: a damaged or hand-edited file, which its writer replaces whole)."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def resume_command(out: str | os.PathLike[str], name: str, address: str | None = None, dashboard: bool = True) -> str:
    """The command that resumes the study OUT/NAME, quoted for a shell, with the cluster it joined (`address`; without,
    a resume starts a Ray of its own where it runs) or the --no-dashboard it ran with (a run's flag, not the study's)."""
    where = ["--address", address] if address else [] if dashboard else ["--no-dashboard"]
    words = ["--out", str(out), "--name", name, *where, "--resume"]
    return "python -m tune.search " + shlex.join(words)


def submit_command(folder: str | os.PathLike[str], rule: str | None = None, hidden: str = "") -> str:
    """The tune.predict command that writes the hidden split's masks of the study in `folder` (its best checkpoint's;
    `rule`: that rule's answer on its segmenter's masks; `hidden`: " --hidden DIR" where its data has none), quoted
    for a shell: the summary and the report give it."""
    answer = f" --rule {rule}" if rule else ""
    return f"python -m tune.predict --experiment {shlex.quote(str(folder))}{answer} --split hidden{hidden} --out submission.pt"


def read_study_settings(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings a study folder's search.json records ({} without one): tune/search/config.py writes them
    (SearchConfig), and --resume, warm starts, tune.predict and the report read them here."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a study's settings (not valid JSON: {err})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: not a study's settings (a JSON {type(settings).__name__}, not an object)")
    return settings


def read_run(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """What a study folder's run.json says of its driver's last run ({} without one, or where it cannot be read:
    a study older than the file, results copied without it, a damaged file)."""
    run = read_record(Path(folder) / RUN_FILE)
    shapes = {RUN_STAGES: list, RUN_STOPPED: dict, RUN_ENDED: bool, RUN_BUDGET: dict, RUN_SOFTWARE: dict}  # (edited)
    return run if all(isinstance(run.get(k, t()), t) for k, t in shapes.items()) else {}


def study_data(folder: str | os.PathLike[str]) -> Path | None:
    """The data root a study folder's search.json names (None: the embedded synthetic set); a folder without
    search.json is refused (FileNotFoundError), its data unknown, rather than taken for the embedded set's."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so the study's data root is unknown: give --data")
    data = read_study_settings(folder).get("data")
    return Path(data) if data else None


def read_submission(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What made a study folder's submission (SUBMISSION_INFO_FILE: CHECKPOINT, VIDEOS), or None when the
    folder holds none (its data had no hidden split, writing it failed, or the study is older than them)."""
    info = Path(folder) / RESULTS_DIR / SUBMISSION_INFO_FILE
    if not (Path(folder) / SUBMISSION_FILE).is_file():
        return None
    found = read_record(info)
    return found if {CHECKPOINT, VIDEOS} <= set(found) else None


def is_study(folder: Path) -> bool:
    """A study folder holds its settings (written before its first trial) or at least its results."""
    return (folder / STUDY_FILE).is_file() or (folder / RESULTS_DIR).is_dir()
