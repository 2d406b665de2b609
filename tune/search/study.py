"""A study as a run sees it (its config, space, budget, data root, resources and overrides), apart from the
code that runs its stages, so that what only reads a study (the clock, warm starts) does not import Ray Tune's
experiment and the trainer with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.cache import OnError
from reports.schema import RESULTS_DIR, STAGE_DONE
from tune.search.config import SearchConfig
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

    @property
    def folder(self) -> Path:
        return self.cfg.experiment_dir

    @property
    def results_dir(self) -> Path:
        return self.folder / RESULTS_DIR

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
