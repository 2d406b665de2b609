"""A study on a Ray cluster (--address), checked before its first trial: every node a trial fits on sees the study's
folder (--out, where its trials write their checkpoints and results) and its data (--data, which each trial reads at
the same path), and can run segtune's code. A node that does not failed each trial it ran with Ray's storage error,
or the data's, and a cluster of such nodes and others ran the study with some of its trials failed; now the start is
refused in one line naming the nodes. Kept free of torch and Ray at import: a node's check imports this module in a
fresh worker."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

from tune.search.keys import NODE_CHECK


def what_a_node_sees(marker: str, token: str, data_root: str, splits: list[str]) -> tuple[str, str, str]:
    """Run on a node: its host name, why it does not see the driver's marker (the same folder, not a namesake on a
    disk of its own; "" where it does), why it does not have the data root's splits ("" where it does)."""
    try:
        folder = "" if Path(marker).read_text() == token else "another folder of that name is there"
    except FileNotFoundError:
        folder = "none is there, or another of that name"
    except OSError as err:
        folder = f"cannot read it: {err.strerror}"
    data = ""
    for split in ["", *splits]:
        try:
            os.listdir(Path(data_root) / split)
        except OSError as err:
            data = f"{Path(data_root) / split}: {err.strerror}"
            break
    return socket.gethostname(), folder, data


def check_nodes_see(
    study_dir: Path, data_root: Path, splits: list[str], trial: dict[str, float], timeout_s: float = 60.0
) -> list[str]:
    """Refuse (ValueError) a study whose folder or data (the root and its `splits`) some node that can run a trial
    (one with the resources `trial` names, Ray's names: CPU, GPU) does not see, or that cannot run this check (its
    Python lacks segtune), naming them and what to do; returns a warning line for each node that did not answer in
    `timeout_s` or left the cluster as it was asked, which is not refused. A node no trial fits (a head of no CPUs, a
    CPU node in a study of GPU trials) is not asked."""
    import ray
    from ray.exceptions import RayTaskError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = {
        n["NodeID"]: str(n["NodeManagerAddress"])
        for n in ray.nodes()
        if n["Alive"] and all(n["Resources"].get(name, 0) >= need for name, need in trial.items())
    }
    token = secrets.token_hex(8)
    marker = study_dir / f"{NODE_CHECK}{token}"  # a name of its own: no node reads a namesake cached before
    marker.write_text(token)
    look: Any = ray.remote(num_cpus=0, max_retries=0)(what_a_node_sees)
    answers, failed, warnings = {}, {}, []
    try:
        asked = {
            look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                str(marker), token, str(data_root), splits
            ): node
            for node in nodes
        }
        ready, late = ray.wait(list(asked), num_returns=len(asked), timeout=timeout_s)
        for ref in ready:
            try:
                answers[asked[ref]] = ray.get(ref)
            except RayTaskError as err:  # its worker could not import the check or run it: nor would a trial run
                failed[asked[ref]] = " ".join(str(err.cause).split()) or type(err.cause).__name__
            except ray.exceptions.RayError as err:  # the node left, its worker died: said, not refused
                warnings.append(f"warning: node {_name(nodes, asked[ref])} could not be asked: {type(err).__name__}")
    finally:
        marker.unlink(missing_ok=True)
    for ref in late:
        ray.cancel(ref, force=True)
        warnings.append(
            f"warning: node {_name(nodes, asked[ref])} did not answer in {timeout_s:.0f} s whether it sees {study_dir} "
            f"and {data_root}: not checked"
        )
    problems = [
        f"node {_name(nodes, node, host)} does not see the study's folder {study_dir} ({why}): its trials write their "
        "checkpoints and results there, so --out must be storage every node sees at the same path (NFS, a shared mount)"
        for node, (host, why, _) in answers.items()
        if why
    ]
    problems += [
        f"node {_name(nodes, node, host)} does not have the data ({why}): each trial reads the data at the same path "
        "(copy it to every node there, or give --data on shared storage)"
        for node, (host, _, why) in answers.items()
        if why
    ]
    problems += [
        f"node {_name(nodes, node)} cannot run segtune's code ({why}): install it in the Python every node's Ray runs"
        for node, why in failed.items()
    ]
    if problems:
        raise ValueError(f"the study cannot run on this cluster: {'; '.join(problems)}")
    return warnings


def _name(nodes: dict[str, str], node: str, host: str = "") -> str:
    """A node in words: its address, its host name where known, the start of its ID (nodes of one machine share the
    address)."""
    return f"{nodes[node]} ({host + ', ' if host else ''}ID {node[:8]})"
