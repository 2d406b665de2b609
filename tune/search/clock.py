"""A study's time budget across its stages (`--time-budget`, `--gpu-hours`), and the compute it spent.

Each stage still to run gets an equal share of the time left when it starts (a stage that ends early
leaves more to the next): its deadline (tune/search/deadline.py) stops new trials and ends running ones
at their next epoch. A stage cut before all its trials started stays open; the stages after it run with what it
finished; `--resume` (with a new budget, or none) completes the open stages. A stage that started all its trials
has ended: its trials cut at the deadline are final. What was cut is kept in
OUT/NAME/budget.json for the summary and the report.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from reports.schema import (
    BUDGET_CUT,
    BUDGET_FILE,
    BUDGET_SECONDS,
    BUDGET_TEXT,
    BUDGET_USED,
    CUT_BUT_FINISHED,
    GPU_HOURS,
    STAGE,
    STATUS,
    TRIAL_ID,
    WALL_TIME_S,
    Status,
    duration,
    read_results,
)
from tune.search.config import SearchConfig
from tune.search.deadline import read_budget, write_budget
from tune.search.resources import Resources
from tune.search.spaces import Stage
from tune.search.study import Study

CUT_BY = "cut_by"  # budget.json: {trial id: the budget whose deadline cut it}, of the trials cut so far


def budget_seconds(cfg: SearchConfig, resources: Resources) -> float | None:
    """This run's time budget in seconds: --time-budget, or --gpu-hours over the cluster's GPUs (all busy,
    the study spends that many GPU-hours an hour), the smaller of the two; None without either. run_search
    has refused --gpu-hours for trials without GPUs, and a plan gives trials GPUs only on a cluster that has some."""
    limits = [cfg.time_budget_s] if cfg.time_budget_s else []
    if cfg.gpu_hours and resources.on_gpu:
        limits.append(cfg.gpu_hours * 3600 / resources.cluster_gpus)
    return min(limits) if limits else None


class StudyClock:
    """Deadlines for the stages of one run of a study, and what its budget cut."""

    def __init__(
        self, study: Study, seconds: float | None, started: float, *, idle: bool = False, fresh: bool = False
    ) -> None:
        self.study, self.seconds = study, seconds
        self.idle = idle  # every stage had ended before this run (a resume that only finishes the study)
        self.fresh = fresh  # a new study's first run: its pace is its trials' (a resume's is those it had left)
        self.started = started
        self.end_at = None if seconds is None else self.started + seconds
        self.cut: dict[str, str] = {}
        self.used: float | None = None  # seconds, from the start of the command to the search's end (`end`)
        trials, _ = read_results(study.results_dir)  # the trials an earlier run's budget cut: not this one's doing
        self.cut_before = set(trials.loc[trials[STATUS] == Status.CUT, TRIAL_ID]) if len(trials) else set()
        record = read_budget(study.folder)  # which budget's deadline cut each of those (older files: the last's)
        by = record.get(CUT_BY)
        self.cut_by: dict[str, str | None] = (
            dict(by) if isinstance(by, dict) else dict.fromkeys(self.cut_before, record.get(BUDGET_TEXT))
        )

    def start(self, stage: Stage) -> bool:
        """Set `stage`'s deadline before it runs; False when the budget is spent and it must not start."""
        if self.end_at is None:
            self.study.deadline.set(None)
            return True
        stages = self.study.space.stages
        left = [s for s in stages[stages.index(stage) :] if not self.study.finished(s)]
        share = (self.end_at - time.time()) / max(1, len(left))
        if share <= 0 and stage in left:
            again = (self.study.folder / stage.name).is_dir()  # it started in an earlier run
            self.cut[stage.name] = f"not {'resumed' if again else 'started'}: the time budget was spent"
            return False
        at = time.time() + max(share, 0.0)
        self.study.deadline.set(at)
        print(
            f"stage {stage.name}: the time budget gives it {duration(max(share, 0.0))}, to "
            f"{time.strftime('%H:%M:%S', time.localtime(at))}: no trial starts after, and those running stop at the "
            "end of their epoch"
        )
        return True

    def ran(self, stage: Stage, complete: bool) -> None:
        """Record what the budget cut of `stage` (run_stage returned `complete`)."""
        trials, _ = read_results(self.study.results_dir)
        mine = trials[trials[STAGE] == stage.name] if len(trials) else trials
        stopped = int(((mine[STATUS] == Status.CUT) & ~mine[TRIAL_ID].isin(self.cut_before)).sum()) if len(mine) else 0
        if not complete:
            self.cut[stage.name] = f"{len(mine)} of {self.study.samples} trials started"
        elif stopped and self.end_at is not None:
            self.cut[stage.name] = f"all {self.study.samples} trials started"
        if stage.name in self.cut and stopped:
            self.cut[stage.name] += f", {stopped} stopped at the deadline"

    def end(self) -> None:
        """No deadline is left behind; budget.json records this run's budget and cuts (and is rewritten by a
        resume, so a completed study shows none; not by one that cut nothing, where trials an earlier budget cut
        stay cut: those stopped at its deadline once all of their stage's trials had started are final)."""
        self.study.deadline.set(None)
        self.used = time.time() - self.started  # the search's: the best model's evaluation and submission follow
        path = self.study.folder / BUDGET_FILE
        trials, _ = read_results(self.study.results_dir)
        still = (
            trials[(trials[STATUS] == Status.CUT) & trials[TRIAL_ID].isin(self.cut_before)] if len(trials) else trials
        )
        mine = duration(self.seconds) if self.seconds is not None else None
        own = mine if self.cut else None  # this run's budget cut something (before the earlier cuts join the lines)
        cut = trials[trials[STATUS] == Status.CUT] if len(trials) else trials
        cut_by = {t: (self.cut_by.get(t) if t in self.cut_before else mine) for t in cut[TRIAL_ID]} if len(cut) else {}
        earlier = sorted({b for t, b in cut_by.items() if t in self.cut_before and b})  # the budgets that cut those
        for stage, count in dict(still.groupby(STAGE).size() if len(still) else {}).items():  # final: said still
            n, budgets = (
                int(count),
                sorted({str(cut_by[t]) for t in still[still[STAGE] == stage][TRIAL_ID] if cut_by[t]}),
            )
            by = f" ({', '.join(budgets)})" if own and budgets else ""  # this run's budget is another
            text = f"{n} trial{'s' * (n != 1)} stopped at an earlier run's deadline{by}"
            self.cut[str(stage)] = f"{self.cut[str(stage)]}; {text}" if str(stage) in self.cut else text
        if (self.seconds is not None or path.exists()) and not self.idle:  # (a run of no stage: the last run's stays)
            record: dict[str, Any] = {
                BUDGET_SECONDS: self.seconds,
                BUDGET_TEXT: own or (", ".join(earlier) if self.cut and earlier else None),  # the report's "cut by"
                CUT_BY: cut_by,
                "gpu_hours_budget": self.study.cfg.gpu_hours,
                BUDGET_USED: round(self.used, 1),
                BUDGET_CUT: self.cut,
            }
            write_budget(self.study.folder, record)

    def summary(self) -> str:
        """The compute the study's trials spent, and what the budget left or cut."""
        trials, _ = read_results(self.study.results_dir)
        gpu_hours = float(trials[GPU_HOURS].fillna(0).sum()) if len(trials) else 0.0
        cpu_hours = (
            float(trials[WALL_TIME_S].fillna(0).sum()) * self.study.resources.cpus_per_trial / 3600
            if len(trials)
            else 0.0
        )
        lines = [f"compute: {gpu_hours:.3f} GPU-hours, {cpu_hours:.3f} CPU-hours of trials"]
        if self.seconds is not None and self.idle:
            lines.append(f"time budget {duration(self.seconds)}: unused, every stage had ended before this run")
        elif self.seconds is not None:
            used = self.used if self.used is not None else time.time() - self.started
            budget = f"time budget {duration(self.seconds)}: the search used {duration(used)}"
            if self.study.cfg.gpu_hours:
                budget += f" (of {self.study.cfg.gpu_hours:g} GPU-hours, {max(0.0, self.study.cfg.gpu_hours - gpu_hours):.2f} left)"
            lines.append(budget + f", {duration(max(0.0, self.seconds - used))} left")
            fits = int(self.study.samples * self.seconds / max(used, 1.0) * 0.9)  # trials a stage, at this run's pace
            whole = self.fresh and not self.cut and not self.study.stages_left()  # (a stage that failed is not done)
            if whole and used < self.seconds / 2 and fits > self.study.samples:
                lines.append(
                    f"the budget would fit ~{fits} trials a stage at this run's pace ({self.study.samples} ran): a new "
                    f"study with --samples {fits} --warm-start {shlex.quote(str(self.study.folder))} begins from "
                    "these trials"
                )
        if self.cut:
            lines.append("cut by the time budget: " + "; ".join(f"stage {k}: {v}" for k, v in self.cut.items()))
            if any(not self.study.finished(self.study.space.stage(name)) for name in self.cut):
                lines.append(
                    f"complete it with: {self.study.cfg.resume_command()} (with --time-budget T, under a new budget)"
                )
            else:  # every trial started: the trials cut at the deadline are final (told to Optuna as pruned)
                lines.append(CUT_BUT_FINISHED)
        return "\n".join(lines)
