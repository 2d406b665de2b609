"""The HTML report, opened in a real headless Chromium: no console errors, one leaderboard row per
trial, every figure drawn, the gallery's pictures loaded."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from playwright.sync_api import Browser, sync_playwright

from reports import figures, importance_figure, schema
from reports.build import build_report, distinct, main
from reports.checkpoints import best_checkpoint
from reports.load import load_experiment
from reports.page import NO_IMPORTANCE, NO_TIMINGS
from reports.references import no_segmenter_text, references_text
from tests.reports.study_files import TIMED_EPOCHS, TIMED_TRIALS, trial_row, write_study_folder

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is needed for the report tests (scripts/install.sh test installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_report(browser: Browser, path: Path) -> dict[str, Any]:
    """Load the page offline, in a laptop's 1400-pixel-wide window, and read what a person would see."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on(
        "console", lambda msg: errors.append(msg.text) if msg.type == "error" or "WebGL contexts" in msg.text else None
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:")) else route.abort()
    )
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    gl_drawn = []  # the WebGL figures (parallel coordinates), drawn as each comes on screen: each brought there
    for div in page.query_selector_all(".gl-figure"):
        div.scroll_into_view_if_needed()
        page.wait_for_function("d => !!d.querySelector('.main-svg') && !!d.querySelector('canvas')", arg=div)
        lost = div.evaluate(
            "d => Array.from(d.querySelectorAll('canvas')).some(c => c.getContext('webgl').isContextLost())"
        )
        gl_drawn += [] if lost else [div.get_attribute("id")]
    page.evaluate("window.scrollTo(0, 0)")
    seen = page.evaluate(
        """(gl) => ({
        tables: Array.from(document.querySelectorAll('table.leaderboard[id]')).map(t => t.tBodies[0].rows.length),
        figures: Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({id: d.id, drawn: gl.includes(d.id) || !!d.querySelector('.main-svg')})),
        images: Array.from(document.querySelectorAll('.gallery img')).map(i => i.complete && i.naturalWidth === 240),
        text: document.body.innerText,
        pageWidth: document.documentElement.scrollWidth,
        galleryRight: Math.max(0, ...Array.from(document.querySelectorAll('.gallery img')).map(i => i.getBoundingClientRect().right)),
        boards: Array.from(document.querySelectorAll('.scroll')).map(w => ({shown: w.clientWidth, wide: w.scrollWidth})),
    })""",
        gl_drawn,
    )
    page.close()
    return {**seen, "errors": errors}


def test_report_of_a_study_renders_everything(browser: Browser, unet_study: Path) -> None:
    report = unet_study / "report.html"  # written by the search itself
    assert report.exists()
    seen = open_report(browser, report)
    assert seen["errors"] == []
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet")
    assert seen["tables"] == [len(trials)]
    ids = {f["id"] for f in seen["figures"]}
    assert {"e0-s0-curves", "e0-s0-history", "e0-s0-parallel", "e0-s0-importance", "e0-per-class"} <= ids
    assert "e0-phases" in ids  # the resource-use section, from the epochs' timings
    assert all(f["drawn"] for f in seen["figures"])
    assert "Resource use" in seen["text"] and "no GPU-busy share" in seen["text"]  # a CPU study
    gallery = pd.read_parquet(unet_study / "results" / "gallery.parquet")
    assert len(seen["images"]) == len(gallery) == 2 * 6 and all(seen["images"])  # both val videos, 6 pictures each
    shown = sorted({int(c) for ids in gallery[schema.CLASS_IDS] for c in ids})  # the masks' classes, in a legend
    names = pd.read_parquet(unet_study / "results" / schema.PER_CLASS_FILE).set_index(schema.CLASS_ID)[
        schema.CLASS_NAME
    ]
    assert 0 in shown and f"The masks' colours: {' '.join(names[shown])}" in seen["text"]
    # it fits the window: the gallery's last column (mask 11) is not cut off, and the leaderboard's many
    # hyperparameter columns scroll inside the table, not the page
    assert seen["pageWidth"] <= 1400 and 0 < seen["galleryRight"] <= 1400
    assert all(board["shown"] <= 1400 for board in seen["boards"]) and any(
        b["wide"] > b["shown"] for b in seen["boards"]
    )
    for status in ("completed", "stopped", "failed"):
        assert status in seen["text"]
    assert "fails on purpose" in seen["text"]
    spent, full = int(trials["epochs"].fillna(0).sum()), int(trials["max_epochs"].sum())
    assert f"Compute: {spent} epochs run, of the {full} that these {len(trials)} trials would have cost" in seen["text"]
    assert spent < full  # ASHA stopped some
    # the best model's score read beside what needs no training, on the same val videos
    references = pd.read_parquet(unet_study / "results" / schema.REFERENCES_FILE)
    assert "The best model beside answers that need no training" in seen["text"]
    said = no_segmenter_text("unet")  # as the summary says it, a sentence of its own
    assert seen["text"].index(references_text(references)) < seen["text"].index(f"{said[:1].upper()}{said[1:]}.")
    # and the submission the study wrote, and how to submit another trial's; before the leaderboard (what the study
    # came to first: it was at the page's foot, under the resource use)
    best = best_checkpoint(unet_study)
    assert (
        f"Submission: {unet_study / 'submission.pt'}, the best checkpoint's masks of the 2 hidden videos ({best}); "
        f"another trial's: python -m tune.predict --experiment {unet_study} --split hidden --out submission.pt --trial ID."
        in seen["text"]
    )
    order = ("Submission: ", "Best model: IoU per class", "Gallery: ", "Leaderboard", "Resource use")
    assert [seen["text"].index(part) for part in order] == sorted(seen["text"].index(part) for part in order)


