"""What students steer a study with, through the real command (real Ray, Optuna, TensorBoard event files,
an MLflow file store): space overrides, their own plugin, trackers, time budgets and warm starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from reports.load import load_experiment
from reports.schema import CUT_BUT_FINISHED, OPTUNA_FILE
from tune.predict import main as predict
from tune.search.budget import budget_for
from tune.search.cli import main
from tune.search.config import SearchConfig, prepare_study
from tune.search.overrides import overrides_from_file, parse_overrides
from tune.search.searcher import DefineByRun
from tune.search.spaces import get_space
from tune.train import main as train

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "docs" / "plugin_example.py"


def optuna_study(exp: Path, stage: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(exp / OPTUNA_FILE)))
    return optuna.load_study(study_name=f"{exp.name}/{stage}", storage=storage)


# ---------------------------------------------------------------- overrides, without Ray


def test_show_space_prints_the_space_after_overrides_from_flags_and_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGTUNE_SYNTH", str(tmp_path / "synth"))  # where the embedded set would be generated
    (tmp_path / "o.toml").write_text('[set]\n"finetune.freeze_predictor" = false\n[range]\nlr = "1e-4:2e-3"\n')
    args = ["--space", "dual_phase", "--budget", "smoke", "--show-space", "--overrides", str(tmp_path / "o.toml")]
    assert main([*args, "--set", "width=8", "--choices", "batch_size=2"]) == 0
    shown = capsys.readouterr().out
    pretrain, finetune = shown.split("stage finetune")
    assert "width          fixed 8   (--set)" in pretrain and "batch_size     one of 2   (--choices)" in pretrain
    assert "lr             float in [0.0001, 0.002] log   (--range)" in pretrain
    assert "freeze_predictor  fixed false   (--set)" in finetune and "freeze_predictor" not in pretrain
    assert "parent_trial      one of the best pretrain trials" in finetune
    assert "seg_width         one of 4" in finetune  # untouched
    # neither --show-space nor a start refused on a flag generates the embedded set first (1.5 min on 2 cores)
    assert main(["--space", "unet", "--gpu-hours", "2", "--gpus-per-trial", "0", "--out", str(tmp_path)]) == 2
    assert "--gpu-hours needs trials on GPUs" in capsys.readouterr().err
    assert not (tmp_path / "synth").exists()


def test_show_space_of_a_resume_shows_the_study_s_own_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It showed the default space (dual_phase, budget default) and took flags that a resume refuses."""
    cfg = SearchConfig(space="unet", budget="smoke", samples=3, out=str(tmp_path), name="s", overrides=("set width=8",))
    prepare_study(cfg, resume=False)
    args = ["--out", str(tmp_path), "--name", "s", "--resume", "--show-space"]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("space unet, budget smoke (3 trials a stage):") and "fixed 8   (--set)" in shown, shown
    assert main([*args, "--space", "dual_phase"]) == 2
    assert "--space 'dual_phase' (the study has 'unet')" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--set", "widht=8"], "--set widht: no parameter 'widht' in stage main; valid: main: lr, weight_decay"),
        (["--set", "finetune.width=8"], "no parameter 'finetune.width' in stage main"),
        (["--set", "norm=layer"], "--set norm=layer: UNetConfig.norm must be one of ('batch', 'group', 'none')"),
        (["--range", "lr=1e-3:1e-4"], "needs LOW < HIGH and LOW > 0 (a log range)"),
        (["--range", "batch_size=1:3"], "batch_size is one of 2, 4, not a range: use --set or --choices"),
        (["--choices", "lr=1,2"], "lr is float in [0.0001, 0.005] log, not a choice: use --range or --set"),
        (["--set", "batch_size=0"], "TrainConfig.batch_size must be >= 1, got 0"),
        (["--set", "dropout=x"], "'x' is not a number"),
        (["--choices", "width=a,4"], "--choices width=a,4: 'a' is not an integer"),
        (["--set", "width"], "expected --set NAME=VALUE"),
        (["--set", "lr=1e-3", "--range", "lr=1e-4:1e-2"], "stage main's lr is overridden twice"),
    ],
)
def test_overrides_are_checked_against_the_space_in_one_line(
    flag: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--space", "unet", "--budget", "smoke", "--show-space", *flag]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_stage_qualified_name_may_be_quoted_or_not_in_an_overrides_file(tmp_path: Path) -> None:
    """Unquoted, TOML reads `finetune.seg_width = 8` as a table finetune holding seg_width: the same override."""
    (tmp_path / "o.toml").write_text('[set]\n"finetune.freeze_predictor" = false\nfinetune.seg_width = 8\nlr = 0.001\n')
    assert overrides_from_file(tmp_path / "o.toml") == [
        "set finetune.freeze_predictor=false",
        "set finetune.seg_width=8",
        "set lr=0.001",
    ]


def test_an_overrides_file_that_is_no_toml_text_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe[set]")
    (tmp_path / "flat.toml").write_text("set = 3\n")
    (tmp_path / "top.toml").write_text("width = 8\n[set]\nlr = 0.001\n")
    for path, why in (
        (tmp_path, "cannot be read (Is a directory)"),
        (tmp_path / "binary.toml", "not valid TOML ("),
        (tmp_path / "flat.toml", "set must be a table, [set] with NAME = VALUE lines below it"),
        (tmp_path / "top.toml", "width is in no table: put it under [set], [range] or [choices]"),
    ):
        assert main(["--space", "unet", "--show-space", "--overrides", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --overrides {path}: {why}") and err.count("\n") == 1, err


def test_a_bad_override_read_from_a_file_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "o.toml").write_text('[set]\nwidht = 8\n[range]\nlr = "3:1"\n')
    assert main(["--space", "unet", "--show-space", "--overrides", str(tmp_path / "o.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set widht: no parameter 'widht'") and err.endswith(
        f"(in --overrides {tmp_path / 'o.toml'})\n"
    )
    (tmp_path / "o.toml").write_text('[range]\nlr = "3:1"\n')
    assert main(["--space", "unet", "--show-space", "--overrides", str(tmp_path / "o.toml"), "--set", "width=8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --range lr=3:1: needs LOW < HIGH") and err.endswith(
        f"(in --overrides {tmp_path / 'o.toml'})\n"
    )
    assert main(["--space", "unet", "--show-space", "--set", "widht=8"]) == 2  # given as a flag: no file named
    assert "--overrides" not in capsys.readouterr().err


def test_an_override_of_a_stage_the_space_lacks_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--space", "unet", "--show-space", "--set", "nostage.width=8"]) == 2
    assert (
        "no parameter 'nostage.width' in stage main (nor a stage 'nostage': the stages are main); valid: main: lr"
        in (capsys.readouterr().err)
    )


SPACE_PLUGIN = """
import optuna
from tune.search.spaces import SearchSpace, Stage, optimisation, register_space


def define(trial: optuna.Trial, budget, parents):
    values = optimisation(trial, budget)
    {line}
    return values


register_space(SearchSpace("{name}", (Stage("main", "{model}", "val_iou", "max", define),)))
"""


@pytest.mark.parametrize(
    ("line", "model", "said"),
    [
        ("budget.no_such_field", "unet", "its define function raised AttributeError: 'Budget' object has no attr"),
        ("values['widht'] = trial.suggest_int('widht', 4, 8)", "unet", "a unet run has no setting 'widht': its"),
        ("values['width'] = trial.suggest_int('width', 16, 4)", "unet", "width is int in [16, 4]: needs LOW <= HIGH"),
        ("pass", "no_such_model", "no model 'no_such_model' is registered (the models: "),
        ("trial.report(0.5, 1)", "unet", "its define function raised AttributeError: trial.report: the trial a defi"),
    ],
    ids=["raises", "misspelled", "range", "model", "trial"],
)
def test_a_plugin_space_s_mistakes_are_one_line_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, model: str, said: str
) -> None:
    """A plugin space's define function that raises, asks for a setting its model lacks or a range upside down, or a
    stage naming no registered model: one line naming the space and stage, before anything starts (they were a
    traceback, or every trial failed)."""
    name = f"mistake_{len(said)}"  # a space and file name of each plugin's own
    plugin = tmp_path / f"{name}.py"
    plugin.write_text(SPACE_PLUGIN.format(line=line, name=name, model=model))
    assert main(["--plugin", str(plugin), "--space", name, "--show-space"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: space {name}, stage main: {said}") and err.count("\n") == 1, err
    if line.startswith("budget"):
        assert f"({plugin}, line 8)" in err  # where in the plugin


def test_a_plugin_space_is_checked_after_the_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log range from 0 in the plugin, which Optuna would refuse at the first trial, is refused; narrowed by the
    study's --range, its trials ask for a range that works, and the space is taken."""
    line = "values['dropout'] = trial.suggest_float('dropout', 0.0, 0.5, log=True)"
    plugin = tmp_path / "log_from_zero.py"
    plugin.write_text(SPACE_PLUGIN.format(line=line, name="log_from_zero", model="unet"))
    args = ["--plugin", str(plugin), "--space", "log_from_zero", "--show-space"]
    assert main(args) == 2
    assert "dropout is float in [0, 0.5] log: needs LOW <= HIGH (LOW > 0 on a log scale)" in capsys.readouterr().err
    assert main([*args, "--range", "dropout=0.01:0.5"]) == 0
    assert "dropout" in capsys.readouterr().out


def test_a_define_function_may_read_its_trial_and_use_optunas_deprecated_suggestions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a define function may do with Optuna's trial, its check's trial does too (they were refused in one line
    before the study): read its number and params, set user attributes, and suggest_loguniform, which the study's
    --range narrows as it does suggest_float (checked on a real Optuna trial)."""
    line = (
        "trial.set_user_attr('n', trial.number); values['dropout'] = trial.suggest_uniform('dropout', 0.0, 0.2); "
        "values['dice_weight'] = trial.suggest_loguniform('dice_weight', 0.1, trial.params['dropout'] + 1)"
    )
    plugin = tmp_path / "deprecated_calls.py"
    plugin.write_text(SPACE_PLUGIN.format(line=line, name="deprecated_calls", model="unet"))
    args = ["--plugin", str(plugin), "--space", "deprecated_calls", "--show-space", "--range", "dice_weight=0.2:0.5"]
    assert main(args) == 0, capsys.readouterr().err
    shown = capsys.readouterr().out
    assert re.search(r"dice_weight +float in \[0.2, 0.5\] log +\(--range\)", shown), shown
    budget = budget_for("smoke", gpu=False)
    overrides = parse_overrides(get_space("deprecated_calls"), budget, ["range dice_weight=0.2:0.5"])
    trial = optuna.create_study().ask()
    DefineByRun(get_space("deprecated_calls").stage("main"), budget, (), overrides)(trial)
    assert trial.distributions["dice_weight"] == optuna.distributions.FloatDistribution(0.2, 0.5, log=True)
    assert trial.distributions["dropout"] == optuna.distributions.FloatDistribution(0.0, 0.2)
    # fixed by --set, dropout is asked of no trial, so it is in no trial's params: the check says so, as a trial would
    assert main([*args, "--set", "dropout=0.1"]) == 2
    assert "its define function raised KeyError: 'dropout'" in capsys.readouterr().err


def test_help_lists_every_space_a_plugin_s_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "listed_in_help.py"
    plugin.write_text(SPACE_PLUGIN.format(line="pass", name="listed_in_help", model="unet"))
    with pytest.raises(SystemExit) as ended:
        main(["--plugin", str(plugin), "--help"])
    shown = capsys.readouterr().out
    assert ended.value.code == 0 and "\nspaces (--show-space prints one's parameters):\n" in shown
    assert "\n  listed_in_help (main)\n" in shown and "\n  unet (main): frames 1-11 stacked as 33 channels" in shown
    assert "\n  dual_phase (pretrain, finetune): self-supervised frame prediction" in shown


def test_a_resume_refuses_other_overrides(tmp_path: Path) -> None:
    cfg = SearchConfig(space="unet", out=str(tmp_path), name="s", overrides=("set width=8",))
    prepare_study(cfg, resume=False)
    assert prepare_study(cfg, resume=True, given=frozenset({"overrides"})).overrides == ("set width=8",)
    other = SearchConfig(space="unet", out=str(tmp_path), name="s", overrides=("set width=16",))
    with pytest.raises(
        ValueError, match=r"--set/--range/--choices/--overrides 'set width=16' \(the study has 'set width=8'\)"
    ):
        prepare_study(other, resume=True, given=frozenset({"overrides"}))


def test_a_broken_plugin_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.py").write_text("import os\n\nx = 1 / 0\n")
    assert main(["--plugin", str(tmp_path / "broken.py"), "--show-space"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --plugin {tmp_path / 'broken.py'}: ZeroDivisionError: division by zero "
        f"(line 3 of {tmp_path / 'broken.py'})"
    )
    (tmp_path / "typo.py").write_text(
        "import os\n\ndef space(:\n    pass\n"
    )  # compiled, never run: no frame of its own
    assert main(["--plugin", str(tmp_path / "typo.py"), "--show-space"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --plugin {tmp_path / 'typo.py'}: SyntaxError: invalid syntax (line 3 of {tmp_path / 'typo.py'}: "
        "def space(:)"
    )
    assert main(["--plugin", "no_such_module_here", "--show-space"]) == 2
    assert capsys.readouterr().err == "error: --plugin no_such_module_here: no such file, nor an importable module\n"
    (tmp_path / "notes.txt").write_text("space = 1\n")
    assert main(["--plugin", str(tmp_path / "notes.txt"), "--show-space"]) == 2
    assert capsys.readouterr().err == (
        f"error: --plugin {tmp_path / 'notes.txt'}: not a Python file (NAME.py), nor an importable module\n"
    )


# ---------------------------------------------------------------- through a real study


@pytest.mark.slow
def test_a_plugin_study_with_overrides_logs_to_tensorboard_and_mlflow_and_predicts(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    mlruns = tmp_path / "mlruns"
    args = ["--plugin", str(PLUGIN), "--space", "shallow_unet", "--data", str(synth_root), "--budget", "smoke"]
    args += ["--samples", "3", "--out", str(tmp_path), "--name", "p", "--no-dashboard", "--mlflow", str(mlruns)]
    args += ["--set", "kernel=5", "--range", "lr=2e-4:1e-3", "--choices", "batch_size=2"]
    assert main(args) == 0
    exp = tmp_path / "p"
    trials = pd.read_parquet(exp / "results" / "trials.parquet")
    epochs = pd.read_parquet(exp / "results" / "epochs.parquet")
    assert len(trials) == 3 and (trials["config/kernel"] == 5).all() and (trials["config/batch_size"] == 2).all()
    assert trials["config/lr"].between(2e-4, 1e-3).all()
    ot = optuna_study(exp, "main")
    assert all("kernel" not in t.params for t in ot.trials)  # fixed: not searched
    assert ot.trials[0].distributions["lr"] == optuna.distributions.FloatDistribution(2e-4, 1e-3, log=True)
    assert json.loads((exp / "search.json").read_text())["plugins"] == [str(PLUGIN)]

    # TensorBoard: the study names the folder that holds every trial's curve, one point an epoch
    assert f"TensorBoard: tensorboard --logdir {exp}  (" in capsys.readouterr().out
    for trial_id in trials["trial_id"]:
        events = EventAccumulator(str(exp / "main" / f"trial_{trial_id}"))
        events.Reload()
        curve = events.Scalars("ray/tune/val_iou")
        ran = epochs[epochs["trial_id"] == trial_id].sort_values("epoch")
        assert [e.step for e in curve] == ran["epoch"].tolist()
        assert [e.value for e in curve] == pytest.approx(ran["val_iou"].tolist(), rel=1e-5)

    # MLflow: one run per trial in the study's experiment, with its parameters and every epoch's metric
    import mlflow

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = mlflow.tracking.MlflowClient(mlruns.as_uri())
    experiment = client.get_experiment_by_name("p")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and {r.data.tags["segtune.stage"] for r in runs} == {"main"}
    assert {r.data.params["kernel"] for r in runs} == {"5"}
    steps = sorted(len(client.get_metric_history(r.info.run_id, "val_iou")) for r in runs)
    assert steps == sorted(epochs.groupby("trial_id").size().tolist())

    # the report, and a submission from the plugin's model (the study's search.json names the plugin)
    assert "shallow_unet" in load_experiment(exp).space
    assert (exp / "report.html").exists()
    out = tmp_path / "val.pt"
    assert predict(["--experiment", str(exp), "--data", str(synth_root), "--split", "val", "--out", str(out)]) == 0
    assert torch.load(out).shape == (2, 160, 240)
    # its best trained anew: the command that submits it names the plugin its model comes from
    capsys.readouterr()
    assert train(["--from", str(exp), "--epochs", "1", "--out", str(tmp_path / "t"), "--quiet"]) == 0
    assert f"--split hidden --out submission.pt --plugin {PLUGIN}\n" in capsys.readouterr().out
    assert torch.load(tmp_path / "t" / "checkpoint.pt")["plugin"] == str(PLUGIN)  # what loads its model again
    # a trial's checkpoint predicted by a process that never loaded the plugin: its study's search.json names it;
    # with --data the checkpoint stands alone, and the plugin it records is named
    checkpoint = sorted(exp.glob("main/trial_*/checkpoint_*/checkpoint.pt"))[0]
    command = [
        sys.executable,
        "-m",
        "tune.predict",
        "--checkpoint",
        str(checkpoint),
        "--split",
        "val",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and f"data: {synth_root} (the study's" in done.stdout, done.stderr
    done = subprocess.run([*command, "--data", str(synth_root)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.endswith(f"comes from the plugin {PLUGIN}: pass --plugin {PLUGIN}\n")


@pytest.mark.slow
def test_a_study_cut_before_its_last_stage_says_that_stage_ran_no_trial(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dual_phase study whose time budget ends before its finetune stage: it said "no submission written: a
    'frame_predictor' checkpoint does not predict masks of frame 22" (the pretrain stage's best, taken for the
    study's), where the reason is that the stage that answers never ran."""
    args = ["--space", "dual_phase", "--data", str(synth_root), "--budget", "smoke", "--samples", "2"]
    args += ["--out", str(tmp_path), "--name", "early", "--no-dashboard", "--time-budget", "1s"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "no per-class IoU, gallery or submission: stage finetune, the last, ran no trial (" in err, err
    assert "not started" in err.split("ran no trial (")[1].splitlines()[0], err  # why: its cut, or pretrain's
    assert "frame_predictor" not in err and not (tmp_path / "early" / "submission.pt").exists()


@pytest.mark.slow
def test_a_time_budget_cuts_the_study_and_a_resume_completes_it_then_a_warm_start_learns_from_it(
    local_ray: None, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--space", "unet", "--data", str(synth_root), "--budget", "smoke", "--out", str(tmp_path)]
    base += ["--no-dashboard"]
    # 6 s: trials started before it on a slow machine, and 24 too many to start in it on a fast one (one started 14
    # of 16 within 12 s, 4 within 6 s; once all 16 within 12 s, leaving the resume below nothing to run)
    began = time.monotonic()
    assert main([*base, "--samples", "24", "--name", "cut", "--time-budget", "6s"]) == 0
    assert time.monotonic() - began < 6 + 120  # it ended (24 trials of this budget run for minutes uncut)
    out = capsys.readouterr().out
    assert "cut by the time budget: stage main:" in out and "--resume (with --time-budget T, under a new budget)" in out
    exp = tmp_path / "cut"
    budget = json.loads((exp / "budget.json").read_text())
    assert budget["time_budget"] == "6s" and "main" in budget["cut"]
    trials = pd.read_parquet(exp / "results" / "trials.parquet")
    assert 0 < len(trials) < 24 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "stopped", "cut", "failed"}  # nothing left running
    assert any("cut by its time budget (6s)" in note for note in load_experiment(exp).notes)

    assert main(["--out", str(tmp_path), "--name", "cut", "--resume", "--no-dashboard"]) == 0
    trials = pd.read_parquet(exp / "results" / "trials.parquet")
    epochs = pd.read_parquet(exp / "results" / "epochs.parquet")
    assert len(trials) == 24 and trials["trial_id"].is_unique and not epochs.duplicated(["trial_id", "epoch"]).any()
    ran = epochs.groupby("trial_id")["epoch"].max().astype(int).to_dict()
    assert ran == trials.set_index("trial_id")["epochs"].astype(int).to_dict()  # every epoch once
    # the trials stopped at the first run's deadline are final: the record and the report still say so (they said
    # nothing once a resume had run)
    final = int((trials["status"] == "cut").sum())
    record = json.loads((exp / "budget.json").read_text())
    said = f"{final} trial{'s' * (final != 1)} stopped at an earlier run's deadline"
    assert record["cut"] == ({"main": said} if final else {}) and record["time_budget"] == ("6s" if final else None)
    noted = [note for note in load_experiment(exp).notes if "time budget" in note]
    assert noted == (
        [f"the study was cut by its time budget (6s): stage main: {said}; {CUT_BUT_FINISHED}"] if final else []
    )

    # a warm start: the earlier trials are in the new Optuna study, the best one runs again first, and
    # TPE's first suggestion differs from a cold start's with the same seed (24 finished trials are past
    # TPE's 10 random start-up ones; an enqueued trial draws nothing from the sampler)
    args = [*base, "--samples", "2", "--name", "warm", "--warm-start", str(exp), "--warm-start-best", "1"]
    assert main(args) == 0
    warm = optuna_study(tmp_path / "warm", "main")
    old = [t for t in optuna_study(exp, "main").trials if t.state.name in ("COMPLETE", "PRUNED")]
    copies, new = warm.trials[: len(old)], warm.trials[len(old) :]
    assert [(t.params, t.value, t.state) for t in copies] == [
        (t.params, t.value if t.state.name == "COMPLETE" else None, t.state) for t in old
    ]
    assert len(new) == 2 and new[0].user_attrs["segtune.warm_start"].endswith("(again)")
    warmed = f"warm-started: TPE began from the finished trials of {exp} (--warm-start; --warm-start-best 1: the best"
    assert any(n.startswith(warmed) for n in load_experiment(tmp_path / "warm").notes)  # the report says so
    best = max(float(t.value) for t in old if t.state.name == "COMPLETE" and t.value is not None)
    assert new[0].params in [t.params for t in old if t.value == best]
    seed = SearchConfig(space="unet", warm_start=str(exp)).sampler_seed  # the warm study's TPE's, cold here
    cold = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    first = cold.ask()
    DefineByRun(get_space("unet").stage("main"), budget_for("smoke", gpu=False), ())(first)
    assert new[1].params != first.params

    # another space, or a choice the old study searched differently, is refused before Ray starts
    assert main([*base, "--space", "dual_phase", "--name", "w2", "--warm-start", str(exp)]) == 2
    assert "a study of space 'unet', and this one searches 'dual_phase'" in capsys.readouterr().err
    assert main([*base, "--name", "w3", "--warm-start", str(exp), "--choices", "norm=batch"]) == 2
    assert (
        "stage main searches its parameters differently: norm (there: one of batch, group; here: one of batch; "
        "--set norm=batch fixes it, which a warm start takes)"
    ) in capsys.readouterr().err
