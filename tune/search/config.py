"""A study's config (SearchConfig, saved to OUT/NAME/search.json) and how a study folder is started or
read back for --resume."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.files import atomic_write, not_a
from data.locking import run_lock
from reports.records import read_study_settings, resume_command
from reports.schema import (
    DATA_FILE,
    DRIVER_LOCK,
    OPTUNA_FILE,
    SKIPPED_FILE,
    STAGE_DONE,
    STUDY_FILE,
)
from tune.search.keys import NODE_CHECK
from tune.search.spaces import get_space


@dataclass(frozen=True)
class SearchConfig:
    """One study. Saved to OUT/NAME/search.json; --resume reads it back."""

    space: str = "dual_phase"  # registered search space
    data: str | None = None  # data root; None: the embedded synthetic set
    hidden: str | None = None  # the hidden split's folder when it is shipped apart (for tune.predict --experiment)
    samples: int | None = None  # trials per stage; None: the budget's
    budget: str = "default"  # smoke | default, sized to the machine
    out: str = "runs"  # where experiment folders go (shared storage for a cluster)
    name: str | None = None  # experiment folder; None: SPACE-YYYYMMDD-HHMMSS
    gpus_per_trial: float | None = None  # None: 1 where a GPU is visible, else 0; fractions pack trials
    cpus_per_trial: float | None = None  # CPUs each trial asks for (and its torch threads); None: its share of a node
    max_concurrent: int = 0  # trials at once; 0: as many as the resources allow; 1: a seed gives one sequence
    address: str | None = None  # join this Ray cluster instead of starting a local one
    seed: int = 0  # the TPE sampler's seed
    dashboard: bool = True  # start the Ray dashboard (local Ray only), on 127.0.0.1
    skip_bad_videos: bool = False  # leave bad videos out (with a warning naming each) instead of failing
    unlabeled: int | None = None  # how many unlabeled videos the study trains on (the first by id); None: all
    val_videos: int | None = None  # how many val videos trials are scored on (the first by id); None: all
    mlflow: str | None = None  # MLflow tracking URI each trial is logged to as a run; None: no MLflow
    plugins: tuple[str, ...] = ()  # files (absolute paths) or modules that register models and spaces
    overrides: tuple[str, ...] = ()  # space overrides as text: "set width=32", "range lr=1e-4:3e-3", ...
    warm_start: str | None = None  # an earlier study of the same space whose finished trials TPE starts from
    warm_start_best: int = 0  # ... and how many of its best configurations run again first
    time_budget_s: float | None = None  # this run's time budget (--time-budget); None: none
    gpu_hours: float | None = None  # this run's budget in GPU-hours (--gpu-hours); None: none
    retries: int = 0  # times a trial whose process ended under it runs again from its last checkpoint (Ray keeps it)
    fail_trials: tuple[int, ...] = ()  # fault injection for tests: the n-th suggested trials (1-based) raise

    def __post_init__(self) -> None:
        if self.warm_start_best < 0 or (self.warm_start_best and self.warm_start is None):
            raise ValueError("--warm-start-best K needs --warm-start OLD and K >= 0")
        if self.gpu_hours is not None and self.gpu_hours <= 0:
            raise ValueError(f"--gpu-hours must be > 0, got {self.gpu_hours}")
        if self.retries < 0:
            raise ValueError(f"--retries must be >= 0 (runs again of a trial whose process ended), got {self.retries}")
        if self.max_concurrent < 0:
            raise ValueError(
                f"--max-concurrent must be >= 0 (0: as many as the resources allow), got {self.max_concurrent}"
            )
        if self.unlabeled is not None and self.unlabeled < 0:
            raise ValueError(f"--unlabeled must be >= 0 (videos of the unlabeled split to use), got {self.unlabeled}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(
                f"--samples must be >= 1 (trials per stage; leave it out for the budget's), got {self.samples}"
            )
        if self.name is not None and (self.name in ("", ".", "..") or "/" in self.name or "\\" in self.name):
            raise ValueError(f"--name must be one folder name (the study's folder in --out), got {self.name!r}")
        if not 0 <= self.seed < 2**32:  # what Optuna's sampler (numpy) takes
            raise ValueError(f"--seed must be in 0..{2**32 - 1}, got {self.seed}")
        if self.val_videos is not None and self.val_videos < 1:
            raise ValueError(f"--val-videos must be >= 1 (val videos to score trials on), got {self.val_videos}")

    @property
    def experiment_dir(self) -> Path:
        assert self.name is not None
        return Path(self.out).absolute() / self.name

    @property
    def sampler_seed(self) -> int:
        """TPE's seed: --seed, mixed in a warm start with the old study's name. With the old study's own seed, TPE's
        random start (its first 10 trials, the copied ones among them) drew the old study's configurations again."""
        if self.warm_start is None:
            return self.seed
        old = read_study_settings(self.warm_start).get("name") or Path(self.warm_start).name
        return (self.seed + zlib.crc32(str(old).encode())) % 2**32

    def resume_command(self, name: str | None = None) -> str:
        """The command that resumes this study (`name`: where it has none yet), quoted for a shell, with the cluster
        it joined (reports.records.resume_command)."""
        return resume_command(self.out, name or str(self.name), self.address, self.dashboard)


