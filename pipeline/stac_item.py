"""A STAC item describing a composite's products (composite COG, uncertainty COG, quicklook).

The item carries the grid in the projection extension (``proj:code``, ``proj:shape``,
``proj:transform``, ``proj:bbox``), a WGS84 footprint, the period (``start_datetime`` /
``end_datetime``, ``datetime`` = the target date) and the run's provenance as ``clearcube:*``
properties (version, checkpoint hash, sampler, steps, dates used). Asset hrefs are written relative
to the item file by :func:`write_stac_item`, so the output folder can be moved or uploaded whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from affine import Affine
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from rasterio.crs import CRS
from rasterio.warp import transform_bounds, transform_geom

from clearcube.errors import BadInputError

__all__ = ["ASSET_ROLES", "build_stac_item", "write_stac_item"]

ASSET_ROLES: dict[str, tuple[str, ...]] = {
    "composite": ("data",),
    "uncertainty": ("data", "uncertainty"),
    "quicklook": ("overview", "visual"),
}
"""Roles of the known assets; any other asset gets ``("data",)``."""


def _when(value: str | datetime | np.datetime64) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    text = str(np.datetime64(str(value), "s"))
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def build_stac_item(
    *,
    item_id: str,
    crs: Any,
    transform: Any,
    shape: tuple[int, int],
    start: str | datetime | np.datetime64,
    end: str | datetime | np.datetime64,
    target: str | datetime | np.datetime64,
    assets: Mapping[str, str | Path],
    band_names: Sequence[str],
    properties: Mapping[str, Any],
) -> pystac.Item:
    """Build the ``pystac.Item`` of a composite.

    Args:
        item_id: the item id (e.g. the run fingerprint).
        crs: the grid's CRS (anything ``rasterio.crs.CRS.from_user_input`` takes).
        transform: the grid's affine transform.
        shape: ``(height, width)`` of the grid.
        start: first day of the period.
        end: last day of the period.
        target: the date the composite represents (``datetime``).
        assets: ``{name: path}``; ``composite``, ``uncertainty`` and ``quicklook`` get their roles.
        band_names: bands of the COG assets (``eo:bands``).
        properties: provenance, stored as ``clearcube:<key>`` (keys already prefixed are kept).
    """
    height, width = shape
    if height < 1 or width < 1:
        raise BadInputError(f"the grid is empty ({height} x {width}); nothing to describe")
    crs = CRS.from_user_input(crs)
    affine = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
    x0, y0 = affine @ (0, 0)
    x1, y1 = affine @ (width, height)
    native = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    ring = [
        (native[0], native[1]),
        (native[2], native[1]),
        (native[2], native[3]),
        (native[0], native[3]),
    ]
    footprint = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    geometry = transform_geom(crs, "EPSG:4326", footprint, antimeridian_cutting=True, precision=7)
    bbox = list(transform_bounds(crs, "EPSG:4326", *native, densify_pts=21))

    props = {
        (k if k.startswith("clearcube:") else f"clearcube:{k}"): v for k, v in properties.items()
    }
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=_when(target),
        properties=props,
        start_datetime=_when(start),
        end_datetime=_when(end),
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = crs.to_epsg()
    if epsg is not None:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.wkt2 = crs.to_wkt()
    proj.shape = [height, width]
    proj.transform = list(affine)[:6]
    proj.bbox = list(native)
    EOExtension.add_to(item)
    for name, href in assets.items():
        is_png = str(href).lower().endswith(".png")
        asset = pystac.Asset(
            href=str(href),
            media_type=pystac.MediaType.PNG if is_png else pystac.MediaType.COG,
            roles=list(ASSET_ROLES.get(name, ("data",))),
            title=name,
        )
        item.add_asset(name, asset)
        if name == "provenance":
            _describe_provenance(item, asset)
        elif not is_png:
            EOExtension.ext(asset).bands = [Band.create(name=b) for b in band_names]
    return item


#: What each provenance COG value means (the ``classification`` extension's classes).
PROVENANCE_CLASSES = (
    (0, "nodata", "no date covers the pixel (outside every footprint): nothing observed or made"),
    (1, "observed", "clear on the fused date nearest the target: that date's value"),
    (2, "fused", "cloudy on the nearest date, clear on another fused date: its value"),
    (3, "generated", "cloudy on every fused date: made by the model (SeqTIS) from SAR and context"),
)
_CLASSIFICATION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
_RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"


def _describe_provenance(item: pystac.Item, asset: pystac.Asset) -> None:
    """One uint16 band of classes 0-3, described with the classification extension."""
    asset.description = "Where each composite pixel comes from: " + "; ".join(
        f"{v} {n}" for v, n, _ in PROVENANCE_CLASSES
    )
    asset.extra_fields["classification:classes"] = [
        {"value": v, "name": n, "description": d, **({"nodata": True} if v == 0 else {})}
        for v, n, d in PROVENANCE_CLASSES
    ]
    asset.extra_fields["raster:bands"] = [{"data_type": "uint16", "nodata": 0}]
    for uri in (_CLASSIFICATION, _RASTER):
        if uri not in item.stac_extensions:
            item.stac_extensions.append(uri)


def write_stac_item(item: pystac.Item, path: str | Path) -> Path:
    """Write ``item`` as JSON at ``path`` with asset hrefs relative to its folder; return the path."""
    path = Path(path)
    data = item.to_dict(include_self_link=False)
    for asset in data["assets"].values():
        href = asset["href"]
        if "://" not in href:
            asset["href"] = os.path.relpath(Path(href).resolve(), path.parent.resolve())
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(data, indent=2))
    os.replace(part, path)
    return path
