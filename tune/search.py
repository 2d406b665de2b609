"""`python -m tune.search --space {unet,dual_phase} [--data DIR] [--samples N] [--budget smoke|default] ...`

The product's main job: a staged hyperparameter search with Ray Tune, the Optuna TPE searcher and the
ASHA scheduler. Each stage of the space is one Ray Tune experiment in OUT/NAME/STAGE; results go to
OUT/NAME/results/*.parquet while the study runs; the Optuna studies to OUT/NAME/optuna.journal
(`optuna-dashboard OUT/NAME/optuna.journal` opens them). `--resume` continues a killed study.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import optuna
import pandas as pd
import torch

from data.cache import decode_split
from tune.recipes import RunConfig, Trainer, load_checkpoint, load_data
from tune.results import ResultsWriter, is_nan, read_results
from tune.spaces import Budget, SearchSpace, Stage, budget_for, get_space, list_spaces

SEARCH_FILE = "search.json"
OPTUNA_FILE = "optuna.journal"
DONE = ".done"
FAULT_KEY = "fault_injection"  # set in the config of the trials --fail-trials names


@dataclass(frozen=True)
class SearchConfig:
    """One study. Saved to OUT/NAME/search.json; --resume reads it back."""

    space: str = "dual_phase"  # registered search space
    data: str | None = None  # data root; None: the embedded synthetic set
    hidden: str | None = None  # the hidden split's folder when it is shipped apart
    samples: int | None = None  # trials per stage; None: the budget's
    budget: str = "default"  # smoke | default, sized to the machine
    out: str = "runs"  # where experiment folders go (shared storage for a cluster)
    name: str | None = None  # experiment folder; None: SPACE-YYYYMMDD-HHMMSS
    gpus_per_trial: float | None = None  # None: 1 where a GPU is visible, else 0; fractions pack trials
    cpus_per_trial: float = 1.0  # CPUs each trial asks for (and its torch threads)
    address: str | None = None  # join this Ray cluster instead of starting a local one
    seed: int = 0  # the TPE sampler's seed
    dashboard: bool = True  # start the Ray dashboard (local Ray only), on 127.0.0.1
    fail_trials: tuple[int, ...] = ()  # fault injection for tests: the n-th suggested trials (1-based) raise

    @property
    def experiment_dir(self) -> Path:
        assert self.name is not None
        return Path(self.out).absolute() / self.name


@dataclass(frozen=True)
class StageJob:
    """What every trial of a stage needs besides its sampled values; goes in via with_parameters."""

    model: str
    max_epochs: int
    data_root: str
    use_gpu: bool
    gpu_fraction: float
    parents: dict[str, str] = field(default_factory=dict)  # parent trial id -> its best checkpoint
    parent_role: str = "pretrained"  # what the parent checkpoint is for (see Stage.parent_role)
    pseudo_dir: str | None = None  # the pseudo-label folder, for a stage trained on a segmenter's masks

    def plan(self, config: dict[str, Any]) -> TrialPlan:
        """What a trial's Ray config asks for: its run and, for a dependent stage, the parent's checkpoint
        as the weights to start from (dual_phase) or as the segmenter it works with (mask_space)."""
        values = dict(config)
        values.pop(FAULT_KEY, None)
        parent = values.pop("parent_trial", None)
        pretrained, pipeline = None, {}
        if parent is not None and self.parent_role == "pretrained":
            pretrained = self.parents[parent]
            values["predictor"] = RunConfig.from_dict(load_checkpoint(pretrained)["run"]).model_config
        elif parent is not None:
            pipeline = {"segmenter": self.parents[parent]}
        run = RunConfig.from_values(self.model, values, epochs=self.max_epochs)
        return TrialPlan(run, pretrained, pipeline, bool(config.get(FAULT_KEY)))


class TrialPlan(NamedTuple):
    run: RunConfig
    pretrained: str | None  # a phase-1 checkpoint whose weights the model starts from
    pipeline: dict[str, str]  # other checkpoints the model works with, kept in its checkpoints
    fail: bool  # fault injection: raise instead of training


def train_trial(config: dict[str, Any], *, job: StageJob) -> None:
    """The Ray Tune trainable: trains one sampled configuration, reporting and checkpointing every epoch,
    resuming from its last checkpoint when Tune restores it."""
    from ray import tune

    plan = job.plan(config)
    if plan.fail:
        raise RuntimeError("this trial fails on purpose (fault injection, --fail-trials)")
    device = torch.device("cuda" if job.use_gpu and torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and 0 < job.gpu_fraction < 1:
        # A fraction of a GPU is a scheduling promise; this makes it a memory cap, so that a greedy
        # configuration runs out of memory alone instead of taking its neighbours down.
        torch.cuda.set_per_process_memory_fraction(job.gpu_fraction, device)
    data = load_data(plan.run.task, job.data_root, device, progress=False, pseudo=job.pseudo_dir)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer = Trainer.resume(Path(folder) / "checkpoint.pt", data, device)
    else:
        trainer = Trainer(plan.run, data, device, pretrained=plan.pretrained, pipeline=plan.pipeline)
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    for metrics in trainer.epochs():
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / "checkpoint.pt")
            extra = {"node_id": node_id, "first_step_at": trainer.first_step_at or math.nan}
            tune.report({**metrics, **extra}, checkpoint=tune.Checkpoint.from_directory(folder))


def trial_dirname(trial: Any) -> str:
    """Short trial folders (Ray's default name carries every hyperparameter)."""
    return f"trial_{trial.trial_id}"


class DefineByRun:
    """The stage's define-by-run function bound to its budget and parents; picklable, so that the
    searcher can be saved with the experiment."""

    def __init__(self, stage: Stage, budget: Budget, parents: tuple[str, ...]) -> None:
        self.stage, self.budget, self.parents = stage, budget, parents

    def __call__(self, trial: optuna.Trial) -> dict[str, Any] | None:
        values = self.stage.define(trial, self.budget, self.parents)
        constants = {k: v for k, v in values.items() if k not in trial.params}
        return constants or None  # Ray adds these to the trial's config beside the sampled values


def make_searcher(stage: Stage, budget: Budget, parents: tuple[str, ...], cfg: SearchConfig) -> Any:
    from ray.tune.search.optuna import OptunaSearch

    class PrunedAwareOptunaSearch(OptunaSearch):
        """Tells Optuna that a trial ASHA stopped early was PRUNED at its last rung (its last reported
        value), not COMPLETE with a low-fidelity value, which would mislead TPE."""

        def __init__(self, *args: Any, max_t: int, fail_trials: tuple[int, ...], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._max_t = max_t
            self._fail_trials = set(fail_trials)
            self._suggested = 0

        def suggest(self, trial_id: str) -> dict | None:
            config = super().suggest(trial_id)
            if config is not None:
                self._suggested += 1
                if self._suggested in self._fail_trials:
                    config[FAULT_KEY] = True
            return config

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            stopped_early = (
                not error and result is not None and result.get("training_iteration", self._max_t) < self._max_t
            )
            if stopped_early and trial_id in self._ot_trials and trial_id not in self._completed_trials:
                # Ray hands the result that triggered the stop to on_trial_complete, not on_trial_result:
                # record it as the last rung's value, which Optuna keeps as the pruned trial's value.
                ot_trial = self._ot_trials[trial_id]
                assert result is not None
                if isinstance(result.get(self.metric), (int, float)):
                    ot_trial.report(float(result[self.metric]), int(result["training_iteration"]))
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)  # type: ignore[attr-defined]
                self._completed_trials.add(trial_id)
                return
            super().on_trial_complete(trial_id, result, error)

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(cfg.experiment_dir / OPTUNA_FILE)))
    return PrunedAwareOptunaSearch(
        space=DefineByRun(stage, budget, parents),
        metric=stage.metric,
        mode=stage.mode,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        storage=storage,
        study_name=f"{cfg.name}/{stage.name}",
        max_t=budget.max_epochs,
        fail_trials=cfg.fail_trials,
    )


