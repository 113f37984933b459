"""Test oracles of the blend and the mosaic store: the whole image in memory, sequentially.

The pipeline never holds a region in memory nor assembles it in one process; these do, so the
store's windowed, parallel, resumable result can be compared with the obvious computation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from clearcube.errors import BadInputError
from clearcube.pipeline.blend import Taper, accumulate, tile_weight
from clearcube.pipeline.mosaic import MosaicStore
from clearcube.pipeline.tiles import Tile, TilePlan


def finalize(acc: np.ndarray, wsum: np.ndarray) -> np.ndarray:
    """``acc / wsum`` as float32; pixels no tile covered (``wsum == 0``) become NaN."""
    covered = wsum > 0
    out = np.full(acc.shape, np.nan, dtype=np.float32)
    np.divide(acc, wsum, out=out, where=np.broadcast_to(covered, acc.shape), casting="unsafe")
    return out


def blend_tiles(
    plan: TilePlan,
    tile_arrays: Mapping[Tile, np.ndarray] | Iterable[tuple[Tile, np.ndarray]],
    *,
    taper: Taper = "cosine",
) -> np.ndarray:
    """Blend tiles ``(..., h, w)`` into the full ``(..., height, width)`` float32 grid.

    The weights are renormalised by their sum, so a subset of the tiles still gives a weighted
    mean where they reach (and NaN where no tile does).
    """
    items = tile_arrays.items() if isinstance(tile_arrays, Mapping) else tile_arrays
    acc: np.ndarray | None = None
    wsum = np.zeros((plan.height, plan.width), dtype=np.float64)
    for tile, data in items:
        data = np.asarray(data)
        if data.shape[-2:] != plan.tile_shape:
            raise BadInputError(
                f"tile {tile.index} has shape {data.shape[-2:]}, the plan's tiles are {plan.tile_shape}"
            )
        if acc is None:
            acc = np.zeros((*data.shape[:-2], plan.height, plan.width), dtype=np.float64)
        accumulate(acc, wsum, data, tile, weight=tile_weight(plan, tile, taper=taper))
    if acc is None:
        raise BadInputError("no tiles to blend; compute at least one tile first")
    return finalize(acc, wsum)


def fill_mosaic(
    store: MosaicStore,
    compute: Callable[[Tile], Mapping[str, np.ndarray]],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Compute and store every pending tile in order (no cluster); return how many were computed."""
    pending = store.pending()
    for i, tile in enumerate(pending):
        store.write_tile(tile, compute(tile))
        if progress is not None:
            progress(i + 1, len(pending))
    return len(pending)


def assemble(store: MosaicStore) -> None:
    """Assemble every output window of ``store`` in this process and mark it complete."""
    for rows, cols in store.output_windows():
        store.assemble_window(rows, cols)
    store.mark_complete()
