"""The reads of clearcube.pipeline.exact_warp against GDAL's own warp of the same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from odc.geo.converters import rio_geobox
from odc.geo.geobox import GeoBox
from odc.loader.types import RasterLoadParams
from rasterio.transform import from_origin
from rasterio.warp import Resampling

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
