"""A study folder's small records: its settings, its last run, its submission's record, the resume command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import schema
from reports.records import read_record, read_run, read_study_settings
from tests.reports.study_files import trial_row, write_study_folder


def test_the_study_settings_are_read_from_search_json_and_empty_without_it(tmp_path: Path) -> None:
    write_study_folder(tmp_path / "s", [trial_row("a", 0.2)], settings={"space": "unet", "plugins": ["/p.py"]})
    assert read_study_settings(tmp_path / "s") == {"space": "unet", "plugins": ["/p.py"]}
    assert read_study_settings(tmp_path / "nothing") == {}
    (tmp_path / "s" / schema.STUDY_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"search\.json: not a study's settings \(a JSON list, not an object\)"):
        read_study_settings(tmp_path / "s")


def test_a_record_that_is_missing_damaged_or_not_an_object_reads_as_none_and_a_run_of_other_shapes_too(
    tmp_path: Path,
) -> None:
    path = tmp_path / "budget.json"
    assert read_record(path) == {}
    for damaged in ('{"at": ', "[1]", "\xff"):
        path.write_text(damaged)
        assert read_record(path) == {}, damaged
    path.write_text('{"at": 1}')
    assert read_record(path) == {"at": 1}
    run = {schema.RUN_STAGES: ["main"], schema.RUN_ENDED: True, schema.RUN_STOPPED: {}}
    (tmp_path / schema.RUN_FILE).write_text(json.dumps(run))
    assert read_run(tmp_path) == run
    (tmp_path / schema.RUN_FILE).write_text(json.dumps({**run, schema.RUN_ENDED: "yes"}))  # hand-edited
    assert read_run(tmp_path) == {}
