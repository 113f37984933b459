"""The products of a finished mosaic: the COGs, the quicklook, the provenance report, the STAC item.

Everything here streams from the stores window by window or at the quicklook's size, so the
client's memory does not grow with the region.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import zarr

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.pipeline.cog import write_mosaic_cogs
from clearcube.pipeline.cube_masks import clear_fractions
from clearcube.pipeline.cube_store import open_cube
from clearcube.pipeline.dates import DateSelection
from clearcube.pipeline.mosaic import MosaicStore
from clearcube.pipeline.provenance import PROVENANCE, ProvenanceView
from clearcube.pipeline.quicklook import least_clear, write_quicklook
from clearcube.pipeline.stac_item import build_stac_item, write_stac_item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Products:
    """What :func:`write_products` wrote."""

    composite: Path
    """The cloud-free composite COG."""
    provenance: Path
    """Per-pixel provenance COG (1 observed, 2 fused, 3 generated, 0 nodata)."""
    quicklook: Path
    """True-colour PNG: the cloudiest input | the composite | the provenance."""
    item_path: Path
    """The STAC item (JSON)."""
    item: pystac.Item
    """The same item."""
    uncertainty: Path | None = None
    """Per-pixel spread over the samples (K >= 2), else None."""
    provenance_report: dict[str, Any] = field(default_factory=dict)
    """``{"overall": {observed, fused, generated}, "generated_per_tile": {"y0,x0": share}}``."""


def write_products(
    store: MosaicStore,
    cube_path: Path,
    selection: DateSelection,
    out: Path,
    *,
    start: str,
    end: str,
    tags: dict[str, str],
    progress: Callable[[str, int, int], None],
) -> Products:
    """Write the COGs, the quicklook and the STAC item of a finished mosaic into ``out``.

    Args:
        store: the complete mosaic store.
        cube_path: the cube it was made from (the quicklook's "before" panel).
        selection: the candidate dates (their cloudiest date with ground is shown).
        out: the run's folder.
        start: first day of the period (the item's datetime range).
        end: last day of the period.
        tags: provenance tags written into every COG and the item (``clearcube:<key>``).
        progress: ``progress(stage, done, total)``.
    """
    # One after the other, the quicklook first: drawn beside GDAL's COG copy (one block row
    # of 512 px windows each) the two set the client's peak at every region over 512 px, so
    # the peak grew from a small region to a large one (+20 % at 288 -> 1,152 px, -> +11 %
    # serial, for ~0.3 s at the demo's size; benchmarks/RESULTS.md, "Session 13").
    quicklook, report = _quicklook_and_report(store, cube_path, selection, out)
    cogs = write_mosaic_cogs(
        store, out, tags=tags,
        progress=lambda p, done, total: progress(f"cog {p}", done, total),
    )  # fmt: skip
    plan = store.spec.plan
    assets = {k: v for k, v in cogs.items() if k in ("composite", "uncertainty", "provenance")}
    item = build_stac_item(
        item_id=f"clearcube-{out.name or 'composite'}",
        crs=store.spec.crs,
        transform=store.spec.transform,
        shape=(plan.height, plan.width),
        start=start,
        end=end,
        target=selection.target,
        assets={**assets, "quicklook": quicklook},
        band_names=list(store.spec.bands),
        properties={f"clearcube:{k}": v for k, v in tags.items()},
    )
    return Products(
        composite=cogs["composite"],
        provenance=cogs["provenance"],
        uncertainty=cogs.get("uncertainty"),
        quicklook=quicklook,
        item_path=write_stac_item(item, out / "item.json"),
        item=item,
        provenance_report=report,
    )


def _quicklook_and_report(
    store: MosaicStore, cube_path: Path, selection: DateSelection, out: Path
) -> tuple[Path, dict[str, Any]]:
    """Write the quicklook PNG and count the provenance report (both streamed)."""
    ds = open_cube(cube_path)
    chosen = list(selection.indices)
    # The clear fractions the mask stage measured (else measured here, window by window). The
    # "before" panel stays lazy, so the quicklook reads only its decimated pixels, never a date.
    clear = np.asarray(
        selection.measured or clear_fractions(zarr.open_group(cube_path, mode="r"), chosen)
    )
    # the cloudiest candidate that still shows some ground: what the composite replaced
    before = ds["s2"].isel(time=chosen[least_clear(clear, min_clear=0.05)]).astype("float32")
    before = before / DN_PER_REFLECTANCE  # the store holds reflectance, the cube DN
    classes = ProvenanceView(store.array("provenance"), store.array("composite"))
    quicklook = write_quicklook(
        _OnThreads(before), store.array("composite"), list(store.spec.bands),
        out / "quicklook.png", provenance=classes,
    )  # fmt: skip
    return quicklook, provenance_report(classes, store)


class _OnThreads:
    """A lazy ``(band, y, x)`` DataArray whose window reads compute on this process's threads.

    On the default scheduler (the cluster, in a run) every 512 px window of the quicklook's
    "before" panel was read by a worker and shipped back, 12 MB a message, two held at once in
    the client at its peak (memray, benchmarks/RESULTS.md, session 12). The scheduler is given
    per read, not through dask's process-wide config, so other threads keep theirs.
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = tuple(array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key].compute(scheduler="threads").values)


def provenance_report(classes: ProvenanceView, store: MosaicStore) -> dict[str, Any]:
    """Shares of observed / fused / generated pixels, overall and per tile (``"y0,x0"``).

    The overall shares count each pixel once; a tile's share of generated pixels counts its
    whole window (overlaps included). One pass over the output windows: each window's classes
    are computed once and counted into the overall shares and into every tile it touches.
    """
    plan = store.spec.plan
    counts = np.zeros(len(PROVENANCE))
    tile_valid = dict.fromkeys(plan, 0)
    tile_generated = dict.fromkeys(plan, 0)
    for rows, cols in store.output_windows():
        window = classes[0, rows, cols][0]
        counts += [np.count_nonzero(window == i + 1) for i in range(len(PROVENANCE))]
        for tile in plan.intersecting(rows, cols):
            ty, tx = tile.window
            part = window[
                max(ty.start, rows.start) - rows.start : min(ty.stop, rows.stop) - rows.start,
                max(tx.start, cols.start) - cols.start : min(tx.stop, cols.stop) - cols.start,
            ]
            tile_valid[tile] += int(np.count_nonzero(part >= 1))
            tile_generated[tile] += int(np.count_nonzero(part == len(PROVENANCE)))
    pixels = max(float(counts.sum()), 1.0)
    overall = {
        name: round(float(n) / pixels, 4) for name, n in zip(PROVENANCE, counts, strict=True)
    }
    per_tile = {
        f"{tile.y0},{tile.x0}": round(tile_generated[tile] / max(tile_valid[tile], 1), 4)
        for tile in plan
    }
    log.info(
        "provenance: %.1f %% observed, %.1f %% fused, %.1f %% generated",
        *(100 * overall[n] for n in PROVENANCE),
    )
    return {"overall": overall, "generated_per_tile": per_tile}
