"""The search joins an existing two-node Ray cluster (both nodes on this machine) and runs trials on both; without
--address it starts a Ray of its own, of its plan's size."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
from ray._private import worker
from ray.cluster_utils import Cluster

from tests.small_disk import on_small_disk
from tune.search.cli import main
from tune.search.config import SearchConfig
from tune.search.driver import init_ray, run_search
from tune.search.ray_env import stop_local_ray
from tune.search.resources import Cluster as LocalCluster
from tune.search.resources import Node

pytestmark = pytest.mark.slow


def test_trials_run_on_both_nodes_of_a_cluster(
    own_ray: None,
    synth_root: Path,
    tmp_path: Path,
    own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_prestart_worker_first_driver", "1")
    monkeypatch.delenv("RAY_prestart_worker_first_driver")  # unset, as for a user (an earlier study here set it)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        cfg = SearchConfig(
            space="unet",
            data=str(synth_root),
            budget="smoke",
            samples=2,  # one trial a node: the two start together, each node's one CPU taken by one
            out=str(tmp_path),
            name="c",
            address=cluster.address,
        )
        assert run_search(cfg) == 0
        trials = pd.read_parquet(tmp_path / "c" / "results" / "trials.parquet")
        ran = trials[trials["status"].isin(["completed", "stopped"])]
        assert len(ran) == 2
        assert ran["node_id"].nunique() == 2
        assert len({node["NodeID"] for node in ray.nodes() if node["Alive"]}) == 2  # the cluster it joined: kept
        # a study without --address beside the running cluster starts a Ray of its own, of the size its trials were
        # planned for (it was refused: Ray joined the cluster it found here, which takes no num_cpus)
        ray.shutdown()
        assert init_ray(dataclasses.replace(cfg, address=None, dashboard=False), LocalCluster((Node(cpus=3, gpus=0),)))
        assert len(ray.nodes()) == 1 and ray.cluster_resources()["CPU"] == 3
        # and no workers prestarted for the driver's tasks (a worker a CPU): a study has none, its trials are actors
        # in workers of their own, and those idle ones took the CPUs as its first trials were set up. They start as
        # the driver joins, inside ray.init
        time.sleep(1)
        assert _idle_workers(ray.nodes()[0]["ObjectStoreSocketName"]) == []
        # the Ray a study started is stopped once its stages are done, its autoscaler monitor killed, not given a
        # second to end on a SIGTERM it does not end on
        node = worker._global_node
        assert node is not None and "monitor" in node.all_processes
        started = [info.process for infos in node.all_processes.values() for info in infos]
        assert len(started) >= 3  # (raylet, GCS, monitor...)
        stop_local_ray()
        assert not ray.is_initialized() and all(process.poll() is not None for process in started)
        # a third node that sees neither the study's folder nor its data (its own empty disk at their path, as a
        # machine without the shared storage): the start is refused in one line naming it, before any trial (last:
        # where no mount namespace can be made, the test skips here)
        ray.init(address=cluster.address)  # (the driver joins it again)
        capsys.readouterr()
        shared = tmp_path / "shared"
        data = Path(shutil.copytree(synth_root, shared / "data"))
        ray_start = [str(Path(sys.executable).parent / "ray"), "start", "--address", cluster.address, "--num-cpus", "1"]
        blind = subprocess.Popen(
            on_small_disk(str(shared), "1m", [*ray_start, "--block", "--disable-usage-stats"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its group: the node's processes, ended together
        )
        try:
            began = time.monotonic()
            while len([node for node in ray.nodes() if node["Alive"]]) < 3:
                assert blind.poll() is None and time.monotonic() - began < 180, "the third node did not start"
                time.sleep(0.2)
            args = ["--space", "unet", "--data", str(data), "--budget", "smoke", "--out", str(shared / "out")]
            assert main([*args, "--name", "b", "--address", cluster.address, "--no-dashboard"]) == 2
        finally:
            os.killpg(blind.pid, signal.SIGKILL)
            blind.wait()
        err = capsys.readouterr().err
        study = shared / "out" / "b"
        assert re.search(
            rf"^error: the study cannot run on this cluster: node [\d.]+ \(\S+, ID \w{{8}}\) does not see the study's "
            rf"folder {study} \(none is there, or another of that name\): .* --out must be storage every node sees "
            rf".*; node [\d.]+ \(\S+, ID \w{{8}}\) does not have the data \({data}: No such file or directory\): ",
            err,
            flags=re.M,
        ), err
        assert err.count("\n") == 1 and not (study / "results").exists()  # one line; no trial ran
    finally:
        ray.shutdown()
        cluster.shutdown()


def _idle_workers(store: str) -> list[str]:
    """The Python workers started by the raylet of the object store `store` (its socket's path), its agents left
    out; read in /proc."""
    processes = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            processes[int(pid)] = (int(stat.rsplit(")", 1)[1].split()[1]), Path(f"/proc/{pid}/cmdline").read_text())
        except (OSError, IndexError, ValueError):
            continue  # (it ended as it was read)
    raylets = [pid for pid, (_, line) in processes.items() if "raylet" in line.split("\0")[0] and store in line]
    assert len(raylets) == 1, raylets
    return [
        line
        for parent, line in processes.values()
        if parent == raylets[0] and ("default_worker.py" in line or line.startswith("ray::IDLE"))
    ]
