"""Parts of the driver that need no Ray cluster: which splits a study decodes, the dashboard token made
private and the state a resume trusts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tune.search.driver import _private_token, splits_used
from tune.search.spaces import get_space
from tune.search.stages import check_trusted


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
