"""Seam blending: weighted overlap-add with a partition-of-unity taper across tile overlaps.

Every tile gets a separable weight ``outer(w_y, w_x)``. Along one axis, the weight of a tile is 1
on its own part, ramps DOWN across the overlap with the next tile while that tile ramps UP by the
complementary amount, and is 0 where a neighbour has fully taken over. Image borders get no
taper. So, for every pixel, the weights of all tiles covering it sum to 1 (to float32 rounding):
the blended value is just the sum of the pre-weighted tiles, with no division, which lets the
orchestrator multiply on the worker and add windows on the output store.

Ramps are built from the ACTUAL overlaps of the plan, not from the nominal ``overlap``. For the
neighbours ``i`` and ``i+1`` (starts ``s``, tile size ``T``) the ramp runs over
``[a_i, b_i)`` with ``b_i = s_i + T`` (where tile ``i`` ends) and ``a_i = max(s_{i+1}, b_{i-1})``:
the whole overlap, except that it may not begin before the previous ramp ended. That case arises
with the shifted edge tile, whose overlap with its neighbour is larger than ``overlap`` and can
reach back into the tile before; keeping ramps disjoint keeps at most two tiles per axis active at
any pixel, which is what makes the partition of unity exact. With ``overlap = 0`` the ramps have
zero width: tiles meet with a hard edge.

Clear observed pixels: SeqTIS returns the same fused known value in every tile that holds a
pixel, and a weighted mean of equal values with weights summing to 1 is that value: blending
keeps them (to float rounding).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from clearcube.errors import BadInputError
from clearcube.pipeline.tiles import Tile, TilePlan

__all__ = [
    "Taper",
    "accumulate",
    "axis_ramps",
    "axis_weight",
    "tile_weight",
    "weighted",
]

Taper = Literal["cosine", "linear"]
"""Ramp shape: ``cosine`` is the raised cosine ``sin²(π t / 2)``; ``linear`` is ``t``."""


def axis_ramps(starts: tuple[int, ...], size: int) -> tuple[tuple[int, int], ...]:
    """Ramp intervals ``[a_i, b_i)`` between tile ``i`` and ``i + 1`` along one axis (global pixels)."""
    ramps: list[tuple[int, int]] = []
    previous_end = starts[0]
    for i in range(len(starts) - 1):
        end = starts[i] + size
        begin = max(starts[i + 1], previous_end)
        ramps.append((begin, end))
        previous_end = end
    return tuple(ramps)


def _ramp(centres: np.ndarray, begin: int, end: int, taper: Taper) -> tuple[np.ndarray, np.ndarray]:
    """``(up, down)`` float32 weights at pixel ``centres`` inside ``[begin, end)``; ``up + down == 1``.

    The larger of the two is rounded to float32 and the smaller is ``1 - larger`` in float32,
    which is exact (Sterbenz), so the pair sums to exactly 1.
    """
    t = (centres - begin) / (end - begin)
    if taper == "cosine":
        f = np.sin(0.5 * np.pi * t) ** 2
    elif taper == "linear":
        f = t
    else:
        raise BadInputError(f"unknown taper {taper!r}; use 'cosine' or 'linear'")
    big = np.maximum(f, 1.0 - f).astype(np.float32)
    small = np.float32(1.0) - big
    rising = f >= 0.5
    return np.where(rising, big, small), np.where(rising, small, big)


def axis_weight(
    starts: tuple[int, ...], size: int, i: int, *, taper: Taper = "cosine"
) -> np.ndarray:
    """The 1-D weight ``(size,)`` float32 of tile ``i`` along an axis whose tiles start at ``starts``."""
    ramps = axis_ramps(starts, size)
    centres = np.arange(starts[i], starts[i] + size, dtype=np.float64) + 0.5
    weight = np.ones(size, dtype=np.float32)
    if i > 0:  # ramp up over the overlap with the previous tile
        begin, end = ramps[i - 1]
        weight[centres < begin] = 0.0
        inside = (centres >= begin) & (centres < end)
        weight[inside] = _ramp(centres[inside], begin, end, taper)[0]
    if i < len(starts) - 1:  # ramp down over the overlap with the next tile
        begin, end = ramps[i]
        inside = (centres >= begin) & (centres < end)
        weight[inside] = _ramp(centres[inside], begin, end, taper)[1]
    return weight


def tile_weight(plan: TilePlan, tile: Tile, *, taper: Taper = "cosine") -> np.ndarray:
    """The blend weight ``(h, w)`` float32 of ``tile``; over every pixel the tiles' weights sum to 1."""
    height, width = plan.tile_shape
    w_y = axis_weight(plan.row_starts, height, tile.index[0], taper=taper)
    w_x = axis_weight(plan.col_starts, width, tile.index[1], taper=taper)
    return np.outer(w_y, w_x)


def weighted(
    plan: TilePlan, tile: Tile, tile_data: np.ndarray, *, taper: Taper = "cosine"
) -> np.ndarray:
    """``tile_data (..., h, w)`` multiplied by the tile's blend weight, as float32 (worker side)."""
    weighted_data: np.ndarray = (
        np.asarray(tile_data, dtype=np.float32) * tile_weight(plan, tile, taper=taper)
    ).astype(np.float32, copy=False)
    return weighted_data


def _overlap(
    tile: Tile, origin: tuple[int, int], shape: tuple[int, int]
) -> tuple[slice, slice, slice, slice] | None:
    """``(acc_rows, acc_cols, tile_rows, tile_cols)`` where ``tile`` meets a window, or None."""
    oy, ox = origin
    y0, y1 = max(tile.y0, oy), min(tile.y1, oy + shape[0])
    x0, x1 = max(tile.x0, ox), min(tile.x1, ox + shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    return (
        slice(y0 - oy, y1 - oy),
        slice(x0 - ox, x1 - ox),
        slice(y0 - tile.y0, y1 - tile.y0),
        slice(x0 - tile.x0, x1 - tile.x0),
    )


def accumulate(
    acc: np.ndarray,
    wsum: np.ndarray | None,
    tile_data: np.ndarray,
    tile: Tile,
    *,
    weight: np.ndarray | None,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Add ``weight · tile_data`` into ``acc`` (and ``weight`` into ``wsum``), in place.

    Args:
        acc: ``(..., H, W)`` accumulator covering the global window whose top-left pixel is
            ``origin`` (the whole grid, or one output chunk); only the part of the tile inside it
            is added.
        wsum: ``(H, W)`` sum of weights, or None when the caller relies on the weights summing to 1.
        tile_data: ``(..., h, w)`` values of the tile.
        tile: where ``tile_data`` sits in the global grid.
        weight: ``(h, w)`` blend weight from :func:`tile_weight`, or None when ``tile_data`` is
            already pre-weighted (then ``wsum`` must be None).
        origin: global ``(row, col)`` of ``acc[..., 0, 0]``.
    """
    if weight is None and wsum is not None:
        raise BadInputError("pre-weighted tiles (weight=None) need wsum=None")
    where = _overlap(tile, origin, acc.shape[-2:])
    if where is None:
        return
    rows, cols, trows, tcols = where
    if weight is None:
        acc[..., rows, cols] += tile_data[..., trows, tcols]
        return
    acc[..., rows, cols] += tile_data[..., trows, tcols] * weight[trows, tcols]
    if wsum is not None:
        wsum[rows, cols] += weight[trows, tcols]
