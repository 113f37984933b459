"""Scene records: reading items, one scene per acquisition, S1 paired to the nearest S2 date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pystac
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearcube.catalogs.records import (
    build_scene_set,
    item_epsg,
    mgrs_tile,
    pair_nearest,
    s1_scene,
    s2_scene,
)

T0 = datetime(2024, 5, 1, 10, 15, tzinfo=UTC)


def make_item(
    item_id: str,
    when: datetime,
    *,
    platform: str = "sentinel-2a",
    bbox: tuple[float, float, float, float] = (10.0, 45.0, 10.2, 45.2),
    collection: str = "sentinel-2-l1c",
    props: dict[str, Any] | None = None,
) -> pystac.Item:
    """A minimal real pystac Item (what a STAC API returns, reduced to the fields used)."""
    w, s, e, n = bbox
    geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    return pystac.Item(
        item_id,
        geometry,
        list(bbox),
        when,
        {"platform": platform, **(props or {})},
        collection=collection,
    )


def test_reprocessing_keeps_the_newest_baseline_in_any_order() -> None:
    old = make_item("S2A_32TNQ_20240501_0_L1C", T0, props={"s2:processing_baseline": "05.10"})
    new = make_item(
        "S2A_32TNQ_20240501_1_L1C",
        T0 + timedelta(seconds=2),
        props={"s2:processing_baseline": "05.11"},
    )
    other_tile = make_item(
        "S2A_32TNR_20240501_0_L1C", T0, props={"s2:processing_baseline": "05.10"}
    )
    for order in ([old, new, other_tile], [other_tile, new, old]):
        scenes = build_scene_set(order)
        assert [s.id for s in scenes.s2] == [other_tile.id, new.id]  # time order


def test_same_baseline_falls_back_to_generation_time() -> None:
    props = {"s2:processing_baseline": "02.12", "s2:mgrs_tile": "35MNM"}
    a = make_item("a", T0, props={**props, "s2:generation_time": "2020-08-18T06:27:51Z"})
    b = make_item("b", T0, props={**props, "s2:generation_time": "2020-11-01T14:59:44Z"})
    assert [s.id for s in build_scene_set([b, a]).s2] == ["b"]


def test_consecutive_s1_slices_are_not_duplicates() -> None:
    slices = [
        make_item(f"s1-{k}", T0 + timedelta(seconds=25 * k), platform="sentinel-1a",
                  bbox=(10.0, 45.0 + 1.6 * k, 13.0, 46.6 + 1.6 * k), collection="sentinel-1-grd")
        for k in range(3)
    ]  # fmt: skip
    assert len(build_scene_set([], slices).s1) == 3


def test_pairing_respects_tolerance_and_prefers_the_nearest() -> None:
    s2 = [make_item("d0", T0), make_item("d1", T0 + timedelta(days=10))]
    s1 = [
        make_item("far", T0 + timedelta(days=10, hours=-80), platform="sentinel-1a"),
        make_item("near", T0 + timedelta(days=1), platform="sentinel-1a"),
        make_item("nearer", T0 - timedelta(hours=20), platform="sentinel-1a"),
    ]
    scenes = build_scene_set(s2, s1, tolerance=timedelta(days=3))
    assert dict(scenes.pairs) == {"d0": "nearer", "d1": None}
    assert [i.id for i in scenes.s1_items_paired()] == ["nearer"]
    assert scenes.paired_s1("d0") is not None
    assert scenes.paired_s1("d1") is None
    wider = build_scene_set(s2, s1, tolerance=timedelta(hours=80))
    assert dict(wider.pairs) == {"d0": "nearer", "d1": "far"}


@given(
    s2_hours=st.lists(st.integers(0, 2000), min_size=1, max_size=8, unique=True),
    s1_hours=st.lists(st.integers(0, 2000), max_size=8, unique=True),
    tolerance_h=st.integers(0, 200),
)
def test_pairing_equals_brute_force(
    s2_hours: list[int], s1_hours: list[int], tolerance_h: int
) -> None:
    s2 = [s2_scene(make_item(f"s2-{h}", T0 + timedelta(hours=h))) for h in s2_hours]
    s1 = [s1_scene(make_item(f"s1-{h}", T0 + timedelta(hours=h))) for h in s1_hours]
    pairs = pair_nearest(s2, s1, timedelta(hours=tolerance_h))
    for h in s2_hours:
        gaps = [(abs(h1 - h), h1) for h1 in s1_hours if abs(h1 - h) <= tolerance_h]
        want = f"s1-{min(gaps)[1]}" if gaps else None
        assert pairs[f"s2-{h}"] == want


@pytest.mark.parametrize(
    ("props", "item_id", "tile"),
    [
        ({"s2:mgrs_tile": "35MNM"}, "x", "35MNM"),
        ({"mgrs:utm_zone": 4, "mgrs:latitude_band": "Q", "mgrs:grid_square": "FJ"}, "x", "04QFJ"),
        ({}, "S2A_28QCH_20200714_0_L2A", "28QCH"),
        ({}, "S2A_MSIL2A_20190101T000001_R116_T59VPE_20201007T214658", "59VPE"),
        ({}, "S1A_IW_GRDH_1SDV_20240501T171900", None),
    ],
)
def test_tile_from_properties_or_id(props: dict[str, Any], item_id: str, tile: str | None) -> None:
    assert mgrs_tile(make_item(item_id, T0, props=props)) == tile


def test_epsg_level_and_time_fields() -> None:
    item = make_item(
        "S2B_32TNQ_20240512_0_L2A",
        datetime(2024, 5, 12, 12, 15),  # naive: taken as UTC
        platform="Sentinel-2B",
        props={"proj:code": "EPSG:32632", "eo:cloud_cover": "12.5"},
    )
    scene = s2_scene(item, level="L1C")
    assert scene.epsg == 32632 and item_epsg(make_item("x", T0, props={"proj:epsg": 4326})) == 4326
    # both fields: proj:code (projection extension v2) is the current statement
    both = make_item("y", T0, props={"proj:code": "EPSG:32633", "proj:epsg": 32632})
    assert item_epsg(both) == 32633
    assert item_epsg(make_item("z", T0, props={"proj:code": "IAU_2015:30100"})) is None
    assert scene.level == "L2A"  # the id says so, whatever was asked
    assert scene.platform == "sentinel-2b" and scene.cloud_cover == 12.5
    assert scene.datetime == datetime(2024, 5, 12, 12, 15, tzinfo=UTC)


def test_real_items_read_without_loss(raw: list[dict[str, Any]]) -> None:
    for doc in raw:
        item = pystac.Item.from_dict(doc)
        props = doc["properties"]
        if props.get("platform", "").lower().startswith("sentinel-1"):
            continue
        scene = s2_scene(item)
        assert scene.epsg == props.get("proj:epsg")
        assert scene.cloud_cover == props.get("eo:cloud_cover")
        assert scene.tile is not None and scene.tile in doc["id"].replace("_", "")
