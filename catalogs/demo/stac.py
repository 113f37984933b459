"""STAC documents of the demo catalog, shaped like Earth Search v1's (proj, eo, raster, sar fields).

Pure functions from acquisition descriptions to JSON-ready dicts; nothing here touches pixels.
Timestamps are derived from the acquisition dates, never from the clock, so the output is
byte-identical on every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clearcube.bands import DN_PER_REFLECTANCE, EARTH_SEARCH_ASSETS, S2_RESOLUTION

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSIONS = (
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
)
SAR_EXTENSIONS = (
    "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
)

# name -> (common name, title, centre wavelength um, full width at half maximum um)
_S2_BAND_INFO = {
    "B01": ("coastal", "Coastal aerosol", 0.443, 0.027),
    "B02": ("blue", "Blue", 0.49, 0.098),
    "B03": ("green", "Green", 0.56, 0.045),
    "B04": ("red", "Red", 0.665, 0.038),
    "B05": ("rededge", "Red edge 1", 0.704, 0.019),
    "B06": ("rededge", "Red edge 2", 0.74, 0.018),
    "B07": ("rededge", "Red edge 3", 0.783, 0.028),
    "B08": ("nir", "NIR 1", 0.842, 0.145),
    "B8A": ("nir08", "NIR 2", 0.865, 0.033),
    "B09": ("nir09", "NIR 3", 0.945, 0.026),
    "B10": ("cirrus", "Cirrus", 1.3735, 0.075),
    "B11": ("swir16", "SWIR 1", 1.61, 0.143),
    "B12": ("swir22", "SWIR 2", 2.19, 0.242),
}
SCL_CLASSES = (
    (0, "no_data"), (1, "saturated_or_defective"), (2, "dark_area_pixels"), (3, "cloud_shadows"),
    (4, "vegetation"), (5, "not_vegetated"), (6, "water"), (7, "unclassified"),
    (8, "cloud_medium_probability"), (9, "cloud_high_probability"), (10, "thin_cirrus"),
    (11, "snow"),
)  # fmt: skip
TRUTH_CLASSES = ((0, "clear"), (1, "thick_cloud"), (2, "thin_cloud"), (3, "cirrus"), (4, "shadow"))


@dataclass(frozen=True)
class RasterInfo:
    """Where one asset's pixels sit: its CRS and grid."""

    epsg: int
    """EPSG code of the asset's CRS."""
    shape: tuple[int, int]
    """``(rows, cols)``."""
    transform: tuple[float, ...]
    """Six affine coefficients (``proj:transform``)."""


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` suffix, as STAC wants it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def band_asset(href: str, band: str, raster: RasterInfo) -> dict[str, Any]:
    """A Sentinel-2 band asset: uint16 DN = reflectance × 10000, nodata 0."""
    common, title, centre, fwhm = _S2_BAND_INFO[band]
    res = S2_RESOLUTION[band]
    return {
        "href": href,
        "type": COG_TYPE,
        "title": f"{title} - {res}m",
        "eo:bands": [
            {
                "name": band,
                "common_name": common,
                "center_wavelength": centre,
                "full_width_half_max": fwhm,
            }
        ],
        "gsd": res,
        "proj:shape": list(raster.shape),
        "proj:transform": list(raster.transform),
        "raster:bands": [
            {
                "nodata": 0,
                "data_type": "uint16",
                "spatial_resolution": res,
                "scale": 1.0 / DN_PER_REFLECTANCE,
                "offset": 0.0,
            }
        ],
        "roles": ["data", "reflectance"],
    }


def class_asset(
    href: str, title: str, raster: RasterInfo, classes: Sequence[tuple[int, str]], *, nodata: bool
) -> dict[str, Any]:
    """A uint8 classification asset (SCL or the simulation's true cloud labels)."""
    res = raster.transform[0]
    band: dict[str, Any] = {"data_type": "uint8", "spatial_resolution": res}
    if nodata:
        band["nodata"] = 0
    return {
        "href": href,
        "type": COG_TYPE,
        "title": title,
        "gsd": res,
        "proj:shape": list(raster.shape),
        "proj:transform": list(raster.transform),
        "raster:bands": [band],
        "classification:classes": [{"value": v, "name": n} for v, n in classes],
        "roles": ["data"] if nodata else ["data", "truth"],
    }


def s2_item(
    *,
    item_id: str,
    collection: str,
    moment: datetime,
    platform: str,
    footprint: tuple[float, float, float, float],
    grid: RasterInfo,
    assets: Mapping[str, dict[str, Any]],
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    """A Sentinel-2 item with Earth Search's common properties plus ``properties``."""
    product = "S2MSI1C" if collection.endswith("l1c") else "S2MSI2A"
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": list(EXTENSIONS),
        "id": item_id,
        "collection": collection,
        "bbox": list(footprint),
        "geometry": _polygon(footprint),
        "properties": {
            "datetime": iso(moment),
            "created": iso(moment + timedelta(hours=5)),
            "platform": platform,
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": 10,
            "proj:epsg": grid.epsg,
            "proj:code": f"EPSG:{grid.epsg}",
            "proj:shape": list(grid.shape),
            "proj:transform": list(grid.transform),
            "mgrs:utm_zone": 32,
            "mgrs:latitude_band": "T",
            "mgrs:grid_square": "NQ",
            "grid:code": "MGRS-32TNQ",
            "s2:mgrs_tile": "32TNQ",
            "s2:product_type": product,
            **properties,
        },
        "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"}],
        "assets": dict(assets),
    }


def s1_item(
    *,
    item_id: str,
    moment: datetime,
    footprint: tuple[float, float, float, float],
    assets: Mapping[str, dict[str, Any]],
    absolute_orbit: int,
) -> dict[str, Any]:
    """A Sentinel-1 IW GRDH dual-polarisation (VV+VH) item with sar/sat fields."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": list(SAR_EXTENSIONS),
        "id": item_id,
        "collection": "sentinel-1-grd",
        "bbox": list(footprint),
        "geometry": _polygon(footprint),
        "properties": {
            "datetime": iso(moment),
            "start_datetime": iso(moment - timedelta(seconds=10)),
            "end_datetime": iso(moment + timedelta(seconds=10)),
            "created": iso(moment + timedelta(hours=2)),
            "platform": "sentinel-1a",
            "constellation": "sentinel-1",
            "instruments": ["c-sar"],
            "sar:frequency_band": "C",
            "sar:center_frequency": 5.405,
            "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD",
            "sar:observation_direction": "right",
            "sar:resolution_range": 20,
            "sar:resolution_azimuth": 22,
            "sar:pixel_spacing_range": 10,
            "sar:pixel_spacing_azimuth": 10,
            "sar:looks_range": 5,
            "sar:looks_azimuth": 1,
            "sar:looks_equivalent_number": 4.4,
            "sat:orbit_state": "ascending",
            "sat:absolute_orbit": absolute_orbit,
            "sat:relative_orbit": (absolute_orbit - 73) % 175 + 1,
            "proj:epsg": 4326,
            "proj:code": "EPSG:4326",
        },
        "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"}],
        "assets": dict(assets),
    }


def s1_asset(href: str, pol: str, raster: RasterInfo) -> dict[str, Any]:
    """A backscatter asset: float32 sigma0 in dB, NaN outside the swath."""
    return {
        "href": href,
        "type": COG_TYPE,
        "title": f"{pol}: {pol[0]} transmit, {pol[1]} receive (sigma0, dB)",
        "proj:epsg": raster.epsg,
        "proj:shape": list(raster.shape),
        "proj:transform": list(raster.transform),
        "raster:bands": [{"nodata": "nan", "data_type": "float32", "unit": "dB"}],
        "roles": ["data", "backscatter"],
    }


def collection(
    collection_id: str,
    description: str,
    *,
    footprint: tuple[float, float, float, float],
    interval: tuple[datetime, datetime],
    items: Sequence[dict[str, Any]],
    summaries: Mapping[str, Any],
) -> dict[str, Any]:
    """A STAC Collection whose ``item_assets`` are read off its first item."""
    first = items[0]["assets"]
    item_assets = {
        key: {k: v for k, v in asset.items() if k not in ("href", "proj:shape", "proj:transform")}
        for key, asset in first.items()
    }
    extensions = sorted({ext for item in items for ext in item["stac_extensions"]})
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "stac_extensions": [
            *extensions,
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
        ],
        "id": collection_id,
        "title": collection_id,
        "description": description,
        "license": "CC0-1.0",
        "keywords": ["clearcube", "demo", "synthetic", "sentinel"],
        "extent": {
            "spatial": {"bbox": [list(footprint)]},
            "temporal": {"interval": [[iso(interval[0]), iso(interval[1])]]},
        },
        "summaries": dict(summaries),
        "item_assets": item_assets,
        "links": [{"rel": "items", "href": "./items.json", "type": "application/geo+json"}],
    }


def s2_asset_key(band: str) -> str:
    """The Earth Search asset key of a canonical band name (``B04`` -> ``red``)."""
    return EARTH_SEARCH_ASSETS[band]


def _polygon(bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = (round(v, 7) for v in bbox)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
