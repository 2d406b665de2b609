"""What CI cannot run: the product on a CUDA GPU (`pytest -m gpu`, skipped without one). Packed trials through
the real command, each capped to its share of the GPU's memory; a compiled Trainer; tune.train and
tune.predict on CUDA, also for the object-dynamics model; bf16 numbers against fp32; the GPU meter."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from reports.schema import CPUS, GPU_BUSY, GPU_PEAK_GB, GPUS, PHASES, SETUP_S
from tune.predict import main as predict
from tune.search.cli import main as search
from tune.search.resources import Resources, trial_device
from tune.train import main as train
from tune.training.checkpoints import load_checkpoint
from tune.training.gpu_meter import GpuMeter
from tune.training.inference import ModelRunner
from tune.training.run import build_run
from tune.training.trainer import Trainer, load_data

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


# first in the file: the GPU suite's tests step runs under a time limit, and this is the check the issue needs most
@pytest.mark.slow
def test_packed_trials_of_a_mask_space_study_all_finish_on_the_gpu(
    own_ray: None, synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The product's staged study on a GPU, quarter-GPU trials: the segmenter's trials, its pseudo-labels (on
    the GPU) and the mask predictor's trials all finish, none failed, each trial capped to its share."""
    args = ["--space", "mask_space", "--data", str(synth_root), "--budget", "smoke", "--samples", "4"]
    small = ["--unlabeled", "1", "--val-videos", "1", "--set", "predictor.input_scale=0.5"]
    study = ["--gpus-per-trial", "0.25", "--out", str(tmp_path), "--name", "g", "--no-dashboard"]
    try:
        assert search([*args, *small, *study]) == 0
    finally:
        ray.shutdown()  # the command's local Ray (sized to the machine), which the tests after this one must not find
    out = capsys.readouterr().out
    assert "4 trials at once, each 0.25 GPU" in out
    trials = pd.read_parquet(tmp_path / "g" / "results" / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "g" / "results" / "epochs.parquet")
    assert len(trials) == 8 and trials["status"].isin(["completed", "stopped"]).all(), trials[["status", "failure"]]
    assert (trials[GPUS] == 0.25).all() and (trials[CPUS] >= 1).all()
    assert epochs[GPU_PEAK_GB].notna().all() and (epochs[GPU_PEAK_GB] > 0).all()
    # its end on the GPU: the best model's evaluation and the submission (segmenter, then predictor, on CUDA)
    assert torch.load(tmp_path / "g" / "submission.pt", weights_only=True).shape == (2, 160, 240)
    # each epoch's own phases (a trial's setup is not an epoch's: reports.resources.with_setup derives it)
    assert epochs[[p for p in PHASES if p != SETUP_S]].notna().all().all()
    if GpuMeter.readable(torch.device("cuda", 0)):
        assert epochs[GPU_BUSY].between(0, 1).all() and "GPU busy" in out
    print(out[out.index("results:") :])  # the summary, in the suite's log


def test_a_trial_given_a_quarter_gpu_is_capped_to_a_quarter_of_its_memory() -> None:
    resources = Resources(gpus_per_trial=0.25, cpus_per_trial=4, concurrent=4, compile=False)
    device = trial_device(resources)
    assert device.type == "cuda" and device.index is not None
    total = torch.cuda.get_device_properties(device).total_memory
    try:
        fits = torch.empty(int(total * 0.2), dtype=torch.uint8, device=device)
        del fits
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(total * 0.3), dtype=torch.uint8, device=device)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()


def test_a_batch_over_the_memory_cap_is_taken_in_parts_on_cuda(synth_root: Path, own_cache: Path) -> None:
    """A trial capped between what a batch of 2 and a batch of 16 need: its batches of 16 run out of memory, are
    taken in parts, and it trains on."""
    device = torch.device("cuda", 0)

    def peak(batch: int, fraction: float = 1.0) -> tuple[Trainer, float]:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        sets = ["width=32", f"batch_size={batch}", "epoch_samples=32", "eval_batch_size=2", "compile=false"]
        run = build_run("unet", sets, epochs=1)
        trainer = Trainer(run, load_data(run, synth_root, device, progress=False), device)
        return trainer, next(trainer.epochs())[GPU_PEAK_GB] * 2**30

    try:
        small = peak(2)[1]
        sixteen = peak(16)[1]
        total = torch.cuda.get_device_properties(device).total_memory
        assert sixteen > 2 * small, (small, sixteen)  # the activations dominate: a cap between them splits
        with pytest.warns(UserWarning, match="ran out of memory"):
            trainer, _ = peak(16, (small + sixteen) / 2 / total)
        assert trainer.micro_batches >= 2 and math.isfinite(trainer.history[-1]["train_loss"])
        print(f"batch 2 peak {small / 2**30:.2f} GiB, 16: {sixteen / 2**30:.2f}; capped: {trainer.micro_batches} parts")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()


