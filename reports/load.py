"""Read one experiment folder's result files (Parquet and the gallery's PNGs); nothing else."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Experiment:
    name: str
    folder: Path
    trials: pd.DataFrame  # one row per trial (empty if none yet)
    epochs: pd.DataFrame  # one row per trial per epoch
    per_class: pd.DataFrame | None = None  # the best model's per-class IoU on val
    gallery: pd.DataFrame | None = None  # video_id, order, label, data_uri
    space: str = ""
    notes: list[str] = field(default_factory=list)  # what is missing or partial, said in the report

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(self.trials["stage"])) if len(self.trials) else []


def load_experiment(folder: str | os.PathLike[str]) -> Experiment:
    folder = Path(folder)
    results = folder / "results"
    notes: list[str] = []
    trials = _read(results / "trials.parquet", notes, "no trials.parquet: the study has not reported any trial yet")
    epochs = _read(results / "epochs.parquet", notes, "no epochs.parquet: no trial has finished an epoch yet")
    per_class = _read(
        results / "per_class_iou.parquet",
        notes,
        "no per-class IoU: the study has not finished (or had no successful trial)",
    )
    gallery = _read(results / "gallery.parquet", notes, None)
    if gallery is not None and len(gallery):
        gallery = gallery.assign(data_uri=[_data_uri(results / f) for f in gallery["file"]])
    space = ""
    if (folder / "search.json").exists():
        space = json.loads((folder / "search.json").read_text()).get("space", "")
    elif len(trials):
        space = str(trials["space"].iloc[0])
    if len(trials) and (trials["status"] == "running").any():
        notes.append(
            f"{int((trials['status'] == 'running').sum())} trial(s) still running or interrupted: the study is partial"
        )
    return Experiment(folder.name, folder, trials, epochs, per_class, gallery, space, notes)


def _read(path: Path, notes: list[str], missing: str | None) -> pd.DataFrame:
    if path.exists():
        try:
            return pd.read_parquet(path)
        except Exception as err:  # a half-copied or foreign file: say so in the report, keep going
            notes.append(f"cannot read {path.name}: {err}")
            return pd.DataFrame()
    if missing:
        notes.append(missing)
    return pd.DataFrame()


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.exists() else ""