def named(cfg: SearchConfig, resume: bool) -> SearchConfig:
    """`cfg` with its study's name: the one given, else the space's and the time's (a resume needs the name)."""
    out = Path(cfg.out)
    if blocker := next((p for p in (out, *out.parents) if p.is_file()), None):  # said as --out, before any mkdir
        raise NotADirectoryError(f"--out {cfg.out}: {blocker} is a file, where a folder is needed")
    if cfg.name is not None:
        return cfg
    if resume:
        if (out / STUDY_FILE).is_file():  # --out the study's own folder
            given = resume_command(str(out.absolute().parent), out.absolute().name, cfg.address, cfg.dashboard)
            raise ValueError(
                f"--resume needs the --name of the study to continue: {out} is a study, resumed by {given}"
            )
        raise ValueError(f"--resume needs the --name of the study to continue{studies_in(out)}")
    return dataclasses.replace(cfg, name=f"{cfg.space}-{time.strftime('%Y%m%d-%H%M%S')}")


def studies_in(out: Path) -> str:
    """For a message: the studies `out` holds, "; the studies in OUT: NAME, ..." (the newest first, 5 at most), or
    "" where it holds none."""
    found = sorted(out.glob(f"*/{STUDY_FILE}"), key=lambda path: path.stat().st_mtime, reverse=True)
    names = [path.parent.name for path in found]
    return f"; the studies in {out}: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}" if names else ""


@contextlib.contextmanager
def one_driver(folder: Path, *, new: bool) -> Iterator[None]:
    """Held by the driver of the study in `folder` for its whole run (a `new` study's folder is made for it): a
    second driver of the study (a --resume typed twice, the same --name started again) is refused, naming the
    first, before it writes anything; both would run trials into one Optuna study and rewrite the same files
    (data.locking.run_lock). A resume of a folder that is not there holds nothing (prepare_study says so)."""
    if new:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        yield
        return
    with run_lock(folder / DRIVER_LOCK, f"the study in {folder}"):
        yield


def prepare_study(cfg: SearchConfig, resume: bool, *, given: frozenset[str] = frozenset()) -> SearchConfig:
    """Name the experiment, and save or (for --resume) read back its config. `given`: the study settings
    named on the command line; a resume refuses those that differ from the saved study's."""
    cfg = named(cfg, resume)
    cfg = _found_anywhere(cfg)
    path = cfg.experiment_dir / STUDY_FILE
    if resume:
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist{studies_in(Path(cfg.out))}")
        return _resumed(cfg, given)
    if path.exists():
        if _started(cfg.experiment_dir):
            raise FileExistsError(
                f"{cfg.experiment_dir} already holds a study; pass --resume to continue it, or another --name"
            )
        print(f"{cfg.experiment_dir} holds a study whose stages never started: starting it anew")
    get_space(cfg.space)  # fail early on an unknown space
    if cfg.hidden is not None and not Path(cfg.hidden).is_dir():  # tune.predict --experiment reads it, hours later
        raise FileNotFoundError(
            f"--hidden {cfg.hidden}: {not_a('folder', cfg.hidden)} (the hidden split's video_N folders)"
        )
    cfg.experiment_dir.mkdir(parents=True, exist_ok=True)
    save_settings(cfg)
    return cfg


