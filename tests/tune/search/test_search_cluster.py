"""The search joins an existing two-node Ray cluster (both nodes on this machine) and runs trials on both."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from tune.search.config import SearchConfig
from tune.search.driver import init_ray, run_search
from tune.search.resources import Cluster as LocalCluster
from tune.search.resources import Node

pytestmark = pytest.mark.slow


def test_trials_run_on_both_nodes_of_a_cluster(
    own_ray: None, synth_root: Path, tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
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
        assert len({node["NodeID"] for node in ray.nodes() if node["Alive"]}) == 2
        # a study without --address beside the running cluster starts a Ray of its own, of the size its trials were
        # planned for (it was refused: Ray joined the cluster it found here, which takes no num_cpus)
        ray.shutdown()
        init_ray(dataclasses.replace(cfg, address=None, dashboard=False), LocalCluster((Node(cpus=3, gpus=0),)))
        assert len(ray.nodes()) == 1 and ray.cluster_resources()["CPU"] == 3
    finally:
        ray.shutdown()
        cluster.shutdown()
    trials = pd.read_parquet(tmp_path / "c" / "results" / "trials.parquet")
    ran = trials[trials["status"].isin(["completed", "stopped"])]
    assert len(ran) == 2
    assert ran["node_id"].nunique() == 2
