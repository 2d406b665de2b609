"""A study's submission, written again from a finished study: the same masks as the study's own (those tune.predict
writes: test_predict's first test), none (an earlier
one removed) for data with no hidden split to predict, and an earlier one of the same checkpoint kept where writing
it again fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from reports.checkpoints import best_checkpoint
from reports.records import read_submission
from tune.search.evaluate import write_submission

pytestmark = pytest.mark.slow


def test_a_submission_is_written_where_there_is_a_hidden_split_and_removed_where_there_is_none(
    unet_study: Path, synth_root: Path, copy_root: Path, tmp_path: Path
) -> None:
    study = Path(shutil.copytree(unet_study, tmp_path / "study"))
    assert read_submission(study) == {"checkpoint": str(best_checkpoint(unet_study)), "videos": 2}
    elsewhere = tmp_path / "hidden_release"
    shutil.move(copy_root / "hidden", elsewhere)
    (copy_root / "hidden").mkdir()  # an empty folder is no split to predict
    assert write_submission(study, copy_root) is None
    assert not (study / "submission.pt").exists() and read_submission(study) is None
    # a hidden split shipped apart (--hidden)
    assert write_submission(study, copy_root, hidden=elsewhere) == study / "submission.pt"
    written = torch.load(study / "submission.pt", weights_only=True)
    assert torch.equal(written, torch.load(unet_study / "submission.pt", weights_only=True))
    # made by the copy's own best checkpoint, the same file as the study's
    assert read_submission(study) == {"checkpoint": str(best_checkpoint(study)), "videos": 2}
    assert best_checkpoint(study).is_relative_to(study)


def test_a_submission_that_cannot_be_made_again_stays_while_its_checkpoint_is_the_best(
    unet_study: Path, synth_root: Path, tmp_path: Path
) -> None:
    """A resume that trained nothing better, where the best checkpoint no longer loads (its plugin edited since, as
    a user did): the submission that checkpoint made stays; one another checkpoint made is not left."""
    study = Path(shutil.copytree(unet_study, tmp_path / "study"))
    assert write_submission(study, synth_root) == study / "submission.pt"  # by the copy's own best checkpoint
    made, info = (study / "submission.pt").read_bytes(), read_submission(study)
    assert info is not None
    best_checkpoint(study).write_bytes(b"no longer loads")
    with pytest.raises(ValueError, match="checkpoint"):
        write_submission(study, synth_root)
    assert (study / "submission.pt").read_bytes() == made and read_submission(study) == info
    (study / "results" / "submission.json").write_text(json.dumps({**info, "checkpoint": str(tmp_path / "other.pt")}))
    with pytest.raises(ValueError, match="checkpoint"):
        write_submission(study, synth_root)
    assert not (study / "submission.pt").exists() and read_submission(study) is None
