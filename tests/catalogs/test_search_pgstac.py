"""The same searches against stac-fastapi-pgstac (Debian PostgreSQL + PostGIS) and rustac.

``scripts/pgstac.sh`` starts the reference API over the real STAC items of
``$CLEARCUBE_TEST_DATA/stac``; the embedded rustac API serves the very same catalog folder. Every
search runs through :func:`clearcube.catalogs.search` (the real pystac-client, POST, small pages)
against both, and must give the answers of :mod:`stac_expected` (computed from the raw JSON) and
the same scene records from both servers. pgstac filters cloud cover on the server (CQL2) while
rustac has no filter extension, so the cloud cases check both routes to the same answer.

The first run creates ``.cache/pgstac-venv`` (stac-fastapi-pgstac + pypgstac, a few minutes);
later runs start PostgreSQL and the API in a few seconds.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from real_stac import build_real_catalog, raw_items, renamed
from stac_expected import (
    CASES,
    WORLD,
    acquisition_groups,
    expected_ids,
    item_time,
    nearest_pairs,
    utc_range,
)

from clearcube.catalogs import search
from clearcube.catalogs.records import SceneSet
from clearcube.catalogs.server import serve_catalog
from clearcube.catalogs.stac_api import fetch_items, open_api

pytestmark = [
    pytest.mark.integration,
    # pystac's storage-extension migration cannot parse the Collection-1 items' S3 hrefs: harmless.
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pgstac.sh"

#: Seconds allowed for ``pgstac.sh up``: the first run installs the server's virtual environment.
STARTUP_TIMEOUT_S = 900

#: A collection holding two processings of some acquisitions (Earth Search's Collection-1
#: reprocessing beside the original L2A items), loaded beside the real collections.
REPROCESSED = "sentinel-2-l2a-reprocessed"
REPROCESSED_FROM = ("sentinel-2-l2a", "sentinel-2-c1-l2a")


def _postgres_missing() -> str | None:
    """Why the pgstac server cannot run here, or None when PostgreSQL and PostGIS are present."""
    pgbin = os.environ.get("PGBIN")
    initdb = [f"{pgbin}/initdb"] if pgbin else glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not any(os.access(path, os.X_OK) for path in initdb):
        return "PostgreSQL binaries (initdb) not found; run scripts/system-deps.sh as root"
    if not glob.glob("/usr/share/postgresql/*/extension/postgis.control"):
        return "PostGIS is not installed; run scripts/system-deps.sh as root"
    return None


@pytest.fixture(scope="module")
def raw_all(test_data: Path) -> list[dict[str, Any]]:
    """The real items plus copies of the L2A processings in :data:`REPROCESSED`."""
    raw = raw_items(test_data)
    moved = {name: REPROCESSED for name in REPROCESSED_FROM}
    return raw + renamed([i for i in raw if i.get("collection") in moved], moved)


@pytest.fixture(scope="module")
def catalog(test_data: Path, raw_all: list[dict[str, Any]], tmp_path_factory: Any) -> Path:
    """One catalog folder, served by both APIs: the real collections and :data:`REPROCESSED`."""
    root = build_real_catalog(test_data, tmp_path_factory.mktemp("pgstac-catalog"))
    folder = root / REPROCESSED
    folder.mkdir()
    features = [i for i in raw_all if i.get("collection") == REPROCESSED]
    (folder / "items.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    return root


@pytest.fixture(scope="module")
def pgstac(request: pytest.FixtureRequest) -> Iterator[str]:
    """stac-fastapi-pgstac over ``catalog``, started and always stopped by ``scripts/pgstac.sh``."""
    missing = _postgres_missing()
    if missing:
        pytest.skip(missing)
    catalog: Path = request.getfixturevalue("catalog")  # built only when the server can run
    # Not under pytest's tmp folder: as root the cluster runs as `postgres`, who must reach it.
    state = Path(tempfile.mkdtemp(prefix="clearcube-pgstac-"))
    try:
        up = subprocess.run(
            ["bash", str(SCRIPT), "up", str(state), str(catalog)],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT_S,
            check=False,
        )
        if up.returncode != 0:
            pytest.fail(f"scripts/pgstac.sh up failed ({up.returncode}): {up.stderr[-2000:]}")
        yield up.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "down", str(state)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def rustac(catalog: Path) -> Iterator[str]:
    """The embedded rustac API over the same ``catalog`` folder."""
    with serve_catalog(catalog) as url:
        yield url


def _search_both(pgstac: str, rustac: str, **query: Any) -> tuple[SceneSet, SceneSet]:
    """Run one search against each server."""
    return search(stac_url=pgstac, **query), search(stac_url=rustac, **query)


def _assert_same(pg: SceneSet, rs: SceneSet) -> None:
    """Both servers gave the same scene records, the same pairing and the same assets."""
    assert pg.s2 == rs.s2  # every field but the pystac item itself
    assert pg.s1 == rs.s1
    assert dict(pg.pairs) == dict(rs.pairs)
    for a, b in zip(pg.s2 + pg.s1, rs.s2 + rs.s1, strict=True):
        assert {k: v.href for k, v in a.item.assets.items()} == {
            k: v.href for k, v in b.item.assets.items()
        }, a.id
        assert a.item.geometry == b.item.geometry, a.id


@pytest.mark.parametrize(("collection", "level", "bbox", "start", "end", "max_cloud"), CASES)
def test_cases_match_raw_json_and_rustac(
    pgstac: str,
    rustac: str,
    raw_all: list[dict[str, Any]],
    collection: str,
    level: str,
    bbox: tuple[float, ...],
    start: str,
    end: str,
    max_cloud: float | None,
) -> None:
    t0, t1 = utc_range(start, end)
    want = expected_ids(
        raw_all, collections=[collection], bbox=bbox, start=t0, end=t1, max_cloud=max_cloud
    )
    assert want, "a case must expect at least one item"
    pg, rs = _search_both(
        pgstac,
        rustac,
        bbox=bbox,
        start=start,
        end=end,
        max_cloud=max_cloud,
        collections=[collection],
        level=level,
        with_s1=False,
        page_size=2,  # many pages on both servers
    )
    assert {s.id for s in pg.s2} == want
    _assert_same(pg, rs)


CLOUD_CASES = [c for c in CASES if c[5] is not None]


@pytest.mark.parametrize(("collection", "level", "bbox", "start", "end", "max_cloud"), CLOUD_CASES)
def test_cloud_filter_on_the_server_matches_raw_json(
    pgstac: str,
    rustac: str,
    raw_all: list[dict[str, Any]],
    collection: str,
    level: str,
    bbox: tuple[float, ...],
    start: str,
    end: str,
    max_cloud: float,
) -> None:
    """pgstac applies the CQL2 cloud filter itself; rustac returns more, filtered by the client."""
    t0, t1 = utc_range(start, end)
    query = dict(collections=[collection], bbox=bbox, start=t0, end=t1)
    want = expected_ids(raw_all, **query, max_cloud=max_cloud)
    unfiltered = expected_ids(raw_all, **query)
    assert want < unfiltered, "a cloud case must drop some items"

    def server_ids(url: str) -> set[str]:
        client = open_api(url, timeout=30)
        items = fetch_items(client, url, collection, bbox, t0, t1, max_cloud, page_size=3)  # type: ignore[arg-type]
        return {i.id for i in items}

    assert server_ids(pgstac) == want  # filtered by PostgreSQL, not by clearcube
    assert want <= server_ids(rustac) <= unfiltered  # no filter extension: the client filters


@pytest.mark.parametrize("page_size", [1, 4, 100])
def test_every_page_is_followed(
    pgstac: str, rustac: str, raw_all: list[dict[str, Any]], page_size: int
) -> None:
    t0, t1 = utc_range("2015-01-01", "2030-12-31")
    query: dict[str, Any] = dict(collections=["sentinel-2-l2a"], bbox=WORLD, start=t0, end=t1)
    want = expected_ids(raw_all, **query)
    # The server really pages: ceil(n / page_size) pages, each item once.
    client = open_api(pgstac, timeout=30)
    found = client.search(
        method="POST",
        collections=query["collections"],
        bbox=list(WORLD),
        datetime=(t0, t1),
        limit=page_size,
    )
    pages = [[i["id"] for i in page["features"]] for page in found.pages_as_dicts()]
    assert len(pages) == math.ceil(len(want) / page_size)
    assert sorted(i for page in pages for i in page) == sorted(want)

    pg, rs = _search_both(
        pgstac,
        rustac,
        bbox=WORLD,
        start="2015-01-01",
        end="2030-12-31",
        collections=["sentinel-2-l2a"],
        level="L2A",
        with_s1=False,
        page_size=page_size,
    )
    assert {s.id for s in pg.s2} == want
    _assert_same(pg, rs)


def test_reprocessed_acquisitions_are_kept_once(
    pgstac: str, rustac: str, raw_all: list[dict[str, Any]]
) -> None:
    t0, t1 = utc_range("2025-07-01", "2025-08-31")
    query = dict(collections=[REPROCESSED], bbox=WORLD, start=t0, end=t1)
    ids = expected_ids(raw_all, **query)
    groups = acquisition_groups(
        i for i in raw_all if i["id"] in ids and i["collection"] == REPROCESSED
    )
    assert any(len(g) > 1 for g in groups.values()), "the data must hold a reprocessing"

    def newest(group: list[dict[str, Any]]) -> str:
        def key(item: dict[str, Any]) -> tuple[str, str, str]:
            p = item["properties"]
            return (p["s2:processing_baseline"], p["s2:generation_time"], p["updated"])

        return max(group, key=key)["id"]

    pg, rs = _search_both(
        pgstac,
        rustac,
        bbox=WORLD,
        start="2025-07-01",
        end="2025-08-31",
        collections=[REPROCESSED],
        level="L2A",
        with_s1=False,
        page_size=3,
    )
    assert {s.id for s in pg.s2} == {newest(g) for g in groups.values()}
    assert len(pg.s2) == len(groups)
    _assert_same(pg, rs)


@pytest.mark.parametrize(
    "tolerance", [timedelta(minutes=30), timedelta(hours=1), timedelta(days=3)]
)
def test_s1_paired_to_nearest_s2_date(
    pgstac: str, rustac: str, raw_all: list[dict[str, Any]], tolerance: timedelta
) -> None:
    start, end = "2019-01-01", "2025-07-31"
    t0, t1 = utc_range(start, end)
    s2_ids = expected_ids(raw_all, collections=["sentinel-2-l2a"], bbox=WORLD, start=t0, end=t1)
    s1_ids = expected_ids(
        raw_all,
        collections=["sentinel-1-grd"],
        bbox=WORLD,
        start=t0 - tolerance,
        end=t1 + tolerance,
    )
    by_id = {i["id"]: i for i in raw_all}
    want = nearest_pairs(
        {i: item_time(by_id[i]) for i in s2_ids},
        {i: item_time(by_id[i]) for i in s1_ids},
        tolerance,
    )
    pg, rs = _search_both(
        pgstac,
        rustac,
        bbox=WORLD,
        start=start,
        end=end,
        collections=["sentinel-2-l2a", "sentinel-1-grd"],
        level="L2A",
        pair_tolerance=tolerance,
        page_size=4,
    )
    assert {s.id for s in pg.s1} == s1_ids
    assert dict(pg.pairs) == want
    assert (tolerance >= timedelta(hours=1)) == any(want.values())
    _assert_same(pg, rs)


def test_limit_keeps_least_cloudy(pgstac: str, rustac: str, raw_all: list[dict[str, Any]]) -> None:
    t0, t1 = utc_range("2020-06-01", "2020-07-31")
    bbox = (27.0, -8.0, 27.1, -7.9)
    want = expected_ids(raw_all, collections=["sentinel-2-l2a"], bbox=bbox, start=t0, end=t1)
    cloud = {i["id"]: i["properties"]["eo:cloud_cover"] for i in raw_all if i["id"] in want}
    least = set(sorted(cloud, key=cloud.__getitem__)[:4])
    pg, rs = _search_both(
        pgstac,
        rustac,
        bbox=bbox,
        start="2020-06-01",
        end="2020-07-31",
        collections=["sentinel-2-l2a"],
        level="L2A",
        with_s1=False,
        limit=4,
        page_size=5,
    )
    assert {s.id for s in pg.s2} == least
    _assert_same(pg, rs)