def save_settings(cfg: SearchConfig) -> None:
    """The study's settings, as --resume, warm starts, tune.predict and the report read them (read_study_settings)."""
    settings = {**dataclasses.asdict(cfg), _FOLDER: str(cfg.experiment_dir)}  # where Ray's saved state writes
    with atomic_write(cfg.experiment_dir / STUDY_FILE) as tmp:  # a kill while it is written: the old one, whole
        tmp.write_text(json.dumps(settings, indent=2) + "\n")


def _resumed(cfg: SearchConfig, given: frozenset[str]) -> SearchConfig:
    path = cfg.experiment_dir / STUDY_FILE
    values = read_study_settings(cfg.experiment_dir)
    if missing := [key for key in ("name", "space", "budget") if key not in values]:  # not to be guessed
        raise ValueError(f"{path}: not the settings of a study this version can resume (no {', '.join(missing)})")
    for key in ("fail_trials", "overrides", "plugins"):  # JSON has lists
        values[key] = tuple(values.get(key, ()))
    made_in = values.pop(_FOLDER, None)
    try:  # a hand-edited file: a key no study has, a value of the wrong type or out of range
        saved = SearchConfig(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: not the settings of a study this version can resume ({err})") from None
    if saved.name != cfg.name:
        raise ValueError(
            f"{path} belongs to the study {saved.name!r}, as Ray's and Optuna's saved state name it: give the folder "
            f"its name again ({Path(cfg.out).absolute() / str(saved.name)}) to resume it"
        )
    _check_not_moved(cfg, made_in)
    if saved.data is not None and not Path(saved.data).exists():  # moved: --data elsewhere is refused just below
        raise FileNotFoundError(
            f"the study's data root {saved.data} (in {path}) does not exist now: put the data back there, or a link to "
            f"where it is (ln -s NEW_PATH {shlex.quote(saved.data)}), to resume the study (its trials read it there)"
        )
    differ = [
        f"{_FLAGS.get(key, '--' + key.replace('_', '-'))} {_shown(getattr(cfg, key), key)} "
        f"(the study has {_shown(getattr(saved, key), key)})"
        for key in sorted(given - CHANGEABLE)
        if getattr(cfg, key) != getattr(saved, key)
    ]
    if differ:
        raise ValueError(
            f"{path} holds a study with other settings than those given: {'; '.join(differ)}. "
            "Leave them out to resume it, or give another --name for a new study"
        )
    runtime = ("out", "address", "dashboard", "time_budget_s", "gpu_hours")  # a resume may give new ones
    if saved.address and not cfg.address:  # a cluster user who left the flag out (the resume command keeps it)
        print(
            f"note: this study ran on the Ray cluster at {saved.address}; this resume runs on a Ray of its own here "
            f"(--address {saved.address} to go on there)",
            file=sys.stderr,
        )
    changed = {key: getattr(cfg, key) for key in given & CHANGEABLE}  # kept for the resumes after this one
    resumed = dataclasses.replace(saved, **{key: getattr(cfg, key) for key in runtime}, **changed)
    if made_in != str(resumed.experiment_dir) or resumed.retries != saved.retries:  # moved, or made before; a change
        save_settings(dataclasses.replace(saved, out=cfg.out, **changed))  # search.json: its folder, as it is now
    return resumed


# study settings a resume may change, kept from then on: --retries (for trials whose process ends under them, where
# a study met the OOM killer or lost nodes; the unfinished trials and those to come)
CHANGEABLE = frozenset({"retries"})


def _found_anywhere(cfg: SearchConfig) -> SearchConfig:
    """The settings that name files as found from any folder (a resume's, tune.train/predict's, a trial's): paths
    absolute, a plugin file's too, an MLflow folder as its store's URI; as the command line gives them, and as
    Python may not."""
    from tune.plugins import plugin_spec

    paths: dict[str, Any] = {key: str(Path(p).absolute()) for key in _PATHS if (p := getattr(cfg, key)) is not None}
    uri = None if cfg.mlflow is None else mlflow_uri(cfg.mlflow)
    return dataclasses.replace(cfg, **paths, plugins=tuple(plugin_spec(p) for p in cfg.plugins), mlflow=uri)


def mlflow_uri(text: str) -> str:
    """A tracking URI as given (http://, sqlite://, file://...), or a folder as a local file store's URI."""
    return text if "://" in text else Path(text).absolute().as_uri()


_PATHS = ("data", "warm_start", "hidden")  # settings that are paths: saved absolute, as given from any folder
_FOLDER = "folder"  # search.json's record of the study folder's absolute path (no setting: not a SearchConfig field)


def _check_not_moved(cfg: SearchConfig, made_in: str | None) -> None:
    """Refuse to resume a study folder moved or copied to another --out while a stage of it has Ray's state to go
    on with: that state (Ray's callbacks, the Optuna searcher) writes to the folder it was made in by its absolute
    path; the resume failed on the journal's old path with a traceback, after writing stale results there (over
    the original's, where it was a copy). Ended stages are not restored: a finished study resumes anywhere."""
    if made_in is None or Path(made_in) == cfg.experiment_dir or not _restorable(cfg.experiment_dir):
        return
    old = Path(made_in)
    with contextlib.suppress(OSError):
        if old.samefile(cfg.experiment_dir):  # the same folder by another path (a link)
            return
    there = old.is_dir() and (old / STUDY_FILE).is_file()
    raise ValueError(
        f"{cfg.experiment_dir} holds a study made in {old}, and its saved state (Ray's, Optuna's) writes there: "
        + (
            f"resume the study there ({resume_command(old.parent, old.name, cfg.address, cfg.dashboard)}), or start a new one here"
            if there
            else f"move the folder back to {old} to resume it"
        )
    )


# the settings named unlike their flags
_FLAGS = {"plugins": "--plugin", "overrides": "--set/--range/--choices/--overrides"}


def _shown(value: object, key: str = "") -> str:
    """A setting as a refusal names it: a flag's several values (--overrides, --plugin) one by one, or none; every
    video (None) of --unlabeled and --val-videos as the word given for it, all."""
    if isinstance(value, (tuple, list)):
        return ", ".join(map(repr, value)) or "none"
    if value is None:
        return "all" if key in ("unlabeled", "val_videos") else "the default (unset)"
    return repr(value)


def _restorable(folder: Path) -> bool:
    """Whether a stage of the study in `folder` holds Ray's state of an experiment that has not ended (a resume
    restores it): its tuner.pkl (Ray 2.60's), without the stage's end mark."""
    stages = [child for child in folder.iterdir() if child.is_dir()] if folder.is_dir() else []
    return any((stage / "tuner.pkl").is_file() and not (stage / STAGE_DONE).exists() for stage in stages)


def _started(folder: Path) -> bool:
    """Whether any stage of the study in `folder` ever started (its experiment folder, the Optuna
    journal or results exist): a study that failed before, on bad data say, can be started anew."""
    return (folder / OPTUNA_FILE).exists() or any(child.is_dir() for child in folder.iterdir())


def forget_unstarted(folder: Path) -> None:
    """Remove what a new study wrote in `folder` (search.json, what its data held, the list of bad videos) when
    none of its stages started, and the folder if that leaves it empty: a start refused on a bad flag or bad data
    leaves no study behind. A folder holding anything else is left as it is."""
    if not folder.is_dir() or _started(folder):
        return
    for name in (STUDY_FILE, DATA_FILE, SKIPPED_FILE, DRIVER_LOCK):
        (folder / name).unlink(missing_ok=True)
    for marker in folder.glob(f"{NODE_CHECK}*"):  # (one a kill left as the nodes were checked)
        marker.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: files of the user's
        folder.rmdir()
