"""Loading a study folder: its tables, and the Optuna study of each stage from the journal."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

import pandas as pd
import pytest

from reports import schema
from reports.build import main
from reports.load import NO_EPOCHS, NO_JOURNAL, NO_TRIALS, load_experiment, unfinished_text
from tests.reports.study_files import trial_row, write_journal, write_study_folder

ROWS = [trial_row("a", 0.2), trial_row("b", 0.4, stage="finetune")]
OUTCOMES = [({"lr": 1e-3, "width": 8}, [0.2], "complete")]


def test_a_study_stopped_between_stages_or_before_its_end_is_partial_and_a_stage_that_stopped_it_is_named(
    tmp_path: Path,
) -> None:
    """run.json (the driver's last run) names the stages still to run where no trial tells (stopped between two
    stages, or after the last while the best model was evaluated), and why a stage stopped a run that ended."""
    folder = write_study_folder(tmp_path / "runs" / "d", ROWS[:1], settings={"name": "d", "space": "dual_phase"})
    (folder / "train").mkdir()
    (folder / "train" / schema.STAGE_DONE).touch()
    assert not any("partial" in n for n in load_experiment(folder).notes)  # no run.json: every stage seen ended

    def run(ended: bool, stopped: dict[str, str] | None = None) -> list[str]:
        record = {schema.RUN_STAGES: ["train", "finetune"], schema.RUN_ENDED: ended, schema.RUN_STOPPED: stopped or {}}
        (folder / schema.RUN_FILE).write_text(json.dumps(record))
        return load_experiment(folder).notes

    resume = f"; finish it with: python -m tune.search --out {tmp_path / 'runs'} --name d --resume"
    died = "the study was stopped or its driver died, and is partial"
    assert f"stage finetune did not start: {died}{resume}" in run(ended=False)
    (folder / "finetune").mkdir()
    assert f"stage finetune did not end: {died}{resume}" in run(ended=False)
    (folder / "finetune" / schema.STAGE_DONE).touch()
    end = f"every stage ended but the study did not (the best model's evaluation on val, its submission): {died}"
    assert end + resume in run(ended=False)
    assert not any("partial" in n or "stage" in n for n in run(ended=True))
    (folder / "finetune" / schema.STAGE_DONE).unlink()
    notes = run(ended=True, stopped={"train": "no trial succeeded"})
    assert "stage train: no trial succeeded; so stage(s) finetune did not run" in notes
    assert not any("partial" in n for n in notes)  # the run ended: stopped by its stage, not killed
    # a study that joined a cluster is resumed on it (without --address, a resume starts a Ray of its own)
    settings = {"name": "d", "space": "dual_phase", "address": "10.0.0.5:6379"}
    (folder / schema.STUDY_FILE).write_text(json.dumps(settings))
    joined = f"python -m tune.search --out {tmp_path / 'runs'} --name d --address 10.0.0.5:6379 --resume"
    notes = run(ended=False)
    assert any(n.endswith(joined) for n in notes), notes
    (folder / schema.STUDY_FILE).write_text(json.dumps({**settings, "address": None, "dashboard": False}))
    quiet = f"python -m tune.search --out {tmp_path / 'runs'} --name d --no-dashboard --resume"  # as it ran
    assert any(n.endswith(quiet) for n in run(ended=False)), notes
    run(ended=True, stopped={"train": "no trial succeeded"})  # the record the next lines copy
    stopped = write_study_folder(tmp_path / "runs" / "e", [trial_row("a", 0.2, status="running"), trial_row("b")])
    (stopped / schema.RUN_FILE).write_text((folder / schema.RUN_FILE).read_text())  # a trial training at the stop
    left = "1 trial(s) did not end: a stage stopped the study (below), which is partial; finish it with: "
    assert any(n.startswith(left) for n in load_experiment(stopped).notes)
    copied = write_study_folder(tmp_path / "runs" / "c", ROWS[:1])  # copied mid-run without its stage folders
    (copied / schema.RUN_FILE).write_text(json.dumps({schema.RUN_STAGES: ["train"], schema.RUN_ENDED: False}))
    assert any(n.startswith("stage train did not end: ") for n in load_experiment(copied).notes)
    empty = tmp_path / "runs" / "n"  # a run whose stage stopped it before any trial reported: said once, as such
    empty.mkdir()
    (empty / schema.STUDY_FILE).write_text(json.dumps({"name": "n", "space": "unet"}))
    (empty / schema.RUN_FILE).write_text(
        json.dumps({schema.RUN_STAGES: ["train"], schema.RUN_ENDED: True, schema.RUN_STOPPED: {"train": "boom"}})
    )
    notes = load_experiment(empty).notes
    assert "stage train: boom" in notes and not any("driver died" in n for n in notes), notes
    (empty / schema.DRIVER_LOCK).write_text("pid 4242 on node7, since 2026-12-06 10:00:00 UTC\n")
    with open(empty / schema.DRIVER_LOCK) as held:  # resumed: the stop was the last run's, not this one's
        fcntl.flock(held, fcntl.LOCK_EX)
        assert "stage train: boom" not in load_experiment(empty).notes
    for damaged in ("{not json", '{"stopped": ["train"]}', '{"stages": 5}', "[1]"):  # unreadable: as without one
        (folder / schema.RUN_FILE).write_text(damaged)
        notes = load_experiment(folder).notes
        assert not any("partial" in n or "so stage" in n for n in notes)
        assert (
            f"cannot read run.json: {folder / schema.RUN_FILE}: not what the study writes there (judged without it)"
            in notes
        )


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        (schema.BUDGET_FILE, "{", "not JSON (Expecting property name enclosed in double quotes"),
        (schema.BUDGET_FILE, '{"cut": 5}', "not what the study writes there"),
        (schema.BUDGET_FILE, "[1]", "not what the study writes there"),
        (schema.SKIPPED_FILE, '{"val": [1, 2]}', "not what the study writes there"),
        (schema.SKIPPED_FILE, "[1]", "not what the study writes there"),
    ],
)
def test_a_damaged_record_beside_the_results_is_a_note_naming_it(
    name: str, text: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS, settings={"name": "u", "space": "unet"})
    (folder / name).write_text(text)
    exp = load_experiment(folder)
    assert any(note.startswith(f"cannot read {name}: {folder / name}: {why}") for note in exp.notes), exp.notes
    assert len(exp.trials) == 2
    assert main([str(folder), "--out", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().err.startswith(f"warning: {folder}: cannot read {name}: ")


def test_the_studies_are_found_by_the_name_in_search_json(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "copied", ROWS, settings={"name": "u", "space": "unet"})
    for stage in ("train", "finetune"):
        write_journal(folder / schema.OPTUNA_FILE, schema.optuna_study_name("u", stage), OUTCOMES)
    exp = load_experiment(folder)
    assert {stage: s.study_name for stage, s in exp.studies.items()} == {"train": "u/train", "finetune": "u/finetune"}
    assert len(exp.studies["train"].trials) == 1


def test_without_a_name_in_search_json_the_folder_names_the_studies(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS[:1])
    write_journal(folder / schema.OPTUNA_FILE, schema.optuna_study_name("u", "train"), OUTCOMES)
    assert list(load_experiment(folder).studies) == ["train"]


def test_a_missing_journal_is_a_note(tmp_path: Path) -> None:
    exp = load_experiment(write_study_folder(tmp_path / "u", ROWS))
    assert exp.studies == {}
    assert NO_JOURNAL in exp.notes


def test_a_stage_missing_from_the_journal_is_a_note(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS)
    write_journal(folder / schema.OPTUNA_FILE, schema.optuna_study_name("u", "train"), OUTCOMES)
    exp = load_experiment(folder)
    assert list(exp.studies) == ["train"]
    assert any("'u/finetune'" in note for note in exp.notes)


def test_loading_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS[:1])
    write_journal(folder / schema.OPTUNA_FILE, schema.optuna_study_name("u", "train"), OUTCOMES)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    load_experiment(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_an_empty_folder_says_what_is_missing(tmp_path: Path) -> None:
    exp = load_experiment(tmp_path)
    assert exp.trials.empty and exp.stages == [] and exp.studies == {}
    assert NO_TRIALS in exp.notes and NO_EPOCHS in exp.notes


def test_a_results_folder_that_is_a_file_is_a_note_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / schema.STUDY_FILE).write_text(json.dumps({"name": "s", "space": "unet"}))
    (folder / schema.RESULTS_DIR).write_text("a file")
    exp = load_experiment(folder)
    assert exp.trials.empty and NO_TRIALS not in exp.notes
    assert (
        f"cannot read results/: {folder / schema.RESULTS_DIR} is a file, where the results folder is needed"
        in exp.notes
    )


def test_an_unreadable_table_is_a_note_and_the_other_is_kept(tmp_path: Path) -> None:
    folder = write_study_folder(tmp_path / "u", ROWS)
    (folder / schema.RESULTS_DIR / schema.EPOCHS_FILE).write_bytes(b"not parquet")
    exp = load_experiment(folder)
    assert len(exp.trials) == 2 and exp.epochs.empty
    assert any(note.startswith(f"cannot read {schema.EPOCHS_FILE}") for note in exp.notes)


@pytest.mark.parametrize(
    "name",
    [schema.TRIALS_FILE, schema.EPOCHS_FILE, schema.PER_CLASS_FILE, schema.GALLERY_FILE, schema.REFERENCES_FILE],
)
def test_a_table_without_its_columns_is_a_note_naming_them_and_the_others_are_kept(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid Parquet, but not the study's table (a file of another tool copied in): a note, not a traceback."""
    folder = write_study_folder(tmp_path / "u", ROWS)
    path = folder / schema.RESULTS_DIR / name
    pd.DataFrame({schema.TRIAL_ID: ["a"], "what": ["x"]}).to_parquet(path)
    exp = load_experiment(folder)
    table = {
        schema.TRIALS_FILE: exp.trials,
        schema.EPOCHS_FILE: exp.epochs,
        schema.PER_CLASS_FILE: exp.per_class,
        schema.GALLERY_FILE: exp.gallery,
        schema.REFERENCES_FILE: exp.references,
    }
    refused = table.pop(name)
    assert refused is not None and refused.empty and all(other is not None for other in table.values())
    assert len(exp.trials) == (0 if name == schema.TRIALS_FILE else 2)
    lacking = ", ".join(c for c in schema.NEEDED[name] if c != schema.TRIAL_ID)
    note = f"cannot read {name}: {path}: not a study's {path.stem} table: it lacks the column(s) {lacking}"
    assert note in exp.notes
    assert main([str(folder), "--out", str(tmp_path / "r.html")]) == 0  # the report is written, and says it
    assert capsys.readouterr().err == f"warning: {folder}: {note}\n" and (tmp_path / "r.html").is_file()


