"""Peak memory of one mask-predictor evaluation or training step at full resolution, on the CPU.

    python -m benchmarks.predictor_memory [--embed 0] [--horizon 1] [--batch 32] [--train] [--motion-input]
                                          [--checkpoint-steps]

Each run is a fresh process (the peak resident set, ru_maxrss, only grows): random class-id masks of 11
frames at 160x240, the smoke budget's smallest predictor (hid_s 4, hid_t 16, n_s 2, n_t 2), copy prior.
Evaluation: one forward pass without gradients over --batch clips (a trial's eval_batch_size is 32).
Training (--train): forward over masks 12-22 (all_frames, as with future_weight > 0), the trainer's loss, backward.
Prints the peak and the process's size before the step (torch and the model).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from benchmarks.args import at_least, bad_input, count
from data.classes import FRAME_HEIGHT, FRAME_WIDTH, N_INPUT_FRAMES, NUM_CLASSES
from data.files import run_command
from models.mask_predictor import MaskPredictor, MaskPredictorConfig
from tune.training.config import TrainConfig
from tune.training.tasks import task_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.predictor_memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--embed", type=at_least(0), default=0, help="class embedding channels; 0: one-hot")
    parser.add_argument("--horizon", type=count, default=1)
    parser.add_argument("--batch", type=count, default=32)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--motion-input", action="store_true")
    parser.add_argument("--checkpoint-steps", action="store_true", help="recompute each rolled-out step in backward")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)  # the same masks every run: the motion rule's work depends on them
    with bad_input(parser):  # the config's own bounds (a horizon past the 11 frames to predict)
        cfg = MaskPredictorConfig(
            embed=args.embed,
            hid_s=4,
            hid_t=16,
            n_s=2,
            n_t=2,
            horizon=args.horizon,
            motion_input=args.motion_input,
            checkpoint_steps=args.checkpoint_steps,
        )
    model = MaskPredictor(cfg)
    shape = (args.batch, N_INPUT_FRAMES, FRAME_HEIGHT, FRAME_WIDTH)
    masks = torch.randint(0, NUM_CLASSES, shape, dtype=torch.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if args.train:
        target = torch.randint(0, NUM_CLASSES, (args.batch, 11, FRAME_HEIGHT, FRAME_WIDTH), dtype=torch.uint8)
        training_loss(model, masks, target).backward()
    else:
        with torch.no_grad():
            model.eval()(masks)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = time.perf_counter() - started
    step = "training step" if args.train else "evaluation"
    print(
        f"{step}, embed {args.embed}, horizon {args.horizon}, batch {args.batch}"
        f"{', steps checkpointed' if args.checkpoint_steps else ''}: peak {peak / 2**20:.2f} GiB, {seconds:.1f} s"
    )
    print(f"(before the step {before / 2**20:.2f} GiB)")
    return 0


def training_loss(model: MaskPredictor, masks: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The trainer's loss on masks 12-22 (future_weight 1); the logits are not held past it, as in the trainer."""
    out = model(masks, all_frames=True)
    return task_for("mask_predictor").loss(out, target, TrainConfig(future_weight=1.0), None)


if __name__ == "__main__":
    run_command(main)
