"""The cube's target grid: bbox checks, the default UTM zone and the snapped odc-geo GeoBox."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pystac
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox

from clearcube.errors import BadInputError

BBox = tuple[float, float, float, float]

__all__ = ["BBox", "check_bbox", "default_crs", "item_epsg", "target_geobox"]


def check_bbox(bbox: Sequence[float]) -> BBox:
    """Return ``bbox`` as a float 4-tuple, or raise BadInputError if inverted or out of range."""
    if len(bbox) != 4:
        raise BadInputError(f"bbox needs 4 numbers W S E N, got {list(bbox)}")
    w, s, e, n = (float(v) for v in bbox)
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise BadInputError(
            f"bbox {[w, s, e, n]} is out of range; give WGS84 degrees W S E N "
            "with longitudes in [-180, 180] and latitudes in [-90, 90]"
        )
    if w >= e or s >= n:
        raise BadInputError(f"bbox {[w, s, e, n]} is inverted or empty; give it as W S E N")
    return (w, s, e, n)


def item_epsg(item: pystac.Item) -> int | None:
    """EPSG code of an item (``proj:code`` ``EPSG:n`` or ``proj:epsg``), if it says."""
    code = item.properties.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    epsg = item.properties.get("proj:epsg")
    return int(epsg) if epsg is not None else None


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
