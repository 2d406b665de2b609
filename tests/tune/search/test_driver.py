"""Parts of the driver that need no Ray cluster: which splits a study decodes, and the dashboard token
made private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tune.search.driver import _private_token, splits_used
from tune.search.spaces import get_space


@pytest.mark.parametrize(
    ("space", "splits"),
    [
        ("unet", ["train", "val"]),  # a broken unlabeled video cannot fail a unet study
        ("dual_phase", ["unlabeled", "train", "val"]),
        ("mask_space", ["train", "val", "unlabeled"]),  # unlabeled: through the segmenter's pseudo-labels
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
