"""The tile plan: a global grid of overlapping tiles over the cube's pixel grid.

The plan depends only on the grid shape and on ``tile`` and ``overlap`` (``stride = tile -
overlap`` is derived, STYLE.md rule 7). It is anchored at pixel ``(0, 0)``, so a tile's position
never depends on the cluster, the worker count or the order in which tiles are computed.

Along each axis of length ``L`` the tile starts are ``0, stride, 2·stride, ...`` for as long as a
tile still ends inside the grid, and the LAST tile is shifted back to end exactly at ``L``: edge
pixels are always covered, nothing is padded and no tile is dropped (xbatcher's failure mode).
The shifted edge tile therefore overlaps its neighbour by at least ``overlap`` pixels (often
more); :mod:`clearcube.pipeline.blend` builds its taper from that actual overlap.

A grid smaller than ``tile`` along an axis gets one tile CLIPPED to the grid along that axis (its
size is then the grid size; no padding). Networks that need a multiple of their down-sampling
factor pad the read array themselves (reflect-pad, then crop): padding here would put made-up
pixels into the blend.

The overlap is the context shared with the neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from clearcube.errors import BadInputError

__all__ = ["Tile", "TilePlan", "axis_starts", "plan_tiles", "window_grid"]


@dataclass(frozen=True, order=True)
class Tile:
    """One tile of a :class:`TilePlan`; ordering is row-major, like the plan's iteration."""

    index: tuple[int, int]
    """``(row, col)`` of the tile in the plan."""
    y0: int
    """Global row of the tile's top-left pixel in the cube grid."""
    x0: int
    """Global column of the tile's top-left pixel in the cube grid."""
    height: int
    """Rows of the tile (``tile``, or the grid height when the grid is smaller)."""
    width: int
    """Columns of the tile (``tile``, or the grid width when the grid is smaller)."""

    @property
    def y1(self) -> int:
        """One past the last global row of the tile."""
        return self.y0 + self.height

    @property
    def x1(self) -> int:
        """One past the last global column of the tile."""
        return self.x0 + self.width

    @property
    def window(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the tile in the global grid: ``array[..., *tile.window]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def axis_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Tile starts along one axis: every ``stride`` pixels, the last one shifted to end at ``length``.

    A ``length`` of at most ``tile`` gives the single start ``0`` (that tile is clipped).
    """
    if length <= tile:
        return (0,)
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    return (*(i * stride for i in range(count - 1)), length - tile)


@dataclass(frozen=True)
class TilePlan:
    """Overlapping tiles covering a ``height × width`` grid; build it with :func:`plan_tiles`."""

    height: int
    """Rows of the grid."""
    width: int
    """Columns of the grid."""
    tile: int
    """Nominal tile size in pixels (tiles are square unless clipped to a small grid)."""
    overlap: int
    """Nominal overlap between neighbouring tiles; the edge tile may overlap more."""

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise BadInputError(
                f"the grid is empty ({self.height} x {self.width} px); widen the bbox"
            )
        if self.tile < 1:
            raise BadInputError(f"tile must be >= 1 pixel, got {self.tile}; the default is 256")
        if not 0 <= self.overlap < self.tile:
            raise BadInputError(
                f"overlap must be in [0, tile) = [0, {self.tile}), got {self.overlap}; "
                "the default is 32"
            )

    @property
    def stride(self) -> int:
        """Distance between the starts of neighbouring tiles (``tile - overlap``)."""
        return self.tile - self.overlap

    @cached_property
    def row_starts(self) -> tuple[int, ...]:
        """Global rows where the tile rows start."""
        return axis_starts(self.height, self.tile, self.overlap)

    @cached_property
    def col_starts(self) -> tuple[int, ...]:
        """Global columns where the tile columns start."""
        return axis_starts(self.width, self.tile, self.overlap)

    @property
    def tile_shape(self) -> tuple[int, int]:
        """``(height, width)`` shared by every tile of the plan."""
        return min(self.tile, self.height), min(self.tile, self.width)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of tiles."""
        return len(self.row_starts), len(self.col_starts)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def __iter__(self) -> Iterator[Tile]:
        """Tiles in row-major order (the order of :meth:`number`)."""
        for row in range(self.shape[0]):
            for col in range(self.shape[1]):
                yield self.tile_at(row, col)

    def tile_at(self, row: int, col: int) -> Tile:
        """The tile at ``(row, col)`` of the plan."""
        rows, cols = self.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise IndexError(f"tile ({row}, {col}) outside the {rows} x {cols} plan")
        height, width = self.tile_shape
        return Tile((row, col), self.row_starts[row], self.col_starts[col], height, width)

    def __getitem__(self, number: int) -> Tile:
        """The tile with flat row-major ``number`` (``0 <= number < len(plan)``)."""
        if not 0 <= number < len(self):
            raise IndexError(f"tile number {number} outside a plan of {len(self)} tiles")
        return self.tile_at(*divmod(number, self.shape[1]))

    def number(self, tile: Tile) -> int:
        """The flat row-major number of ``tile`` (its key in completion records)."""
        return tile.index[0] * self.shape[1] + tile.index[1]

    def intersecting(self, rows: slice, cols: slice) -> list[Tile]:
        """Tiles that share at least one pixel with the global window ``(rows, cols)``."""
        height, width = self.tile_shape
        r = [i for i, s in enumerate(self.row_starts) if s < rows.stop and s + height > rows.start]
        c = [j for j, s in enumerate(self.col_starts) if s < cols.stop and s + width > cols.start]
        return [self.tile_at(i, j) for i in r for j in c]


def plan_tiles(height: int, width: int, *, tile: int = 256, overlap: int = 32) -> TilePlan:
    """Plan overlapping ``tile × tile`` tiles over a ``height × width`` grid.

    Args:
        height: rows of the cube grid.
        width: columns of the cube grid.
        tile: tile size in pixels.
        overlap: pixels shared by neighbouring tiles, ``0 <= overlap < tile``; the stride
            ``tile - overlap`` is derived.

    Raises:
        BadInputError: on an empty grid or an overlap outside ``[0, tile)``.
    """
    return TilePlan(height=height, width=width, tile=tile, overlap=overlap)


def window_grid(height: int, width: int, rows: int, cols: int) -> list[tuple[slice, slice]]:
    """Row-major ``(rows, cols)`` windows covering a ``height × width`` grid from ``(0, 0)``.

    The one non-overlapping grid of clearcube: cube regions, mosaic output chunks and COG write
    windows; the last window of a row or column is cut at the grid's edge.
    """
    return [
        (slice(y, min(y + rows, height)), slice(x, min(x + cols, width)))
        for y in range(0, height, rows)
        for x in range(0, width, cols)
    ]