def test_a_compiled_trainer_trains_on_cuda(synth_root: Path, tmp_path: Path, own_cache: Path) -> None:
    run = build_run("unet", ["width=8", "batch_size=2", "eval_batch_size=2", "compile=true"], epochs=2)
    trainer = Trainer(run, load_data(run, synth_root, "cuda", progress=False), "cuda")
    metrics = list(trainer.epochs())
    assert trainer.compile_error is None, trainer.compile_error
    assert all(math.isfinite(m["train_loss"]) and 0 <= m["val_iou"] <= 1 for m in metrics)


def test_train_and_predict_run_on_cuda(
    synth_root: Path, tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    common = ["--data", str(synth_root), "--device", "cuda", "--quiet"]
    assert train(["--model", "unet", "--epochs", "1", "--set", "width=8", "--out", str(out), *common]) == 0
    checkpoint = out / "checkpoint.pt"
    assert (
        predict(["--checkpoint", str(checkpoint), *common[:4], "--split", "val", "--out", str(tmp_path / "v.pt")]) == 0
    )
    masks = torch.load(tmp_path / "v.pt")
    assert masks.shape == (2, 160, 240) and masks.dtype == torch.uint8
    assert "val" in capsys.readouterr().out


def dynamics_on(device: str, root: Path, folder: Path) -> dict[str, float]:
    """The object-dynamics model on `device` through the commands: a segmenter, the model trained on its masks'
    tracks, a submission for the hidden split from it. Returns the model's last epoch."""
    common = ["--data", str(root), "--device", device, "--quiet"]
    seg = ["--model", "frame_segmenter", "--epochs", "1", "--set", "width=4", "--set", "depth=2"]
    assert train([*seg, "--out", str(folder / "seg"), *common]) == 0
    dynamics = ["--model", "object_dynamics", "--epochs", "2", "--set", "width=16", "--set", "batch_size=2"]
    segmenter = ["--segmenter", str(folder / "seg" / "checkpoint.pt")]
    assert train([*dynamics, *segmenter, "--out", str(folder / "dyn"), *common]) == 0
    checkpoint = str(folder / "dyn" / "checkpoint.pt")
    assert predict(["--checkpoint", checkpoint, *common[:4], "--split", "hidden", "--out", str(folder / "h.pt")]) == 0
    masks = torch.load(folder / "h.pt")
    assert masks.shape == (2, 160, 240) and masks.dtype == torch.uint8
    return dict(load_checkpoint(checkpoint)["history"][-1])


def test_the_object_dynamics_model_trains_and_predicts_on_cuda(
    synth_root: Path, tmp_path: Path, own_cache: Path
) -> None:
    last = dynamics_on("cuda", synth_root, tmp_path)
    assert math.isfinite(last["train_loss"]) and 0 <= last["val_iou"] <= 1 and 0 <= last["val_extrapolate_iou"] <= 1


@pytest.mark.parametrize("model", ["unet", "frame_predictor"])
def test_bf16_numbers_are_within_tolerance_of_fp32(model: str, synth_root: Path) -> None:
    torch.manual_seed(0)
    run = build_run(model, ["eval_batch_size=2"])
    from models.registry import create_model

    net = create_model(model, run.model_config).to("cuda").eval()
    frames = torch.randint(0, 256, (2, 11, 3, 160, 240), dtype=torch.uint8, device="cuda")
    with torch.no_grad():
        outputs = [ModelRunner.of_run(net, run, torch.device("cuda"), amp=amp)(frames) for amp in (False, True)]
    exact, bf16 = (out if isinstance(out, torch.Tensor) else out[0] for out in outputs)
    error = (bf16.float() - exact.float()).abs().max().item()
    scale = exact.float().abs().max().item()
    assert 0 < error <= 0.05 * scale + 1e-3, (error, scale)  # 0: the same numbers, autocast was off
    if model == "unet":  # class logits: the classes chosen agree almost everywhere
        assert (bf16.argmax(1) == exact.argmax(1)).float().mean() > 0.99


def test_the_gpu_meter_reads_a_busy_gpu() -> None:
    device = torch.device("cuda", 0)
    if not GpuMeter.readable(device):
        pytest.skip("no NVML binding (nvidia-ml-py): epochs have no GPU_BUSY here")
    meter = GpuMeter(device).start()
    x = torch.randn(8192, 8192, device=device)
    for _ in range(200):
        x = torch.tanh(x @ x.T / 8192)
    torch.cuda.synchronize()
    assert meter.busy() > 0.3
