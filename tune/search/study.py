"""A study as a run sees it (its config, space, budget, data root, resources and overrides), apart from the
code that runs its stages, so that what only reads a study (the clock, warm starts) does not import Ray Tune's
experiment and the trainer with it."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import json
import platform
import shlex
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from data.cache import CacheCheck, OnError
from data.files import atomic_write
from reports.records import read_record
from reports.schema import (
    DATA_FILE,
    RESULTS_DIR,
    RUN_BUDGET,
    RUN_COMMAND,
    RUN_ENDED,
    RUN_FILE,
    RUN_RESOURCES,
    RUN_SOFTWARE,
    RUN_STAGES,
    RUN_STOPPED,
    STAGE,
    STAGE_DONE,
    TRIALS_FILE,
    read_results,
)
from tune.search.config import SearchConfig, save_settings
from tune.search.deadline import Deadline
from tune.search.overrides import Override
from tune.search.resources import Resources
from tune.search.spaces import Budget, SearchSpace, Stage


@dataclass(frozen=True)
class Study:
    """A study as a run sees it: its config, space, budget, data root and resources."""

    cfg: SearchConfig
    space: SearchSpace
    budget: Budget
    root: Path
    resources: Resources  # each trial's share of the cluster, decided once (tune/search/resources.py)
    overrides: tuple[Override, ...] = ()  # checked against the space (tune/search/overrides.py)
    checked: tuple[CacheCheck, ...] = ()  # the splits' caches, as the driver found them current (its trials trust it)

    @property
    def folder(self) -> Path:
        return self.cfg.experiment_dir

    def planned(self) -> Study:
        """A new study with its GPUs per trial unset takes those planned for it now (a GPU where the cluster has one),
        saved: a resume on a machine with other GPUs (or none) plans its trials and their budget (epochs, widths)
        the same, or says that no trial can start, and takes the flag with that value."""
        if self.cfg.gpus_per_trial is not None:
            return self
        cfg = dataclasses.replace(self.cfg, gpus_per_trial=self.resources.gpus_per_trial)
        save_settings(cfg)
        return dataclasses.replace(self, cfg=cfg)

    @property
    def results_dir(self) -> Path:
        return self.folder / RESULTS_DIR

    def stage_seed(self, stage: Stage) -> int:
        """TPE's seed for `stage`: the study's (SearchConfig.sampler_seed) for its first stage, mixed with the stage's
        name for the others (each drew the first stage's configurations again: the same lr, weight decay, batch)."""
        seed = self.cfg.sampler_seed
        return seed if stage.name == self.space.stages[0].name else (seed + zlib.crc32(stage.name.encode())) % 2**32

    @property
    def samples(self) -> int:
        """Trials a stage runs."""
        return self.cfg.samples or self.budget.samples

    @property
    def deadline(self) -> Deadline:
        """The running stage's deadline (the time budget's), kept in the study folder."""
        return Deadline(self.folder)

    @property
    def on_error(self) -> OnError:
        """What reading a bad video does: "skip" it (--skip-bad-videos) or "raise"."""
        return "skip" if self.cfg.skip_bad_videos else "raise"

    def finished(self, stage: Stage) -> bool:
        """Whether `stage`'s experiment has ended (a resume skips it)."""
        return (self.folder / stage.name / STAGE_DONE).exists()

    def stages_left(self) -> bool:
        """Whether a stage of the study has not ended (a run that has none only finishes the study: no Ray)."""
        return not all(self.finished(stage) for stage in self.space.stages)

    def check_results(self) -> None:
        """A resume's results: readable, and holding the trials of every stage that finished (only Ray's state of a
        running stage can write its trials again). Refused before anything runs, so that no evaluation, submission
        or report of nothing replaces the study's own."""
        path = self.results_dir / TRIALS_FILE
        try:
            trials, _ = read_results(self.results_dir)
        except (OSError, ValueError) as err:  # a file that cannot be read, named (reports.schema.read_parquet)
            raise ValueError(f"cannot resume: {err}; restore it from a copy") from None
        for stage in self.space.stages:
            if self.finished(stage) and not (len(trials) and (trials[STAGE] == stage.name).any()):
                why = "is missing" if not path.exists() else f"holds no trial of stage {stage.name!r}"
                raise ValueError(f"cannot resume: {path} {why}, though that stage finished; restore it from a copy")

    def check_data(self, signatures: dict[str, dict[str, object]]) -> None:
        """A resume refuses data that changed since the study began (what `record_data` kept of its splits): its
        trials were scored on the data as it was, and new ones would be ranked against them."""
        before = self._data()
        changed = []
        for split, now in signatures.items():
            then = before.get(split)
            if not isinstance(then, dict) or then == now:
                continue
            if then.get("videos") != now["videos"]:
                changed.append(f"{split}: {then.get('videos')} videos then, {now['videos']} now")
            else:
                changed.append(
                    f"{split}: {'other videos' if then.get('ids') != now['ids'] else 'files of other sizes'}"
                )
        if changed:
            raise ValueError(
                f"the data in {self.root} changed since the study began ({'; '.join(changed)}): its trials were scored "
                "on the data as it was; put it back as it was to resume the study, or start a new one (another --name)"
            )

    def record_data(self, signatures: dict[str, dict[str, object]], *, new: bool) -> None:
        """What the study's splits hold (data.layout.split_signature), kept as a new study starts (once every check
        passed: a refused start leaves none), and for a split a study older than the file had not recorded."""
        before = {} if new else self._data()
        if new or set(signatures) - set(before):
            with atomic_write(self.folder / DATA_FILE) as tmp:
                tmp.write_text(json.dumps({**before, **signatures}, indent=1))

    def _data(self) -> dict[str, object]:
        return read_record(self.folder / DATA_FILE)  # {}: none (a study older than the file), nothing to compare

    def _budget_values(self) -> dict[str, object]:
        """The budget's values as the run takes them: its trials a stage as --samples says (RUN_RESOURCES says the
        trials at once; the overrides, each stage's --set, are the study's settings)."""
        values = {**dataclasses.asdict(self.budget), "samples": self.samples}
        del values["max_concurrent"]
        return values

    def record_run(self, *, ended: bool, stopped: dict[str, str] | None = None) -> None:
        """OUT/NAME/run.json: this run's stages, whether it reached the study's end, and the stages that stopped it
        (`stopped`: stage -> why). Written at the start (not ended) and before the report (ended), so that a report
        of a study whose driver died between two stages, or while the best model was evaluated, says it is partial."""
        record = {
            RUN_STAGES: [s.name for s in self.space.stages],
            RUN_ENDED: ended,
            RUN_STOPPED: stopped or {},
            RUN_BUDGET: self._budget_values(),
            RUN_RESOURCES: self.resources.in_words(),
            RUN_SOFTWARE: software(),
            RUN_COMMAND: command(),
        }
        with atomic_write(self.folder / RUN_FILE) as tmp:
            tmp.write_text(json.dumps(record, indent=2))


_PACKAGES = ("segtune", "torch", "ray", "optuna", "numpy")  # what decides a study's numbers, besides Python
_CHECKOUT = Path(__file__).resolve().parents[2]  # the project's folder, a git checkout where it runs from one


@functools.cache  # (a run records it as it starts and as it ends)
def software() -> dict[str, str]:
    """The versions a run runs with: Python, _PACKAGES, and the checkout's commit (git describe: `-dirty` where
    files differ from it) where segtune runs from a git checkout."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    if (_CHECKOUT / ".git").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            described = ["git", "-C", str(_CHECKOUT), "describe", "--always", "--dirty", "--abbrev=10"]
            done = subprocess.run(described, capture_output=True, text=True, timeout=10)
            if done.returncode == 0 and done.stdout.strip():
                found["commit"] = done.stdout.strip()
    return found


def command() -> str | None:
    """The command line of this process where it is `python -m tune.search` (a study run from Python has none)."""
    if Path(sys.argv[0]).parts[-3:] != ("tune", "search", "__main__.py"):
        return None
    return shlex.join(["python", "-m", "tune.search", *sys.argv[1:]])
