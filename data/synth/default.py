"""The embedded default data set: a small synthetic root generated once per machine, used whenever a
command is given no `--data`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from data.locking import file_lock
from data.synth.generate import SynthSpec, generate

DEFAULT_SPEC = SynthSpec(train=60, val=20, unlabeled=60, hidden=20, seed=0)


def default_synth_dir() -> Path:
    """$SEGTUNE_SYNTH, else ~/.cache/segtune/synth; absolute (a relative one is the caller's, not a trial's)."""
    env = os.environ.get("SEGTUNE_SYNTH")
    return Path(env).absolute() if env else Path.home() / ".cache" / "segtune" / "synth"


def default_root_path(spec: SynthSpec = DEFAULT_SPEC) -> Path:
    """Where the default synthetic set of `spec` lies, or will once `default_data_root` has generated it."""
    digest = hashlib.sha1(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]
    return default_synth_dir() / f"default-{digest}"


def default_data_root(spec: SynthSpec = DEFAULT_SPEC, *, progress: bool = True) -> Path:
    """The root of the default synthetic set, generated on first use (about a minute on 2 cores).
    Concurrent callers wait for one generation instead of racing."""
    root = default_root_path(spec)
    root.parent.mkdir(parents=True, exist_ok=True)
    done = root / ".complete"
    if done.exists():
        return root
    with file_lock(root.parent / f"{root.name}.lock"):
        if not done.exists():
            if progress:
                print(f"generating the default synthetic data set into {root} (once per machine)")
            generate(root, spec, progress=progress)
            done.touch()
    return root
