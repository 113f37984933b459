"""A tile of any size runs: the worker pads to the U-Net's size multiple and crops back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clearcube.model.checkpoint import save_checkpoint
from clearcube.model.config import preset
from clearcube.model.unet import UNet
from clearcube.pipeline.inference import ModelSpec, sample_tile
from clearcube.pipeline.tiles import Tile


def test_an_odd_sized_tile_keeps_its_shape_and_its_clear_pixels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = preset("cpu-tiny")
    ckpt = save_checkpoint(tmp_path / "tiny.pt", UNet(cfg.unet), cfg, step=0)
    rng = np.random.default_rng(0)
    h, w = 21, 13  # neither a multiple of the U-Net's 8
    s2 = rng.integers(500, 4000, size=(2, 13, h, w)).astype(np.uint16)
    s1 = rng.uniform(-20, -5, size=(2, 2, h, w)).astype(np.float32)
    known = rng.random((2, h, w)) > 0.5
    spec = ModelSpec(checkpoint=str(ckpt), steps=2)
    composite, spread = sample_tile(s2, s1, known, Tile((0, 0), 0, 0, h, w), spec)
    assert composite.shape == spread.shape == (13, h, w)
    # Eq. 26: pixels clear on some date are the mean of their clear observations (in DN).
    clear = known.any(axis=0)
    mean = (s2 * known[:, None]).sum(0) / np.maximum(known.sum(0), 1)[None]
    np.testing.assert_allclose(composite[:, clear], mean[:, clear], rtol=1e-4, atol=0.5)
