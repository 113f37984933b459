"""Small real COGs and STAC items with KNOWN pixel values, for the cube tests and benchmark.

Sentinel-2 bands are written at their native 10/20/60 m resolution in UTM zone 33N
(EPSG:32633), each pixel holding :func:`s2_value` of (band, date, native row, native column), so a
test can predict every loaded pixel from the formula alone. Sentinel-1 is written in EPSG:4326
(like the demo catalog) with :func:`s1_value`, linear in the source row, so bilinear reprojection
is predictable too. Everything is deterministic; no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pystac
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from clearcube.bands import EARTH_SEARCH_ASSETS, S2_BANDS, S2_RESOLUTION

EPSG = 32633
#: Top-left corner of the fixture scenes (UTM 33N, ~46° N 15° E); multiples of 60 m.
ORIGIN = (500_040.0, 5_100_000.0)
#: Scene extent in metres (a multiple of 60 so every band has whole pixels).
SIZE_M = 1920.0
#: S1 grid (EPSG:4326) pixel size in degrees, about 10 m.
S1_RES = 1e-4
S1_GRADIENT = 0.01  # dB per source row

EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


def s2_value(band: str, date: int, row: np.ndarray | int, col: np.ndarray | int) -> np.ndarray:
    """DN of ``band`` on fixture date ``date`` at native pixel ``(row, col)`` (never 0 = nodata)."""
    b = S2_BANDS.index(band)
    return np.asarray(1 + b * 4000 + date * 400 + (np.asarray(row) * 7 + np.asarray(col) * 3) % 397)


def s1_base(pol: str, date: int) -> float:
    """Backscatter (dB) of the first S1 source row for polarisation ``pol`` on S1 date ``date``."""
    return (-8.0 if pol == "VV" else -16.0) - date


def s1_value(pol: str, date: int, row: np.ndarray | float) -> np.ndarray:
    """Backscatter in dB at (fractional) source row ``row``: linear, so bilinear is exact."""
    return np.asarray(s1_base(pol, date) + S1_GRADIENT * np.asarray(row))


def s1_speckle(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """A fixed ±2 dB pixel-scale pattern (no randomness): neighbours differ by up to 4 dB."""
    return np.asarray(((np.asarray(row) * 7919 + np.asarray(col) * 104729) % 17) / 4.0 - 2.0)


def write_cog(path: Path, data: np.ndarray, *, crs: str, transform: object, nodata: float) -> None:
    """Write a single-band Cloud-Optimized GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "blocksize": 64,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _footprint(bounds: tuple[float, float, float, float], epsg: int) -> list[float]:
    to_wgs = Transformer.from_crs(epsg, 4326, always_xy=True)
    xs, ys = to_wgs.transform(
        [bounds[0], bounds[2], bounds[2], bounds[0]], [bounds[1], bounds[1], bounds[3], bounds[3]]
    )
    return [min(xs), min(ys), max(xs), max(ys)]


