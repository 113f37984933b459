"""Real STAC items (from ``$CLEARCUBE_TEST_DATA/stac``) with their assets re-pointed at local COGs.

What decides radiometry (properties, ``raster:bands`` dtype/nodata/offset/scale/unit, collection)
stays exactly as the catalog serves it; only where the pixels are (hrefs, ``proj:*`` fields,
geometry) is moved onto a small local grid, and the pixel values are made by the test.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from cube_fixtures import write_cog
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

sys.path.insert(0, str(Path(__file__).parents[1] / "catalogs" / "fixtures"))
from real_stac import raw_items

__all__ = ["find", "grid_bbox", "localise", "raw_items"]

#: The local grid: UTM 20S (the real 20EPT items' CRS), 10 m pixels.
EPSG = 32720
ORIGIN = (600_000.0, 3_300_040.0)


def find(raw: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    """The raw JSON of the real item ``item_id``."""
    return copy.deepcopy(next(i for i in raw if i["id"] == item_id))


def localise(
    doc: dict[str, Any],
    root: Path,
    pixels: Mapping[str, np.ndarray],
    *,
    item_id: str | None = None,
    when: datetime | None = None,
    origin: tuple[float, float] = ORIGIN,
    res: float = 10.0,
    epsg: int = EPSG,
) -> pystac.Item:
    """A copy of the real item ``doc`` whose assets ``pixels`` (key -> 2-D array) are local COGs.

    Each COG keeps the asset's declared dtype and nodata; the item's geometry becomes the grid's
    footprint and its other assets are dropped (nothing may read a remote href in a test).
    """
    doc = copy.deepcopy(doc)
    doc["id"] = item_id or doc["id"]
    if when is not None:
        doc["properties"]["datetime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    props = doc["properties"]
    props.pop("proj:epsg", None)
    props["proj:code"] = f"EPSG:{epsg}"
    assets = {}
    height, width = next(iter(pixels.values())).shape
    x0, y0 = origin
    bounds = (x0, y0 - height * res, x0 + width * res, y0)
    for key, data in pixels.items():
        asset = doc["assets"][key]
        band = (asset.get("raster:bands") or [{}])[0]
        dtype = band.get("data_type", str(data.dtype))
        nodata = band.get("nodata", 0)
        nodata = float("nan") if nodata in ("nan", None) else float(nodata)
        transform = from_origin(x0, y0, res, res)
        path = root / doc["id"] / f"{key}.tif"
        write_cog(path, data.astype(dtype), crs=f"EPSG:{epsg}", transform=transform, nodata=nodata)
        asset.update(
            href=str(path),
            **{"proj:shape": [height, width], "proj:transform": list(transform)[:6]},
        )
        asset.pop("proj:code", None)
        asset.pop("proj:epsg", None)
        assets[key] = asset
    doc["assets"] = assets
    w, s, e, n = transform_bounds(f"EPSG:{epsg}", "EPSG:4326", *bounds)
    doc["bbox"] = [w, s, e, n]
    doc["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
    }
    doc["links"] = []
    return pystac.Item.from_dict(doc)


def grid_bbox(
    shape: tuple[int, int], margin_px: int = 2, origin: tuple[float, float] = ORIGIN
) -> tuple[float, float, float, float]:
    """A WGS84 bbox ``margin_px`` pixels inside a local grid of ``shape`` at 10 m."""
    x0, y0 = origin
    h, w = shape
    m = margin_px * 10.0
    return transform_bounds(
        f"EPSG:{EPSG}", "EPSG:4326", x0 + m, y0 - h * 10.0 + m, x0 + w * 10.0 - m, y0 - m
    )
