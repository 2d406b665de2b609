"""What a study's trials run on, decided once per run of a study: GPUs and CPUs per trial, trials at once,
each trial's device, torch threads, the memory a trial may hold its data in, and whether it compiles.

`plan_resources` decides from the study's flags and the cluster it will run on (`Cluster`: this machine
before Ray starts, or the nodes of the Ray cluster a study joins), and refuses, in one line naming what was
asked and what the cluster has, a request that no node can satisfy (Ray would leave every trial PENDING for
ever). Nothing further in asks `torch.cuda.is_available()`: the trainable, the pseudo-labels and the final
evaluation take their device from the plan (docs/search.md, "Resources").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from tune.search.budget import Budget, budget_for
from tune.training.tasks.base import HOLD_ENV

# torch.compile pays when a trial trains long enough to win back its compile time. A trial trains at least the
# budget's grace period (ASHA's first rung) on epoch_samples samples an epoch. Measured on an H200 (2026-12-04,
# benchmarks/main_job.py, 4 quarter-GPU trials uncompiled): the frame predictor at input scale 1, batch 16, trained
# at 160-180 samples/s a trial, at scale 0.5, batch 64 at 800. Not measured yet: the compile time and speed-up of
# the searched models (benchmarks/gpu_suite.sh's stream step prints them, --compile-cost); the two below are
# estimates, under which compiling does not pay for the default GPU budget (4 epochs of 2,000 samples: 47 s).
COMPILE_SECONDS = 40.0  # compiling a model's training and evaluation graphs (estimate)
COMPILE_SPEEDUP = 1.25  # uncompiled seconds per step / compiled (estimate)
UNCOMPILED_SAMPLES_PER_S = 170.0  # a packed trial's training speed uncompiled, the slowest configurations searched
HOLD_SHARE = 0.5  # of a trial's share of its GPU's memory, what it may hold its data in (the rest: the model)


@dataclass(frozen=True)
class Node:
    cpus: float
    gpus: float


@dataclass(frozen=True)
class Cluster:
    """The alive nodes a study's trials can run on."""

    nodes: tuple[Node, ...]
    joined: bool = False  # an existing Ray cluster (--address, or one started before the study)

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    def describe(self) -> str:
        where = "the Ray cluster" if self.joined else "this machine"
        per_node = (
            ""
            if len(self.nodes) < 2
            else f" on {len(self.nodes)} nodes (the largest: "
            + (f"{max(n.cpus for n in self.nodes):g} CPUs, {max(n.gpus for n in self.nodes):g} GPUs)")
        )
        return f"{where} has {self.cpus:g} CPUs and {self.gpus:g} GPUs{per_node}"

    @classmethod
    def local(cls) -> Cluster:
        """This machine, as a local Ray started for the study would see it."""
        return cls((Node(float(_local_cpus()), float(torch.cuda.device_count())),))

    @classmethod
    def of_ray(cls) -> Cluster:
        """The alive nodes of the running Ray cluster."""
        import ray

        nodes = tuple(
            Node(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
            for n in ray.nodes()
            if n.get("Alive")
        )
        return cls(nodes, joined=True)


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Resources:
    """Each trial's share of the cluster, and what follows from it."""

    gpus_per_trial: float  # 0: trials on CPUs; a fraction packs trials on one GPU
    cpus_per_trial: float  # what Ray reserves for a trial; its torch threads follow
    concurrent: int  # trials at once
    compile: bool  # trials torch.compile their model (on GPUs, where the budget makes it pay)
    cluster_gpus: float = 0.0  # the GPUs of the cluster the plan was made for (--gpu-hours counts them)
    cluster: str = ""  # that cluster, in words
    driver_gpu: bool = False  # the driver's machine has a CUDA GPU (on a Ray cluster, its node may have none)

    @property
    def on_gpu(self) -> bool:
        return self.gpus_per_trial > 0

    @property
    def device(self) -> str:
        """Where the study's own work (pseudo-labels, the best model's evaluation, the submission) runs: the
        driver's GPU for a study whose trials have GPUs, else its CPUs."""
        return "cuda" if self.on_gpu and self.driver_gpu else "cpu"

    @property
    def threads(self) -> int:
        """torch threads (and data threads) of a trial."""
        return max(1, int(self.cpus_per_trial))

    @property
    def memory_share(self) -> float:
        """The share of its GPU's memory a trial may use: a fraction of a GPU is a scheduling promise,
        which the trial makes a memory cap."""
        return min(1.0, self.gpus_per_trial)

    def ray_request(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}

    def describe(self) -> str:
        return f"resources: {self.in_words()}"

    def in_words(self) -> str:
        """The trials at once, each one's share, and the cluster (the run's record: run.json)."""
        on = f"{self.gpus_per_trial:g} GPU, " if self.on_gpu else ""
        own = (
            "; the study's own work (pseudo-labels, the best model's evaluation, the submission) runs on this "
            "machine's CPUs: it has no GPU (run the study from a GPU node for it to run there)"
            if self.on_gpu and not self.driver_gpu
            else ""
        )
        return (
            f"{self.concurrent} trials at once, each {on}{self.cpus_per_trial:g} CPUs "
            f"({self.threads} threads){', compiled' if self.compile else ''}; {self.cluster}{own}"
        )


def plan_resources(
    cluster: Cluster,
    budget: str,
    *,
    gpus_per_trial: float | None = None,
    cpus_per_trial: float | None = None,
    max_concurrent: int = 0,
    driver_gpus: int | None = None,
) -> tuple[Resources, Budget]:
    """Each trial's share of `cluster`, and the named budget sized to it. Without `gpus_per_trial`, a whole
    GPU where the cluster has one, else none; without `cpus_per_trial`, the CPUs of a node shared among the
    trials that fit on it at once (at least 1). `driver_gpus`: the CUDA GPUs of the driver's machine (default:
    this machine's). Raises ValueError for a request no node can satisfy."""
    gpus = (1.0 if cluster.gpus > 0 else 0.0) if gpus_per_trial is None else float(gpus_per_trial)
    _check_request(cluster, gpus, cpus_per_trial, gpus_given=gpus_per_trial is not None)
    sized = budget_for(budget, gpu=gpus > 0)
    cap = max_concurrent or sized.max_concurrent
    cpus = _cpu_share(cluster, gpus, cap) if cpus_per_trial is None else float(cpus_per_trial)
    fit = sum(_fits(node, gpus, cpus) for node in cluster.nodes)
    concurrent = max(1, min(fit, cap) if cap else fit)
    resources = Resources(
        gpus_per_trial=gpus,
        cpus_per_trial=cpus,
        concurrent=concurrent,
        compile=gpus > 0 and compile_pays(sized),
        cluster_gpus=cluster.gpus,
        cluster=cluster.describe(),
        driver_gpu=(torch.cuda.device_count() if driver_gpus is None else driver_gpus) > 0,
    )
    return resources, sized


def _check_request(cluster: Cluster, gpus: float, cpus: float | None, *, gpus_given: bool = True) -> None:
    """The flags given (the default's GPU said as such) name what a request no node can satisfy asked."""
    if gpus < 0:
        raise ValueError(f"--gpus-per-trial {gpus:g}: GPUs per trial must be >= 0")
    if cpus is not None and cpus <= 0:
        raise ValueError(f"--cpus-per-trial {cpus:g}: CPUs per trial must be > 0")
    if gpus > 1 and gpus != int(gpus):
        raise ValueError(f"--gpus-per-trial {gpus:g}: more than one GPU per trial must be a whole number")
    asked = [f"--gpus-per-trial {gpus:g}" if gpus_given else f"{gpus:g} GPU (the default)"]
    asked += [f"--cpus-per-trial {cpus:g}"] if cpus is not None else []
    if not any(_fits(node, gpus, cpus or min(1.0, node.cpus)) for node in cluster.nodes):
        raise ValueError(
            f"no trial can start: {' '.join(asked)} asks more than any one node has ({cluster.describe()})"
        )


def _fits(node: Node, gpus: float, cpus: float) -> int:
    """How many trials of `gpus` and `cpus` fit on `node` at once."""
    count = math.floor(node.cpus / cpus + 1e-9) if cpus > 0 else 0
    if gpus > 0:
        count = min(count, math.floor(node.gpus / gpus + 1e-9))
    return count


def _cpu_share(cluster: Cluster, gpus: float, cap: int) -> float:
    """A trial's CPUs: those of the node it runs on over the trials that fit there at once (its GPUs'
    trials, or the concurrency cap spread over the nodes), the smallest such share, at least 1."""
    shares = []
    cpu_slots = math.ceil(cap / len(cluster.nodes)) if cap else 0  # uncapped CPU trials: 1 CPU each
    for node in cluster.nodes:
        slots = math.floor(node.gpus / gpus + 1e-9) if gpus > 0 else cpu_slots
        if slots > 0 and node.cpus > 0:
            shares.append(math.floor(node.cpus / slots))
    return float(max(1, min(shares))) if shares else 1.0


def compile_pays(budget: Budget) -> bool:
    """Whether compiling wins back its time within a trial's shortest run (the grace period, ASHA's first
    rung): compiling saves (1 - 1/speedup) of each uncompiled second."""
    samples = budget.grace_period * (budget.epoch_samples or 1000)
    seconds = samples / UNCOMPILED_SAMPLES_PER_S
    return seconds * (1 - 1 / COMPILE_SPEEDUP) > COMPILE_SECONDS


def trial_device(resources: Resources) -> torch.device:
    """A trial's device, in the trial's process: the GPU Ray gave it (CUDA_VISIBLE_DEVICES holds it, so
    its index is 0 there), capped to the trial's share of its memory, else the CPU."""
    if not resources.on_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"this trial was given {resources.gpus_per_trial:g} GPU but its process sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, torch {torch.__version__})"
        )
    device = torch.device("cuda", torch.cuda.current_device())
    if resources.memory_share < 1:
        # a greedy configuration runs out of memory alone instead of taking its neighbours down
        torch.cuda.set_per_process_memory_fraction(resources.memory_share, device)
    return device


def hold_limit_gb(resources: Resources, device: torch.device) -> float | None:
    """What a trial may hold its data in on `device`: HOLD_SHARE of its share of the GPU's memory; None
    (the task's default) on a CPU."""
    if device.type != "cuda" or HOLD_ENV in os.environ:  # the task's default, or the user's $SEGTUNE_HOLD_GB
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    return total * resources.memory_share * HOLD_SHARE / 2**30
