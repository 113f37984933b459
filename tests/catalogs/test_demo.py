"""The embedded demo region: determinism, real COGs, STAC fields that match the pixels, realism."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject, transform_bounds
from rio_cogeo.cogeo import cog_validate
from scipy.ndimage import binary_erosion

from clearcube.bands import EARTH_SEARCH_ASSETS, S2_BANDS, S2_RESOLUTION
from clearcube.catalogs.demo import (
    DEMO_BBOX,
    DEMO_END,
    DEMO_EPSG,
    DEMO_START,
    DEMO_VERSION,
    ensure_demo_catalog,
    generate_demo_region,
)
from clearcube.errors import BadInputError
from clearcube.simulation.scene import demo_grid

COLLECTIONS = ("sentinel-2-l1c", "sentinel-2-l2a", "sentinel-1-grd")


def items(root: Path, collection: str) -> list[dict[str, Any]]:
    doc = json.loads((root / collection / "items.json").read_text())
    assert doc["type"] == "FeatureCollection"
    return list(doc["features"])


def read(asset: dict[str, Any]) -> np.ndarray:
    with rasterio.open(asset["href"]) as src:
        return src.read(1)


def when(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.tif"))
    }


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = generate_demo_region(tmp_path / "a", size=96, n_dates=3)
    b = generate_demo_region(tmp_path / "b", size=96, n_dates=3)
    c = generate_demo_region(tmp_path / "c", size=96, n_dates=3, seed=1)
    assert digests(a) == digests(b)
    assert len(digests(a)) == 3 * (13 + 1) + 13 + 1 + 3 * (12 + 2) + 3 * 2  # L1C+dup, L2A, S1
    for cid in COLLECTIONS:  # JSON differs only by the root folder in the hrefs
        text_a = (a / cid / "items.json").read_text().replace(str(a), "ROOT")
        assert text_a == (b / cid / "items.json").read_text().replace(str(b), "ROOT")
    changed = [k for k, v in digests(c).items() if v != digests(a)[k]]
    assert len(changed) > len(digests(a)) // 2


def test_layout_done_and_collections(demo_small: Path) -> None:
    assert (demo_small / "DONE").read_text().startswith("clearcube demo v")
    for cid in COLLECTIONS:
        coll = json.loads((demo_small / cid / "collection.json").read_text())
        assert coll["type"] == "Collection" and coll["id"] == cid
        feats = items(demo_small, cid)
        assert set(coll["item_assets"]) == set(feats[0]["assets"])
        w, s, e, n = coll["extent"]["spatial"]["bbox"][0]
        start, end = coll["extent"]["temporal"]["interval"][0]
        for item in feats:
            assert item["collection"] == cid
            iw, i_s, ie, i_n = item["bbox"]
            assert w <= iw and s <= i_s and ie <= e and i_n <= n
            assert start <= item["properties"]["datetime"] <= end
            for key, asset in item["assets"].items():
                href = Path(asset["href"])
                assert href.is_absolute() and href == demo_small / cid / item["id"] / f"{key}.tif"
                assert href.is_file()


def test_every_asset_is_a_valid_cog(demo_small: Path) -> None:
    for cid in COLLECTIONS:
        item = items(demo_small, cid)[1]
        for key, asset in item["assets"].items():
            valid, errors, _ = cog_validate(asset["href"], quiet=True)
            assert valid, (cid, key, errors)


def test_asset_metadata_matches_the_files(demo_small: Path) -> None:
    for cid in COLLECTIONS:
        for item in items(demo_small, cid):
            epsg = item["properties"]["proj:epsg"]
            assert item["properties"]["proj:code"] == f"EPSG:{epsg}"
            for key, asset in item["assets"].items():
                with rasterio.open(asset["href"]) as src:
                    assert list(src.shape) == asset["proj:shape"], (item["id"], key)
                    assert list(src.transform)[:6] == pytest.approx(asset["proj:transform"])
                    assert src.crs.to_epsg() == asset.get("proj:epsg", epsg)
                    band = asset["raster:bands"][0]
                    assert src.dtypes[0] == band["data_type"]
                    if band.get("nodata") == "nan":
                        assert np.isnan(src.nodata)
                    else:
                        assert src.nodata == band.get("nodata")


def test_s2_bands_at_native_resolution_with_earth_search_keys(demo_small: Path) -> None:
    l1c, l2a = items(demo_small, "sentinel-2-l1c"), items(demo_small, "sentinel-2-l2a")
    for item, bands in ((l1c[0], S2_BANDS), (l2a[0], [b for b in S2_BANDS if b != "B10"])):
        keys = {EARTH_SEARCH_ASSETS[b] for b in bands}
        assert keys <= set(item["assets"])
        for band in bands:
            asset = item["assets"][EARTH_SEARCH_ASSETS[band]]
            assert asset["eo:bands"][0]["name"] == band
            assert asset["proj:transform"][0] == S2_RESOLUTION[band]
            # 256 px of 10 m cover 2560 m: ceil(2560 / resolution) coarse pixels
            assert asset["proj:shape"][0] == -(-2560 // S2_RESOLUTION[band])
    assert "cirrus" not in l2a[0]["assets"] and "scl" in l2a[0]["assets"]
    assert all(i["properties"]["proj:epsg"] == DEMO_EPSG for i in l1c)
    assert all(i["properties"]["s2:mgrs_tile"] == "32TNQ" for i in l1c)


def test_cloud_cover_matches_truth_and_spans_clear_to_overcast(demo_small: Path) -> None:
    covers = []
    for item in items(demo_small, "sentinel-2-l1c"):
        truth = read(item["assets"]["truth_cloud"])
        expected = 100.0 * np.isin(truth, (1, 2, 3)).mean()
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(expected, abs=0.01)
        covers.append(expected)
    assert min(covers) == 0.0 and max(covers) == 100.0
    assert len({round(c) for c in covers}) >= 6  # many distinct partial covers too


def test_dates_pairing_offsets_and_duplicate(demo_small: Path) -> None:
    l1c = items(demo_small, "sentinel-2-l1c")
    s2_dates = sorted({when(i) for i in l1c})
    s1_dates = sorted(when(i) for i in items(demo_small, "sentinel-1-grd"))
    assert len(s2_dates) >= 8 and len(s1_dates) >= 8
    assert s2_dates[0].date().isoformat() >= DEMO_START
    assert s2_dates[-1].date().isoformat() <= DEMO_END
    for s1 in s1_dates:
        gap = min(abs((s1 - s2).total_seconds()) for s2 in s2_dates) / 86400
        assert 0.2 < gap < 1.5  # about a day away from the nearest optical date
    by_time: dict[datetime, list[dict[str, Any]]] = {}
    for item in l1c:
        by_time.setdefault(when(item), []).append(item)
    dups = [group for group in by_time.values() if len(group) > 1]
    assert len(dups) == 1 and len(dups[0]) == 2
    a, b = dups[0]
    assert a["id"] != b["id"]
    assert a["properties"]["s2:processing_baseline"] != b["properties"]["s2:processing_baseline"]
    assert len(items(demo_small, "sentinel-2-l2a")) == len(s2_dates)


def test_s1_items_carry_sar_fields(demo_small: Path) -> None:
    for item in items(demo_small, "sentinel-1-grd"):
        p = item["properties"]
        assert p["sar:instrument_mode"] == "IW" and p["sar:product_type"] == "GRD"
        assert p["sar:frequency_band"] == "C" and p["sar:polarizations"] == ["VV", "VH"]
        assert p["platform"] == "sentinel-1a" and p["constellation"] == "sentinel-1"
        assert set(item["assets"]) == {"vv", "vh"}


def _clear_date_items(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    l2a = [i for i in items(root, "sentinel-2-l2a") if i["properties"]["eo:cloud_cover"] == 0]
    return l2a[0], l2a[-1]


def _ndvi(item: dict[str, Any]) -> np.ndarray:
    red = read(item["assets"]["red"]).astype(np.float64)
    nir = read(item["assets"]["nir"]).astype(np.float64)
    return (nir - red) / (nir + red)


def test_spectra_follow_the_scene_classification_and_the_season(demo_small: Path) -> None:
    first, last = _clear_date_items(demo_small)
    assert first["id"] != last["id"]
    scl = np.repeat(np.repeat(read(first["assets"]["scl"]), 2, 0), 2, 1)
    ndvi = _ndvi(first)
    assert np.median(ndvi[scl == 4]) > 0.5  # vegetation
    assert np.median(ndvi[scl == 6]) < 0.0  # water
    assert np.abs(_ndvi(last) - ndvi).mean() > 0.05  # crops grew or were harvested in between


def test_thick_clouds_are_bright_flat_and_seen_in_cirrus(demo_small: Path) -> None:
    item = next(
        i
        for i in items(demo_small, "sentinel-2-l1c")
        if 20 < i["properties"]["eo:cloud_cover"] < 80
    )
    truth = read(item["assets"]["truth_cloud"])
    blue = read(item["assets"]["blue"]) / 1e4
    nir = read(item["assets"]["nir"]) / 1e4
    cirrus = np.repeat(np.repeat(read(item["assets"]["cirrus"]) / 1e4, 6, 0), 6, 1)[:256, :256]
    thick, clear = truth == 1, truth == 0
    assert np.median(blue[thick]) > 0.3 and abs(np.median(nir[thick] - blue[thick])) < 0.1
    assert np.median(cirrus[thick]) > 5 * np.median(cirrus[clear])
    shadow = truth == 4
    assert np.median(nir[shadow]) < 0.7 * np.median(nir[clear])


def test_sar_follows_land_cover_with_gamma_speckle(demo_small: Path) -> None:
    first, _ = _clear_date_items(demo_small)
    scl = read(first["assets"]["scl"])
    s1 = min(items(demo_small, "sentinel-1-grd"), key=lambda i: abs(when(i) - when(first)))
    vv = np.full(scl.shape, np.nan, dtype=np.float32)
    with rasterio.open(s1["assets"]["vv"]["href"]) as src:
        reproject(
            src.read(1), vv, src_transform=src.transform, src_crs=src.crs,
            dst_transform=rasterio.Affine(*first["assets"]["scl"]["proj:transform"]),
            dst_crs=f"EPSG:{DEMO_EPSG}", resampling=Resampling.nearest,
        )  # fmt: skip
    assert not np.isnan(vv).any()
    water = binary_erosion(scl == 6)  # away from the bright banks
    assert water.sum() > 50
    assert np.median(vv[water]) < -15 and np.median(vv[scl == 4]) > -14
    power = 10 ** (vv[water] / 10)
    # Gamma speckle with L looks: coefficient of variation 1/sqrt(L) = 0.48 for L = 4.4
    assert power.std() / power.mean() == pytest.approx(1 / np.sqrt(4.4), rel=0.2)


def test_demo_bbox_lies_inside_the_default_region() -> None:
    w, s, e, n = transform_bounds(f"EPSG:{DEMO_EPSG}", "EPSG:4326", *demo_grid(1024).bounds())
    bw, bs, be, bn = DEMO_BBOX
    assert w < bw < be < e and s < bs < bn < n
    assert (be - bw) > 0.8 * (e - w) and (bn - bs) > 0.8 * (n - s)


def test_ensure_generates_once_and_replaces_an_incomplete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEARCUBE_CACHE", str(tmp_path / "cache"))
    stale = tmp_path / "cache" / f"demo-v{DEMO_VERSION}-64"
    stale.mkdir(parents=True)
    (stale / "junk.txt").write_text("interrupted")
    root = ensure_demo_catalog(size=64)
    assert root == stale and (root / "DONE").is_file() and not (root / "junk.txt").exists()
    href = items(root, "sentinel-2-l1c")[0]["assets"]["red"]["href"]
    assert Path(href).is_file() and Path(href).is_relative_to(root)  # hrefs name the final folder
    stamp = (root / "DONE").stat().st_mtime_ns
    assert ensure_demo_catalog(size=64) == root
    assert (root / "DONE").stat().st_mtime_ns == stamp
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temp folders left


@pytest.mark.parametrize(("size", "n_dates"), [(32, 9), (128, 2)])
def test_bad_sizes_are_refused(tmp_path: Path, size: int, n_dates: int) -> None:
    with pytest.raises(BadInputError):
        generate_demo_region(tmp_path, size=size, n_dates=n_dates)


def test_odc_stac_reads_the_catalog_onto_one_grid(demo_small: Path) -> None:
    """The cube builder's reader takes the items as they are: S2 bands exactly, S1 without holes."""
    import odc.stac
    import pystac

    s2 = pystac.Item.from_dict(items(demo_small, "sentinel-2-l1c")[0])
    cube = odc.stac.load([s2], bands=["red", "cirrus"], crs=f"EPSG:{DEMO_EPSG}", resolution=10)
    np.testing.assert_array_equal(cube["red"].isel(time=0).values, read(s2.assets["red"].to_dict()))
    assert cube["cirrus"].shape == (1, 256, 256)  # 60 m upsampled onto the 10 m grid
    s1 = [pystac.Item.from_dict(i) for i in items(demo_small, "sentinel-1-grd")[:2]]
    sar = odc.stac.load(s1, bands=["vv", "vh"], geobox=cube.odc.geobox)
    assert sar["vv"].shape == (2, 256, 256) and not np.isnan(sar["vv"].values).any()
