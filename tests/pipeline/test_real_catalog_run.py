"""``composite`` end to end over a STAC API serving real Earth Search Collection-1 items.

Two dates of the real item ``S2B_T20EPT_20250731T131905_L2A`` (``sentinel-2-c1-l2a``: baseline
05.11, ``raster:bands`` offset -0.1) with their 12 band assets and SCL as local COGs written by
the test (values: a known reflectance + ESA's 1000 DN offset), served by the project's own
loopback STAC API. The COGs cover only the west of the requested bbox. Checked pixel by pixel
against values written down here: observed pixels equal the known reflectance exactly (offset
removed, values above 10000 kept), the provenance codes follow the SCL masks, and the east,
which no date covers, is nodata (0) in the composite and in the provenance.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from cube_fixtures import native_rowcol
from rasterio.warp import transform_bounds
from real_items import ORIGIN, find, localise, raw_items

from clearcube.bands import EARTH_SEARCH_ASSETS, L2A_MISSING, S2_BANDS
from clearcube.catalogs.demo.stac import collection
from clearcube.catalogs.server import serve_catalog

pytestmark = pytest.mark.integration

C1_L2A = "S2B_T20EPT_20250731T131905_L2A"
BANDS = [b for b in S2_BANDS if b not in L2A_MISSING]
H, W, WIDE = 48, 48, 72  # the COGs are 48 x 48 px; the bbox is 72 px wide (24 px uncovered)
DATES = (datetime(2025, 7, 21, 13, 19, 5, tzinfo=UTC), datetime(2025, 7, 31, 13, 19, 5, tzinfo=UTC))
# Period middle 2025-07-28: the 31st is the nearest date (provenance 1), the 21st the other (2).


def reflectance(date: int) -> np.ndarray:
    """(12, H, W) reflectance x 10000 of a date; B08 above 10000 in its top rows (bright)."""
    rng = np.random.default_rng(date)
    values = rng.integers(200, 6000, size=(len(BANDS), H, W)).astype(np.int64)
    values[BANDS.index("B08"), :6] = rng.integers(10_001, 20_000, size=(6, W))
    return values


def scl(date: int) -> np.ndarray:
    """SCL: vegetation (4) with a cloud block (9); the blocks overlap in rows 20-27, cols 20-27."""
    classes = np.full((H, W), 4, dtype=np.uint8)
    if date == 0:
        classes[10:28, 10:28] = 9
    else:
        classes[20:38, 20:38] = 9
    return classes


@pytest.fixture(scope="module")
def served(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    raw = raw_items(test_data)
    root = tmp_path_factory.mktemp("real-c1")
    items = []
    for d, when in enumerate(DATES):
        pixels = {EARTH_SEARCH_ASSETS[b]: reflectance(d)[k] + 1000 for k, b in enumerate(BANDS)}
        pixels["scl"] = scl(d)
        item = localise(find(raw, C1_L2A), root / "files", pixels, item_id=f"c1-{d}", when=when)
        items.append(item.to_dict())
    folder = root / "catalog" / "sentinel-2-c1-l2a"
    folder.mkdir(parents=True)
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    west, south, east, north = items[0]["bbox"]
    document = collection(
        "sentinel-2-c1-l2a", "real Earth Search items, local pixels",
        footprint=(west, south, east, north), interval=DATES, items=items,
        summaries={"eo:bands": [{"name": b} for b in BANDS]},
    )  # fmt: skip
    (folder / "collection.json").write_text(json.dumps(document))
    with serve_catalog(root / "catalog") as url:
        yield url


def test_a_served_real_catalog_composites_pixel_by_pixel(
    served: str, runs: Any, tmp_path: Path
) -> None:
    from clearcube.pipeline import composite

    x0, y0 = ORIGIN
    bbox = transform_bounds(
        "EPSG:32720", "EPSG:4326", x0 + 5, y0 - H * 10 + 5, x0 + WIDE * 10 - 5, y0 - 5
    )
    result = composite(
        bbox, "2025-07-20", "2025-08-05", tmp_path / "out", stac_url=served,
        collections=["sentinel-2-c1-l2a"], mask="scl", checkpoint=None, client=runs.client,
        steps=2, tile=32, overlap=8, dates=2,
    )  # fmt: skip
    with rasterio.open(result.cog_path) as src:
        cog, transform = src.read().astype(np.int64), src.transform
    with rasterio.open(result.provenance_path) as src:
        provenance = src.read(1)
    ys = transform.f + transform.e * (np.arange(cog.shape[1]) + 0.5)
    xs = transform.c + transform.a * (np.arange(cog.shape[2]) + 0.5)
    inside_x = (xs > x0) & (xs < x0 + W * 10)
    inside_y = (ys < y0) & (ys > y0 - H * 10)
    assert inside_x.any() and (~inside_x).sum() >= 15, "the bbox reaches beyond the COGs"
    rows = native_rowcol(ys[inside_y], y0, 10.0, flip=True)
    cols = native_rowcol(xs[inside_x], x0, 10.0, flip=False)
    sub = np.ix_(np.flatnonzero(inside_y), np.flatnonzero(inside_x))

    clear = [scl(d)[np.ix_(rows, cols)] == 4 for d in (0, 1)]
    expected_codes = np.where(clear[1], 1, np.where(clear[0], 2, 3))
    np.testing.assert_array_equal(provenance[sub], expected_codes)
    assert (expected_codes == 3).any() and (expected_codes == 2).any()

    truth = [reflectance(d)[:, rows][:, :, cols] for d in (0, 1)]
    got = cog[(slice(None), *sub)]
    np.testing.assert_array_equal(got[:, expected_codes == 1], truth[1][:, expected_codes == 1])
    np.testing.assert_array_equal(got[:, expected_codes == 2], truth[0][:, expected_codes == 2])
    assert got[BANDS.index("B08")].max() > 10_000  # bright pixels are not clipped
    assert (got[:, expected_codes == 3] > 0).all()  # generated: valid reflectance

    outside = np.ix_(np.arange(cog.shape[1]), np.flatnonzero(~inside_x))
    assert (provenance[outside] == 0).all()
    assert (cog[(slice(None), *outside)] == 0).all()  # nodata, not generated