def best_trials(results: pd.DataFrame, stage: Stage | str, mode: str, k: int) -> pd.DataFrame:
    """The k best finished trials of a stage that have a checkpoint, best first."""
    name = stage if isinstance(stage, str) else stage.name
    if not len(results):
        return results
    done = results[(results["stage"] == name) & results["status"].isin(["completed", "stopped"])]
    done = done[done["best_metric"].notna() & done["checkpoint"].notna()]
    return done.sort_values("best_metric", ascending=mode == "min", kind="stable").head(k)


def _init_ray(cfg: SearchConfig, gpus_per_trial: float) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    if cfg.address:
        ray.init(address=cfg.address, logging_level=logging.WARNING)
        print(f"joined the Ray cluster at {cfg.address}: {ray.cluster_resources()}")
        return
    context = ray.init(
        include_dashboard=cfg.dashboard,
        dashboard_host="127.0.0.1",
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    if cfg.dashboard and context.dashboard_url:
        print(
            f"Ray dashboard: http://{context.dashboard_url}  (it asks for Ray's auth token: "
            "`ray get-auth-token`, or the file ~/.ray/auth_token)"
        )


def _concurrency(cfg: SearchConfig, budget: Budget, gpus_per_trial: float) -> int:
    import ray

    if budget.max_concurrent:
        return budget.max_concurrent
    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1) / cfg.cpus_per_trial
    if gpus_per_trial > 0:
        slots = min(slots, resources.get("GPU", 0) / gpus_per_trial)
    return max(1, int(slots))


