"""Seam blending invariants: partition of unity, exact reconstruction, kept clear pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mosaic_oracle import blend_tiles, finalize

from clearcube.pipeline.blend import (
    accumulate,
    axis_weight,
    tile_weight,
    weighted,
)
from clearcube.pipeline.tiles import plan_tiles


@st.composite
def plans(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    tile = draw(st.integers(1, 48))
    overlap = draw(st.integers(0, tile - 1))
    limit = min(160, tile + 10 * (tile - overlap))  # at most ~11 tiles per axis: fast examples
    return plan_tiles(
        draw(st.integers(1, limit)), draw(st.integers(1, limit)), tile=tile, overlap=overlap
    )


@settings(max_examples=150, deadline=None)
@given(plans(), st.sampled_from(["cosine", "linear"]))
def test_weights_sum_to_one_everywhere(plan, taper) -> None:  # type: ignore[no-untyped-def]
    total = np.zeros((plan.height, plan.width), dtype=np.float64)
    for tile in plan:
        weight = tile_weight(plan, tile, taper=taper)
        assert weight.dtype == np.float32 and weight.shape == plan.tile_shape
        assert weight.min() >= 0.0 and weight.max() <= 1.0
        total[tile.window] += weight
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)


@settings(max_examples=150, deadline=None)
@given(plans())
def test_one_dimensional_weights_sum_to_exactly_one(plan) -> None:  # type: ignore[no-untyped-def]
    size = plan.tile_shape[1]
    total = np.zeros(plan.width, dtype=np.float32)
    for i, start in enumerate(plan.col_starts):
        total[start : start + size] += axis_weight(plan.col_starts, size, i)
    assert np.all(total == np.float32(1.0))


@settings(max_examples=60, deadline=None)
@given(plans(), st.integers(0, 2**31 - 1))
def test_blending_tiles_cut_from_one_image_returns_the_image(plan, seed) -> None:  # type: ignore[no-untyped-def]
    image = np.random.default_rng(seed).normal(size=(2, plan.height, plan.width))
    tiles = {t: image[(slice(None), *t.window)] for t in plan}
    np.testing.assert_allclose(blend_tiles(plan, tiles), image, rtol=0, atol=1e-5)


def test_no_taper_on_image_borders_and_ramp_only_inside_the_overlap() -> None:
    plan = plan_tiles(256 + 224, 256, tile=256, overlap=32)  # two tile rows, one column
    top, bottom = tile_weight(plan, plan[0]), tile_weight(plan, plan[1])
    assert np.all(top[:224] == 1.0) and np.all(bottom[32:] == 1.0)
    assert np.all(np.diff(top[224:, 0]) < 0) and np.all(np.diff(bottom[:32, 0]) > 0)
    np.testing.assert_array_equal(top[:, 0], top[:, -1])  # no taper at the left/right borders


def test_shifted_edge_tile_ramps_across_its_actual_overlap() -> None:
    plan = plan_tiles(256, 256 + 224 + 10, tile=256, overlap=32)
    assert plan.col_starts == (0, 224, 234)  # the edge tile overlaps its neighbour by 246 px
    w = [axis_weight(plan.col_starts, 256, i) for i in range(3)]
    edge = np.zeros(plan.width)
    edge[234:] = w[2]
    assert np.count_nonzero((edge > 0) & (edge < 1)) == 480 - 256  # ramp over [256, 480)
    middle = np.zeros(plan.width)
    middle[224:480] = w[1]
    assert np.all(middle[224:480] > 0)


def test_clear_observed_pixels_are_kept() -> None:
    rng = np.random.default_rng(1)
    plan = plan_tiles(200, 230, tile=64, overlap=16)
    truth = rng.uniform(0, 1, size=(3, 200, 230)).astype(np.float32)
    known = rng.uniform(size=(200, 230)) < 0.6
    tiles = {}
    for tile in plan:
        guess = rng.uniform(0, 1, size=(3, *plan.tile_shape)).astype(np.float32)  # differs per tile
        tiles[tile] = np.where(known[tile.window], truth[(slice(None), *tile.window)], guess)
    blended = blend_tiles(plan, tiles)
    np.testing.assert_allclose(blended[:, known], truth[:, known], rtol=0, atol=1e-6)


def test_preweighted_sum_per_output_chunk_equals_blend() -> None:
    rng = np.random.default_rng(2)
    plan = plan_tiles(150, 170, tile=64, overlap=20)
    tiles = {t: rng.normal(size=(2, *plan.tile_shape)).astype(np.float32) for t in plan}
    expected = blend_tiles(plan, tiles)
    rows, cols = slice(40, 110), slice(100, 170)  # one "output chunk"
    acc = np.zeros((2, 70, 70), dtype=np.float64)
    for tile in plan.intersecting(rows, cols):
        accumulate(
            acc, None, weighted(plan, tile, tiles[tile]), tile, weight=None, origin=(40, 100)
        )
    np.testing.assert_allclose(acc, expected[:, rows, cols], atol=1e-5)


def test_finalize_marks_uncovered_pixels_nan() -> None:
    acc, wsum = np.ones((1, 2, 2)), np.array([[1.0, 0.0], [2.0, 4.0]])
    out = finalize(acc, wsum)
    assert np.isnan(out[0, 0, 1]) and out[0, 1, 1] == pytest.approx(0.25)
