"""A streamed split on a GPU (`pytest -m gpu` on a GPU machine; skipped without CUDA): batches gathered into
pinned host memory and copied without blocking are byte for byte the held ones, with the pinned buffers
reused, also when the copies lag far behind the reads (a buffer reused before its copy ran would show)."""

from __future__ import annotations

import pytest
import torch

from data import streaming
from data.cache import DecodedSplit
from data.datasets import DeviceSplit, concat_splits
from data.streaming import StreamSplit, read_ahead
from tests.data.test_streaming import memory_mapped_split, reader_threads

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SLEEP_CYCLES = 20_000_000  # GPU work per batch: about 10 ms at 2 GHz


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[DecodedSplit]:
    """unlabeled + train at full size (160x240), memory-mapped: 101 MB of frames."""
    folder = tmp_path_factory.mktemp("streamed")
    return [
        memory_mapped_split(folder, "unlabeled", 24, 1, (160, 240)),
        memory_mapped_split(folder, "train", 16, 2, (160, 240)),
    ]


def _cuda_batches(n: int, count: int, batch: int, seed: int) -> list[torch.Tensor]:
    """Index batches drawn on the GPU, as the trainer draws them."""
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randint(0, n, (batch,), device="cuda", generator=generator) for _ in range(count)]


def _host_blocks() -> tuple[int, int]:
    """(pinned blocks the caching host allocator created, pinned buffers it handed out) so far."""
    stats = torch.cuda.host_memory_stats()
    return int(stats["num_host_alloc"]), int(stats["active_requests.allocated"])


@pytest.mark.parametrize(("depth", "threads"), [(2, 1), (2, 2), (4, 2), (4, 4)])
def test_streamed_batches_are_the_held_ones_with_pinned_buffers_reused(
    parts: list[DecodedSplit], depth: int, threads: int
) -> None:
    held = concat_splits([DeviceSplit(s, "cuda") for s in parts])
    streamed = StreamSplit(parts, "cuda")
    blocks, handed_out = _host_blocks()
    count = 0
    for index, batch in read_ahead(streamed.segmentation_batch, _cuda_batches(40, 30, 16, seed=depth), depth, threads):
        torch.cuda._sleep(SLEEP_CYCLES)  # training, on the caller's stream, while the next batches are read
        for a, b in zip(held.segmentation_batch(index), batch, strict=True):
            assert b.device.type == "cuda" and a.shape == b.shape and torch.equal(a, b)
        count += 1
    assert count == 30
    new_blocks, new_handed_out = (now - then for now, then in zip(_host_blocks(), (blocks, handed_out), strict=True))
    assert new_handed_out >= 2 * count  # frames and masks of each batch went through pinned memory
    assert new_blocks <= 2 * (depth + threads + 2) < new_handed_out  # ... reused, not one block per batch


@pytest.mark.parametrize("indices_on", ["cuda", "cpu"])
def test_fifty_batches_read_while_the_gpu_is_busy_are_the_held_ones(
    parts: list[DecodedSplit], monkeypatch: pytest.MonkeyPatch, indices_on: str
) -> None:
    """No host synchronisation until the end: with indices on the CPU the copies queue on the caller's
    stream behind all the GPU work, so the reads run far ahead of them and each pinned buffer is given back
    while its copy still waits; with indices on the GPU (the trainer's case) the copies run on the reader
    threads' streams and the caller's stream must wait for them, and keep their memory while it uses it.
    Each batch's frames (10 MB) are gathered into pinned memory by several threads at once."""
    monkeypatch.setattr(streaming, "GATHER_PIECE", 1 << 20)
    held = concat_splits([DeviceSplit(s, "cuda") for s in parts])
    streamed = StreamSplit(parts, "cuda")
    indices = [index.to(indices_on) for index in _cuda_batches(40, 50, 8, seed=7)]
    mismatches = torch.zeros((), dtype=torch.int64, device="cuda")
    seen = []
    for index, batch in read_ahead(streamed.segmentation_batch, iter(indices), depth=4, threads=2):
        torch.cuda._sleep(SLEEP_CYCLES)
        for a, b in zip(held.segmentation_batch(index.to("cuda")), batch, strict=True):
            mismatches += (a != b).sum()
        seen.append(index)
        del batch  # its memory may go to a later batch once the caller's stream is done with it
    assert int(mismatches) == 0
    assert len(seen) == 50 and all(a is b for a, b in zip(seen, indices, strict=True))


def test_an_error_in_the_caller_on_a_gpu_leaves_no_reader_behind(parts: list[DecodedSplit]) -> None:
    streamed = StreamSplit(parts, "cuda")
    with pytest.raises(FloatingPointError):
        for _ in read_ahead(streamed.segmentation_batch, _cuda_batches(40, 20, 16, seed=1), depth=4, threads=2):
            raise FloatingPointError("training loss became nan")
    assert not reader_threads()