def test_a_moved_studys_submission_names_its_checkpoint_where_the_study_is_now(tmp_path: Path) -> None:
    study = tmp_path / "runs" / "s"
    recorded = study / "main" / "trial_a" / "checkpoint_000002" / "checkpoint.pt"
    write_study_folder(study, [trial_row("a", 0.3, checkpoint=str(recorded))])
    recorded.parent.mkdir(parents=True)
    recorded.write_bytes(b"weights")
    (study / schema.SUBMISSION_FILE).write_bytes(b"masks")
    info = {schema.CHECKPOINT: str(recorded), schema.VIDEOS: 2}
    (study / schema.RESULTS_DIR / schema.SUBMISSION_INFO_FILE).write_text(json.dumps(info))
    assert load_experiment(study).submission == info
    moved = tmp_path / "moved"
    study.rename(moved)
    assert load_experiment(moved).submission == {**info, schema.CHECKPOINT: str(moved / recorded.relative_to(study))}


def test_a_study_whose_driver_runs_is_told_from_one_that_was_stopped(tmp_path: Path) -> None:
    """Trials left running mean the study runs now (its driver holds OUT/NAME/.driver.lock) or was stopped (the
    lock is free): a snapshot, or a study to resume, and the command that does."""
    rows = [trial_row("a", 0.2, status="running"), trial_row("b", 0.4, status="running"), trial_row("c", 0.3)]
    folder = write_study_folder(tmp_path / "runs" / "u", rows, settings={"name": "u", "space": "unet"})
    stopped = load_experiment(folder).notes
    resume = f"python -m tune.search --out {tmp_path / 'runs'} --name u --resume"
    assert any(note.startswith("2 trial(s) did not end") and note.endswith(resume) for note in stopped)
    assert not (folder / schema.DRIVER_LOCK).exists()  # only looked for
    lock = folder / schema.DRIVER_LOCK
    lock.write_text("pid 4242 on node7, since 2026-12-05 10:00:00 UTC\n")
    assert not any("running now" in note for note in load_experiment(folder).notes)  # a lock nobody holds
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as data.locking.run_lock holds it in the driver
        live = load_experiment(folder).notes
        lock.write_text(f"pid {os.getpid()} on {socket.gethostname()}, since 2026-12-05 10:00:00 UTC\n")
        own = load_experiment(folder).notes  # the driver building its own report as it ends
    note = "the study is running now (pid 4242 on node7, since 2026-12-05 10:00:00 UTC), 2 trial(s) in progress"
    assert any(n.startswith(note) for n in live) and not any("did not end" in n for n in live)
    assert not any("running now" in n for n in own) and any("did not end" in n for n in own)
    assert any("did not end" in n for n in load_experiment(folder).notes)  # the lock let go
    # stopped between two trials: none left running, but the stage's Ray experiment never ended
    rows = [trial_row("a", 0.2), trial_row("b", 0.4, status="stopped")]
    between = write_study_folder(tmp_path / "runs" / "v", rows, settings={"name": "v", "space": "unet"})
    (between / "train").mkdir()
    partial = "stage train did not end: the study was stopped or its driver died, and is partial; finish it with: "
    assert partial + resume.replace("--name u", "--name v") in load_experiment(between).notes
    (between / "train" / schema.STAGE_DONE).touch()
    assert not any("did not end" in n for n in load_experiment(between).notes)  # the stage ended: the study did
    (folder / schema.RESULTS_DIR / schema.TRIALS_FILE).unlink()  # stopped before any trial reported
    before = "no driver runs the study: it was stopped or its driver died before any trial reported; go on with: "
    assert before + resume in load_experiment(folder).notes
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        lock.write_text("pid 4242 on node7, since 2026-12-05 10:00:00 UTC\n")
        assert not any(n.startswith(before) for n in load_experiment(folder).notes)  # running: none reported yet


