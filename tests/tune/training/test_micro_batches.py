"""A training batch that runs out of GPU memory (a packed trial capped at its share) is taken again in parts, their
gradients accumulated: the run goes on with the same steps. CI has no GPU whose cap a batch could pass: a U-Net that
raises torch's OutOfMemoryError for a training batch over its limit stands in for one; the trainer is the real one."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch

from models import registry
from models.unet import UNet
from reports.schema import MICRO_BATCHES
from tune.training.run import build_run
from tune.training.trainer import Trainer, load_data, out_of_memory


class CappedUNet(UNet):
    """A U-Net on a GPU whose memory holds the activations of LIMIT training samples."""

    LIMIT = 2
    EVAL_LIMIT = 1000  # samples an evaluation batch may hold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > (self.LIMIT if self.training else self.EVAL_LIMIT):
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {len(x) * 0.5:.2f} GiB. GPU 0 has a total capacity of 79.1 GiB"
            )
        return super().forward(x)


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = dataclasses.replace(registry.model_entry("unet"), name="capped_unet", build=CappedUNet)
    monkeypatch.setitem(registry._MODELS, "capped_unet", entry)


def _trainer(model: str, root: Path, batch: int) -> Trainer:
    # group norm: a step's gradients do not depend on how its batch is cut (batch norm's statistics would)
    sets = ["width=4", "depth=2", "norm=group", f"batch_size={batch}", "epoch_samples=8", "hflip=false"]
    run = build_run(model, sets, epochs=2)
    return Trainer(run, load_data(run, root, "cpu", progress=False))


def test_a_batch_out_of_memory_is_taken_in_parts_with_the_same_step(
    capped: None, synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    whole = _trainer("unet", synth_root, 8)
    parts = _trainer("capped_unet", synth_root, 8)
    with pytest.warns(
        UserWarning, match=r"a batch of 8 ran out of memory \(CUDA out of memory\): capped_unet now takes"
    ):
        first = next(parts.epochs())
    # 8 -> 4 -> 2: two doublings, each said once; later steps keep the split
    assert parts.micro_batches == 4 and first[MICRO_BATCHES] == 4.0
    assert next(whole.epochs())[MICRO_BATCHES] == 1.0
    # one step an epoch: each parameter's .grad holds it (accumulated in parts, each part's loss weighted by its share)
    for (name, a), b in zip(whole.model.named_parameters(), parts.model.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None and a.grad.abs().sum() > 0, name
        assert (a.grad - b.grad).norm() <= 2e-3 * a.grad.norm(), name  # float32 sums of 300k terms, in another order
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4, msg=name)  # AdamW's step: signs of grads near 0 aside
    assert first["train_loss"] == pytest.approx(whole.history[0]["train_loss"], rel=1e-5)

    parts.save(tmp_path / "parts.pt")  # a resumed run starts with its split, and runs out no more
    resumed = Trainer.resume(tmp_path / "parts.pt", parts.data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert next(resumed.epochs())[MICRO_BATCHES] == 4.0


def test_a_single_sample_out_of_memory_fails_the_run(
    capped: None, synth_root: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CappedUNet, "LIMIT", 0)
    trainer = _trainer("capped_unet", synth_root, 2)
    with pytest.raises(torch.cuda.OutOfMemoryError), pytest.warns(UserWarning, match="in 2 parts"):
        next(trainer.epochs())


def test_an_evaluation_out_of_memory_runs_again_at_half_the_batch(
    capped: None, synth_root: Path, tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _trainer("unet", synth_root, 2)
    parts = _trainer("capped_unet", synth_root, 2)
    parts.model.load_state_dict(whole.model.state_dict())
    monkeypatch.setattr(CappedUNet, "EVAL_LIMIT", 1)  # the tiny root's 2 val videos: one at a time
    with pytest.warns(UserWarning, match=r"^evaluation ran out of memory: batches of \d+ now$") as said:
        metrics = parts.evaluate()
    halved = [str(w.message).split()[-2] for w in said]
    assert parts.eval_batch_size == 1 and halved == ["16", "8", "4", "2", "1"]  # from 32
    assert metrics == pytest.approx(whole.evaluate())
    assert parts.model.training  # back to training after it
    parts.save(tmp_path / "parts.pt")  # a resumed run evaluates at the batch that fitted
    assert Trainer.resume(tmp_path / "parts.pt", parts.data).eval_batch_size == 1
    monkeypatch.setattr(CappedUNet, "EVAL_LIMIT", 0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        parts.evaluate()


def test_cudnn_and_cublas_allocation_failures_count_as_out_of_memory() -> None:
    assert out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 9x2)"))
