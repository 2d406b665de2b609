"""One plan decides a study's resources: each trial's GPUs, its share of a node's CPUs (and torch threads),
trials at once, compiling; a request no node can satisfy is refused before any trial. On real Ray clusters
started with the sizes the issue names."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd
import pytest
import ray

from reports.schema import CPUS, GPUS, TORCH_THREADS
from tune.search.budget import budget_for
from tune.search.config import SearchConfig
from tune.search.driver import run_search
from tune.search.ray_env import stop_local_ray
from tune.search.resources import Cluster, Node, compile_pays, plan_resources

ONE_GPU_16 = Cluster((Node(16, 1),))
CPU_2 = Cluster((Node(2, 0),))


def test_four_packed_trials_share_a_16_cpu_node_4_cpus_each() -> None:
    resources, budget = plan_resources(ONE_GPU_16, "default", gpus_per_trial=0.25, driver_gpus=1)
    assert (resources.gpus_per_trial, resources.cpus_per_trial, resources.threads) == (0.25, 4.0, 4)
    assert resources.concurrent == 4 and resources.device == "cuda" and resources.memory_share == 0.25
    assert budget.name == "default" and budget.widths == budget_for("default", gpu=True).widths
    assert "the study's own work" not in resources.describe()


def test_a_driver_without_a_gpu_does_the_studys_own_work_on_its_cpus_and_says_so() -> None:
    """On a Ray cluster whose GPUs are on other nodes than the driver's (--address from a CPU login node), the
    pseudo-labels, the best model's evaluation and the submission run on the driver's CPUs, not on a GPU it
    does not have; the plan says so before anything starts."""
    resources, _ = plan_resources(ONE_GPU_16, "default", gpus_per_trial=0.25, driver_gpus=0)
    assert resources.on_gpu and resources.device == "cpu"
    assert resources.describe().endswith(
        "the study's own work (pseudo-labels, the best model's evaluation, the submission) runs on this machine's "
        "CPUs: it has no GPU (run the study from a GPU node for it to run there)"
    )


def test_a_whole_gpu_a_trial_by_default_where_the_cluster_has_gpus() -> None:
    resources, _ = plan_resources(Cluster((Node(16, 2), Node(8, 1))), "smoke")
    assert resources.gpus_per_trial == 1.0 and resources.concurrent == 3
    assert resources.cpus_per_trial == 8.0  # the smallest share: 16 CPUs over 2 GPUs, 8 over 1


def test_cpu_trials_take_one_cpu_each_unless_capped() -> None:
    resources, budget = plan_resources(CPU_2, "smoke")
    assert (resources.gpus_per_trial, resources.cpus_per_trial, resources.concurrent) == (0.0, 1.0, 2)
    assert resources.device == "cpu" and not resources.compile and budget.widths == (4,)
    capped, _ = plan_resources(Cluster((Node(16, 0),)), "smoke", max_concurrent=4)
    assert (capped.cpus_per_trial, capped.concurrent) == (4.0, 4)
    given, _ = plan_resources(Cluster((Node(16, 0),)), "smoke", cpus_per_trial=3)
    assert (given.cpus_per_trial, given.concurrent, given.threads) == (3.0, 5, 3)


@pytest.mark.parametrize(
    ("cluster", "asked", "message"),
    [
        (
            CPU_2,
            {"gpus_per_trial": 2},
            "--gpus-per-trial 2 asks more than any one node has (this machine has 2 CPUs and 0 GPUs)",
        ),
        (CPU_2, {"gpus_per_trial": 0.5}, "this machine has 2 CPUs and 0 GPUs"),
        (CPU_2, {"cpus_per_trial": 64}, "no trial can start: 0 GPU (the default) --cpus-per-trial 64 asks more than"),
        (CPU_2, {"cpus_per_trial": 0}, "--cpus-per-trial 0: CPUs per trial must be > 0"),
        (ONE_GPU_16, {"gpus_per_trial": 2}, "has 16 CPUs and 1 GPUs"),
        (Cluster((Node(8, 1), Node(8, 1))), {"gpus_per_trial": 2}, "on 2 nodes (the largest: 8 CPUs, 1 GPUs)"),
        (ONE_GPU_16, {"gpus_per_trial": 1.5}, "more than one GPU per trial must be a whole number"),
        (ONE_GPU_16, {"gpus_per_trial": -1}, "GPUs per trial must be >= 0"),
    ],
)
def test_a_request_no_node_can_satisfy_is_refused(cluster: Cluster, asked: dict, message: str) -> None:
    with pytest.raises(ValueError, match=r"no trial can start|must be") as caught:
        plan_resources(cluster, "smoke", **asked)
    assert message in str(caught.value)


def test_compiling_pays_where_a_trial_trains_long_enough_and_only_on_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    default = budget_for("default", gpu=True)
    assert not compile_pays(budget_for("smoke", gpu=True))
    assert compile_pays(dataclasses.replace(default, epoch_samples=10**6))
    assert not compile_pays(dataclasses.replace(default, epoch_samples=10))
    monkeypatch.setattr("tune.search.resources.COMPILE_SECONDS", 0.0)  # compiling free: it pays for every budget
    assert compile_pays(budget_for("smoke", gpu=False))
    assert plan_resources(ONE_GPU_16, "smoke", gpus_per_trial=0.25, driver_gpus=1)[0].compile
    assert not plan_resources(CPU_2, "smoke")[0].compile  # never on CPUs


# a Ray of 16 CPUs starts 16 idle workers at once by default: on the 2-core machine seconds of nothing
NO_PRESTART = {"enable_worker_prestart": False}


@pytest.mark.slow
def test_a_ray_cluster_of_16_cpus_and_a_gpu_is_planned_as_4_packed_trials_of_4_cpus(own_ray: None) -> None:
    ray.init(num_cpus=16, num_gpus=1, include_dashboard=False, logging_level=logging.ERROR, _system_config=NO_PRESTART)
    try:
        cluster = Cluster.of_ray()
        assert cluster.joined and (cluster.cpus, cluster.gpus) == (16, 1)
        resources, _ = plan_resources(cluster, "default", gpus_per_trial=0.25)
        assert (resources.cpus_per_trial, resources.concurrent) == (4.0, 4)
    finally:
        stop_local_ray()


@pytest.mark.slow
def test_trials_of_a_study_on_a_16_cpu_ray_get_their_share_and_its_threads(
    own_ray: None, synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    ray.init(num_cpus=16, include_dashboard=False, logging_level=logging.ERROR, _system_config=NO_PRESTART)
    try:
        cfg = SearchConfig(
            space="unet",
            data=str(synth_root),
            budget="smoke",
            samples=2,  # each trial's share is a quarter (of 4 at once) all the same: half the work on 2 cores
            max_concurrent=4,
            out=str(tmp_path),
            name="r",
            dashboard=False,
            overrides=("set epoch_samples=2", "set input_scale=0.5"),  # 16 threads on this test's 2 cores: little work
        )
        assert run_search(cfg) == 0
    finally:
        stop_local_ray()
    trials = pd.read_parquet(tmp_path / "r" / "results" / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "r" / "results" / "epochs.parquet")
    assert len(trials) == 2 and (trials[CPUS] == 4).all() and (trials[GPUS] == 0).all()
    assert len(epochs) >= len(trials) and (epochs[TORCH_THREADS] == 4).all()
