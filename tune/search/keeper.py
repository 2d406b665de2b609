"""Keeping the checkpoint a saved experiment state names, so that a resume after kill -9 finds it.

With CheckpointConfig(num_to_keep=1), Ray deletes a trial's previous checkpoint as soon as the next one
is registered, and saves the experiment state that names the new one a moment later, at the end of its
loop step. A kill -9 in between leaves a saved state naming a deleted checkpoint: on --resume that trial
failed with "Could not recover from checkpoint as it does not exist on storage anymore" (seen in
tests/tune/search/test_search_resume.py under load). CheckpointKeeper hard-links (no copy) each trial's
last two checkpoints, and its best so far, into TRIAL/.kept when Ray reports them, which is before Ray deletes
anything (a better checkpoint has Ray delete the best one too, which the saved state still names);
`restore_kept` puts back the missing ones before Tuner.restore, and `drop_kept` removes the links and
any checkpoint left over once the stage has ended.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from reports.schema import TRIAL_DIR

KEPT_DIR = ".kept"  # in a trial's folder
KEPT_PER_TRIAL = 2  # the latest and the one before it: a saved state names one of them (and the best so far)
_CHECKPOINT = re.compile(r"checkpoint_(\d+)$")


def link_tree(source: Path, target: Path) -> None:
    """`target` as a copy of the folder `source` made of hard links (copies where links fail)."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=_link_or_copy)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _checkpoints(folder: Path) -> list[Path]:
    """A trial folder's checkpoint_N folders, oldest first."""
    found = [p for p in folder.glob("checkpoint_*") if p.is_dir() and _CHECKPOINT.search(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.search(p.name).group(1)))  # type: ignore[union-attr]


class CheckpointKeeper(Callback):
    """A Ray Tune callback keeping hard links to each trial's last KEPT_PER_TRIAL checkpoints and its best so far."""

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        source = Path(checkpoint.path)
        kept = source.parent / KEPT_DIR
        link_tree(source, kept / source.name)
        best = _best_name(trial)  # Ray's best so far: this one, if better, has it deleted before the state names it
        for old in _checkpoints(kept)[:-KEPT_PER_TRIAL]:
            if old.name != best:
                shutil.rmtree(old, ignore_errors=True)


def _best_name(trial: Any) -> str | None:
    """The folder name of the best checkpoint Ray's checkpoint manager of `trial` holds, before this one registers."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    best = getattr(manager, "best_checkpoint_result", None)
    return Path(best.checkpoint.path).name if best is not None and best.checkpoint is not None else None


def resumed_trials(experiment_state: Path) -> dict[str, set[str] | None]:
    """The trials a restore from Ray's saved experiment state (its JSON) runs again: those it did not save as ended
    (TERMINATED or ERROR; a resume does not rerun failed trials), each with the checkpoint folders its saved
    checkpoint manager names (None where that cannot be read: a Ray that saves it otherwise)."""
    trials = json.loads(experiment_state.read_bytes())["trial_data"]
    resumed: dict[str, set[str] | None] = {}
    for state, metadata in trials:
        state = json.loads(state) if isinstance(state, str) else state
        if state.get("status") not in (Trial.TERMINATED, Trial.ERROR):
            metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
            resumed[state["trial_id"]] = _named_checkpoints(metadata.get("checkpoint_manager"))
    return resumed


def _named_checkpoints(manager: Any) -> set[str] | None:
    """The checkpoint folders (checkpoint_N) Ray's saved checkpoint manager of a trial names: its paths read from
    the pickle (Ray 2.60 saves it cloudpickled, hex in the JSON) opcode by opcode, nothing run."""
    if not isinstance(manager, dict) or not isinstance(manager.get("value"), str):
        return None
    try:
        strings = [arg for _, arg, _ in pickletools.genops(bytes.fromhex(manager["value"])) if isinstance(arg, str)]
    except ValueError:
        return None
    named = {Path(text).name for text in strings if _CHECKPOINT.search(text)}
    return None if not named and "Checkpoint" in strings else named  # a checkpoint whose path is held otherwise


def restore_kept(stage_dir: Path, trials: dict[str, set[str] | None]) -> list[Path]:
    """Put back each kept checkpoint Ray has deleted that the saved state of the trials a restore runs again names
    (`trials`, from resumed_trials; all kept ones of a trial whose names are not known), before Tuner.restore;
    returns those put back. Ray deletes a trial's older checkpoints as it goes (it keeps the latest and the best):
    one is needed again only where a kill came between that and the save of the state naming the next. All were put
    back at first (183 in a resume of 190 ended trials), then those of each resumed trial, older than the one used."""
    restored = []
    for trial_id, names in trials.items():
        kept = stage_dir / TRIAL_DIR.format(trial_id) / KEPT_DIR
        for saved in _checkpoints(kept) if kept.is_dir() else []:
            original = kept.parent / saved.name
            if (names is None or saved.name in names) and not original.exists():
                link_tree(saved, original)
                restored.append(original)
    return restored


def drop_kept(stage_dir: Path, keep: set[str]) -> None:
    """Once a stage has ended: remove the kept links, and the checkpoints of each trial other than its
    latest and those in `keep` (the best ones the results name), which a restore may have put back."""
    for kept in stage_dir.glob(f"*/{KEPT_DIR}"):
        shutil.rmtree(kept, ignore_errors=True)
    for trial_dir in stage_dir.glob(TRIAL_DIR.format("*")):
        for folder in _checkpoints(trial_dir)[:-1]:
            if str(folder) not in keep:
                shutil.rmtree(folder, ignore_errors=True)
