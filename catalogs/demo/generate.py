"""Write the demo region: Sentinel-2 L1C and L2A, Sentinel-1 GRD COGs plus STAC collections.

Layout of a generated catalog (the catalog server and the search layer rely on it)::

    ROOT/<collection-id>/collection.json   STAC Collection (extent, summaries, item_assets)
    ROOT/<collection-id>/items.json        GeoJSON FeatureCollection of its items
    ROOT/<collection-id>/<item-id>/<asset>.tif
    ROOT/DONE                              written last; holds the generator version
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.warp import Resampling, reproject, transform_bounds

from clearcube.bands import DN_PER_REFLECTANCE, L2A_MISSING, S2_BANDS, S2_RESOLUTION
from clearcube.catalogs.demo import stac
from clearcube.catalogs.demo.writer import block_sample, write_cog, write_json
from clearcube.errors import BadInputError
from clearcube.simulation import clouds, scene, world
from clearcube.simulation.world import (
    block_mean,
    simulate_s1_date,
    simulate_s2_date,
    to_dn,
    toa_to_boa,
)

log = logging.getLogger(__name__)

#: Bump when the generated data change, so cached catalogs are regenerated.
DEMO_VERSION = 1
DEMO_EPSG = 32632
DEMO_START = "2024-05-01"
DEMO_END = "2024-07-31"
#: A WGS84 ``(west, south, east, north)`` box about 500 m inside the default 1024 px region.
DEMO_BBOX = world.DEMO_BBOX

_FIRST_S2 = world.FIRST_S2
_S1_TIME = (17, 19, 32)  # UTC: the ascending evening pass
_DUPLICATE_INDEX = 1  # this L1C acquisition is also published reprocessed (sequence 1)
_SAR_MARGIN = 16  # 10 m pixels simulated around the region so reprojected SAR has no holes


@dataclass(frozen=True)
class _Target:
    """Where files go (``work``) and what absolute root their hrefs name (``href_root``)."""

    work: Path
    href_root: Path

    def file(self, collection: str, item_id: str, asset: str) -> tuple[Path, str]:
        rel = Path(collection) / item_id / f"{asset}.tif"
        return self.work / rel, str(self.href_root / rel)


def generate_demo_region(root: Path, *, size: int = 1024, seed: int = 0, n_dates: int = 9) -> Path:
    """Generate the demo catalog into ``root`` and return ``root``.

    Deterministic: the same ``size``, ``seed`` and ``n_dates`` give byte-identical rasters (and
    identical JSON for the same ``root``). Asset hrefs are absolute paths under ``root``.

    Args:
        root: output folder (created; existing files of a previous generation are overwritten).
        size: side of the region in 10 m pixels (>= 64).
        seed: random seed of the landscape, clouds, speckle and noise.
        n_dates: Sentinel-2 and Sentinel-1 acquisitions (>= 3: a clear, a cloudy, a full-cloud one).
    """
    root = Path(root).absolute()
    _build(_Target(root, root), size=size, seed=seed, n_dates=n_dates)
    return root


def default_cache_dir(size: int) -> Path:
    """``$CLEARCUBE_CACHE/demo-v<version>-<size>`` (default cache: ``~/.cache/clearcube``)."""
    base = os.environ.get("CLEARCUBE_CACHE") or Path.home() / ".cache" / "clearcube"
    return Path(base) / f"demo-v{DEMO_VERSION}-{size}"


def ensure_demo_catalog(root: Path | None = None, *, size: int = 1024) -> Path:
    """Return a complete demo catalog folder, generating it first if its ``DONE`` file is missing.

    Generation goes to a temporary sibling folder that is renamed into place only when complete,
    so an interrupted run never leaves a folder that looks finished.
    """
    final = Path(root).absolute() if root is not None else default_cache_dir(size).absolute()
    if (final / "DONE").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    log.info("generating the demo catalog (%d px) into %s", size, final)
    try:
        _build(_Target(work, final), size=size, seed=0, n_dates=9)
        if final.exists():  # an earlier interrupted attempt, or a concurrent winner
            if (final / "DONE").is_file():
                return final
            shutil.rmtree(final)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _build(target: _Target, *, size: int, seed: int, n_dates: int) -> None:
    if size < 64:
        raise BadInputError(f"demo region size {size} px is too small; use at least 64")
    if n_dates < 3:
        raise BadInputError(f"demo region needs at least 3 dates (got {n_dates}); pass n_dates>=3")
    (target.work / "DONE").unlink(missing_ok=True)
    grid = scene.demo_grid(size)
    footprint = _wgs84_bounds(grid)
    lon, lat = (footprint[0] + footprint[2]) / 2, (footprint[1] + footprint[3]) / 2
    n = grid.padded
    land_full = scene.make_landscape(np.random.default_rng([seed, 0]), n + 2 * _SAR_MARGIN)
    land = _crop_landscape(land_full, _SAR_MARGIN, n)

    l1c: list[dict[str, Any]] = []
    l2a: list[dict[str, Any]] = []
    for t in range(n_dates):
        day, moment, (azimuth, elevation), sky, toa = simulate_s2_date(land, t, seed, lon, lat)
        common: dict[str, Any] = {
            "platform": "sentinel-2a" if t % 2 == 0 else "sentinel-2b",
            "moment": moment,
            "sun": (azimuth, elevation),
            "footprint": footprint,
            "grid": grid,
        }
        truth = sky.truth[:size, :size]
        sequences = (0, 1) if t == _DUPLICATE_INDEX else (0,)
        for seq in sequences:
            l1c.append(_write_s2(target, "sentinel-2-l1c", seq, to_dn(toa), truth, None, **common))
        boa = toa_to_boa(toa)
        scl = _scene_classification(land, day, sky.truth, size)
        l2a.append(_write_s2(target, "sentinel-2-l2a", 0, to_dn(boa), truth, scl, **common))
        log.debug("S2 date %s written (%.0f %% cloud)", day, 100 * np.isin(truth, (1, 2, 3)).mean())

    s1 = [_write_s1(target, land_full, grid, footprint, t, seed) for t in range(n_dates)]
    interval = (
        datetime.fromisoformat(DEMO_START).replace(tzinfo=UTC),
        datetime.fromisoformat(DEMO_END).replace(tzinfo=UTC),
    )
    for cid, items, summaries in (
        ("sentinel-2-l1c", l1c, _s2_summaries(S2_BANDS)),
        ("sentinel-2-l2a", l2a, _s2_summaries([b for b in S2_BANDS if b not in L2A_MISSING])),
        ("sentinel-1-grd", s1, _s1_summaries()),
    ):
        description = (
            f"clearcube demo region (synthetic, Po valley near Cremona, tile 32TNQ): {cid}. "
            "Sentinel-2 DN = reflectance x 10000 with no offset."
        )
        write_json(
            target.work / cid / "items.json", {"type": "FeatureCollection", "features": items}
        )
        document = stac.collection(
            cid, description, footprint=footprint, interval=interval, items=items,
            summaries=summaries,
        )  # fmt: skip
        write_json(target.work / cid / "collection.json", document)
    done = target.work / ".DONE.tmp"
    done.write_text(f"clearcube demo v{DEMO_VERSION} size={size} seed={seed} dates={n_dates}\n")
    os.replace(done, target.work / "DONE")


def _write_s2(
    target: _Target,
    collection: str,
    sequence: int,
    dn: np.ndarray,
    truth: np.ndarray,
    scl: np.ndarray | None,
    *,
    platform: str,
    moment: datetime,
    sun: tuple[float, float],
    footprint: tuple[float, float, float, float],
    grid: scene.Grid,
) -> dict[str, Any]:
    level = "L1C" if collection.endswith("l1c") else "L2A"
    stamp = moment.strftime("%Y%m%d")
    item_id = f"S2{platform[-1].upper()}_32TNQ_{stamp}_{sequence}_{level}"
    crs = f"EPSG:{grid.epsg}"
    assets: dict[str, dict[str, Any]] = {}
    for b, band in enumerate(S2_BANDS):
        if level == "L2A" and band in L2A_MISSING:
            continue
        res = S2_RESOLUTION[band]
        raster = stac.RasterInfo(grid.epsg, grid.shape(res), grid.transform(res))
        if res == 10:
            pixels = np.ascontiguousarray(dn[b, : grid.size, : grid.size])
        else:
            pixels = to_dn(
                block_mean(dn[b].astype(np.float32) / DN_PER_REFLECTANCE, res // 10, grid.size)
            )
        path, href = target.file(collection, item_id, stac.s2_asset_key(band))
        write_cog(path, pixels, crs=crs, transform=raster.transform, nodata=0, resampling="average")
        assets[stac.s2_asset_key(band)] = stac.band_asset(href, band, raster)
    if scl is not None:
        raster = stac.RasterInfo(grid.epsg, grid.shape(20), grid.transform(20))
        path, href = target.file(collection, item_id, "scl")
        write_cog(path, scl, crs=crs, transform=raster.transform, nodata=0, resampling="nearest")
        title = "Scene classification map (SCL)"
        assets["scl"] = stac.class_asset(href, title, raster, stac.SCL_CLASSES, nodata=True)
    raster = stac.RasterInfo(grid.epsg, grid.shape(10), grid.transform(10))
    path, href = target.file(collection, item_id, "truth_cloud")
    write_cog(path, truth, crs=crs, transform=raster.transform, nodata=None, resampling="nearest")
    title = "True cloud and shadow labels of the simulation"
    assets["truth_cloud"] = stac.class_asset(href, title, raster, stac.TRUTH_CLASSES, nodata=False)

    baseline = "05.10" if sequence == 0 else "05.11"
    processed = moment + timedelta(hours=2 + 24 * 30 * sequence)
    product = (
        f"S2{platform[-1].upper()}_MSI{level}_{moment:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
        f"_R022_T32TNQ_{processed:%Y%m%dT%H%M%S}.SAFE"
    )
    properties: dict[str, Any] = {
        "eo:cloud_cover": clouds.cloud_cover_percent(truth),
        "view:sun_azimuth": sun[0],
        "view:sun_elevation": sun[1],
        "view:off_nadir": 0,
        "s2:processing_baseline": baseline,
        "s2:sequence": str(sequence),
        "s2:product_uri": product,
        "s2:generation_time": stac.iso(processed),
        "s2:datatake_id": f"GS2{platform[-1].upper()}_{moment:%Y%m%dT%H%M%S}_N{baseline}",
        "s2:nodata_pixel_percentage": 0,
        "sat:relative_orbit": 22,
    }
    if scl is not None:
        properties.update(_scl_percentages(scl))
    raster10 = stac.RasterInfo(grid.epsg, grid.shape(10), grid.transform(10))
    item: dict[str, Any] = stac.s2_item(
        item_id=item_id, collection=collection, moment=moment, platform=platform,
        footprint=footprint, grid=raster10, assets=assets, properties=properties,
    )  # fmt: skip
    return item


def _write_s1(
    target: _Target,
    land_full: scene.Landscape,
    grid: scene.Grid,
    footprint: tuple[float, float, float, float],
    t: int,
    seed: int,
) -> dict[str, Any]:
    day, db = simulate_s1_date(land_full, t, seed)
    moment = datetime(day.year, day.month, day.day, *_S1_TIME, tzinfo=UTC)
    m = _SAR_MARGIN * scene.PIXEL_M
    src_transform = (10.0, 0.0, grid.x0 - m, 0.0, -10.0, grid.y0 + m)
    raster = _s1_grid(footprint)

    orbit = 53_000 + round((day - date(2024, 1, 1)).days * 175 / 12)
    end = moment + timedelta(seconds=25)
    item_id = f"S1A_IW_GRDH_1SDV_{moment:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_{orbit:06d}_{0x06A000 + 499 * t:06X}"
    assets = {}
    for p, pol in enumerate(("vv", "vh")):
        out = np.full(raster.shape, np.nan, dtype=np.float32)
        reproject(
            db[p], out, src_transform=Affine(*src_transform), src_crs=f"EPSG:{grid.epsg}",
            dst_transform=Affine(*raster.transform), dst_crs="EPSG:4326", dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )  # fmt: skip
        path, href = target.file("sentinel-1-grd", item_id, pol)
        write_cog(path, out, crs="EPSG:4326", transform=raster.transform, nodata=np.nan,
                  resampling="nearest")  # fmt: skip
        assets[pol] = stac.s1_asset(href, pol.upper(), raster)
    item: dict[str, Any] = stac.s1_item(
        item_id=item_id, moment=moment, footprint=footprint, assets=assets, absolute_orbit=orbit
    )
    return item


def _s1_grid(footprint: tuple[float, float, float, float]) -> stac.RasterInfo:
    """A geographic grid of about 10 m pixels covering the footprint, as GRD products come."""
    west, south, east, north = footprint
    dlat = 10.0 / 111_320.0
    dlon = dlat / math.cos(math.radians((south + north) / 2))
    shape = (math.ceil((north - south) / dlat), math.ceil((east - west) / dlon))
    return stac.RasterInfo(4326, shape, (dlon, 0.0, west, 0.0, -dlat, north))


def _scene_classification(
    land: scene.Landscape, day: date, truth: np.ndarray, size: int
) -> np.ndarray:
    """Sen2Cor-like SCL at 20 m, consistent with the simulated land cover and true clouds."""
    green = scene.green_fraction(land, day)
    scl = np.where(green > 0.3, 4, 5).astype(np.uint8)
    scl[land.cover == scene.WATER] = 6
    for label, code in (
        (clouds.SHADOW, 3), (clouds.CIRRUS, 10), (clouds.THIN, 8), (clouds.THICK, 9)
    ):  # fmt: skip
        scl[truth == label] = code
    return np.ascontiguousarray(block_sample(scl, 2, size))


def _scl_percentages(scl: np.ndarray) -> dict[str, float]:
    share = {code: round(100.0 * float((scl == code).mean()), 4) for code in (3, 4, 5, 6, 8, 9, 10)}
    return {
        "s2:cloud_shadow_percentage": share[3],
        "s2:vegetation_percentage": share[4],
        "s2:not_vegetated_percentage": share[5],
        "s2:water_percentage": share[6],
        "s2:medium_proba_clouds_percentage": share[8],
        "s2:high_proba_clouds_percentage": share[9],
        "s2:thin_cirrus_percentage": share[10],
    }


def _s2_summaries(bands: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {
        "platform": ["sentinel-2a", "sentinel-2b"],
        "constellation": ["sentinel-2"],
        "instruments": ["msi"],
        "gsd": sorted({S2_RESOLUTION[b] for b in bands}),
        "proj:epsg": [DEMO_EPSG],
        "eo:bands": [{"name": b} for b in bands],
        "eo:cloud_cover": {"minimum": 0, "maximum": 100},
    }


def _s1_summaries() -> dict[str, Any]:
    return {
        "platform": ["sentinel-1a"],
        "constellation": ["sentinel-1"],
        "sar:instrument_mode": ["IW"],
        "sar:frequency_band": ["C"],
        "sar:polarizations": ["VV", "VH"],
        "sar:product_type": ["GRD"],
        "proj:epsg": [4326],
    }


def _crop_landscape(land: scene.Landscape, margin: int, n: int) -> scene.Landscape:
    inner = (slice(margin, margin + n), slice(margin, margin + n))
    return replace(
        land,
        cover=land.cover[inner], crop=land.crop[inner], phase_days=land.phase_days[inner],
        brightness=land.brightness[inner], edge=land.edge[inner],
    )  # fmt: skip


def _wgs84_bounds(grid: scene.Grid) -> tuple[float, float, float, float]:
    west, south, east, north = transform_bounds(f"EPSG:{grid.epsg}", "EPSG:4326", *grid.bounds())
    return (round(west, 7), round(south, 7), round(east, 7), round(north, 7))
