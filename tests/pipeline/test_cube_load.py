"""load_cube on real COGs with known pixel values: grid, bands, dates, S1 alignment, bad input."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
from pyproj import Transformer

from clearcube.bands import EARTH_SEARCH_ASSETS, S2_BANDS, S2_RESOLUTION
from clearcube.errors import BadInputError
from clearcube.pipeline.cube import load_cube
from clearcube.pipeline.cube_load import group_by_solar_day

sys.path.insert(0, str(Path(__file__).parent))
from cube_fixtures import (
    EPSG,
    ORIGIN,
    S1_GRADIENT,
    S1_RES,
    inner_bbox,
    make_s1_item,
    make_s2_item,
    native_rowcol,
    s1_base,
    s2_value,
    standard_scenes,
)

S2_ASSETS = {b: EARTH_SEARCH_ASSETS[b] for b in S2_BANDS}
PAIRS = {"d0a": "s1x", "d0b": "s1x", "d1": None, "d2": "s1y"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pystac.Item]:
    return standard_scenes(tmp_path_factory.mktemp("scenes"))


@pytest.fixture(scope="module")
def cube(scenes: dict[str, pystac.Item]):
    s2 = [scenes[i] for i in ("d2", "d0b", "d1", "d0a")]  # order must not matter
    s1 = [scenes["s1y"], scenes["s1x"]]
    ds = load_cube(
        s2, s1, bbox=inner_bbox(), s2_assets=S2_ASSETS, s1_pairing=PAIRS,
        extra_assets={"scl": "scl"}, chunks=64,
    )  # fmt: skip
    return ds, ds.compute()


def test_grid_is_snapped_outward_to_the_resolution(cube) -> None:
    lazy, _ = cube
    x0, res, _, y0, _, neg = lazy.attrs["transform"]
    assert lazy.attrs["crs"] == f"EPSG:{EPSG}" and res == 10 and neg == -10
    ny, nx = lazy.sizes["y"], lazy.sizes["x"]
    assert x0 % 10 == 0 and y0 % 10 == 0
    # the bbox, densified in UTM by pyproj, lies inside the grid and within one pixel of its edges
    w, s, e, n = inner_bbox()
    lon = np.concatenate(
        [np.linspace(w, e, 50), np.full(50, e), np.linspace(w, e, 50), np.full(50, w)]
    )
    lat = np.concatenate(
        [np.full(50, s), np.linspace(s, n, 50), np.full(50, n), np.linspace(s, n, 50)]
    )
    xs, ys = Transformer.from_crs(4326, EPSG, always_xy=True).transform(lon, lat)
    assert x0 <= xs.min() < x0 + 10 and x0 + nx * 10 - 10 < xs.max() <= x0 + nx * 10
    assert y0 - ny * 10 <= ys.min() < y0 - ny * 10 + 10 and y0 - 10 < ys.max() <= y0
    assert np.allclose(lazy.x.values, x0 + 5 + 10 * np.arange(nx))


def test_layout_dtypes_and_chunks(cube) -> None:
    lazy, _ = cube
    assert lazy["s2"].dims == ("time", "band", "y", "x") and lazy["s2"].dtype == np.uint16
    assert list(lazy.band.values) == list(S2_BANDS)
    assert lazy["s1"].dims == ("time", "s1_band", "y", "x") and lazy["s1"].dtype == np.float32
    assert list(lazy.s1_band.values) == ["VV", "VH"]
    assert lazy["scl"].dims == ("time", "y", "x") and lazy["scl"].dtype == np.uint8
    # every asset is read in 4 × 4 stored chunks (here the whole 154 px grid), and each read
    # window is written as one call; the store keeps 64 px chunks
    assert lazy["s2"].data.chunksize == (1, 13, 154, 154)
    assert lazy["scl"].data.chunksize == (1, 154, 154)
    assert lazy["s1"].data.chunksize == (1, 2, 154, 154)
    assert lazy.attrs["clearcube_chunk"] == 64


def test_values_do_not_depend_on_the_read_window(
    cube, scenes: dict[str, pystac.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading per stored chunk (the old way) gives exactly the 4 × 4 window's values."""
    import clearcube.pipeline.cube_load as cube_load

    _, wide = cube
    monkeypatch.setattr(cube_load, "READ_CHUNKS", 1)
    narrow = load_cube(
        [scenes[i] for i in ("d2", "d0b", "d1", "d0a")], [scenes["s1y"], scenes["s1x"]],
        bbox=inner_bbox(), s2_assets=S2_ASSETS, s1_pairing=PAIRS, extra_assets={"scl": "scl"},
        chunks=64,
    )  # fmt: skip
    assert narrow["s2"].data.chunksize == (1, 13, 64, 64)
    narrow = narrow.compute()
    for name in ("s2", "scl", "s1"):
        np.testing.assert_array_equal(narrow[name].values, wide[name].values)
    assert narrow.attrs["clearcube_fingerprint"] == wide.attrs["clearcube_fingerprint"]


