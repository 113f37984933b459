"""Real catalog items, local pixels: harmonised Sentinel-2, Sentinel-1 in dB, split tiles, slices.

Each item is a real Earth Search or Planetary Computer item (``$CLEARCUBE_TEST_DATA/stac``) whose
radiometric metadata is untouched; its assets are local COGs whose values the test makes from a
known reflectance ``truth``. The expected cube values are written down from ESA's definition
(reflectance x 10000 = DN + BOA_ADD_OFFSET for baseline >= 04.00), not from clearcube.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cube_fixtures import native_rowcol
from real_items import ORIGIN, find, grid_bbox, localise, raw_items

from clearcube.catalogs.profiles import EARTH_SEARCH, EMBEDDED, PLANETARY_COMPUTER
from clearcube.catalogs.radiometry import s2_conversion
from clearcube.catalogs.records import build_scene_set
from clearcube.errors import BadInputError
from clearcube.pipeline.cube_load import load_cube, load_scenes, public_hrefs

pytestmark = pytest.mark.integration

C1_L2A = "S2B_T20EPT_20250731T131905_L2A"  # sentinel-2-c1-l2a: raster:bands offset -0.1
C0_L2A = "S2B_20EPT_20250731_0_L2A"  # sentinel-2-l2a: earthsearch:boa_offset_applied true
C0_L1C = "S2B_20EPT_20250731_0_L1C"  # sentinel-2-l1c: template raster:bands, baseline 05.11
GRD = "S1A_IW_GRDH_1SSH_20250731T135702_20250731T135722_060328_077F7E"  # amplitude, HH
SHAPE = (24, 32)
DAY = datetime(2025, 7, 31, 13, 19, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def raw(test_data: Path) -> list[dict[str, Any]]:
    return raw_items(test_data)


def truth(seed: int) -> np.ndarray:
    """Reflectance x 10000, 1 ... 30000: includes values above 10000 (snow, bright SWIR)."""
    return np.random.default_rng(seed).integers(1, 30_000, size=SHAPE).astype(np.uint16)


def pc_item(raw: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        i
        for i in raw
        if i.get("collection") == "sentinel-2-l2a" and "s2:mgrs_tile" in i["properties"]
    )


def test_each_real_item_gets_the_offset_its_metadata_states(raw: list[dict[str, Any]]) -> None:
    import pystac

    c1 = pystac.Item.from_dict(find(raw, C1_L2A))
    c0 = pystac.Item.from_dict(find(raw, C0_L2A))
    l1c = pystac.Item.from_dict(find(raw, C0_L1C))
    pc = pystac.Item.from_dict(pc_item(raw))
    assert (s2_conversion(c1, "red").offset, s2_conversion(c1, "red").source) == (
        -1000,
        "raster:bands",
    )
    # Collection 0's raster:bands say -0.1 on every item; its flag says the offset is gone.
    assert s2_conversion(c0, "red").offset == 0
    assert s2_conversion(c0, "red").source == "earthsearch:boa_offset_applied"
    assert (s2_conversion(l1c, "red").offset, s2_conversion(l1c, "red").source) == (
        -1000, "processing baseline 05.11",
    )  # fmt: skip
    assert pc.properties["s2:processing_baseline"] == "02.12"
    assert s2_conversion(pc, "B04").offset == 0


def test_an_item_without_baseline_metadata_is_refused(raw: list[dict[str, Any]]) -> None:
    import pystac

    doc = find(raw, C1_L2A)
    doc["id"] = "S2B_nothing_L2A"
    for key in ("s2:processing_baseline", "s2:product_uri", "s2:tile_id", "s2:datastrip_id"):
        doc["properties"].pop(key, None)
    for asset in doc["assets"].values():
        for band in asset.get("raster:bands", []):
            band.pop("offset", None)
    with pytest.raises(BadInputError, match="cannot tell whether its values carry the \\+1000"):
        s2_conversion(pystac.Item.from_dict(doc), "red")


def at_cube(ds: Any, values: np.ndarray) -> np.ndarray:
    """``values`` (the local grid's pixels) sampled at the cube's pixel centres."""
    rows = native_rowcol(ds["y"].values, ORIGIN[1], 10.0, flip=True)
    cols = native_rowcol(ds["x"].values, ORIGIN[0], 10.0, flip=False)
    return values[np.ix_(rows, cols)]


def test_dates_on_both_sides_of_the_baseline_change_fuse_on_one_scale(
    raw: list[dict[str, Any]], tmp_path: Path
) -> None:
    before, after, flagged = truth(1), truth(2), truth(3)
    stored = after + 1000  # baseline 05.11 (Collection 1): ESA's +1000 is in the file
    stored[5, 5:9] = [1, 500, 999, 1000]  # reflectance <= 0: the floor, 1
    expected_after = after.copy()
    expected_after[5, 5:9] = 1
    items = [
        # baseline 02.12 (Planetary Computer): values are reflectance x 10000 as they are
        localise(pc_item(raw), tmp_path, {"B04": before}, item_id="pc", when=DAY - timedelta(days=20)),
        localise(find(raw, C1_L2A), tmp_path, {"red": stored}, item_id="c1", when=DAY),
        # Earth Search Collection 0, offset already removed by the catalog (its flag says so)
        localise(find(raw, C0_L2A), tmp_path, {"red": flagged}, item_id="c0", when=DAY + timedelta(days=5)),
    ]  # fmt: skip
    items[0].assets["red"] = items[0].assets.pop("B04")
    ds = load_cube(items, None, bbox=grid_bbox(SHAPE), s2_assets={"B04": "red"}).compute()
    got = ds["s2"].sel(band="B04").values
    np.testing.assert_array_equal(got[0], at_cube(ds, before))
    np.testing.assert_array_equal(got[1], at_cube(ds, expected_after))
    np.testing.assert_array_equal(got[2], at_cube(ds, flagged))
    assert got.max() > 10_000, "values above 10000 survive the load"


def grd_slice(
    raw: list[dict[str, Any]], root: Path, item_id: str, db: np.ndarray, **kw: Any
) -> Any:
    """The real Earth Search GRD item as an HH+HV (here: VV/VH keys) slice holding ``db``."""
    doc = find(raw, GRD)
    doc["assets"]["vv"] = dict(doc["assets"]["hh"])
    doc["assets"]["vh"] = dict(doc["assets"]["hh"])
    for key in ("vv", "vh"):
        doc["assets"][key]["raster:bands"] = [{"nodata": "nan", "data_type": "float32"}]
    return localise(doc, root, {"vv": db, "vh": db - 7.0}, item_id=item_id, **kw)


def test_uncalibrated_grd_is_refused_naming_a_collection_that_works(
    raw: list[dict[str, Any]], tmp_path: Path
) -> None:
    s2 = localise(find(raw, C1_L2A), tmp_path, {"red": truth(1) + 1000}, item_id="c1", when=DAY)
    doc = find(raw, GRD)
    doc["assets"]["vv"], doc["assets"]["vh"] = doc["assets"]["hh"], dict(doc["assets"]["hh"])
    amplitude = np.full(SHAPE, 300, dtype=np.uint16)
    s1 = localise(doc, tmp_path, {"vv": amplitude, "vh": amplitude}, item_id="grd", when=DAY)
    with pytest.raises(
        BadInputError,
        match=r"uncalibrated amplitude.*sentinel-1-rtc on --profile planetary-computer",
    ):
        load_cube(
            [s2], [s1], bbox=grid_bbox(SHAPE), s2_assets={"B04": "red"},
            s1_units=EARTH_SEARCH.s1_units,
        )  # fmt: skip


def test_linear_rtc_becomes_decibels(raw: list[dict[str, Any]], tmp_path: Path) -> None:
    s2 = localise(find(raw, C1_L2A), tmp_path, {"red": truth(1) + 1000}, item_id="c1", when=DAY)
    doc = find(raw, GRD)
    doc["collection"] = "sentinel-1-rtc"  # the units Planetary Computer declares for it
    for key in ("vv", "vh"):
        doc["assets"][key] = dict(
            doc["assets"]["hh"], **{"raster:bands": [{"nodata": -32768, "data_type": "float32"}]}
        )
    gamma0 = {"vv": np.full(SHAPE, 0.1, np.float32), "vh": np.full(SHAPE, 0.01, np.float32)}
    s1 = localise(doc, tmp_path, gamma0, item_id="rtc", when=DAY + timedelta(hours=1))
    ds = load_cube(
        [s2], [s1], bbox=grid_bbox(SHAPE), s2_assets={"B04": "red"},
        s1_units=PLANETARY_COMPUTER.s1_units,
    ).compute()  # fmt: skip
    np.testing.assert_allclose(ds["s1"].sel(s1_band="VV").values, -10.0, atol=1e-5)
    np.testing.assert_allclose(ds["s1"].sel(s1_band="VH").values, -20.0, atol=1e-5)


def test_every_slice_of_the_paired_datatake_is_loaded(
    raw: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Two slices of one datatake (the real item's s1:datatake_id), north and south halves."""
    h = SHAPE[0] // 2
    s2 = localise(find(raw, C1_L2A), tmp_path, {"red": truth(1) + 1000}, item_id="c1", when=DAY)
    north = grd_slice(
        raw,
        tmp_path,
        "slice2",
        np.full((h, SHAPE[1]), -5.0, np.float32),
        when=DAY + timedelta(hours=1),
    )
    south = grd_slice(
        raw, tmp_path, "slice3", np.full((h, SHAPE[1]), -9.0, np.float32),
        when=DAY + timedelta(hours=1, seconds=25), origin=(ORIGIN[0], ORIGIN[1] - h * 10.0),
    )  # fmt: skip
    for item in (north, south):  # calibrated dB: the embedded catalog's declaration
        item.collection_id = "sentinel-1-grd"
    scenes = build_scene_set([s2], [north, south], level="L2A", profile=EMBEDDED)
    assert scenes.pairs["c1"] == "slice2"  # the nearest slice decides the pairing ...
    assert [i.id for i in scenes.s1_items_paired()] == ["slice2", "slice3"]  # ... both load
    ds = load_scenes(scenes, bbox=grid_bbox(SHAPE), bands=["B04"]).compute()
    vv = ds["s1"].sel(s1_band="VV").values[0]
    rows = native_rowcol(ds["y"].values, ORIGIN[1], 10.0, flip=True)
    expected = np.where(rows < h, -5.0, -9.0)[:, None] * np.ones(vv.shape)
    np.testing.assert_allclose(vv, expected, atol=1e-5)


def test_a_tile_split_across_two_datastrips_is_merged_and_a_reprocessing_is_not(
    raw: list[dict[str, Any]], tmp_path: Path
) -> None:
    w = SHAPE[1] // 2
    west_truth, east_truth = truth(4)[:, :w], truth(5)[:, w:]
    west = localise(
        find(raw, C1_L2A), tmp_path, {"red": west_truth + 1000}, item_id="west", when=DAY
    )
    east = localise(
        find(raw, C1_L2A), tmp_path, {"red": east_truth + 1000}, item_id="east",
        when=DAY + timedelta(seconds=3), origin=(ORIGIN[0] + w * 10.0, ORIGIN[1]),
    )  # fmt: skip
    old = find(raw, C1_L2A)
    old["properties"]["s2:processing_baseline"] = "04.00"  # an older processing of it all
    older = localise(old, tmp_path, {"red": truth(6) + 1000}, item_id="older", when=DAY)
    scenes = build_scene_set([west, east, older], level="L2A")
    assert sorted(s.id for s in scenes.s2) == ["east", "west"]
    ds = load_scenes(scenes, bbox=grid_bbox(SHAPE), bands=["B04"]).compute()
    assert ds.sizes["time"] == 1
    both = np.concatenate([west_truth, east_truth], axis=1)
    np.testing.assert_array_equal(ds["s2"].sel(band="B04").values[0], at_cube(ds, both))


def test_requester_pays_s3_assets_need_the_explicit_option_and_credentials(
    raw: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real Earth Search L1C item: its JP2s are on requester-pays S3 only."""
    import pystac

    l1c = pystac.Item.from_dict(find(raw, C0_L1C))
    assert l1c.assets["red"].href.startswith("s3://sentinel-s2-l1c/")
    with pytest.raises(BadInputError, match="requester-pays bucket: pass --requester-pays"):
        public_hrefs([l1c], ["red", "blue"], requester_pays=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with caplog.at_level(logging.WARNING):  # a role may still provide them: warn, not refuse
        public_hrefs([l1c], ["red"], requester_pays=True)
    assert "no AWS credentials found" in caplog.text
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    assert (
        public_hrefs([l1c], ["red"], requester_pays=True)[0].assets["red"].href.startswith("s3://")
    )


def test_an_offered_public_https_alternate_is_read_instead_of_s3(raw: list[dict[str, Any]]) -> None:
    import pystac

    doc = find(raw, C0_L1C)
    public = "https://example.invalid/sentinel-s2-l1c/B04.jp2"
    doc["assets"]["red"]["alternate"] = {"https": {"href": public}}
    (got,) = public_hrefs([pystac.Item.from_dict(doc)], ["red"], requester_pays=False)
    assert got.assets["red"].href == public


def test_a_custom_api_inherits_no_sar_units_so_amplitude_grd_is_refused(
    raw: list[dict[str, Any]],
) -> None:
    """Earth Search's GRD through --stac-url: the embedded profile's "dB" must not apply."""
    import pystac

    from clearcube.catalogs.profiles import resolve_profile
    from clearcube.catalogs.radiometry import s1_conversion

    custom = resolve_profile(
        "embedded", stac_url=EARTH_SEARCH.url, collections=["sentinel-2-l2a", "sentinel-1-grd"],
        level="L2A",
    )  # fmt: skip
    assert custom.name == "custom" and dict(custom.s1_units) == {}
    grd = pystac.Item.from_dict(find(raw, GRD))
    with pytest.raises(BadInputError, match="states no units"):
        s1_conversion(grd, "hh", custom.s1_units)


def test_offsets_keep_nodata_and_saturation_and_floor_at_one() -> None:
    from clearcube.catalogs.radiometry import PixelConversion

    raw = np.array([0, 1, 999, 1000, 1001, 11_000, 65_534, 65_535], dtype=np.uint16)
    got = PixelConversion("dn_offset", -1000).apply(raw.copy())
    np.testing.assert_array_equal(got, [0, 1, 1, 1, 1, 10_000, 64_534, 65_535])
    db = PixelConversion("linear_to_db").apply(np.array([1.0, 0.1, 0.0, -1.0], np.float32))
    np.testing.assert_allclose(db[:2], [0.0, -10.0], atol=1e-6)
    assert np.isnan(db[2:]).all()


def test_planetary_computer_solar_angles_give_the_sun_for_shadows(
    raw: list[dict[str, Any]],
) -> None:
    import pystac

    from clearcube.pipeline.cube_load import _sun

    item = pystac.Item.from_dict(pc_item(raw))
    zenith = item.properties["s2:mean_solar_zenith"]
    assert _sun([item], "view:sun_elevation") == pytest.approx(90.0 - zenith)
    assert _sun([item], "view:sun_azimuth") == pytest.approx(
        item.properties["s2:mean_solar_azimuth"]
    )
