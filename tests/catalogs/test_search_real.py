"""Searches through pystac-client against the embedded API serving real STAC responses.

Expected answers come from :mod:`stac_expected`, computed from the raw JSON with shapely and
plain datetime comparisons, never from clearcube's own output.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
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
from clearcube.errors import BadInputError

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("collection", "level", "bbox", "start", "end", "max_cloud"), CASES)
def test_search_matches_raw_json(
    real_api: str,
    raw: list[dict[str, Any]],
    collection: str,
    level: str,
    bbox: tuple[float, ...],
    start: str,
    end: str,
    max_cloud: float | None,
) -> None:
    t0, t1 = utc_range(start, end)
    want = expected_ids(
        raw, collections=[collection], bbox=bbox, start=t0, end=t1, max_cloud=max_cloud
    )
    assert want, "a case must expect at least one item"
    got = search(
        bbox=bbox,
        start=start,
        end=end,
        max_cloud=max_cloud,
        stac_url=real_api,
        collections=[collection],
        level=level,  # type: ignore[arg-type]
        with_s1=False,
        page_size=2,  # many pages: paging must be followed
    )
    assert {s.id for s in got.s2} == want
    assert all(s.level == level for s in got.s2)
    times = [s.datetime for s in got.s2]
    assert times == sorted(times)


def test_paging_returns_more_than_one_page(real_api: str, raw: list[dict[str, Any]]) -> None:
    t0, t1 = utc_range("2015-01-01", "2030-12-31")
    want = expected_ids(raw, collections=["sentinel-2-l2a"], bbox=WORLD, start=t0, end=t1)
    got = search(
        bbox=WORLD,
        start="2015-01-01",
        end="2030-12-31",
        stac_url=real_api,
        collections=["sentinel-2-l2a"],
        level="L2A",
        with_s1=False,
        page_size=5,
    )
    assert len(want) > 5 * 3
    assert len(got.s2) == len(want)


def test_reprocessed_acquisitions_are_kept_once(
    reprocessed_api: str, raw_reprocessed: list[dict[str, Any]]
) -> None:
    t0, t1 = utc_range("2025-07-01", "2025-08-31")
    query = dict(collections=["sentinel-2-l2a"], bbox=WORLD, start=t0, end=t1)
    matching = [i for i in raw_reprocessed if i["id"] in expected_ids(raw_reprocessed, **query)]
    groups = acquisition_groups(matching)
    assert any(len(g) > 1 for g in groups.values()), "the data must hold a reprocessing"
    got = search(
        bbox=WORLD,
        start="2025-07-01",
        end="2025-08-31",
        stac_url=reprocessed_api,
        collections=["sentinel-2-l2a"],
        level="L2A",
        with_s1=False,
        page_size=3,
    )
    assert len(got.s2) == len(groups)

    def newest(group: list[dict[str, Any]]) -> str:
        def key(item: dict[str, Any]) -> tuple[str, str, str]:
            p = item["properties"]
            return (p["s2:processing_baseline"], p["s2:generation_time"], p["updated"])

        return max(group, key=key)["id"]

    assert {s.id for s in got.s2} == {newest(g) for g in groups.values()}


@pytest.mark.parametrize(
    "tolerance", [timedelta(minutes=30), timedelta(hours=1), timedelta(days=3)]
)
def test_s1_paired_to_nearest_s2_date(
    real_api: str, raw: list[dict[str, Any]], tolerance: timedelta
) -> None:
    start, end = "2019-01-01", "2025-07-31"
    t0, t1 = utc_range(start, end)
    s2_ids = expected_ids(raw, collections=["sentinel-2-l2a"], bbox=WORLD, start=t0, end=t1)
    s1_ids = expected_ids(
        raw, collections=["sentinel-1-grd"], bbox=WORLD, start=t0 - tolerance, end=t1 + tolerance
    )
    by_id = {i["id"]: i for i in raw}
    want = nearest_pairs(
        {i: item_time(by_id[i]) for i in s2_ids},
        {i: item_time(by_id[i]) for i in s1_ids},
        tolerance,
    )
    got = search(
        bbox=WORLD,
        start=start,
        end=end,
        stac_url=real_api,
        collections=["sentinel-2-l2a", "sentinel-1-grd"],
        level="L2A",
        pair_tolerance=tolerance,
        page_size=10,
    )
    assert {s.id for s in got.s1} == s1_ids
    assert dict(got.pairs) == want
    paired = {p for p in want.values() if p}
    # Every slice of a paired datatake is loaded, not only the nearest one.
    takes = {
        (by_id[p]["properties"]["platform"], by_id[p]["properties"]["s1:datatake_id"])
        for p in paired
    }
    slices = {
        i for i in s1_ids
        if (by_id[i]["properties"]["platform"], by_id[i]["properties"]["s1:datatake_id"]) in takes
    }  # fmt: skip
    assert {i.id for i in got.s1_items_paired()} == slices
    if tolerance >= timedelta(hours=1):
        assert paired, "S2 and S1 of 2025-07-31 are under an hour apart"
    else:
        assert not paired


def test_limit_keeps_least_cloudy(real_api: str, raw: list[dict[str, Any]]) -> None:
    t0, t1 = utc_range("2020-06-01", "2020-07-31")
    bbox = (27.0, -8.0, 27.1, -7.9)
    want = expected_ids(raw, collections=["sentinel-2-l2a"], bbox=bbox, start=t0, end=t1)
    cloud = {i["id"]: i["properties"]["eo:cloud_cover"] for i in raw if i["id"] in want}
    least = set(sorted(cloud, key=cloud.__getitem__)[:4])
    got = search(
        bbox=bbox,
        start="2020-06-01",
        end="2020-07-31",
        stac_url=real_api,
        collections=["sentinel-2-l2a"],
        level="L2A",
        with_s1=False,
        limit=4,
    )
    assert {s.id for s in got.s2} == least


def test_no_items_is_bad_input_with_advice(real_api: str) -> None:
    with pytest.raises(BadInputError, match=r"no Sentinel-2 items.*widen the dates") as info:
        search(
            bbox=(27.0, -8.0, 27.1, -7.9),
            start="2020-06-01",
            end="2020-07-31",
            max_cloud=0.001,
            stac_url=real_api,
            collections=["sentinel-2-l2a"],
            level="L2A",
        )
    assert "\n" not in str(info.value)


def test_unknown_collection_names_the_available_ones(real_api: str) -> None:
    with pytest.raises(BadInputError, match=r"'sentinel-2-l3x' is not served.*sentinel-2-l2a"):
        search(
            bbox=WORLD,
            start="2020-06-01",
            end="2020-07-31",
            stac_url=real_api,
            collections=["sentinel-2-l3x"],
        )
