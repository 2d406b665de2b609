"""The check a study on a cluster makes before its first trial, on the suite's local Ray (one node, this machine):
the node a trial fits on is asked and answers; one no trial fits on is not asked. A cluster of nodes that do not see
the study's folder is in the cluster test (tests/tune/search/test_search_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune.search.keys import NODE_CHECK
from tune.search.node_check import check_nodes_see


def test_the_nodes_a_trial_fits_on_are_asked_what_they_see(local_ray: None, synth_root: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    assert check_nodes_see(study, synth_root, ["train", "val"], {"CPU": 1, "GPU": 0}) == []
    with pytest.raises(ValueError) as refused:  # the split a trial reads is not on the node
        check_nodes_see(study, synth_root, ["train", "nowhere"], {"CPU": 1, "GPU": 0})
    said = str(refused.value)
    assert said.startswith("the study cannot run on this cluster: node ") and ", ID " in said
    assert f"does not have the data ({synth_root / 'nowhere'}: No such file or directory): each trial reads" in said
    assert "does not see the study's folder" not in said  # (it does)
    # a study of GPU trials on this node of no GPU: not asked, so not refused
    assert check_nodes_see(study, synth_root, ["nowhere"], {"CPU": 1, "GPU": 1}) == []
    assert not list(study.glob(f"{NODE_CHECK}*"))  # the file every node read back: removed