def test_sentinel1_does_not_depend_on_the_read_window(
    tmp_path: Path, scenes: dict[str, pystac.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speckled S1 (EPSG:4326, bilinear onto UTM) read in 64 px and in 4 × 4 chunk windows agrees.

    GDAL's default warp would move these values with the window (approximate transformer,
    kernel scale from the window's size); the exact warp of :mod:`clearcube.pipeline.exact_warp`
    makes every pixel the same function of the source.
    """
    import clearcube.pipeline.cube_load as cube_load

    s1 = make_s1_item(tmp_path, "speckled", datetime(2024, 6, 2, 5, tzinfo=UTC), 0, speckle=True)

    def load(read_chunks: int) -> np.ndarray:
        monkeypatch.setattr(cube_load, "READ_CHUNKS", read_chunks)
        ds = load_cube(
            [scenes["d0a"]], [s1], bbox=inner_bbox(), s2_assets=S2_ASSETS,
            s1_pairing={"d0a": "speckled"}, chunks=64,
        )  # fmt: skip
        return np.asarray(ds["s1"].values)

    narrow, wide = load(1), load(4)
    assert np.isfinite(wide).all() and np.ptp(wide) > 3.0  # the speckle is there to be moved
    np.testing.assert_array_equal(narrow, wide)


def _expected_s2(ds, band: str, date: int) -> np.ndarray:
    res = S2_RESOLUTION[band]
    col = native_rowcol(ds.x.values, ORIGIN[0], res, flip=False)
    row = native_rowcol(ds.y.values, ORIGIN[1], res, flip=True)
    return s2_value(band, date, row[:, None], col[None, :])


@pytest.mark.parametrize("band", S2_BANDS)
def test_every_band_equals_its_native_parent_pixel(cube, band: str) -> None:
    _, ds = cube
    for k, date in enumerate((0, 1, 2)):
        got = ds["s2"].sel(band=band).isel(time=k).values
        np.testing.assert_array_equal(got, _expected_s2(ds, band, date))


def test_one_date_per_solar_day_with_earliest_time_and_mean_cloud(cube) -> None:
    _, ds = cube
    assert list(ds.time.values) == [
        np.datetime64("2024-06-01T10:00:00"),
        np.datetime64("2024-06-11T10:00:00"),
        np.datetime64("2024-06-21T10:00:00"),
    ]
    np.testing.assert_allclose(ds.cloud_cover.values, [15.0, 30.0, 50.0])


def test_solar_day_uses_local_solar_time() -> None:
    def item(i: str, when: datetime) -> pystac.Item:
        return pystac.Item(i, None, None, when, {})

    late = item("late", datetime(2024, 6, 1, 23, 30, tzinfo=UTC))
    early = item("early", datetime(2024, 6, 2, 0, 10, tzinfo=UTC))
    # at 15° E local solar time is UTC + 1 h: both fall on 2 June
    assert [[i.id for i in g] for g in group_by_solar_day([early, late], 15.0)] == [
        ["late", "early"]
    ]
    # at 100° W (UTC - 6 h 40 min) both fall on 1 June... and stay together
    assert len(group_by_solar_day([early, late], -100.0)) == 1
    # at the Greenwich meridian they are two days
    assert len(group_by_solar_day([early, late], 0.0)) == 2


def test_scl_is_loaded_nearest(cube) -> None:
    _, ds = cube
    col = native_rowcol(ds.x.values, ORIGIN[0], 20, flip=False)
    row = native_rowcol(ds.y.values, ORIGIN[1], 20, flip=True)
    for k, date in enumerate((0, 1, 2)):
        expected = 1 + (row[:, None] + col[None, :] + date) % 11
        np.testing.assert_array_equal(ds["scl"].isel(time=k).values, expected)


def _expected_s1(ds, pol: str, s1_date: int, north: float) -> np.ndarray:
    """Linear-in-row S1 sampled at each cube pixel centre's latitude (bilinear is exact)."""
    xx, yy = np.meshgrid(ds.x.values, ds.y.values)
    _, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(xx, yy)
    # the S1 raster's top edge is its item's bbox north; row of a latitude, pixel-centre based
    return s1_base(pol, s1_date) + S1_GRADIENT * ((north - lat) / S1_RES - 0.5)


def test_s1_is_aligned_to_the_s2_dates_by_pairing(cube, scenes) -> None:
    _, ds = cube
    north = scenes["s1x"].bbox[3]
    assert list(ds.s1_time.values[[0, 2]]) == [
        np.datetime64("2024-06-02T05:00:00"),
        np.datetime64("2024-06-20T17:00:00"),
    ]
    assert np.isnat(ds.s1_time.values[1])
    assert np.isnan(ds["s1"].isel(time=1).values).all()
    for k, s1_date in ((0, 0), (2, 1)):
        for pol in ("VV", "VH"):
            got = ds["s1"].sel(s1_band=pol).isel(time=k).values
            # bilinear of a linear ramp: exact up to GDAL's approximate transformer (< 0.2 px)
            np.testing.assert_allclose(
                got, _expected_s1(ds, pol, s1_date, north), atol=0.01 * S1_GRADIENT
            )


def test_default_pairing_is_nearest_within_three_days(scenes) -> None:
    ds = load_cube(
        [scenes["d0a"], scenes["d1"], scenes["d2"]], [scenes["s1x"], scenes["s1y"]],
        bbox=inner_bbox(600), s2_assets={"B02": "blue"}, chunks=64,
    )  # fmt: skip
    assert ds.s1_time.values[0] == np.datetime64("2024-06-02T05:00:00")
    assert np.isnat(ds.s1_time.values[1])  # nine days from either S1 date
    assert ds.s1_time.values[2] == np.datetime64("2024-06-20T17:00:00")
    assert list(ds.band.values) == ["B02"]


def test_without_s1_the_s1_variable_is_all_nan(scenes) -> None:
    ds = load_cube([scenes["d1"]], None, bbox=inner_bbox(600), s2_assets={"B04": "red"})
    assert ds["s1"].shape == (1, 2, ds.sizes["y"], ds.sizes["x"])
    assert np.isnan(ds["s1"].values).all() and np.isnat(ds.s1_time.values).all()


def test_missing_bands_are_named_before_loading(tmp_path: Path, scenes) -> None:
    partial = make_s2_item(
        tmp_path, "no-swir", datetime(2024, 7, 1, 10, tzinfo=UTC), 3, bands=("B02", "B03")
    )
    with pytest.raises(BadInputError, match=r"B11 \(asset 'swir16'\).*no-swir"):
        load_cube([scenes["d1"], partial], None, bbox=inner_bbox(), s2_assets=S2_ASSETS)


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((15.1, 46.0, 15.0, 46.1), "inverted"),
        ((15.0, 46.1, 15.1, 46.0), "inverted"),
        ((190.0, 46.0, 191.0, 46.1), "out of range"),
        ((15.0, 46.0, 15.1), "not four finite numbers"),
    ],
)
def test_bad_bbox_is_refused(scenes, bbox, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        load_cube([scenes["d1"]], None, bbox=bbox, s2_assets=S2_ASSETS)


def test_no_items_and_bad_resolution_are_refused(scenes) -> None:
    with pytest.raises(BadInputError, match="no Sentinel-2 items"):
        load_cube([], None, bbox=inner_bbox(), s2_assets=S2_ASSETS)
    with pytest.raises(BadInputError, match="resolution"):
        load_cube([scenes["d1"]], None, bbox=inner_bbox(), s2_assets=S2_ASSETS, resolution=0)
