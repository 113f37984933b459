"""Expected search answers computed straight from the raw STAC JSON (an oracle for any server).

Nothing here uses clearcube: items are plain dicts from :mod:`real_stac`, footprints are
intersected with shapely and times compared as datetimes. The rustac tests and the
stac-fastapi-pgstac integration test both check their servers against these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import box, shape

Item = dict[str, Any]

WORLD = (-180.0, -90.0, 180.0, 90.0)

#: Search cases shared by every server test: (S2 collection, level, bbox, start, end, max_cloud),
#: each picked to cut through the real data (dates are whole UTC days, ``end`` inclusive).
CASES = [
    ("sentinel-2-l2a", "L2A", (27.0, -8.0, 27.1, -7.9), "2020-06-01", "2020-06-30", None),
    ("sentinel-2-l2a", "L2A", (27.0, -8.0, 27.1, -7.9), "2020-06-06", "2020-07-26", 1.0),
    ("sentinel-2-l2a", "L2A", (170.0, 55.0, 172.0, 57.0), "2019-01-01", "2019-01-01", None),
    ("sentinel-2-l2a", "L2A", (168.0, 53.0, 175.0, 60.0), "2018-12-31", "2019-01-02", 50.0),
    ("sentinel-2-l1c", "L1C", (-40.0, -5.0, -38.5, -4.0), "2025-07-01", "2025-08-31", None),
    ("sentinel-2-l1c", "L1C", WORLD, "2025-07-31", "2025-07-31", 20.0),
    ("sentinel-2-l2a", "L2A", WORLD, "2015-01-01", "2030-12-31", None),
]


def utc_range(start: str, end: str) -> tuple[datetime, datetime]:
    """Whole UTC days ``start`` .. ``end`` (inclusive) as aware datetimes."""
    t0 = datetime.fromisoformat(start + "T00:00:00+00:00")
    return t0, datetime.fromisoformat(end + "T00:00:00+00:00") + timedelta(days=1, microseconds=-1)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as an aware UTC datetime."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def item_time(item: Item) -> datetime:
    """The item's ``datetime`` property."""
    return parse_time(item["properties"]["datetime"])


def matches(
    item: Item,
    *,
    collections: Iterable[str],
    bbox: Sequence[float],
    start: datetime,
    end: datetime,
    max_cloud: float | None = None,
) -> bool:
    """Whether a STAC item search with these parameters must return ``item``.

    ``start`` and ``end`` are inclusive; an item without ``eo:cloud_cover`` fails any cloud limit
    (as a CQL2 comparison with a missing property does).
    """
    if item.get("collection") not in set(collections):
        return False
    if not shape(item["geometry"]).intersects(box(*bbox)):
        return False
    if not start <= item_time(item) <= end:
        return False
    if max_cloud is None:
        return True
    cloud = item["properties"].get("eo:cloud_cover")
    return cloud is not None and float(cloud) <= max_cloud


def expected_ids(items: Iterable[Item], **query: Any) -> set[str]:
    """Ids of the items a search with ``query`` (see :func:`matches`) must return."""
    return {item["id"] for item in items if matches(item, **query)}


def tile_of(item: Item) -> str | None:
    """MGRS tile as the item's properties state it (``s2:mgrs_tile``, ``grid:code``)."""
    props = item["properties"]
    if "s2:mgrs_tile" in props:
        return str(props["s2:mgrs_tile"])
    code = str(props.get("grid:code", ""))
    return code.removeprefix("MGRS-") or None


def acquisition_groups(items: Iterable[Item]) -> dict[tuple[Any, ...], list[Item]]:
    """Items grouped by acquisition: platform, tile and ``datetime`` to the second."""
    groups: dict[tuple[Any, ...], list[Item]] = {}
    for item in items:
        key = (
            str(item["properties"].get("platform")).lower(),
            tile_of(item),
            item_time(item).replace(microsecond=0),
        )
        groups.setdefault(key, []).append(item)
    return groups


def nearest_pairs(
    s2_times: dict[str, datetime], s1_times: dict[str, datetime], tolerance: timedelta
) -> dict[str, str | None]:
    """For each S2 id, the S1 id nearest in time within ``tolerance`` (brute force), else None."""
    pairs: dict[str, str | None] = {}
    for s2_id, t in s2_times.items():
        gaps = sorted((abs(t1 - t), t1, s1_id) for s1_id, t1 in s1_times.items())
        pairs[s2_id] = gaps[0][2] if gaps and gaps[0][0] <= tolerance else None
    return pairs
