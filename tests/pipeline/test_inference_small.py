"""A tile of any size runs: the worker pads to the U-Net's size multiple and crops back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clearcube.model.checkpoint import save_checkpoint
from clearcube.model.config import preset
from clearcube.model.unet import UNet
from clearcube.pipeline.inference import ModelSpec, sample_tile, tile_products
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


def test_bright_clear_pixels_keep_their_values_above_10000(tmp_path: Path) -> None:
    """The model's range stops at reflectance 1; a clear pixel's own DN must not."""
    torch.manual_seed(0)
    cfg = preset("cpu-tiny")
    ckpt = save_checkpoint(tmp_path / "tiny.pt", UNet(cfg.unet), cfg, step=0)
    rng = np.random.default_rng(1)
    s2 = rng.integers(10_001, 40_000, size=(1, 13, 16, 16)).astype(np.uint16)  # snow, salt
    s1 = np.full((1, 2, 16, 16), -10.0, dtype=np.float32)
    known = np.ones((1, 16, 16), dtype=bool)
    known[0, :4] = False
    composite, _ = sample_tile(
        s2, s1, known, Tile((0, 0), 0, 0, 16, 16), ModelSpec(str(ckpt), steps=2)
    )
    np.testing.assert_array_equal(composite[:, 4:], s2[0, :, 4:].astype(np.float32))


def test_pixels_no_date_covers_are_nodata_not_generated() -> None:
    composite = np.full((13, 4, 4), 2500.0, dtype=np.float32)
    known = np.zeros((2, 4, 4), dtype=bool)
    known[0, 0] = True  # row 0 observed; rows 1-2 cloudy everywhere (generated)
    covered = np.ones((4, 4), dtype=bool)
    covered[3] = False  # row 3: outside every footprint
    out = tile_products(composite, np.zeros_like(composite), known, covered)
    assert np.isnan(out["composite"][:, 3]).all() and np.isnan(out["uncertainty"][:, 3]).all()
    np.testing.assert_allclose(out["composite"][:, :3], 0.25)
    np.testing.assert_array_equal(out["provenance"][:, 3], 0)  # no class: COG value 0
    np.testing.assert_array_equal(out["provenance"][0, 0], 1)  # observed
    np.testing.assert_array_equal(out["provenance"][2, 1:3], 1)  # generated


def test_a_tile_seen_everywhere_is_the_clear_mean_without_running_the_network(
    tmp_path: Path,
) -> None:
    """Nothing to generate: the merge (Eq. 26) alone, exactly, and the model is never loaded
    (the checkpoint path does not exist, so loading it would raise)."""
    rng = np.random.default_rng(2)
    s2 = rng.integers(500, 4000, size=(3, 13, 16, 16)).astype(np.uint16)
    s1 = np.full((3, 2, 16, 16), -10.0, dtype=np.float32)
    known = np.zeros((3, 16, 16), dtype=bool)
    known[0, :8] = True
    known[1, 4:] = True  # every pixel clear on date 0 or 1 (rows 4-7 on both)
    spec = ModelSpec(str(tmp_path / "absent.pt"), steps=2, samples=2)
    composite, spread = sample_tile(s2, s1, known, Tile((0, 0), 0, 0, 16, 16), spec)
    expected = (s2 * known[:, None]).sum(0) / known.sum(0)[None]
    np.testing.assert_allclose(composite, expected, rtol=1e-6)
    assert not spread.any()