def test_the_report_of_a_dynamics_study_shows_its_model_beside_the_rules(
    browser: Browser, dynamics_study: Path
) -> None:
    seen = open_report(browser, dynamics_study / "report.html")  # written by the search itself
    assert seen["errors"] == [] and all(f["drawn"] for f in seen["figures"])
    trials = pd.read_parquet(dynamics_study / "results" / "trials.parquet")
    # one leaderboard per stage, the final one (what the study came to) first
    counts = trials["stage"].value_counts()
    assert seen["tables"] == [counts["dynamics"], counts["segmenter"]] and len(counts) == 2
    final, before = "Stage dynamics (the final stage: its best is the answer): ", "Stage segmenter: "
    assert seen["text"].index(final) < seen["text"].index(before) < seen["text"].index("Resource use")
    assert {"e0-s0-curves", "e0-s1-curves"} <= {f["id"] for f in seen["figures"]}
    text = seen["text"]
    assert "no per-frame segmenter's masks" not in text  # it has one: the rules were measured on its masks
    # the segmenter's best beside the rules on its masks, then the dynamics model's: each stage's own block
    assert text.count("the rules on the same masks at its best epoch") == 2
    top = schema.ranked(trials, "dynamics").iloc[0]
    assert f"Best trial {top[schema.TRIAL_ID]}: {top[schema.METRIC]} " in text
    for rule in ("val_copy_last_iou", "val_extrapolate_iou"):
        assert schema.REFERENCES[rule] in text


def test_report_of_four_studies_side_by_side(
    browser: Browser,
    unet_study: Path,
    dual_study: Path,
    mask_study: Path,
    dynamics_study: Path,
    synth_root: Path,
    tmp_path: Path,
) -> None:
    """The four spaces' studies in one report. Its 7 parallel coordinates are WebGL figures of 3 contexts each, of
    which a browser keeps 16: drawn at once, the oldest lost theirs, and were empty axes with no word. Each is drawn
    as it comes on screen (open_report brings each there) and gives its contexts back as it leaves."""
    out = tmp_path / "all.html"
    studies = (unet_study, dual_study, mask_study, dynamics_study)
    assert main([*map(str, studies), "--out", str(out)]) == 0
    seen = open_report(browser, out)
    assert seen["errors"] == []  # no WebGL context lost, either
    unet, dual, mask, dynamics = (pd.read_parquet(s / "results" / "trials.parquet") for s in studies)
    assert seen["tables"] == [
        len(unet),
        *dual["stage"].value_counts()[["finetune", "pretrain"]],
        *mask["stage"].value_counts()[["predictor", "segmenter"]],
        *dynamics["stage"].value_counts()[["dynamics", "segmenter"]],
    ]
    ids = {f["id"] for f in seen["figures"]}
    assert {"comparison", "e1-parents-1", "e1-s0-curves", "e1-s1-curves", "e3-s1-parallel"} <= ids
    assert sum(i.endswith("-parallel") for i in ids) == 7
    assert all(f["drawn"] for f in seen["figures"])
    # the mask_space study was scored on its first val video alone: the others compare, it does not
    said = seen["text"].split("their scores compare within each group alone: ")[1].split("\n")[0]
    assert said == (
        f"group 1: {unet_study.name}, {dual_study.name}, {dynamics_study.name} on {synth_root}; "
        f"group 2: {mask_study.name} on {synth_root} (the first 1 val videos)."
    )
    assert "Side by side" in seen["text"]
    assert "final stage's metric\tits best\tthe best model on val\ttrial-hours\tGPU-hours" in seen["text"]  # (spent)
    assert "val_iou (max)" in seen["text"]
    ran = [
        line for line in seen["text"].splitlines() if line.startswith("Its last run ran with seed 0; budget smoke (")
    ]
    assert len(ran) == 4 and all(f"ray {version('ray')}" in line and "trials at once" in line for line in ran), ran


