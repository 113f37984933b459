"""The cube's target grid: the default UTM zone and the snapped odc-geo GeoBox."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pystac
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox

from clearcube.catalogs.records import item_epsg
from clearcube.catalogs.search import BBox
from clearcube.errors import BadInputError

__all__ = ["BBox", "default_crs", "target_geobox"]


def default_crs(items: Sequence[pystac.Item], bbox: BBox) -> str:
    """The UTM zone most of ``items`` are in; the bbox centre's zone when they do not say."""
    zones = Counter(e for e in map(item_epsg, items) if e and (32601 <= e <= 32760))
    if zones:
        return f"EPSG:{zones.most_common(1)[0][0]}"
    lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    zone = min(int((lon + 180) // 6) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def target_geobox(bbox: BBox, crs: str, resolution: float) -> GeoBox:
    """The cube grid: ``bbox`` (WGS84) in ``crs``, corners rounded outward to the resolution."""
    if not resolution > 0:
        raise BadInputError(f"resolution must be > 0 metres, got {resolution}")
    box = BoundingBox(*bbox, crs="EPSG:4326").to_crs(crs)
    snapped = BoundingBox(
        math.floor(box.left / resolution) * resolution,
        math.floor(box.bottom / resolution) * resolution,
        math.ceil(box.right / resolution) * resolution,
        math.ceil(box.top / resolution) * resolution,
        crs=crs,
    )
    return GeoBox.from_bbox(snapped, resolution=resolution, tight=True)
