"""Seam score: about 1 on a seamless image, far above 1 when tiles carry offsets."""

from __future__ import annotations

import numpy as np
import pytest
from mosaic_oracle import blend_tiles
from scipy.ndimage import gaussian_filter

from clearcube.errors import BadInputError
from clearcube.pipeline.seams import seam_lines, seam_score
from clearcube.pipeline.tiles import TilePlan, plan_tiles

PLAN = plan_tiles(600, 640, tile=128, overlap=32)


def _scene(seed: int) -> np.ndarray:
    """A smooth field plus pixel noise, (3, 600, 640): texture at several scales."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(size=(3, 600, 640)), sigma=(0, 8, 8)) * 20
    return smooth + 0.1 * rng.normal(size=smooth.shape)


def _naive_crop(plan: TilePlan, tiles: dict) -> np.ndarray:  # type: ignore[type-arg]
    """Halo-and-crop mosaic: every pixel from the one tile whose cut-out holds it."""
    row_cuts, col_cuts = seam_lines(plan)
    rows = np.searchsorted(np.asarray(row_cuts), np.arange(plan.height), side="right")
    cols = np.searchsorted(np.asarray(col_cuts), np.arange(plan.width), side="right")
    out = np.empty((3, plan.height, plan.width))
    for y in range(plan.height):
        for i in np.unique(cols):
            tile = plan.tile_at(int(rows[y]), int(i))
            xs = np.flatnonzero(cols == i)
            out[:, y, xs] = tiles[tile][:, y - tile.y0, xs - tile.x0]
    return out


def test_seam_lines_are_overlap_centres() -> None:
    rows, _ = seam_lines(plan_tiles(600, 640, tile=128, overlap=32))
    assert rows[:2] == (96 + 16, 192 + 16)  # overlap [96, 128) centre 112
    assert seam_lines(plan_tiles(256, 512, tile=256, overlap=0)) == ((), (256,))


def test_seamless_image_scores_about_one() -> None:
    assert seam_score(_scene(0), PLAN) == pytest.approx(1.0, abs=0.1)


def test_per_tile_offsets_score_high_with_crop_and_low_after_blending() -> None:
    image = _scene(1)
    rng = np.random.default_rng(2)
    tiles = {
        t: image[:, t.y0 : t.y1, t.x0 : t.x1] + rng.normal(0, 1.0, size=(3, 1, 1)) for t in PLAN
    }
    naive = seam_score(_naive_crop(PLAN, tiles), PLAN)
    blended = seam_score(blend_tiles(PLAN, tiles), PLAN)
    assert naive > 3.0
    assert blended < 1.5 and blended < naive / 3


def test_single_tile_has_no_seams_and_wrong_grid_is_refused() -> None:
    assert np.isnan(seam_score(np.zeros((3, 50, 60)), plan_tiles(50, 60)))
    with pytest.raises(BadInputError):
        seam_score(np.zeros((3, 50, 61)), plan_tiles(50, 60))