def test_empty_and_partial_studies_say_so(browser: Browser, unet_study: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "search.json").write_text(json.dumps({"space": "unet"}))
    partial = tmp_path / "partial"
    (partial / "results").mkdir(parents=True)
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet")
    trials.loc[trials.index[:2], "status"] = "running"
    trials.to_parquet(partial / "results" / "trials.parquet")
    shutil.copy(unet_study / "results" / "epochs.parquet", partial / "results" / "epochs.parquet")
    out = build_report([empty, partial], tmp_path / "report.html")
    seen = open_report(browser, out)
    assert seen["errors"] == []
    assert "no results yet" in seen["text"]
    assert "2 trial(s) did not end: the study was stopped or its driver died, and is partial" in seen["text"]
    assert seen["tables"] == [len(trials)]


def test_trials_that_all_score_the_same_leave_out_the_importances(
    browser: Browser, unet_study: Path, tmp_path: Path
) -> None:
    same = tmp_path / "same"
    shutil.copytree(unet_study / "results", same / "results")
    shutil.copy(unet_study / "search.json", same / "search.json")
    trials = pd.read_parquet(same / "results" / "trials.parquet")
    trials.loc[trials["best_metric"].notna(), "best_metric"] = 0.25  # e.g. all still at the copy-last start
    trials.to_parquet(same / "results" / "trials.parquet")
    rescore_journal(unet_study / schema.OPTUNA_FILE, same / schema.OPTUNA_FILE, 0.25)  # the importances' source
    tied = importance_figure.finished_study(load_experiment(same).studies["main"]).trials  # the report reads that study
    assert len(tied) >= 3 and {t.value for t in tied} == {0.25}
    seen = open_report(browser, build_report([same], tmp_path / "report.html"))
    assert seen["errors"] == [] and "no importances" not in seen["text"]
    ids = {f["id"] for f in seen["figures"]}
    assert "e0-s0-curves" in ids and "e0-s0-importance" not in ids
    assert NO_IMPORTANCE.format("main") in seen["text"]  # why not: it was left out unsaid
    assert seen["tables"] == [len(trials)]


def test_resource_use_renders_with_the_timing_columns_and_says_when_a_study_lacks_them(
    browser: Browser, tmp_path: Path
) -> None:
    timed = write_study_folder(tmp_path / "timed", TIMED_TRIALS, epochs=TIMED_EPOCHS)
    old = write_study_folder(tmp_path / "old", [trial_row("a", 0.3), trial_row("b", 0.5)])
    seen = open_report(browser, build_report([timed, old], tmp_path / "report.html"))
    assert seen["errors"] == []
    drawn = {f["id"]: f["drawn"] for f in seen["figures"]}
    assert drawn["e0-phases"] and drawn["e0-s0-gpu"] and drawn["e0-s1-gpu"]
    assert not any(k.startswith("e1-") and ("gpu" in k or "phases" in k) for k in drawn)
    text = seen["text"]
    assert text.count("Resource use") == 2
    assert "The GPU was busy 48% of the study's time" in text
    assert "Time with no trial running: 5s between trials and 10s between stages." in text
    assert "idle before the stage (between stages)\t10s" in text  # finetune's row of its table
    assert NO_TIMINGS in text  # the old study


