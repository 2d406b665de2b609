"""`--plugin my_models.py` (a file) or `--plugin my_package.models` (an importable module): the user's own
code, imported before anything else, registers models (`@register_model`, models/registry.py) and
search spaces (`register_space`, tune/search/spaces.py) as the built-in ones do. docs/plugin_example.py
is an example.

A study records its plugins (absolute paths) in search.json; every process that needs the registries
imports them again: Ray's trial workers, `--resume`, and `tune.predict --experiment`. A file is imported
as the module `segtune_plugin_STEM`, once per process, so that what Ray and Optuna pickle from it (a
space's define function) is found under the same name by the next process.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from data.files import atomic_write, not_a
from models.registry import list_models, model_entry
from reports.records import read_record, read_study_settings
from reports.schema import PLUGINS_FILE, STUDY_FILE

FILE_MODULE = "segtune_plugin_"  # a plugin file's module name: this and its stem


def early_plugins(argv: list[str] | None) -> tuple[str, ...]:
    """Load the --plugin arguments of a command line before its parser is built (a plugin adds choices:
    models, spaces); returns what to record for them."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    specs = tuple(plugin_spec(text) for text in early.parse_known_args(argv)[0].plugin)
    load_plugins(specs)
    return specs


def add_plugin_argument(parser: argparse.ArgumentParser, **kwargs: Any) -> None:
    """The --plugin option in a command's help (early_plugins has loaded them already)."""
    parser.add_argument(
        "--plugin",
        action="append",
        metavar="FILE_OR_MODULE",
        help="import your own models and spaces first (docs/plugin_example.py); repeatable",
        **kwargs,
    )


def plugin_spec(text: str) -> str:
    """What to record for `--plugin TEXT`: a file's absolute path (so that workers in other folders find
    it), or a module name as given (a package's folder of that name may be here)."""
    path = Path(text)
    if not text.strip():
        raise ValueError("--plugin '': empty: give a Python file (NAME.py) or a module (package.module)")
    module = all(part.isidentifier() for part in text.split("."))
    if text.endswith(".py") or path.is_file() or (path.exists() and not module):
        if not path.is_file():
            raise FileNotFoundError(f"--plugin {text}: {not_a('file', path)}")
        return str(path.resolve())
    return text


_REGISTERED_BY: dict[str, str] = {}  # model -> the plugin whose import registered it (in this process)


def load_plugins(specs: Iterable[str]) -> None:
    """Import each plugin once in this process; a plugin that fails is one line naming it and the line."""
    for spec in specs:
        before = set(list_models())
        _load(spec)
        _REGISTERED_BY.update(dict.fromkeys(set(list_models()) - before, spec))


def _load(spec: str) -> None:
    """Import one plugin (load_plugins)."""
    if spec.endswith(".py"):
        _load_file(Path(spec))
    else:
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as err:
            if err.name is not None and spec.startswith(err.name):
                what = "not a Python file (NAME.py)" if Path(spec).is_file() else "no such file"
                raise ValueError(f"--plugin {spec}: {what}, nor an importable module") from None
            raise ValueError(f"--plugin {spec}: {_why(err, None)}") from None
        except Exception as err:
            raise ValueError(f"--plugin {spec}: {_why(err, None)}") from None


def study_plugins(folder: Path) -> list[str]:
    """The plugins a study folder's search.json records ([] without one)."""
    return list(read_study_settings(folder).get("plugins", ()))


def edited_plugins(folder: Path, specs: Iterable[str]) -> list[str]:
    """The study's plugins (loaded) whose file changed since its driver last ran (PLUGINS_FILE, rewritten here):
    a resume runs their new code, where the trials before ran the old (a user renamed a setting, and the study's
    leaderboard mixed both names)."""
    now = {spec: _digest(spec) for spec in specs}
    path = folder / PLUGINS_FILE
    if not now and not path.exists():  # a study of the package's own models and spaces: nothing to record
        return []
    before = read_record(path)  # {}: none yet (a new study, or one older than this file)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(now, indent=1))
    return [spec for spec, digest in now.items() if before.get(spec, digest) != digest]


def _digest(spec: str) -> str | None:
    """The sha256 of a plugin's file (a module's own file: not the rest of its package); None without one."""
    file = spec if spec.endswith(".py") else getattr(sys.modules.get(spec), "__file__", None)
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    except OSError:
        return None


def load_study_plugins(folder: Path) -> None:
    """Import the plugins a study recorded (load_plugins); one that fails names the file that recorded it, where
    the user never typed its path (a plugin moved or edited since the study started)."""
    specs = study_plugins(folder)  # (a search.json that cannot be read says so itself)
    try:
        load_plugins(specs)
    except (FileNotFoundError, ValueError) as err:
        recorded = f"a plugin the study recorded in {Path(folder) / STUDY_FILE}, where each of its commands finds it"
        raise type(err)(f"{err} ({recorded})") from None


def model_plugin(model: str) -> str | None:
    """The --plugin that registered `model` as a study records it (a file's absolute path, or a module's name): the
    one whose import did in this process, else the module of its builder; None for a model of the package's own."""
    if model in _REGISTERED_BY:
        return _REGISTERED_BY[model]
    module = model_entry(model).build.__module__
    if module == "models" or module.startswith("models."):
        return None
    if module.startswith(FILE_MODULE):
        return str(getattr(sys.modules.get(module), "__file__", None) or module)
    return module


def _load_file(path: Path) -> None:
    name = FILE_MODULE + re.sub(r"\W", "_", path.stem)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(str(loaded.__file__)).resolve() != path.resolve():
            raise ValueError(f"--plugin {path}: another plugin named {path.stem} is loaded ({loaded.__file__})")
        return
    if not path.is_file():
        raise FileNotFoundError(f"--plugin {path}: {not_a('file', path)}")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ValueError(f"--plugin {path}: {_why(err, path)}") from None


def _why(err: Exception, path: Path | None) -> str:
    """The error and where in the plugin it happened (its deepest frame in the plugin's file; a syntax error's own
    file and line, with the line's text)."""
    if isinstance(err, SyntaxError):  # raised by the compiler: no frame of the plugin, its place is in the error
        text = f": {err.text.strip()}" if err.text and err.text.strip() else ""
        return f"{type(err).__name__}: {err.msg} (line {err.lineno} of {err.filename}{text})"
    frames = list(traceback.extract_tb(err.__traceback__))
    if path is not None:
        frames = [f for f in frames if Path(f.filename).resolve() == path.resolve()] or frames
    where = f" (line {frames[-1].lineno} of {frames[-1].filename})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"
