"""The reads of clearcube.pipeline.exact_warp against GDAL's own warp of the same pixels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from odc.geo.converters import rio_geobox
from odc.geo.geobox import GeoBox
from odc.loader.types import RasterLoadParams
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling

from clearcube.pipeline import exact_warp
from clearcube.pipeline.exact_warp import kernel_scale, upsample_factor, upsampled_read

CRS = "EPSG:32633"
X0, Y0 = 500040.0, 5100000.0


def _cfg() -> RasterLoadParams:
    """What clearcube asks odc-loader for a Sentinel-2 band: uint16, nodata 0, nearest."""
    return RasterLoadParams(dtype="uint16", fill_value=0, resampling="nearest")


@pytest.fixture()
def coarse(tmp_path: Path) -> Path:
    """A 20 m uint16 raster with nodata holes (0), 37 × 41 px."""
    values = np.random.default_rng(3).integers(1, 5000, size=(37, 41)).astype("uint16")
    values[5:9, 10:14] = 0
    path = tmp_path / "b05.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=41, height=37, count=1, dtype="uint16", crs=CRS,
        transform=from_origin(X0, Y0, 20, 20), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(values, 1)
    return path


def _gdal_nearest(path: Path, box: GeoBox) -> np.ndarray:
    out = np.zeros(box.shape.yx, dtype="uint16")
    with rasterio.open(path) as src:
        rasterio.warp.reproject(
            rasterio.band(src, 1), out, src_nodata=0, dst_crs=CRS,
            dst_transform=box.transform, dst_nodata=0, resampling=Resampling.nearest,
        )  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("dy", "dx", "ny", "nx"),
    [(0, 0, 74, 82), (3, 7, 30, 20), (-9, -5, 40, 50), (60, 70, 40, 40), (-20, 75, 100, 30)],
)
def test_upsampled_read_equals_gdals_nearest_warp(
    coarse: Path, dy: int, dx: int, ny: int, nx: int
) -> None:
    """Windows inside, across the edges of and around the source (offsets in 10 m pixels)."""
    box = GeoBox.from_bbox(
        (X0 + 10 * dx, Y0 - 10 * (dy + ny), X0 + 10 * (dx + nx), Y0 - 10 * dy), CRS, resolution=10
    )
    assert box.shape.yx == (ny, nx)
    with rasterio.open(coarse) as rdr:
        src_box = rio_geobox(rdr)
        assert isinstance(src_box, GeoBox)
        got = upsampled_read(rdr, 1, src_box, _cfg(), box, None)
    assert got is not None
    roi, pixels = got
    mosaic = np.zeros(box.shape.yx, dtype="uint16")
    mosaic[roi] = pixels
    expected = _gdal_nearest(coarse, box)
    np.testing.assert_array_equal(mosaic, expected)
    assert (expected > 0).any() or dy >= 60  # the cases overlap the source (one is outside)


def test_a_same_grid_read_equals_gdals_nearest_warp(coarse: Path) -> None:
    """k = 1: a window of the source's own grid, across its bottom-right corner."""
    box = GeoBox((30, 25), Affine(20, 0, X0 + 20 * 30, 0, -20, Y0 - 20 * 20), CRS)
    with rasterio.open(coarse) as rdr:
        src_box = rio_geobox(rdr)
        assert isinstance(src_box, GeoBox)
        got = upsampled_read(rdr, 1, src_box, _cfg(), box, None)
    assert got is not None
    roi, pixels = got
    mosaic = np.zeros(box.shape.yx, dtype="uint16")
    mosaic[roi] = pixels
    np.testing.assert_array_equal(mosaic, _gdal_nearest(coarse, box))
    assert roi == (slice(0, 17), slice(0, 11))  # 37 - 20 rows and 41 - 30 columns overlap