def test_a_resume_running_after_a_time_budget_cut_is_not_said_to_be_cut(tmp_path: Path) -> None:
    """budget.json holds the last run's cut until the next run ends: while a --resume runs, the report says it is
    completing that cut, not that the study was cut and a --resume would complete it."""
    folder = write_study_folder(tmp_path / "runs" / "b", [trial_row("a", 0.2, status="cut")], settings={"name": "b"})
    (folder / "train").mkdir()
    cut = {schema.BUDGET_TEXT: "1m10s", schema.BUDGET_CUT: {"train": "1 of 4 trials started"}}
    (folder / schema.BUDGET_FILE).write_text(json.dumps(cut))
    said = "cut by its time budget (1m10s): stage train: 1 of 4 trials started"
    assert f"the study was {said}; --resume completes it" in load_experiment(folder).notes
    lock = folder / schema.DRIVER_LOCK
    lock.write_text("pid 4242 on node7, since 2026-12-05 10:00:00 UTC\n")
    os.utime(folder / schema.BUDGET_FILE, (1, 1))  # written by an earlier run, before this driver took the lock
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        live = load_experiment(folder).notes
        os.utime(folder / schema.BUDGET_FILE)  # this driver's own cut, written as its search ended (it evaluates now)
        own = load_experiment(folder).notes
    assert f"an earlier run was {said}; the run going on now completes it" in live, live
    assert not any(n.startswith("the study was cut") for n in live), live
    assert f"the study was {said}; --resume completes it" in own, own


