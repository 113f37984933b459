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
from clearcube.errors import BadInputError
from clearcube.pipeline.cog import write_mosaic_cogs
from clearcube.pipeline.cube_masks import clear_fractions
from clearcube.pipeline.cube_store import open_cube
from clearcube.pipeline.dates import DateSelection
from clearcube.pipeline.mosaic import MosaicStore
from clearcube.pipeline.provenance import PROVENANCE, provenance_classes
from clearcube.pipeline.quicklook import (
    decimate,
    decimate_into,
    decimated_empty,
    least_clear,
    panel_step,
    true_colour_bands,
    write_panels,
)
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
    # One after the other, the quicklook first. Drawn beside GDAL's COG copy, the two working
    # sets (a few 512 px windows each) added up in the client: peak 134 -> 103 MiB over base
    # at 1,152 px, client growth from 288 to 1,152 px +20 % -> +13 %. The one-pass quicklook
    # (0.95 -> 0.65 s) keeps the stage at the concurrent version's time (1.5 s at 1,152 px;
    # benchmarks/RESULTS.md, "Session 13").
    out.mkdir(parents=True, exist_ok=True)
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
    store: MosaicStore,
    cube_path: Path,
    selection: DateSelection,
    out: Path,
    *,
    max_size: int = 1024,
) -> tuple[Path, dict[str, Any]]:
    """Write the quicklook PNG and count the provenance report, in one pass over the store.

    Each output window's composite is read once (a Zarr chunk decodes all its bands whatever is
    sliced): its red, green and blue go to the "after" panel, its first band says which
    pixels are valid for the provenance classes, which go to the third panel and into the
    report's counts. Three passes (panel, provenance panel, report) took 0.5 s at 1,152 px.
    """
    rgb = true_colour_bands(store.spec.bands)
    composite, layers = store.array("composite"), store.array("provenance")
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
    if tuple(before.shape) != tuple(composite.shape):  # decimated panels could not tell
        raise BadInputError(
            f"cube date {tuple(before.shape)} and mosaic {tuple(composite.shape)} differ; "
            "make the mosaic store from this cube (spec_for_cube)"
        )
    height, width = tuple(composite.shape)[1:]
    step = panel_step((height, width), max_size)
    after = decimated_empty(len(rgb), height, width, step)
    panel = decimated_empty(1, height, width, step)
    counts = _ProvenanceCounts(store)
    for rows, cols in store.output_windows():
        window = np.asarray(composite[:, rows, cols])
        decimate_into(after, window[rgb], rows, cols, step)
        classes = provenance_classes(np.asarray(layers[:, rows, cols]), np.isfinite(window[0]))
        del window
        decimate_into(panel, classes[None], rows, cols, step)
        counts.add(classes, rows, cols)
    quicklook = write_panels(
        decimate(_OnThreads(before), step, rgb), after, out / "quicklook.png", provenance=panel[0]
    )
    return quicklook, counts.report()


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


class _ProvenanceCounts:
    """The provenance report, counted window by window.

    The overall shares count each pixel once; a tile's share of generated pixels counts its
    whole window (overlaps included), so every window is counted into each tile it touches.
    """

    def __init__(self, store: MosaicStore) -> None:
        self.plan = store.spec.plan
        self.counts = np.zeros(len(PROVENANCE))
        self.tile_valid = dict.fromkeys(self.plan, 0)
        self.tile_generated = dict.fromkeys(self.plan, 0)

    def add(self, window: np.ndarray, rows: slice, cols: slice) -> None:
        """Count the classes ``window (y, x)`` of the global window ``(rows, cols)``."""
        self.counts += [np.count_nonzero(window == i + 1) for i in range(len(PROVENANCE))]
        for tile in self.plan.intersecting(rows, cols):
            ty, tx = tile.window
            part = window[
                max(ty.start, rows.start) - rows.start : min(ty.stop, rows.stop) - rows.start,
                max(tx.start, cols.start) - cols.start : min(tx.stop, cols.stop) - cols.start,
            ]
            self.tile_valid[tile] += int(np.count_nonzero(part >= 1))
            self.tile_generated[tile] += int(np.count_nonzero(part == len(PROVENANCE)))

    def report(self) -> dict[str, Any]:
        """Shares of observed / fused / generated pixels, overall and per tile (``"y0,x0"``)."""
        pixels = max(float(self.counts.sum()), 1.0)
        overall = {
            name: round(float(n) / pixels, 4)
            for name, n in zip(PROVENANCE, self.counts, strict=True)
        }
        per_tile = {
            f"{tile.y0},{tile.x0}": round(
                self.tile_generated[tile] / max(self.tile_valid[tile], 1), 4
            )
            for tile in self.plan
        }
        log.info(
            "provenance: %.1f %% observed, %.1f %% fused, %.1f %% generated",
            *(100 * overall[n] for n in PROVENANCE),
        )
        return {"overall": overall, "generated_per_tile": per_tile}
