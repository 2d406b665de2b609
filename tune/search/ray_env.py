"""How a study's Ray is set up and stopped: the environment it starts with (no usage stats, no idle workers, no
traceback of Ray's own calls a failed trial), the warnings of Ray's that tell a study's user nothing, its auth token
kept private, and its stop once the stages are done."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def ray_defaults() -> None:
    """The environment a study's Ray reads (where the user set none of it), and Ray's noise filtered out."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # With CheckpointConfig(num_to_keep=1) Ray snapshots the experiment state after every trial checkpoint, since the
    # checkpoint before it is deleted at once; that is what keeps a resume after kill -9 pointing at checkpoints that
    # exist (with num_to_keep=None, 2 of 3 kill -9 tries failed to restore). On local disk a snapshot takes ~10 ms, so
    # Ray's "snapshotting has been triggered multiple times" hint, ~15 times a run, is noise: 0 silences it alone.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # no worker a CPU prestarted for the driver's tasks (a study has none: its trials are actors, in workers of their
    # own); their start took the CPUs as the first trials were set up (a 4-trial study on 2 CPUs ended 2-3 s later)
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    # a failed trial is one line of the study's (tune.search.results), its traceback in its folder: Ray logged that
    # traceback wrapped in 30 lines of its own calls, each failed trial, amid the trials' tables
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # a stage's lines are its own (tune.search.progress, with verbose=0): Ray's new output engine printed its
    # experiment's box, a TensorBoard command into its session's temporary folder and its own error blocks even at 0
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ray's lines of its workers' ("(raylet) A worker died ..."), written to a log file: without colour codes
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    filter_ray_noise()


def filter_ray_noise() -> None:
    """Ray's warnings and lines of _RAY_NOISE left out of this process's log (the driver's; a trial's process, as
    its module is imported, before Ray restores a trial in it)."""
    for name in _RAY_NOISE:
        logging.getLogger(name).addFilter(_not_noise)  # (once: a filter already there is not added again)


# Ray's loggers, each with the starts of warnings of theirs that tell a study's user nothing:
# - at each local start, that token authentication is on (its default): it stays on, and the dashboard's line says
#   where the token is (its warning where a cluster runs without a token is kept);
# - as a stage resumes after a kill, that the trials which had not reported yet have no metrics files: they start
#   again, and the study reads its own results, not Ray's;
# - at a stage's end, the ids of Ray's trials that failed ("Trials did not complete: [train_trial_4fe1...]"): each
#   was said as it failed, and the summary counts them
_RAY_NOISE = {
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics for",),
    # - in a trial's process, as a resume restores a trial: "Restored on IP from checkpoint: Checkpoint(...)" (INFO,
    #   its worker's; the stage says "trial ID goes on from its checkpoint of epoch N"): it came after the stop's
    #   line where a stop came as trials restored
    "ray.tune.trainable.trainable": ("Restored on",),
    "ray.tune.tune": (
        "Experiment has been interrupted, but the most recent state was saved",  # its Tuner.restore line
        "Trials did not complete:",
    ),
}


def _not_noise(record: logging.LogRecord) -> bool:
    """A logging filter: False for the warnings of _RAY_NOISE."""
    return not record.getMessage().startswith(_RAY_NOISE.get(record.name, ()))


def private_token() -> None:
    """Ray writes the dashboard's token to ~/.ray/auth_token readable by all; on a shared login node that
    hands the dashboard to anyone. Owner-only, like ssh's keys."""
    token = Path.home() / ".ray" / "auth_token"
    if token.is_file() and token.stat().st_mode & 0o077:
        token.chmod(0o600)


def stop_local_ray() -> None:
    """Stop the local Ray this process started, once its stages are done (the evaluation and the report need none of
    it). Ray's own stop at exit sleeps 0.5 s first (for its workers' last log lines: a study's were printed as its
    trials ended), then gives its autoscaler monitor 1 s to end on SIGTERM, which it never does there (its signal
    handler reports to the GCS, stopped just before): 1.5 s of each study's 2 s exit. A local Ray of fixed size has
    nothing to scale: its monitor is killed first."""
    import ray
    from ray._private import ray_constants, worker

    node = getattr(worker, "_global_node", None)
    monitors = node.all_processes.pop(ray_constants.PROCESS_TYPE_MONITOR, []) if node and node.is_head() else []
    for info in monitors:  # (a Ray without these names: its own stop, as at exit)
        info.process.kill()
        info.process.wait()
    ray.shutdown()
