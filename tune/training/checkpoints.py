"""Checkpoints: written atomically by the trainer, loaded with weights_only=True, refused with a clear
error when they are missing or not this project's."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data.files import atomic_write
from models.registry import create_model, list_models, model_entry, pretrained_part
from tune.training.config import RunConfig

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one)."""
    return torch_save(state, path)


def torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """torch.save, atomically (a crash mid-write leaves the previous file), through a file object: given a path,
    torch says a full disk as "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos 704 vs
    598"; through a file, the system's OSError is raised, or is the context of that RuntimeError (raised as the
    zip file's end is written after it). Either is raised as the OSError it is, naming `path`."""
    try:
        with atomic_write(path) as tmp, tmp.open("wb") as file:
            torch.save(obj, file)
    except (OSError, RuntimeError) as err:
        system = err if isinstance(err, OSError) else err.__context__
        if not isinstance(system, OSError) or system.errno is None:
            raise
        raise OSError(system.errno, os.strerror(system.errno), str(path)) from None  # (not its temporary name)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint written by save_checkpoint, loaded with weights_only=True; clear errors for files that
    are missing or not checkpoints of this project."""
    path = Path(path)
    if path.is_dir():  # a trial's checkpoint_N folder, a run's folder: the file in it
        own = path / "checkpoint.pt"
        inside = [own] if own.is_file() else sorted(path.glob("*/checkpoint.pt"))  # a trial's: newest last
        hint = f"; the checkpoint in it: {inside[-1]}" if inside else ""
        raise IsADirectoryError(f"{path} is a folder, where a checkpoint file is needed{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # what torch.save writes: an empty, cut or foreign file is none
        size = path.stat().st_size
        raise ValueError(
            f"{path} is not a checkpoint of this project: not a file torch.save wrote ({size} bytes: empty, cut "
            "short while written, or another kind of file)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a foreign file
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # torch's message spans paragraphs; keep the one naming what it refused
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        refused = next((line for line in lines if line.startswith("Unsupported")), type(err).__name__)
        raise ValueError(
            f"cannot load checkpoint {path}: it holds objects other than tensors and plain values, which "
            f"weights-only loading refuses (they could run code): {refused}"
        ) from err
    except Exception as err:
        raise ValueError(f"cannot load checkpoint {path}: {' '.join(str(err).split())}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "run" not in state:
        if not isinstance(state, dict):
            found = f"it holds a {type(state).__name__}, not the dict of a checkpoint"
        elif "format" not in state:
            found = "it has no format field (a state_dict, or another tool's file?)"
        elif state["format"] != CHECKPOINT_FORMAT:
            found = f"its format is {state['format']!r}, this version reads format {CHECKPOINT_FORMAT}"
        else:
            found = "it has no run settings"
        raise ValueError(f"{path} is not a checkpoint of this project: {found}")
    return state


def checkpoint_run(state: dict[str, Any], source: str | os.PathLike[str] = "the checkpoint") -> RunConfig:
    """The run settings of a loaded checkpoint (`source`, named in the error). Its model unknown here: the registry's
    line, or, for a plugin's model (recorded as `plugin`), the --plugin to pass."""
    try:
        return RunConfig.from_dict(state["run"])
    except KeyError as err:
        model, plugin = state["run"].get("model"), state.get("plugin")
        if plugin and model is not None and model not in list_models():
            raise KeyError(
                f"{source}: its model {model!r} comes from the plugin {plugin}: pass --plugin {plugin}"
            ) from None
        raise KeyError(f"{source}: {err.args[0]}") from None


def model_from_state(
    state: dict[str, Any], device: torch.device | str = "cpu", source: str | os.PathLike[str] = "the checkpoint"
) -> tuple[RunConfig, nn.Module]:
    """The run config and the trained model (in eval mode, on `device`) of a loaded checkpoint (`source`, named in
    the error where its settings or weights do not make its model: a file edited, or written by another version)."""
    try:  # a model the registry does not know (a plugin's not loaded): checkpoint_run's KeyError
        run = checkpoint_run(state, source)
        model = create_model(run.model, run.model_config)
        model.load_state_dict(state.get("model", {}))
    except KeyError as err:  # a plugin's builder's own: the file named, as checkpoint_run names it
        said = str(err.args[0]) if err.args else repr(err)
        raise KeyError(said if said.startswith(f"{source}: ") else f"{source}: {said}") from None
    except (TypeError, ValueError, RuntimeError) as err:
        why = " ".join(str(err).split())  # load_state_dict's lines: "Error(s) in loading ...: size mismatch for ..."
        why = why if len(why) <= 300 else why[:300] + "..."
        raise ValueError(f"{source}: its settings and weights do not make its model ({why})") from None
    check_finite(state.get("model", {}), source)
    return run, model.to(device).eval()


def check_finite(weights: dict[str, Any], source: str | os.PathLike[str]) -> None:
    """Refuse weights holding NaN or infinity (a diverged run's, or a damaged file's): its predictions would be
    one class everywhere, and the submission written from them would look like any other."""
    bad = [
        name
        for name, tensor in weights.items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if bad:
        raise ValueError(
            f"{source}: {len(bad)} of its {len(weights)} weight tensors hold NaN or infinity (first: {bad[0]}): "
            "the run diverged or the file is damaged; use another checkpoint"
        )


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> tuple[RunConfig, nn.Module]:
    """The run config and the trained model (in eval mode, on `device`) of a checkpoint."""
    return model_from_state(load_checkpoint(path), device, path)


def load_pretrained_part(model: nn.Module, run: RunConfig, path: str | os.PathLike[str]) -> None:
    """Put the weights of a separately trained part (dual_phase's frame predictor) into `model`; the
    checkpoint must hold that part's model with the config `run` expects."""
    part = model_entry(run.model).pretrained
    module = pretrained_part(model, run.model)
    if part is None or module is None:
        raise ValueError(f"a {run.model!r} model has no pretrained part to load {path} into")
    state = load_checkpoint(path)
    loaded = RunConfig.from_dict(state["run"])
    if loaded.model != part.model:
        raise ValueError(f"{path} holds a {loaded.model!r} checkpoint; a {run.model} model needs a {part.model} one")
    expected = getattr(run.model_config, part.attribute)
    if loaded.model_config != expected:
        what = part.model.replace("_", " ")
        raise ValueError(f"{path} holds a {what} with config {loaded.model_config}, the model expects {expected}")
    check_finite(state["model"], path)
    module.load_state_dict(state["model"])
