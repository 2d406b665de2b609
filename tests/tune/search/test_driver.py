"""Parts of the driver that need no Ray cluster: which splits a study decodes, the dashboard token made
private and the state a resume trusts."""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from tune.search.config import SearchConfig
from tune.search.driver import _private_token, check_reachable, init_ray, splits_used
from tune.search.spaces import get_space
from tune.search.stages import check_state, check_trusted


@pytest.mark.parametrize(
    ("space", "splits"),
    [
        ("unet", ["train", "val"]),  # a broken unlabeled video cannot fail a unet study
        ("dual_phase", ["unlabeled", "train", "val"]),
        ("mask_space", ["train", "val", "unlabeled"]),  # unlabeled: through the segmenter's pseudo-labels
        ("dynamics", ["train", "val", "unlabeled"]),
    ],
)
def test_a_study_decodes_only_the_splits_its_stages_read(space: str, splits: list[str]) -> None:
    assert splits_used(get_space(space)) == splits


def test_the_dashboard_token_is_made_readable_by_its_owner_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)
    _private_token()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def _stage_folder(tmp_path: Path) -> Path:
    stage = tmp_path / "study" / "main"
    stage.mkdir(parents=True)
    (stage / "tuner.pkl").write_bytes(b"state")
    return stage


def test_a_private_stage_folder_may_be_restored(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    (stage / "searcher-state.pkl").write_bytes(b"state")
    # every file a restore unpickles was checked, with the folders holding them
    assert check_trusted(stage) == [stage.parent, stage, stage / "searcher-state.pkl", stage / "tuner.pkl"]


def test_a_state_file_others_can_write_is_refused(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    (stage / "tuner.pkl").chmod(0o664)
    with pytest.raises(ValueError, match=r"tuner\.pkl is writable by group or others.*`chmod go-w .*tuner\.pkl`"):
        check_trusted(stage)


def test_a_group_writable_study_folder_is_refused(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    stage.parent.chmod(0o775)
    with pytest.raises(ValueError, match=r"refusing to resume: .*study is writable by group or others"):
        check_trusted(stage)


@pytest.mark.skipif(os.geteuid() != 0, reason="planting a file of another user needs root")
def test_a_state_file_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    os.chown(stage / "tuner.pkl", 65534, 65534)
    with pytest.raises(ValueError, match=r"tuner\.pkl is owned by uid 65534, not you"):
        check_trusted(stage)


def test_a_damaged_ray_state_file_is_refused_before_the_restore(tmp_path: Path) -> None:
    stage = _stage_folder(tmp_path)
    state = {
        "tuner.pkl": pickle.dumps({"trainable": "train_trial", "param_space": {}}),
        "experiment_state-2026-12-06_01-00-20.json": json.dumps({"trial_data": [], "runner_data": {}}).encode(),
        "search_gen_state-2026-12-06_01-00-20.json": pickle.dumps({"finished": False, "counter": 3}),
        "searcher-state-2026-12-06_01-00-20.pkl": pickle.dumps({"study": list(range(100))}),
    }
    for name, data in state.items():
        (stage / name).write_bytes(data)
    (stage / "experiment_state-2026-12-05_09-00-00.json").write_bytes(b"{")  # an older state: Ray reads the newest
    assert check_state(stage) == [stage / name for name in state]
    for name, data in state.items():
        for damaged in (data[: len(data) // 2], b""):  # cut short while written; emptied by a full disk
            (stage / name).write_bytes(damaged)
            with pytest.raises(
                ValueError, match=rf"^cannot resume: {stage / name} is damaged \({len(damaged)} bytes; .*restore it"
            ):
                check_state(stage)
        (stage / name).write_bytes(data)


def test_an_address_where_nothing_answers_is_refused_before_ray_tries_it_for_ever() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # a head node's port (what Ray makes of it is Ray's)
        check_reachable(f"ray://127.0.0.1:{port}")
        check_reachable(f"localhost:{port}")  # a name, looked up
    with pytest.raises(
        ValueError, match=rf"^--address 127.0.0.1:{port}: no Ray cluster answers there \(nothing listens"
    ):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match=r"\(no host named 'nohost\.invalid'\); start one with `ray start --head`"):
        check_reachable("ray://nohost.invalid:10001")
    with pytest.raises(ValueError, match=r"\(no host named 'x{64}\.example'\)"):  # a label too long to look up
        check_reachable(f"{'x' * 64}.example:6379")
    for ray_says in ("auto", "::1", "head"):  # a Ray on this machine, a bare IPv6 address, no port: Ray's own
        check_reachable(ray_says)


def test_a_name_lookup_that_hangs_is_cut_at_the_same_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that does not answer (the network's, not this code's) holds getaddrinfo for far longer than the
    check's limit: the lookup counts within it."""
    answered = threading.Event()

    def no_answer(*args: object, **kwargs: object) -> None:
        answered.wait(30)
        raise socket.gaierror("no answer")  # once the test lets go: the check's thread, left behind, ends quietly

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    started = time.monotonic()
    try:
        with pytest.raises(
            ValueError, match=r"^--address slow\.example:6379: .*\(no answer from slow\.example:6379 in 1 s\)"
        ):
            check_reachable("slow.example:6379", timeout_s=1)
        assert time.monotonic() - started < 3
    finally:
        answered.set()


def test_rays_warnings_that_tell_a_study_s_user_nothing_are_left_out(local_ray: None) -> None:
    """After a kill, a resumed stage's trials that had not reported have no metrics files: Ray warns so, and the
    study reads its own results. That warning is left out; Ray's others are kept."""
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)  # (the suite's Ray logs errors only)
    try:
        init_ray(SearchConfig())  # the running Ray is kept; the filters are set
        logger.warning("Failed to fetch metrics for 2 trial(s):\n- train_trial_ffb3247b: FileNotFoundError(...)")
        logger.warning("Could not find any result for this experiment")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == ["Could not find any result for this experiment"]
