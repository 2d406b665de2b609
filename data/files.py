"""Writing files and folders so that a crash or a concurrent reader never sees half of one.

`atomic_write`: a file is written beside its target and renamed over it. `build_folder`: a folder is
built under a file lock in a temporary sibling and renamed into place, so that processes on one machine
(several trials) build it once and a killed build leaves nothing a reader would take for finished (a
resumable build leaves its temporary folder for the next one to carry on from).
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import importlib
import math
import multiprocessing
import multiprocessing.pool
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

from data.locking import file_lock


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block ends without error it replaces `path`
    (a reader sees the old file or the new one, never half of one). On error the temporary file goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_folder(
    target: Path,
    is_current: Callable[[Path], bool],
    build: Callable[[Path], None],
    *,
    resumable: bool = False,
    what: str = "",
) -> Path:
    """Make `target` once: under a lock, unless `is_current(target)`, call `build(tmp)` on a temporary
    folder and swap it in for `target` (an old one is replaced). Folders left by a killed build are
    removed first (we hold the lock, so nobody else is building), except with `resumable`: then the
    temporary folder has a fixed name, a failed or killed build leaves it, and the next build is given
    it as it was, to carry on from what it finished (its `build` checks what it finds there). Where no lock can
    be made (read-only media), a current `target` is read as it is, an old one is an OSError naming `what`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.with_suffix(".lock").open("a+").close()
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and is_current(target):
            return target
        raise OSError(err.errno, f"{err.strerror or err}" + (f" ({what})" if what else ""), err.filename) from None
    with file_lock(target.with_suffix(".lock")):
        if is_current(target):
            return target
        for stale in target.parent.glob(target.name + ".building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = target.with_name(target.name + (".building" if resumable else f".building-{os.getpid()}"))
        tmp.mkdir(exist_ok=resumable)
        try:
            build(tmp)
        except BaseException:
            if not resumable:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        trash = target.with_name(target.name + f".old-{os.getpid()}")
        if target.exists():
            target.rename(trash)
        tmp.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
    return target


def make_folder(folder: Path, what: str) -> Path:
    """mkdir -p `folder`, an OSError saying what it is for: `/x/cache: Permission denied (the decoded cache,
    $SEGTUNE_CACHE)`, where the path alone would not tell where it came from."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"{err.strerror or err} ({what})", err.filename) from None
    return folder


def ensure_writable(folder: Path) -> None:
    """Make `folder` and check a file can be written in it, before any work whose result would go there
    (an OSError naming the path if not: read-only, full, no permission)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:  # named by the folder, not by the probe's made-up name
        raise OSError(err.errno, f"cannot write a file in it ({err.strerror or err})", str(folder)) from None


def os_error_line(err: OSError) -> str:
    """An OSError as one line naming the path: `runs/x: Read-only file system`; where a file stands in a folder's
    place (a mkdir, a path through it), that file: `runs: a file, where a folder is needed`."""
    if err.filename and err.errno in (errno.EEXIST, errno.ENOTDIR):
        path = Path(err.filename)
        blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocker is not None:
            return f"{blocker}: {not_a('folder', blocker)}"
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


def error_line(err: Exception) -> str:
    """An error as the one line a command prints after "error: ": the system's OSErrors (errno set) as
    os_error_line gives them, naming the path, others (this project's, which say what is wrong) as they are."""
    return os_error_line(err) if isinstance(err, OSError) and err.errno else str(err)


def not_a(kind: str, path: str | os.PathLike[str]) -> str:
    """Why `path` is not the `kind` ("file" or "folder") a command needs: "no such file", "a folder, where a file
    is needed", "a file, where a folder is needed"."""
    if not os.path.exists(path):
        return f"no such {kind}"
    return "a folder, where a file is needed" if os.path.isdir(path) else "a file, where a folder is needed"


def size_text(size: float) -> str:
    """A size in GB, MB under a tenth of a GB, kB under a tenth of a MB."""
    if size >= 1e8:
        return f"{size / 1e9:.2f} GB"
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def check_free_space(
    folder: Path, needed: int, what: str, elsewhere: str = "point SEGTUNE_CACHE at a larger disk"
) -> None:
    """Refuse to start writing `needed` bytes of `what` in `folder` when the disk has less free, rather
    than failing half-way (an OSError, ENOSPC, naming the folder, the size needed and the size free)."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OSError(
            errno.ENOSPC,
            f"{what} needs {size_text(needed)} and {size_text(free)} are free; free some space or {elsewhere}",
            str(folder),
        )


def reserve_blocks(*paths: Path, what: str) -> None:
    """Have the disk hold every block of the files `paths` now (fallocate): an array written through a memory map
    onto a disk that fills meanwhile (another command writing beside it) ended the process with SIGBUS, "Bus
    error", and no word; a disk that cannot hold one now is an OSError naming it. Nothing where the file system
    cannot reserve blocks."""
    for path in paths:
        with path.open("r+b") as file:
            size = os.fstat(file.fileno()).st_size
            try:
                _fallocate(file.fileno(), size)
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EDQUOT):
                    why = f"no room on its disk for {what} ({size_text(size)}); free some space"
                    raise OSError(err.errno, why, str(path)) from None
                if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise


def _fallocate(fd: int, size: int) -> None:
    """Linux's fallocate(2), which says EOPNOTSUPP where the file system cannot reserve blocks; not glibc's
    posix_fallocate, which then writes a byte into every block (minutes for a cache of 13,000 videos on NFS).
    Nothing where the C library has none (not Linux)."""
    call = getattr(ctypes.CDLL(None, use_errno=True), "fallocate64", None)
    if call is None:
        return
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if call(fd, 0, 0, size) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


_PACKAGES = ("data", "models", "tune", "reports")  # the project's: whose warnings a command says in its own way
_OWN = tuple(Path(__file__).resolve().parents[1] / name for name in _PACKAGES)


def warnings_as_lines(*, again: bool = False) -> None:
    """A command's own warnings (a bad video skipped, a broken one predicted) as one `warning: ...` line each, once
    a process however often they are raised (a study decodes a split for its trials, the best model's evaluation and
    its submission), not as Python shows them (the file, its line, its source). Other code's warnings are shown as
    Python shows them. Only their text is changed: a caller that records warnings still sees each. `again`: what
    was said may be said again (a Ray worker's next trial)."""
    formatted = warnings.formatwarning
    if isinstance(said := getattr(formatted, "said", None), set):
        if again:
            said.clear()
        return
    said = set()

    def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, line: Any = None) -> str:
        try:
            own = any(Path(filename).resolve().is_relative_to(package) for package in _OWN)
        except (OSError, RuntimeError, ValueError):  # a path that cannot be resolved
            own = False
        if not own:
            return formatted(message, category, filename, lineno, line)
        if str(message) in said:
            return ""
        said.add(str(message))
        return f"warning: {message}\n"

    one_line.said = said  # type: ignore[attr-defined]
    warnings.formatwarning = one_line
    # each raised, not once a place as Python's default has it: which of them is said is the `said` set's to judge
    warnings.filterwarnings("always", category=UserWarning, module=rf"({'|'.join(_PACKAGES)})(\.|$)")


def run_command(main: Callable[[], int], *, stopped: str = "") -> NoReturn:
    """A command's entry point (`python -m ...`): its own warnings one line each (warnings_as_lines), and a Ctrl-C
    that `main` does not handle itself one line on stderr, not a traceback; stopped by Ctrl-C (`main` returned 130
    or did not handle it), the command ends by SIGINT (_end_by_sigint). `stopped`: what the interrupted command
    leaves, said after "stopped (SIGINT): "."""
    warnings_as_lines()  # the command's, not a caller's that imports main (a test)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # (not where it is ignored: a background job)
        signal.signal(signal.SIGINT, _ctrl_c_once)
    try:
        code = main()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C (timeout sends two) as the command ends
        print(f"\nstopped (SIGINT){': ' + stopped if stopped else ''}", file=sys.stderr)
        code = 130
    if code == 128 + signal.SIGINT:  # stopped by Ctrl-C, and said so
        _end_by_sigint()
    _exit(code)


def run_module(name: str, *, stopped: str = "") -> NoReturn:
    """run_command for the `main()` of module `name`, imported inside it: a command whose module imports for
    seconds (torch, plotly) calls this from its first lines when run as `python -m NAME` (the module is then
    imported anew, under its own name). A Ctrl-C amid those imports stops it as one later does, once they are done:
    raised inside them, it could leave a library half imported (numpy's next import then failed with a
    RecursionError, 1 of 4 Ctrl-Cs 0.3 s into tune.predict). (An import that hangs is stopped by SIGTERM then.)"""

    def main() -> int:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            module = importlib.import_module(name)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C held back is raised here
        return int(module.main())

    run_command(main, stopped=stopped)


def _exit(code: int) -> NoReturn:
    """End as Python ends, its threads joined and its exit handlers run (Ray's shutdown, logging's, MLflow's), then
    at once: the teardown of every module that Python does next is skipped (1.6 s after a smoke study here, torch's
    and Ray's; 0.8 s after the imports alone), for each command a script or a test runs."""
    with suppress(KeyboardInterrupt):  # (as Python's own exit takes one there: the exit goes on)
        threading._shutdown()  # type: ignore[attr-defined]  # what Python's exit calls first: its threads joined
    _run_exit_handlers()
    os._exit(code)


def _run_exit_handlers() -> None:
    _flush()
    atexit._run_exitfuncs()  # each once: they are cleared as they run
    _flush()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a reader gone (`| head`), a stream closed
            stream.flush()


def _end_by_sigint() -> None:
    """End as Python ends on a KeyboardInterrupt that no one caught: its exit handlers run (Ray's shutdown among
    them), then it is killed by SIGINT, so that a calling shell script stops too (bash goes on after a child's plain
    exit 130); a shell's $? is 130 either way. (Python's own way, an uncaught KeyboardInterrupt, gave exit status 1
    once Ray was imported: code run at exit clears its flag.) Where SIGINT stays blocked, exit 130."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # another Ctrl-C amid the exit handlers (Ray's takes 0.5 s)
    _run_exit_handlers()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


_CTRL_C_REPEAT_S = 2.0  # a Ctrl-C this soon after the one raised is the same stop
# functions Python calls where an exception is printed as "Exception ignored in" and dropped: the at-fork hooks of
# logging (run at each fork, Ray's start forks a dozen processes) and finalizers
_SWALLOWING = frozenset({"_acquireLock", "_releaseLock", "_after_at_fork_child_reinit_locks", "__del__"})


def _ctrl_c_once(signum: int, frame: Any) -> None:
    """SIGINT as Python's own handler takes it (KeyboardInterrupt), but a repeat within _CTRL_C_REPEAT_S of the
    last one raised is ignored: `timeout` sends two, a user presses twice or holds the keys, and one that landed in
    the cleanup the first began (a process pool being ended) cut it short with a traceback. A later one stops
    again (cleanup that hangs). One that lands in a function whose exceptions Python drops (a Ctrl-C as Ray
    starts fell in logging's at-fork hook: "Exception ignored in: <function _releaseLock>", and the study ran on
    to its end) is raised again 20 ms later, out of it."""
    if frame is not None and frame.f_code.co_name in _SWALLOWING:
        main = threading.main_thread().ident
        threading.Timer(0.02, signal.pthread_kill, (main, signal.SIGINT)).start()  # a wait it is in ends too
        return
    now = time.monotonic()
    if now - getattr(_ctrl_c_once, "last", -math.inf) < _CTRL_C_REPEAT_S:
        return
    _ctrl_c_once.last = now  # type: ignore[attr-defined]
    raise KeyboardInterrupt


@contextmanager
def process_pool(
    workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of `workers` spawned processes, each started with `initializer(*initargs)`. Ctrl-C (a terminal sends
    SIGINT to the whole process group) is this process's to handle, not each worker's to raise with a traceback. As
    the block ends the pool is closed and joined (the workers' finalizers run), or on an error or Ctrl-C terminated,
    a second Ctrl-C meanwhile ignored: `timeout` sends SIGINT twice, a user presses twice, and one that cut
    terminate() short left its join() waiting forever."""
    # ignored while the workers start: inherited, they ignore it from their start (spawn imports and unpickles first)
    with sigint_restored(signal.SIG_IGN):
        pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, (initializer, initargs))
    try:
        yield pool
    except BaseException:
        with sigint_restored(signal.SIG_IGN):
            pool.terminate()
            pool.join()
        raise
    pool.close()
    pool.join()


@contextmanager
def sigint_restored(during: Any = None) -> Iterator[None]:
    """SIGINT handled as before the block once it ends, whatever changed it meanwhile (Ray Tune's experiment puts its
    own handler in place); `during`: the handler in the block (signal.SIG_IGN), else the one there. Nothing changes
    outside the main thread, whose signal handlers they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT) if during is None else signal.signal(signal.SIGINT, during)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _start_worker(initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
