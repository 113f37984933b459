"""Tiles sampled together give the values they give alone, whatever the batch size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from clearcube.errors import BadInputError
from clearcube.model.checkpoint import save_checkpoint
from clearcube.model.config import preset
from clearcube.model.unet import UNet
from clearcube.pipeline.inference import (
    MAX_AUTO_BATCH,
    ModelSpec,
    TileInputs,
    auto_batch,
    batch_for_memory,
    sample_tile,
    sample_tiles,
)
from clearcube.pipeline.tiles import Tile


def _tiles() -> list[TileInputs]:
    """Three cloudy tiles at different places (one smaller, one with 2 dates) and a clear one."""
    rng = np.random.default_rng(3)
    out = []
    for n, (y0, x0, h, w, dates) in enumerate(
        [(0, 0, 32, 32, 3), (0, 24, 32, 32, 3), (24, 0, 24, 32, 2), (40, 40, 32, 32, 1)]
    ):
        s2 = rng.integers(500, 4000, size=(dates, 13, h, w)).astype(np.uint16)
        s1 = rng.uniform(-20, -5, size=(dates, 2, h, w)).astype(np.float32)
        known = rng.random((dates, h, w)) > 0.6
        if n == 3:
            known[:] = True  # nothing to generate
        out.append(TileInputs(s2, s1, known, Tile((n, 0), y0, x0, h, w)))
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = preset("cpu-tiny")
    net = UNet(cfg.unet)
    for p in net.parameters():  # an untrained U-Net's zero output layers would hide a change
        p.data.normal_(0, 0.05)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", net, cfg, step=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batch_size_does_not_change_a_bit(checkpoint: Path, precision: str) -> None:
    tiles = _tiles()
    spec = ModelSpec(str(checkpoint), steps=3, samples=2, eta=1.0, precision=precision)  # type: ignore[arg-type]
    alone = [sample_tile(t.s2, t.s1, t.known, t.tile, spec) for t in tiles]
    generated = alone[0][0][:, ~tiles[0].known.any(axis=0)]
    assert np.ptp(generated) > 100  # the model made something the merge did not
    for batch in (1, 2, 3, 5):
        together = sample_tiles(tiles, ModelSpec(**{**spec.__dict__, "batch": batch}))
        for (c0, s0), (c1, s1) in zip(alone, together, strict=True):
            np.testing.assert_array_equal(c0, c1)
            np.testing.assert_array_equal(s0, s1)


def test_automatic_batch_is_one_on_the_cpu_and_fits_the_free_memory() -> None:
    assert auto_batch(None, None, "cpu", (3, 13, 256, 256)) == 1
    assert batch_for_memory(10_000, 1_000) == 6  # 60 % of the free memory
    assert batch_for_memory(500, 1_000) == 1  # at least one
    assert batch_for_memory(10**12, 1) == MAX_AUTO_BATCH


def test_a_task_holds_one_network_call_of_tiles_at_a_time() -> None:
    """Worker memory must not grow with the tiles per task (which grow with the region)."""
    from clearcube.pipeline.inference import _tiles_per_call

    cpu = ModelSpec(checkpoint="unused.pt", device="cpu")
    assert _tiles_per_call(cpu, 8) == 1  # the CPU's automatic batch is one tile-sample
    assert _tiles_per_call(replace(cpu, batch=4), 8) == 4
    assert _tiles_per_call(replace(cpu, batch=4, samples=2), 8) == 2  # 2 tiles x 2 samples
    assert _tiles_per_call(replace(cpu, batch=1, samples=3), 8) == 1


def test_a_batch_is_read_and_written_on_one_thread_per_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from clearcube.pipeline.inference import io_threads

    monkeypatch.delenv("CLEARCUBE_IO_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert io_threads(1) == 1  # a CPU task's call: one tile, no threads
    assert io_threads(64) == min(8, cores)
    assert io_threads(2) == min(2, cores)
    monkeypatch.setenv("CLEARCUBE_IO_THREADS", "3")
    assert io_threads(16) == 3
    assert io_threads(2) == 2
    monkeypatch.setenv("CLEARCUBE_IO_THREADS", "four")
    with pytest.raises(BadInputError, match="CLEARCUBE_IO_THREADS='four' is not a number"):
        io_threads(16)
