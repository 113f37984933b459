"""Tile plan invariants: full coverage, bounds, edge tiles, determinism (STYLE.md rule 21)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearcube.errors import BadInputError
from clearcube.pipeline.tiles import plan_tiles


@st.composite
def plans(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    tile = draw(st.integers(1, 64))
    overlap = draw(st.integers(0, tile - 1))
    limit = min(300, tile + 12 * (tile - overlap))  # at most ~13 tiles per axis: fast examples
    height = draw(st.integers(1, limit))
    width = draw(st.integers(1, limit))
    return plan_tiles(height, width, tile=tile, overlap=overlap)


@settings(max_examples=200, deadline=None)
@given(plans())
def test_tiles_cover_every_pixel_within_bounds(plan) -> None:  # type: ignore[no-untyped-def]
    count = np.zeros((plan.height, plan.width), dtype=np.int32)
    for tile in plan:
        assert tile.y0 >= 0 and tile.y1 <= plan.height
        assert tile.x0 >= 0 and tile.x1 <= plan.width
        assert (tile.height, tile.width) == (
            min(plan.tile, plan.height),
            min(plan.tile, plan.width),
        )
        count[tile.window] += 1
    assert count.min() >= 1


@settings(max_examples=200, deadline=None)
@given(plans())
def test_grid_anchored_stride_derived_and_edge_tile_ends_at_edge(plan) -> None:  # type: ignore[no-untyped-def]
    for starts, length in ((plan.row_starts, plan.height), (plan.col_starts, plan.width)):
        size = min(plan.tile, length)
        assert starts[0] == 0
        assert starts[-1] + size == length  # the edge tile is kept and ends at the edge
        # every start but the edge one sits on the global stride lattice
        assert all(s == i * plan.stride for i, s in enumerate(starts[:-1]))
        assert list(starts) == sorted(set(starts))
        # neighbours overlap by at least `overlap` (the shifted edge tile by more)
        for a, b in itertools.pairwise(starts):
            assert a + size - b >= plan.overlap


@settings(max_examples=100, deadline=None)
@given(plans())
def test_iteration_and_numbering_are_consistent(plan) -> None:  # type: ignore[no-untyped-def]
    tiles = list(plan)
    assert len(tiles) == len(plan) == plan.shape[0] * plan.shape[1]
    assert tiles == sorted(tiles)  # row-major, deterministic
    assert [plan.number(t) for t in tiles] == list(range(len(plan)))
    assert [plan[i] for i in range(len(plan))] == tiles


def test_positions_do_not_depend_on_grid_size() -> None:
    small, large = plan_tiles(1000, 1000), plan_tiles(5000, 3000)
    assert small.row_starts[:-1] == large.row_starts[: len(small.row_starts) - 1]
    assert small.row_starts[:3] == (0, 224, 448)


def test_small_region_gives_one_clipped_tile() -> None:
    plan = plan_tiles(101, 100, tile=256, overlap=32)
    assert list(plan) == [plan.tile_at(0, 0)]
    assert (plan[0].height, plan[0].width) == (101, 100)


def test_intersecting_finds_exactly_the_tiles_touching_a_window() -> None:
    plan = plan_tiles(700, 900, tile=256, overlap=32)
    rows, cols = slice(200, 260), slice(430, 700)
    expected = {
        t
        for t in plan
        if t.y0 < rows.stop and t.y1 > rows.start and t.x0 < cols.stop and t.x1 > cols.start
    }
    assert set(plan.intersecting(rows, cols)) == expected and expected


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"),
    [(0, 10, 256, 32), (10, 10, 256, 256), (10, 10, 256, -1), (10, 10, 0, 0)],
)
def test_bad_plans_are_refused(height: int, width: int, tile: int, overlap: int) -> None:
    with pytest.raises(BadInputError):
        plan_tiles(height, width, tile=tile, overlap=overlap)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 90), st.integers(1, 90))
def test_window_grid_covers_every_pixel_exactly_once(height, width, rows, cols) -> None:  # type: ignore[no-untyped-def]
    from clearcube.pipeline.tiles import window_grid

    count = np.zeros((height, width), dtype=int)
    for r, c in window_grid(height, width, rows, cols):
        count[r, c] += 1
        assert r.stop - r.start <= rows and c.stop - c.start <= cols
    assert (count == 1).all()
