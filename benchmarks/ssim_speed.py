"""Our hand-written SSIM loss term against torchmetrics' functional SSIM: values, gradients and speed.

    python -m benchmarks.ssim_speed [--batch 8] [--runs 30] [--threads 1 2] [--cuda-runs 200] [--no-cuda]

Compares three SSIMs on (B, 3, 160, 240) images in [0, 1]:

- ours: `tune.training.losses.ssim` (uniform 7x7 window, `avg_pool2d` with zero padding and
  count_include_pad, no clamping);
- tm-u7: `torchmetrics.functional.image.structural_similarity_index_measure` with
  gaussian_kernel=False, kernel_size=7, data_range=1.0 (the closest configuration to ours; it
  reflect-pads instead of zero-padding and clamps the variances at 0);
- tm-g11: the same with its defaults (gaussian window sigma 1.5, 11x11), data_range=1.0.

1. Values: SSIM of each and |ours - tm| on uniform-noise images and on realistic ones (smooth random
   images against themselves shifted by a few pixels, plus a little noise, or blurred as a frame
   predictor's output is), with the cosine similarity of the gradients of `1 - ssim` with respect to
   the prediction, which is what training sees.
2. Speed: forward + backward of `1 - ssim(pred, target)` per call, median (and quartiles) of
   `--runs` calls, on CPU with torch threads = each of `--threads`, and on CUDA in float32 (what the
   trainer does: its loss runs on `out.float()` outside autocast) and in bfloat16 if a GPU is present.
   Calls are interleaved (ours, tm-u7, tm-g11, then the reverse order, ...) so that all three see the
   same machine load when other jobs are running.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from benchmarks.args import at_least, count
from data.files import run_command
from tune.training.losses import ssim, ssim_map

HEIGHT, WIDTH = 160, 240
SsimFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def tm_uniform7(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = structural_similarity_index_measure(x, y, gaussian_kernel=False, kernel_size=7, data_range=1.0)
    assert isinstance(out, torch.Tensor)
    return out


def tm_gauss11(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = structural_similarity_index_measure(x, y, data_range=1.0)  # gaussian, sigma 1.5 -> 11x11
    assert isinstance(out, torch.Tensor)
    return out


def interior_diff(pred: torch.Tensor, target: torch.Tensor, border: int = 3) -> float:
    """|ours - tm-u7| of the mean SSIM over pixels at least `border` pixels from the edges."""
    ours = ssim_map(pred, target)
    _, theirs = structural_similarity_index_measure(
        pred, target, gaussian_kernel=False, kernel_size=7, data_range=1.0, return_full_image=True
    )
    assert isinstance(theirs, torch.Tensor) and theirs.shape == ours.shape
    crop = (..., slice(border, -border), slice(border, -border))
    return abs(float(ours[crop].mean()) - float(theirs[crop].mean()))


IMPLS: dict[str, SsimFn] = {"ours": ssim, "tm-u7": tm_uniform7, "tm-g11": tm_gauss11}


# ---------------------------------------------------------------- test images


def smooth_images(batch: int, height: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """Smooth random 'scenes' in [0, 1]: a few octaves of bicubically upsampled noise."""
    out = torch.zeros(batch, 3, height, width)
    for cells, weight in ((4, 1.0), (10, 0.5), (30, 0.25), (80, 0.12)):
        coarse = torch.rand(batch, 3, max(2, cells * height // width), cells, generator=gen)
        out += weight * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    out -= out.amin(dim=(1, 2, 3), keepdim=True)
    return (out / out.amax(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)


def shifted_pair(batch: int, dy: int, dx: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth image and the same scene moved by (dy, dx) pixels (cropped, no wrap-around), plus noise."""
    margin = 4
    big = smooth_images(batch, HEIGHT + 2 * margin, WIDTH + 2 * margin, gen)
    a = big[..., margin : margin + HEIGHT, margin : margin + WIDTH]
    b = big[..., margin + dy : margin + dy + HEIGHT, margin + dx : margin + dx + WIDTH]
    b = (b + noise * torch.randn(b.shape, generator=gen)).clamp(0, 1)
    return b.contiguous(), a.contiguous()  # (pred, target)


