"""STAC item of the products: projection fields, footprint, assets with roles, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
from rasterio.warp import transform as warp_points

from clearcube.errors import BadInputError
from clearcube.pipeline.stac_item import build_stac_item, write_stac_item

TRANSFORM = (10.0, 0.0, 399960.0, 0.0, -10.0, 5100000.0)


def _item(tmp_path: Path) -> pystac.Item:
    return build_stac_item(
        item_id="run-1",
        crs="EPSG:32633",
        transform=TRANSFORM,
        shape=(300, 500),
        start="2024-05-01",
        end="2024-08-31",
        target="2024-07-01",
        assets={
            "composite": tmp_path / "composite.tif",
            "uncertainty": tmp_path / "uncertainty.tif",
            "provenance": tmp_path / "provenance.tif",
            "quicklook": tmp_path / "quicklook.png",
        },
        band_names=("B02", "B03", "B04"),
        properties={
            "version": "0.1.0",
            "checkpoint": "ab12",
            "sampler": "ddim",
            "steps": 50,
            "dates": ["2024-06-21", "2024-07-01"],
        },
    )


def test_item_is_valid_stac_with_projection_and_roles(tmp_path: Path) -> None:
    item = _item(tmp_path)
    assert any("/projection/" in uri for uri in item.stac_extensions)
    assert any("/eo/" in uri for uri in item.stac_extensions)
    props = item.properties
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [300, 500]
    assert props["proj:transform"] == list(TRANSFORM)
    assert props["proj:bbox"] == [399960.0, 5097000.0, 404960.0, 5100000.0]
    assert props["clearcube:sampler"] == "ddim" and props["clearcube:steps"] == 50
    assert props["start_datetime"].startswith("2024-05-01") and str(item.datetime).startswith(
        "2024-07-01"
    )
    assert item.assets["quicklook"].roles == ["overview", "visual"]
    assert item.assets["composite"].media_type == pystac.MediaType.COG
    # the WGS84 bbox holds the grid's corners, reprojected independently
    lons, lats = warp_points(
        "EPSG:32633", "EPSG:4326", [399960.0, 404960.0], [5097000.0, 5100000.0]
    )
    w, s, e, n = item.bbox
    assert w <= min(lons) and e >= max(lons) and s <= min(lats) and n >= max(lats)
    assert e - w < 0.1 and n - s < 0.1


def test_written_item_has_relative_hrefs(tmp_path: Path) -> None:
    path = write_stac_item(_item(tmp_path), tmp_path / "item.json")
    data = json.loads(path.read_text())
    assert data["assets"]["composite"]["href"] == "composite.tif"
    assert pystac.Item.from_dict(data).id == "run-1"


def test_empty_grid_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        build_stac_item(
            item_id="x",
            crs="EPSG:32633",
            transform=TRANSFORM,
            shape=(0, 5),
            start="2024-05-01",
            end="2024-05-02",
            target="2024-05-01",
            assets={},
            band_names=(),
            properties={},
        )


def test_provenance_asset_describes_its_four_codes(tmp_path: Path) -> None:
    asset = _item(tmp_path).to_dict()["assets"]["provenance"]
    classes = {c["value"]: c["name"] for c in asset["classification:classes"]}
    assert classes == {0: "nodata", 1: "observed", 2: "fused", 3: "generated"}
    assert asset["raster:bands"] == [{"data_type": "uint16", "nodata": 0}]
    assert "eo:bands" not in asset  # one band of classes, not the composite's reflectance bands
    assert "eo:bands" in _item(tmp_path).to_dict()["assets"]["uncertainty"]