def test_a_time_budget_that_cut_nothing_is_said_with_what_the_search_used(tmp_path: Path) -> None:
    """The summary said it (`time budget 5m00s: the search used 4m06s, 53.9s left`); the report said nothing."""
    folder = write_study_folder(tmp_path / "runs" / "b", [trial_row("a", 0.2)], settings={"name": "b"})
    record: dict[str, object] = {
        schema.BUDGET_SECONDS: 300.0,
        schema.BUDGET_TEXT: None,
        schema.BUDGET_USED: 246.1,
        schema.BUDGET_CUT: {},
    }
    (folder / schema.BUDGET_FILE).write_text(json.dumps(record))
    said = "its last run had a time budget of 5m00s, which cut nothing: its search used 4m06s"
    assert said in load_experiment(folder).notes
    (folder / schema.BUDGET_FILE).write_text(json.dumps({**record, schema.BUDGET_SECONDS: None}))  # a run without
    assert not any("time budget" in n for n in load_experiment(folder).notes)


def test_a_command_that_takes_a_study_s_best_is_told_whether_the_study_ended(tmp_path: Path) -> None:
    """tune.predict, tune.train --from and --warm-start print it, as the report judges the study: one running now,
    or one that did not end, gives its trials so far (a snapshot); one that ended, nothing to say."""
    folder = write_study_folder(tmp_path / "runs" / "u", [trial_row("a", 0.2)], settings={"name": "u"})
    assert unfinished_text(folder) is None  # no run.json (results copied without it), no stage left open
    (folder / "train").mkdir()  # ... but a stage's folder without the .done its end writes
    died = "the study was stopped or its driver died, and is partial"
    so_far = "; --resume finishes it. This takes its trials so far"
    assert unfinished_text(folder) == f"{folder}: stage train did not end: {died}{so_far}"
    assert any(n.startswith(f"stage train did not end: {died}") for n in load_experiment(folder).notes)  # the same
    (folder / "train" / schema.STAGE_DONE).touch()
    record = {schema.RUN_STAGES: ["train", "finetune"], schema.RUN_ENDED: False, schema.RUN_STOPPED: {}}
    (folder / schema.RUN_FILE).write_text(json.dumps(record))
    assert unfinished_text(folder) == f"{folder}: stage finetune did not start: {died}{so_far}"
    lock = folder / schema.DRIVER_LOCK
    lock.write_text("pid 4242 on node7, since 2026-12-05 10:00:00 UTC\n")
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        running = unfinished_text(folder)
    assert running == (
        f"{folder} is running now (pid 4242 on node7, since 2026-12-05 10:00:00 UTC): this takes its trials as they "
        "are now, a snapshot"
    )
    write_study_folder(folder, [trial_row("a", 0.2, status="running")])  # a trial left running by a kill
    assert unfinished_text(folder) == f"{folder}: 1 trial(s) did not end: {died}{so_far}"
    (folder / schema.RUN_FILE).write_text(json.dumps({**record, schema.RUN_ENDED: True}))
    assert unfinished_text(folder) is None


def test_a_study_s_plugins_and_overrides_are_notes(tmp_path: Path) -> None:
    """What else made the study than its space: the report says so, as it says a warm start."""
    settings = {
        "name": "p",
        "space": "mine",
        "plugins": ["/home/me/mine.py"],
        "overrides": ["set act=gelu", "range lr=0.001:0.01"],
    }
    notes = load_experiment(write_study_folder(tmp_path / "p", ROWS[:1], settings=settings)).notes
    assert "with the plugin(s) /home/me/mine.py (--plugin)" in notes, notes
    assert "its space as overridden: set act=gelu; range lr=0.001:0.01 (--set, --range, --choices)" in notes, notes
    for other in ({"name": "q", "space": "unet"}, {"name": "q", "space": "unet", "plugins": "x.py", "overrides": [3]}):
        plain = load_experiment(write_study_folder(tmp_path / "q", ROWS[:1], settings=other))  # none; hand-edited
        assert not any("plugin" in n or "overridden" in n for n in plain.notes)