def cases(batch: int, seed: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    noise_a = torch.rand(batch, 3, HEIGHT, WIDTH, generator=gen)
    noise_b = torch.rand(batch, 3, HEIGHT, WIDTH, generator=gen)
    scene = smooth_images(batch, HEIGHT, WIDTH, gen)
    blurred = F.avg_pool2d(scene, 5, 1, 2, count_include_pad=False)
    return [
        ("noise vs itself", noise_a, noise_a),
        ("noise vs other noise", noise_a, noise_b),
        ("noise vs noise+N(0,.05)", (noise_a + 0.05 * torch.randn(noise_a.shape, generator=gen)).clamp(0, 1), noise_a),
        ("smooth vs itself", scene, scene),
        ("smooth vs other smooth", smooth_images(batch, HEIGHT, WIDTH, gen), scene),
        ("smooth, shift 0,1 px", *shifted_pair(batch, 0, 1, 0.0, gen)),
        ("smooth, shift 1,2 px +N(0,.02)", *shifted_pair(batch, 1, 2, 0.02, gen)),
        ("smooth, shift 3,3 px +N(0,.02)", *shifted_pair(batch, 3, 3, 0.02, gen)),
        ("smooth vs its 5x5 blur", blurred, scene),
    ]


def grad_of_loss(fn: SsimFn, pred: torch.Tensor, target: torch.Tensor) -> tuple[float, torch.Tensor]:
    leaf = pred.detach().clone().requires_grad_(True)
    value = fn(leaf, target)
    (1 - value).backward()
    assert leaf.grad is not None
    return float(value.detach()), leaf.grad.flatten()


def value_table(batch: int, seed: int) -> None:
    print(f"\n## values and gradients (batch {batch}, {HEIGHT}x{WIDTH}, float32, CPU)")
    print("|d| = |ours - tm|; |d u7| in = the same over pixels >= 3 px from the edges (ours zero-pads, tm reflects)")
    print("cos = cosine similarity of d(1 - ssim)/d pred with ours'; |g| = its norm relative to ours'")
    print("(at ssim = 1 the gradient is 0 up to rounding, so cos and |g| are shown as -)")
    header = (
        f"{'case':32} {'ours':>7} {'tm-u7':>7} {'tm-g11':>7} {'|d u7|':>7} {'|d u7| in':>9} {'|d g11|':>7} "
        f"{'cos u7':>7} {'|g| u7':>7} {'cos g11':>7} {'|g| g11':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, pred, target in cases(batch, seed):
        ours, g_ours = grad_of_loss(ssim, pred, target)
        u7, g_u7 = grad_of_loss(tm_uniform7, pred, target)
        g11, g_g11 = grad_of_loss(tm_gauss11, pred, target)
        grads = ""
        for g in (g_u7, g_g11):
            if min(ours, u7, g11) > 0.99999:
                grads += f" {'-':>7} {'-':>7}"
            else:
                cos = float(F.cosine_similarity(g_ours, g, dim=0))
                grads += f" {cos:7.3f} {float(g.norm() / g_ours.norm()):7.3f}"
        print(
            f"{name:32} {ours:7.4f} {u7:7.4f} {g11:7.4f} {abs(ours - u7):7.4f} {interior_diff(pred, target):9.4f} "
            f"{abs(ours - g11):7.4f}{grads}"
        )
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 16, 16, generator=gen)
    other = torch.rand(1, 3, 16, 16, generator=gen)
    print("\nour unit test's checks (1x3x16x16): ssim(x, x) ~= 1 (abs 1e-4) and ssim(x, rand) < 0.5")
    for label, fn in IMPLS.items():
        same, diff = float(fn(small, small)), float(fn(small, other))
        ok = abs(same - 1) <= 1e-4 and diff < 0.5
        print(f"  {label:7} ssim(x, x) = {same:.6f}  ssim(x, rand) = {diff:.4f}  -> {'pass' if ok else 'FAIL'}")


# ---------------------------------------------------------------- timing


def make_step(fn: SsimFn, pred: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    leaf = pred.detach().clone().requires_grad_(True)

    def step() -> None:
        leaf.grad = None
        (1 - fn(leaf, target)).backward()

    return step


def interleaved_times(
    steps: dict[str, Callable[[], None]], runs: int, warmup: int, timer: Callable[[Callable[[], None]], float]
) -> dict[str, list[float]]:
    """Seconds per call of each step; each round runs every step once, alternating the order."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timer(steps[name]))
    return times


def cpu_timer(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def cuda_timer(step: Callable[[], None]) -> float:
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    step()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / 1000


def print_times(label: str, times: dict[str, list[float]]) -> None:
    """Median and quartiles in ms, and the median over rounds of each call's time / ours in the same round."""
    for name, values in times.items():
        q1, med, q3 = statistics.quantiles(values, n=4)
        paired = statistics.median(t / o for t, o in zip(values, times["ours"], strict=True))
        print(f"{label:24} {name:7} {med * 1e3:9.2f} {q1 * 1e3:9.2f} {q3 * 1e3:9.2f} {paired:9.2f}x")


def timing_inputs(batch: int, seed: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = shifted_pair(batch, 1, 2, 0.02, torch.Generator().manual_seed(seed))
    return pred.to(device, dtype), target.to(device, dtype)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ssim_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch", type=count, default=8)
    parser.add_argument("--runs", type=at_least(2), default=30, help="timed calls per implementation on CPU")
    parser.add_argument("--warmup", type=at_least(0), default=3, help="untimed calls per implementation first")
    parser.add_argument("--threads", type=count, nargs="+", default=[1, 2], help="torch CPU thread counts")
    parser.add_argument("--cuda-runs", type=at_least(2), default=200, help="timed calls per implementation on CUDA")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA timings even if a GPU is present")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv) if argv is not None else None)

    import torchmetrics

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, torchmetrics {torchmetrics.__version__}, load avg {os.getloadavg()[0]:.2f}"
    )
    gen = torch.Generator().manual_seed(args.seed)
    x, y = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen)
    assert torch.equal(ssim_map(x, y).mean(), ssim(x, y)), "ssim_map must stay the same computation as ssim"
    value_table(args.batch, args.seed)

    print(f"\n## forward + backward of 1 - ssim(pred, target), batch {args.batch}, {HEIGHT}x{WIDTH}, ms per call")
    print("calls interleaved (ours, tm-u7, tm-g11, then reversed, ...) so all see the same machine load")
    print(f"{'setting':24} {'impl':7} {'median':>9} {'q1':>9} {'q3':>9} {'vs ours':>10}")
    print("(vs ours: median over rounds of the call's time / ours' time in the same round)")
    threads_before = torch.get_num_threads()
    for threads in args.threads:
        torch.set_num_threads(threads)
        pred, target = timing_inputs(args.batch, args.seed, torch.device("cpu"), torch.float32)
        steps = {name: make_step(fn, pred, target) for name, fn in IMPLS.items()}
        load = os.getloadavg()[0]
        times = interleaved_times(steps, args.runs, args.warmup, cpu_timer)
        print_times(f"cpu fp32 threads={threads}", times)
        print(f"{'':24} (load avg {load:.2f} -> {os.getloadavg()[0]:.2f}, {args.runs} runs)")
    torch.set_num_threads(threads_before)

    if args.no_cuda or not torch.cuda.is_available():
        print("cuda: skipped (" + ("--no-cuda" if args.no_cuda else "no GPU") + ")")
        return 0
    device = torch.device("cuda")
    print(f"cuda: {torch.cuda.get_device_name(device)}")
    for dtype in (torch.float32, torch.bfloat16):
        pred, target = timing_inputs(args.batch, args.seed, device, dtype)
        steps = {name: make_step(fn, pred, target) for name, fn in IMPLS.items()}
        times = interleaved_times(steps, args.cuda_runs, max(args.warmup, 10), cuda_timer)
        print_times(f"cuda {str(dtype).removeprefix('torch.')}", times)
        values = {name: float(fn(pred, target)) for name, fn in IMPLS.items()}
        print(f"{'':24} values: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    run_command(main)