def rescore_journal(source: Path, dest: Path, value: float) -> None:
    """A copy of a study's journal whose finished trials all scored `value`."""
    read = JournalStorage(JournalFileBackend(str(source)))
    write = JournalStorage(JournalFileBackend(str(dest)))
    for name in optuna.study.get_all_study_names(read):
        study = optuna.load_study(study_name=name, storage=read)
        copy = optuna.create_study(study_name=name, storage=write, direction=study.direction)
        finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        for trial in finished:
            trial.value = value
        copy.add_trials(finished)


def test_parallel_coordinates_take_a_conditional_choice_missing_from_some_trials(unet_study: Path) -> None:
    trials = pd.read_parquet(unet_study / "results" / "trials.parquet")
    trials["config/warp"] = [True, None] * (len(trials) // 2) + [False] * (len(trials) % 2)  # asked only sometimes
    fig = figures.parallel_coordinates(trials, str(trials["stage"].iloc[0]))
    assert fig is not None
    dim = next(d for d in fig.data[0].dimensions if d.label == "warp")
    assert "-" in dim.ticktext


def test_a_missing_folder_or_a_damaged_search_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such folder, nor a study folder\n"
    runs = tmp_path / "runs"  # the studies' --out folder, given for one of them: refused, naming them
    for name in ("b", "a"):
        (runs / name).mkdir(parents=True)
        (runs / name / schema.STUDY_FILE).write_text("{}")
    (runs / "mlruns").mkdir()
    assert main([str(runs)]) == 2
    assert capsys.readouterr().err == (
        f"error: not a study folder: {runs} holds neither search.json nor results/; the studies in it: "
        f"{runs / 'a'} {runs / 'b'}\n"
    )
    assert not (runs / "report.html").exists()
    assert main([str(runs / "a"), f"{runs}/./a/"]) == 2  # one study twice: the table would hold it twice
    assert capsys.readouterr().err == f"error: {runs}/./a/ and {runs / 'a'} are the same study folder: name it once\n"
    assert main([str(runs / "mlruns")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: not a study folder: {runs / 'mlruns'} holds neither search.json nor results/\n"
    )
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / schema.STUDY_FILE).write_text("{bad json")
    assert main([str(tmp_path / "damaged")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'damaged' / schema.STUDY_FILE}: not a study's settings (not valid JSON")
    assert len(err.strip().splitlines()) == 1


def test_studies_of_the_same_name_are_told_apart_by_their_folders(tmp_path: Path) -> None:
    rows = [trial_row("a", 0.3)]
    folders = [write_study_folder(tmp_path / p / "b", rows) for p in ("runs", "copy", "x/runs")]
    folders.append(write_study_folder(tmp_path / "c", rows))
    named = [e.name for e in distinct([load_experiment(f) for f in folders])]
    assert named == [f"{tmp_path.name}/runs/b", f"{tmp_path.name}/copy/b", "x/runs/b", "c"]  # as much as tells apart
    page = (tmp_path / "r.html").read_text() if build_report(folders[:2], tmp_path / "r.html") else ""
    links = '2 studies: <a href="#study-0">runs/b</a>, <a href="#study-1">copy/b</a>'  # a long page's contents
    assert links in page and '<h2 id="study-1">copy/b</h2>' in page


def test_an_out_that_cannot_take_the_report_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()  # a study with no results yet: a report that says so
    (tmp_path / "empty" / schema.STUDY_FILE).write_text("{}")
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {tmp_path} is a folder; name the HTML file, e.g. {tmp_path / 'report.html'}\n"
    )
    (tmp_path / "a-file").write_text("not a folder")
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "a-file" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: --out {tmp_path / 'a-file' / 'r.html'}: {tmp_path / 'a-file'} is a file, where a folder is needed\n"
    )
    assert main([str(tmp_path / "empty"), "--out", ""]) == 2  # an unset variable in a script: not the default
    assert capsys.readouterr().err == "error: --out is empty; name the HTML file, e.g. --out report.html\n"
    assert not (tmp_path / "empty" / "report.html").exists()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_python_m_reports_is_the_report_command() -> None:
    """`python -m reports` (what a user tries first) was Python's "'reports' is a package and cannot be directly
    executed"."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "reports", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m reports.build"), done.stderr
