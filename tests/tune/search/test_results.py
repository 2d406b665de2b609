"""The results writer (a Ray Tune callback), driven with Ray's own Trial and Checkpoint objects."""

from __future__ import annotations

from pathlib import Path

from ray import tune
from ray.tune.experiment import Trial

from reports.schema import CHECKPOINT, EPOCH, EPOCHS_FILE, read_results
from tune.search.keys import CHECKPOINT_NAME, TRAINING_ITERATION
from tune.search.results import ResultsWriter


def test_an_epoch_is_on_disk_before_ray_records_its_checkpoint(tmp_path: Path) -> None:
    """Ray calls on_checkpoint before its experiment state holds the checkpoint, and a resume after kill -9 goes on
    from that state with the next epoch: an epoch row still held back by the write throttle would never be written."""
    writer = ResultsWriter(
        tmp_path / "results",
        space="unet",
        stage="main",
        metric="val_iou",
        mode="max",
        max_epochs=4,
        run_values={},
        min_interval_s=3600,  # every write a result asks for is held back, on any machine
    )
    writer.setup()
    trial = Trial("train_trial", config={"lr": 0.1}, stub=True)
    writer.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        writer.on_trial_result(0, [trial], trial, {TRAINING_ITERATION: epoch, "val_iou": 0.1 * epoch})
        (tmp_path / f"ckpt{epoch}").mkdir()
        writer.on_checkpoint(0, [trial], trial, tune.Checkpoint.from_directory(tmp_path / f"ckpt{epoch}"))
        trials, epochs = read_results(tmp_path / "results")
        assert (tmp_path / "results" / EPOCHS_FILE).exists(), f"epoch {epoch} held back"
        assert sorted(epochs[EPOCH]) == list(range(1, epoch + 1)), epochs
        assert trials[CHECKPOINT].iloc[0] == str(tmp_path / f"ckpt{epoch}" / CHECKPOINT_NAME)