def run_stage(
    cfg: SearchConfig, space: SearchSpace, stage: Stage, budget: Budget, root: Path, gpus_per_trial: float
) -> None:
    from ray import tune

    exp = cfg.experiment_dir
    stage_dir = exp / stage.name
    if (stage_dir / DONE).exists():
        print(f"stage {stage.name}: already finished")
        return
    results_dir = exp / "results"
    parents: dict[str, str] = {}
    if stage.parent is not None:
        trials, _ = read_results(results_dir)
        parent_stage = space.stage(stage.parent)
        best = best_trials(trials, parent_stage, parent_stage.mode, budget.top_k)
        if not len(best):
            raise RuntimeError(f"stage {stage.name} needs finished {stage.parent} trials, and there are none")
        if stage.parent_role == "pseudo_labels":
            best = best.head(1)
        parents = dict(zip(best["trial_id"], best["checkpoint"], strict=True))
        print(f"stage {stage.name}: starting from the best {len(parents)} {stage.parent} trials: {', '.join(parents)}")
    pseudo_dir = None
    if stage.parent_role == "pseudo_labels" and parents:
        from tune.pseudo import pseudo_label

        segmenter = next(iter(parents.values()))
        pseudo_dir = str(
            pseudo_label(segmenter, root, hidden=cfg.hidden, device="cuda" if gpus_per_trial > 0 else "cpu")
        )
        print(f"stage {stage.name}: pseudo-labels of segmenter {next(iter(parents))} in {pseudo_dir}")
    job = StageJob(
        stage.model,
        budget.max_epochs,
        str(root),
        gpus_per_trial > 0,
        gpus_per_trial,
        parents,
        stage.parent_role,
        pseudo_dir,
    )
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, job=job), {"cpu": cfg.cpus_per_trial, "gpu": gpus_per_trial}
    )
    if tune.Tuner.can_restore(str(stage_dir)):
        print(f"stage {stage.name}: resuming {stage_dir}")
        tuner = tune.Tuner.restore(
            str(stage_dir), trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
    else:
        writer = ResultsWriter(
            results_dir,
            space=space.name,
            stage=stage.name,
            metric=stage.metric,
            mode=stage.mode,
            max_epochs=budget.max_epochs,
            gpus_per_trial=gpus_per_trial,
        )
        scheduler = tune.schedulers.ASHAScheduler(
            metric=stage.metric,
            mode=stage.mode,
            max_t=budget.max_epochs,
            grace_period=budget.grace_period,
            reduction_factor=budget.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=make_searcher(stage, budget, tuple(parents), cfg),
                scheduler=scheduler,
                num_samples=cfg.samples or budget.samples,
                max_concurrent_trials=_concurrency(cfg, budget, gpus_per_trial),
                trial_dirname_creator=trial_dirname,
                reuse_actors=True,  # a new trial skips the process start and imports (seconds on a CPU)
            ),
            run_config=tune.RunConfig(
                name=stage.name,
                storage_path=str(exp),
                failure_config=tune.FailureConfig(max_failures=0),
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=stage.metric, checkpoint_score_order=stage.mode
                ),
                callbacks=[writer],
                verbose=1,
            ),
        )
    tuner.fit()
    _fail_orphaned_optuna_trials(cfg, stage)
    (stage_dir / DONE).touch()


