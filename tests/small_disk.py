"""A command run with a folder on a small disk of its own: a tmpfs of the size asked for, mounted in a mount
namespace of the command's own (`unshare`), gone when the command ends (nothing is left mounted, whatever happens).
Where the machine allows no such namespace (a container without the right), the tests that need one skip."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

import pytest

_MOUNT = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'


@functools.cache
def _unshare() -> list[str] | None:
    """The unshare flags that work here: a user namespace of its own (no root needed), else a mount namespace
    alone (as root); None where neither does."""
    if shutil.which("unshare") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        for flags in (["--user", "--map-root-user", "--mount"], ["--mount"]):
            tried = subprocess.run(["unshare", *flags, "sh", "-c", _MOUNT, "sh", "64k", folder, "true"], check=False)
            if tried.returncode == 0:
                return ["unshare", *flags]
    return None


def on_small_disk(folder: str, size: str, argv: Sequence[str]) -> list[str]:
    """`argv` with `folder` (which must exist) on a tmpfs of `size` (tmpfs's words: 64k, 3m); a shell script as
    argv (`sh -c ...`) may grow it (`mount -o remount,size=64m FOLDER`) to go on."""
    flags = _unshare()
    if flags is None:
        pytest.skip("no mount namespace can be made here (unshare): no small disk to fill")
    return [*flags, "sh", "-c", _MOUNT, "sh", size, folder, *argv]
