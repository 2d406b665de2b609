"""A study on a Ray cluster (--address), checked before its first trial: every node that can run a trial sees the
study's folder (--out, where its trials write their checkpoints and results) and its data root (--data, which each
trial reads at the same path). A node that does not failed each trial it ran with Ray's storage error, or the
data's, and a cluster of such nodes and others ran the study with half its trials failed; now the start is refused
in one line naming the nodes. Kept free of torch: a node's check imports this module in a fresh worker."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

MARKER = ".node_check"  # in the study's folder while the check runs: what every node must read back


def what_a_node_sees(marker: str, token: str, data_root: str) -> tuple[str, bool, bool]:
    """Run on a node: its host name, whether it reads the driver's marker (the same folder, not a namesake on a disk
    of its own), whether the data root is a folder there."""
    try:
        seen = Path(marker).read_text() == token
    except OSError:
        seen = False
    return socket.gethostname(), seen, Path(data_root).is_dir()


def check_nodes_see(study_dir: Path, data_root: Path, trial: dict[str, float], timeout_s: float = 60.0) -> list[str]:
    """Refuse (ValueError) a study whose folder or data root some node that can run a trial (one with the resources
    `trial` names, Ray's names: CPU, GPU) does not see, naming them and what to do; returns a warning line for each
    node that did not answer in `timeout_s` (busy starting workers, or leaving the cluster), which is not refused.
    A node no trial fits (a head of no CPUs, a CPU node in a study of GPU trials) is not asked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = {
        n["NodeID"]: n["NodeManagerAddress"]
        for n in ray.nodes()
        if n["Alive"] and all(n["Resources"].get(name, 0) >= need for name, need in trial.items())
    }
    marker, token = study_dir / MARKER, secrets.token_hex(16)
    marker.write_text(token)
    try:
        look: Any = ray.remote(num_cpus=0, max_retries=0)(what_a_node_sees)
        asked = {
            look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                str(marker), token, str(data_root)
            ): node
            for node in nodes
        }
        ready, late = ray.wait(list(asked), num_returns=len(asked), timeout=timeout_s)
        answers = {asked[ref]: ray.get(ref) for ref in ready}
    finally:
        marker.unlink(missing_ok=True)
    for ref in late:
        ray.cancel(ref, force=True)
    blind = [f"{nodes[n]} ({host}, ID {n[:8]})" for n, (host, seen, _) in answers.items() if not seen]
    no_data = [f"{nodes[n]} ({host}, ID {n[:8]})" for n, (host, _, has) in answers.items() if not has]
    problems = []
    if blind:
        problems.append(
            f"{_nodes(blind)} not see the study's folder {study_dir} (none is there, or another of that name): "
            "its trials write their checkpoints and results there, so --out must be storage "
            "every node sees at the same path (NFS, a shared mount)"
        )
    if no_data:
        problems.append(
            f"{_nodes(no_data)} not have the data root {data_root}: each trial reads the data at the same path "
            "(copy it to every node there, or give --data on shared storage)"
        )
    if problems:
        raise ValueError(f"the study cannot run on this cluster: {'; and '.join(problems)}")
    return [
        f"warning: node {nodes[node]} (ID {node[:8]}) did not answer in {timeout_s:.0f} s whether it sees {study_dir} and "
        f"{data_root}: not checked"
        for node in nodes
        if node not in answers
    ]


def _nodes(names: list[str]) -> str:
    return f"node {names[0]} does" if len(names) == 1 else f"nodes {', '.join(names)} do"