def _fail_orphaned_optuna_trials(cfg: SearchConfig, stage: Stage) -> None:
    """After a stage, an Optuna trial still RUNNING was asked for by a driver that was killed before
    Ray recorded it; it will never be told. Mark it FAIL so the stored study is consistent."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(cfg.experiment_dir / OPTUNA_FILE)))
    study = optuna.load_study(study_name=f"{cfg.name}/{stage.name}", storage=storage)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _prepare(cfg: SearchConfig, resume: bool) -> SearchConfig:
    """Name the experiment, and save or (for --resume) read back its config."""
    if cfg.name is None:
        if resume:
            raise ValueError("--resume needs the --name of the study to continue")
        cfg = dataclasses.replace(cfg, name=f"{cfg.space}-{time.strftime('%Y%m%d-%H%M%S')}")
    path = cfg.experiment_dir / SEARCH_FILE
    if resume:
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist")
        saved = json.loads(path.read_text())
        saved["fail_trials"] = tuple(saved.get("fail_trials", ()))
        return dataclasses.replace(SearchConfig(**saved), out=cfg.out, address=cfg.address, dashboard=cfg.dashboard)
    if path.exists():
        raise FileExistsError(
            f"{cfg.experiment_dir} already holds a study; pass --resume to continue it, or another --name"
        )
    get_space(cfg.space)  # fail early on an unknown space
    cfg.experiment_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return cfg


def run_search(cfg: SearchConfig, *, resume: bool = False) -> int:
    """Run (or resume) a study; returns the exit status: 1 if a stage had no successful trial."""
    cfg = _prepare(cfg, resume)
    space = get_space(cfg.space)
    gpus_per_trial = (
        cfg.gpus_per_trial if cfg.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    )
    budget = budget_for(cfg.budget, gpu=gpus_per_trial > 0)
    if cfg.data is None:
        from data.synth.default import default_data_root

        root = default_data_root()
    else:
        root = Path(cfg.data).absolute()
    print(
        f"study {cfg.name}: space {space.name} ({' -> '.join(s.name for s in space.stages)}), budget {budget.name}, data {root}"
    )
    for split in ("train", "val", "unlabeled"):  # decode once on this machine, before any trial starts
        if split != "unlabeled" or (root / split).is_dir():
            decode_split(root, split)
    _init_ray(cfg, gpus_per_trial)
    status = 0
    for stage in space.stages:
        try:
            run_stage(cfg, space, stage, budget, root, gpus_per_trial)
        except RuntimeError as err:
            print(f"stage {stage.name}: {err}", file=sys.stderr)
            status = 1
            break
        trials, _ = read_results(cfg.experiment_dir / "results")
        if not len(best_trials(trials, stage, stage.mode, 1)):
            print(f"stage {stage.name}: no trial succeeded", file=sys.stderr)
            status = 1
            break
    finish(cfg, space, root)
    return status


def finish(cfg: SearchConfig, space: SearchSpace, root: Path) -> None:
    """Evaluate the best model for the report, build the report, print the summary. A failure here is
    reported and leaves the results as they are."""
    from reports.build import build_report
    from tune.evaluate import evaluate_best

    exp = cfg.experiment_dir
    try:
        evaluate_best(exp, root)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"no per-class IoU or gallery: {err}", file=sys.stderr)
    report = build_report([exp], exp / "report.html")
    print_summary(cfg, space)
    print(f"report: {report}")


def print_summary(cfg: SearchConfig, space: SearchSpace) -> None:
    results_dir = cfg.experiment_dir / "results"
    trials, _ = read_results(results_dir)
    print(f"\nresults: {results_dir}")
    if not len(trials):
        print("no trials ran")
        return
    counts = trials.groupby(["stage", "status"]).size()
    print("trials: " + ", ".join(f"{key[0]} {key[1]} {n}" for key, n in counts.items()))  # type: ignore[index]
    final = space.stages[-1]
    top = best_trials(trials, final, final.mode, 5)
    if not len(top):
        return
    params = [c for c in top.columns if c.startswith("config/")]
    print(f"\ntop {len(top)} of stage {final.name} by {final.metric} ({final.mode}):")
    for rank, row in enumerate(top.to_dict("records"), 1):
        shown = ", ".join(f"{c[7:]}={_short(row[c])}" for c in params if row[c] is not None and not is_nan(row[c]))
        print(
            f"  {rank}. {row['trial_id']}  {final.metric} {row['best_metric']:.4f}  [{row['status']}, {row['epochs']} epochs]  {shown}"
        )
    print(f"\nbest checkpoint: {top.iloc[0]['checkpoint']}")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    defaults = SearchConfig()
    parser = argparse.ArgumentParser(
        prog="python -m tune.search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--space", default=defaults.space, choices=list_spaces(), help="search space")
    parser.add_argument("--data", default=None, help="data root (default: the embedded synthetic set, generated once)")
    parser.add_argument("--hidden", default=None, help="the hidden split's folder, when shipped apart")
    parser.add_argument("--samples", type=int, default=None, help="trials per stage (default: the budget's)")
    parser.add_argument("--budget", default=defaults.budget, choices=["smoke", "default"], help="study size")
    parser.add_argument("--out", default=defaults.out, help="folder for experiments (shared storage with --address)")
    parser.add_argument("--name", default=None, help="experiment name (default: SPACE-TIME)")
    parser.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="GPUs per trial; fractions pack trials (default: 1 with a GPU, else 0)",
    )
    parser.add_argument("--cpus-per-trial", type=float, default=defaults.cpus_per_trial, help="CPUs per trial")
    parser.add_argument("--address", default=None, help="join an existing Ray cluster")
    parser.add_argument("--resume", action="store_true", help="continue the study OUT/NAME after a crash or kill")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="TPE sampler seed")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    parser.add_argument("--fail-trials", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = SearchConfig(
        space=args.space,
        data=args.data,
        hidden=args.hidden,
        samples=args.samples,
        budget=args.budget,
        out=args.out,
        name=args.name,
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        address=args.address,
        seed=args.seed,
        dashboard=not args.no_dashboard,
        fail_trials=tuple(args.fail_trials),
    )
    try:
        return run_search(cfg, resume=args.resume)
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