def test_only_whole_aligned_factors_take_the_fast_path(coarse: Path) -> None:
    with rasterio.open(coarse) as rdr:
        src = rio_geobox(rdr)
    assert isinstance(src, GeoBox)

    def box(x: float, res: float, crs: str = CRS) -> GeoBox:
        return GeoBox((40, 40), Affine(res, 0, x, 0, -res, Y0), crs)

    assert upsample_factor(src, box(X0, 10)) == (2, 0, 0)
    assert upsample_factor(src, box(X0 + 30, 10)) == (2, 0, 3)
    assert upsample_factor(src, box(X0 + 5, 10)) is None  # half a pixel off the grid
    assert upsample_factor(src, box(X0 + 40, 20)) == (1, 0, 2)  # same grid: a paste
    assert upsample_factor(src, box(X0, 8)) is None  # 2.5×: not whole
    assert kernel_scale(src, box(X0, 10)) == pytest.approx((2.0, 2.0))


@pytest.fixture()
def geographic(tmp_path: Path) -> Path:
    """Speckled float32 in EPSG:4326 (about 10 m pixels at 45° N), NaN nodata, with a hole."""
    rng = np.random.default_rng(5)
    values = (-12 + 3 * rng.standard_normal((90, 110))).astype("float32")
    values[30:40, 50:65] = np.nan
    path = tmp_path / "vv.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=110, height=90, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(15.0, 45.0, 1.27e-4, 9e-5), nodata=np.nan,
    ) as dst:  # fmt: skip
        dst.write(values, 1)
    return path


def _bilinear(rdr: Any) -> Callable[..., WarpedVRT]:
    return functools.partial(
        WarpedVRT, rdr, crs=CRS, resampling=Resampling.bilinear, src_nodata=np.nan,
        nodata=np.nan, dtype="float32", XSCALE="1", YSCALE="1",
    )  # fmt: skip


def _utm_grid(dy: int, dx: int, ny: int, nx: int) -> GeoBox:
    """Rows/columns of a 10 m grid over the geographic fixture (its origin is not on the lattice)."""
    return GeoBox((ny, nx), Affine(10, 0, 500_130 + 10 * dx, 0, -10, 4_983_510 - 10 * dy), CRS)


def test_block_warp_equals_an_exact_warp_to_its_tolerance(
    geographic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of 16 px over a region across the source's edges: GDAL's exact transformer's values.

    The transformer's error is at most BLOCK_TOLERANCE source pixels, so a bilinear value can
    move by at most that times the largest step between neighbouring source pixels.
    """
    monkeypatch.setattr(exact_warp, "WARP_BLOCK", 16)
    grid = _utm_grid(-7, -3, 120, 100)
    out = np.empty(grid.shape.yx, dtype="float32")
    with rasterio.open(geographic) as rdr:
        exact_warp.warp_in_blocks(_bilinear(rdr), 1, grid, (slice(0, 120), slice(0, 100)), out)
        with _bilinear(rdr)(
            transform=grid.transform, width=100, height=120, tolerance=1e-6
        ) as vrt:  # fmt: skip
            expected = vrt.read(1)
        values = rdr.read(1)
    steps = max(np.nanmax(np.abs(np.diff(values, axis=a))) for a in (0, 1))
    valid = ~np.isnan(expected)
    assert 0.3 < valid.mean() < 0.95  # the region crosses the source's edges and its hole
    np.testing.assert_array_equal(np.isnan(out), ~valid)
    assert np.abs(out - expected)[valid].max() <= exact_warp.BLOCK_TOLERANCE * steps


def test_overlapping_regions_agree_exactly(
    geographic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two windows of one grid, offset by a non-multiple of the block, give the same pixels."""
    monkeypatch.setattr(exact_warp, "WARP_BLOCK", 16)
    reads = []
    with rasterio.open(geographic) as rdr:
        for dy, dx, ny, nx in ((0, 0, 70, 60), (23, 37, 50, 45)):
            out = np.empty((ny, nx), dtype="float32")
            region = (slice(0, ny), slice(0, nx))
            exact_warp.warp_in_blocks(_bilinear(rdr), 1, _utm_grid(dy, dx, ny, nx), region, out)
            reads.append(out)
    np.testing.assert_array_equal(reads[0][23:70, 37:60], reads[1][: 70 - 23, : 60 - 37])