def _polygon(bbox: Sequence[float]) -> dict[str, object]:
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def make_s2_item(
    root: Path,
    item_id: str,
    when: datetime,
    date: int,
    *,
    bands: Sequence[str] = S2_BANDS,
    origin: tuple[float, float] = ORIGIN,
    size_m: float = SIZE_M,
    cloud_cover: float = 10.0,
    with_scl: bool = False,
    baseline: str = "02.14",
) -> pystac.Item:
    """Write one S2 scene (one COG per band, native resolution) and return its STAC item.

    Its values are :func:`s2_value`; a ``baseline`` of 04.00 or later adds ESA's +1000 DN offset
    to them, as real products of those baselines do.
    """
    x0, y0 = origin
    bounds = (x0, y0 - size_m, x0 + size_m, y0)
    bbox = _footprint(bounds, EPSG)
    item = pystac.Item(
        item_id,
        geometry=_polygon(bbox),
        bbox=bbox,
        datetime=when,
        properties={
            "eo:cloud_cover": cloud_cover,
            "proj:code": f"EPSG:{EPSG}",
            "s2:processing_baseline": baseline,
        },
        stac_extensions=list(EXTENSIONS),
    )
    layers: list[tuple[str, int, str, np.ndarray]] = []
    for band in bands:
        res = S2_RESOLUTION[band]
        n = int(size_m // res)
        rows, cols = np.mgrid[0:n, 0:n]
        shift = 1000 if baseline >= "04.00" else 0
        values = s2_value(band, date, rows, cols) + shift
        layers.append((EARTH_SEARCH_ASSETS[band], res, "uint16", values))
    if with_scl:
        n = int(size_m // 20)
        rows, cols = np.mgrid[0:n, 0:n]
        layers.append(("scl", 20, "uint8", 1 + (rows + cols + date) % 11))
    for key, res, dtype, data in layers:
        href = root / item_id / f"{key}.tif"
        transform = from_origin(x0, y0, res, res)
        write_cog(href, data.astype(dtype), crs=f"EPSG:{EPSG}", transform=transform, nodata=0)
        item.add_asset(
            key,
            pystac.Asset(
                str(href),
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={
                    "proj:shape": list(data.shape),
                    "proj:transform": list(transform)[:6],
                    "raster:bands": [{"nodata": 0, "data_type": dtype, "spatial_resolution": res}],
                },
            ),
        )
    return item


def make_s1_item(
    root: Path,
    item_id: str,
    when: datetime,
    date: int,
    *,
    bounds_wgs84: tuple[float, float, float, float] | None = None,
    speckle: bool = False,
) -> pystac.Item:
    """Write one S1 scene (VV, VH in dB, EPSG:4326) covering the S2 scenes with margin.

    ``speckle`` adds :func:`s1_speckle` to the linear ramp: texture at the pixel scale, where a
    resampling kernel that moves with the read window shows.
    """
    if bounds_wgs84 is None:
        w, s, e, n = _footprint(
            (ORIGIN[0], ORIGIN[1] - SIZE_M, ORIGIN[0] + SIZE_M, ORIGIN[1]), EPSG
        )
        bounds_wgs84 = (w - 0.003, s - 0.003, e + 0.003, n + 0.003)
    w, s, e, n = bounds_wgs84
    width, height = round((e - w) / S1_RES), round((n - s) / S1_RES)
    transform = from_origin(w, n, S1_RES, S1_RES)
    item = pystac.Item(
        item_id,
        geometry=_polygon(bounds_wgs84),
        bbox=list(bounds_wgs84),
        datetime=when,
        properties={"proj:code": "EPSG:4326"},
        stac_extensions=list(EXTENSIONS),
    )
    rows = np.broadcast_to(np.arange(height, dtype="float64")[:, None], (height, width))
    for pol in ("VV", "VH"):
        key = EARTH_SEARCH_ASSETS[pol]
        href = root / item_id / f"{key}.tif"
        data = s1_value(pol, date, rows)
        if speckle:
            data = data + s1_speckle(*np.indices((height, width)))
        data = data.astype("float32")
        write_cog(href, data, crs="EPSG:4326", transform=transform, nodata=float("nan"))
        item.add_asset(
            key,
            pystac.Asset(
                str(href),
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={
                    "proj:shape": [height, width],
                    "proj:transform": list(transform)[:6],
                    "raster:bands": [{"nodata": "nan", "data_type": "float32", "unit": "dB"}],
                },
            ),
        )
    return item


def inner_bbox(margin_m: float = 200.0) -> tuple[float, float, float, float]:
    """A WGS84 bbox inside the fixture scenes, ``margin_m`` metres in from their edges."""
    x0, y0 = ORIGIN
    return tuple(  # type: ignore[return-value]
        _footprint(
            (x0 + margin_m, y0 - SIZE_M + margin_m, x0 + SIZE_M - margin_m, y0 - margin_m), EPSG
        )
    )


def native_rowcol(coord: np.ndarray, origin: float, res: float, *, flip: bool) -> np.ndarray:
    """Native pixel index holding cube pixel centres ``coord`` (x: ``flip=False``; y: ``True``)."""
    offset = (origin - coord) if flip else (coord - origin)
    return np.floor(offset / res).astype(int)


def standard_scenes(root: Path) -> dict[str, pystac.Item]:
    """The scenes most cube tests use, by id.

    S2: ``d0a`` and ``d0b`` on one solar day (2024-06-01, 10 s apart; ``d0b`` has other values),
    ``d1`` (06-11), ``d2`` (06-21), all with SCL. S1: ``s1x`` (06-02, S1 date 0) and ``s1y``
    (06-20, S1 date 1).
    """
    from datetime import UTC

    def at(day: int, hour: int, second: int = 0) -> datetime:
        return datetime(2024, 6, day, hour, 0, second, tzinfo=UTC)

    items = [
        make_s2_item(root, "d0a", at(1, 10), 0, cloud_cover=10.0, with_scl=True),
        make_s2_item(root, "d0b", at(1, 10, 10), 5, cloud_cover=20.0, with_scl=True),
        make_s2_item(root, "d1", at(11, 10), 1, cloud_cover=30.0, with_scl=True),
        make_s2_item(root, "d2", at(21, 10), 2, cloud_cover=50.0, with_scl=True),
        make_s1_item(root, "s1x", at(2, 5), 0),
        make_s1_item(root, "s1y", at(20, 17), 1),
    ]
    return {item.id: item for item in items}
