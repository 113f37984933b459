"""Typed scene records built from STAC items: S2 and S1 per acquisition, deduplicated and paired.

Catalogs list one acquisition several times when it was reprocessed (a new processing baseline,
or a second collection such as Earth Search's ``sentinel-2-c1-l2a``). Scenes of one platform,
tile and acquisition time (within :data:`SAME_ACQUISITION`) are one acquisition; the newest
processing is kept, and so is any other product of it whose footprint adds ground the kept ones
do not cover (a tile split across two datastrips comes as two products with complementary
footprints: both halves are kept and fuse into one date).

Sentinel-1 comes in slices of one datatake; an *acquisition* is all slices of one platform and
datatake (``s1:datatake_id``, else the absolute orbit). Each Sentinel-2 date is paired with the
nearest acquisition within a tolerance, and every slice of it is loaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import pystac
import shapely.geometry
from shapely.errors import GEOSException

from clearcube.catalogs.profiles import CatalogProfile, Level

log = logging.getLogger(__name__)

#: Two items of one platform and tile closer in time than this are one acquisition.
SAME_ACQUISITION = timedelta(seconds=60)

#: Default largest gap between a Sentinel-2 date and the Sentinel-1 acquisition paired to it.
DEFAULT_PAIR_TOLERANCE = timedelta(days=3)

#: A product of an acquisition is kept beside a newer one when it adds more than this share of
#: its own footprint (a datastrip split), and dropped as a duplicate otherwise.
NEW_GROUND = 0.1

#: Slices of one platform without a datatake id or orbit number are one acquisition when their
#: times are this close.
SAME_DATATAKE = timedelta(minutes=10)

# MGRS tile in product names (``..._T35MNM_...``) or Earth Search ids (``S2A_28QCH_...``)
_TILE_IN_NAME = re.compile(r"_T(\d{2}[C-HJ-NP-X][A-Z]{2})_|^S2[A-D]_(\d{1,2}[C-HJ-NP-X][A-Z]{2})_")
_TIMESTAMP_AT_END = re.compile(r"_(\d{8}T\d{6})(?:\.SAFE)?$")


@dataclass(frozen=True)
class S2Scene:
    """One Sentinel-2 acquisition of one tile."""

    id: str
    """STAC item id."""
    collection: str | None
    """STAC collection id."""
    datetime: datetime
    """Acquisition time, timezone-aware UTC."""
    platform: str
    """Platform in lower case, e.g. ``"sentinel-2a"``."""
    cloud_cover: float | None
    """Scene cloud cover in percent (``eo:cloud_cover``), if the catalog gives it."""
    epsg: int | None
    """EPSG code of the scene's native CRS (``proj:epsg`` or ``proj:code``)."""
    item: pystac.Item = field(repr=False, compare=False)
    """The STAC item itself (assets, geometry, all properties)."""
    level: Level = "L1C"
    """Processing level: ``"L1C"`` (top of atmosphere) or ``"L2A"`` (surface reflectance)."""
    tile: str | None = None
    """MGRS tile, e.g. ``"35MNM"``, when the item names it."""


@dataclass(frozen=True)
class S1Scene:
    """One Sentinel-1 acquisition (a GRD or RTC slice)."""

    id: str
    """STAC item id."""
    collection: str | None
    """STAC collection id."""
    datetime: datetime
    """Acquisition time, timezone-aware UTC."""
    platform: str
    """Platform in lower case, e.g. ``"sentinel-1a"``."""
    cloud_cover: float | None
    """Always ``None`` for radar; kept so both record types share the same fields."""
    epsg: int | None
    """EPSG code of the scene's native CRS, if given."""
    item: pystac.Item = field(repr=False, compare=False)
    """The STAC item itself."""
    level: Literal["GRD", "RTC"] = "GRD"
    """Product type."""


@dataclass(frozen=True)
class SceneSet:
    """The result of a search: S2 and S1 scenes in time order and the S1 paired to each S2."""

    s2: tuple[S2Scene, ...]
    """Sentinel-2 scenes, one per acquisition, in time order."""
    s1: tuple[S1Scene, ...]
    """Sentinel-1 scenes, one per acquisition, in time order."""
    pairs: Mapping[str, str | None]
    """S2 item id -> id of the nearest S1 scene within the tolerance, or ``None``."""
    profile: CatalogProfile | None = None
    """The catalog profile the scenes came from (asset names, signer)."""

    def s2_items(self) -> list[pystac.Item]:
        """The Sentinel-2 STAC items, in time order."""
        return [s.item for s in self.s2]

    def s1_items(self) -> list[pystac.Item]:
        """All Sentinel-1 STAC items found, in time order."""
        return [s.item for s in self.s1]

    def s1_items_paired(self) -> list[pystac.Item]:
        """Every slice of the Sentinel-1 acquisitions paired to an S2 scene, in time order."""
        wanted = {sid for sid in self.pairs.values() if sid is not None}
        groups = s1_acquisitions(s.item for s in self.s1)
        paired = [g for g in groups if any(i.id in wanted for i in g)]
        return sorted((i for g in paired for i in g), key=lambda i: (item_datetime(i), i.id))

    def paired_s1(self, s2_id: str) -> S1Scene | None:
        """The S1 scene paired to the S2 scene ``s2_id``, or ``None``."""
        sid = self.pairs.get(s2_id)
        return next((s for s in self.s1 if s.id == sid), None)


def build_scene_set(
    s2_items: Iterable[pystac.Item],
    s1_items: Iterable[pystac.Item] = (),
    *,
    level: Level = "L1C",
    tolerance: timedelta = DEFAULT_PAIR_TOLERANCE,
    profile: CatalogProfile | None = None,
) -> SceneSet:
    """Turn STAC items into a :class:`SceneSet`: typed, one per acquisition, S1 paired to S2.

    Args:
        s2_items: Sentinel-2 items.
        s1_items: Sentinel-1 items.
        level: the level S2 items are assumed to have when they do not say.
        tolerance: largest time gap for an S1 scene to be paired with an S2 date.
        profile: recorded on the result for the cube builder.
    """
    s2 = dedupe([s2_scene(i, level) for i in s2_items])
    s1 = dedupe([s1_scene(i) for i in s1_items])
    return SceneSet(s2=s2, s1=s1, pairs=pair_nearest(s2, s1, tolerance), profile=profile)


def s2_scene(item: pystac.Item, level: Level = "L1C") -> S2Scene:
    """Read an S2 record from a STAC item; ``level`` is used when the item does not say."""
    props = item.properties
    return S2Scene(
        id=item.id,
        collection=item.collection_id,
        datetime=item_datetime(item),
        platform=str(props.get("platform", "unknown")).lower(),
        cloud_cover=_float_or_none(props.get("eo:cloud_cover")),
        epsg=item_epsg(item),
        item=item,
        level=_s2_level(item, level),
        tile=mgrs_tile(item),
    )


def s1_scene(item: pystac.Item) -> S1Scene:
    """Read an S1 record from a STAC item."""
    props = item.properties
    rtc = "rtc" in (item.collection_id or "").lower() or props.get("sar:product_type") == "RTC"
    return S1Scene(
        id=item.id,
        collection=item.collection_id,
        datetime=item_datetime(item),
        platform=str(props.get("platform", "unknown")).lower(),
        cloud_cover=None,
        epsg=item_epsg(item),
        item=item,
        level="RTC" if rtc else "GRD",
    )


def item_datetime(item: pystac.Item) -> datetime:
    """The item's acquisition time in UTC (``datetime``, else the middle of its interval)."""
    when = item.datetime
    if when is None:
        start = pystac.utils.str_to_datetime(item.properties["start_datetime"])
        end = pystac.utils.str_to_datetime(item.properties["end_datetime"])
        when = start + (end - start) / 2
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def item_epsg(item: pystac.Item) -> int | None:
    """EPSG code of an item: ``proj:code`` (``"EPSG:32633"``), else ``proj:epsg``, else None.

    ``proj:code`` first: projection extension v2 replaced ``proj:epsg`` with it, so an item
    carrying both was written (or updated) for v2 and ``proj:code`` is the current statement.
    """
    props = item.properties
    code = str(props.get("proj:code") or "")
    if code.upper().startswith("EPSG:") and code[5:].isdigit():
        return int(code[5:])
    epsg = props.get("proj:epsg")
    if isinstance(epsg, int) or (isinstance(epsg, str) and epsg.isdigit()):
        return int(epsg)
    return None


def mgrs_tile(item: pystac.Item) -> str | None:
    """The MGRS tile named by the item's properties or id, e.g. ``"35MNM"``, else ``None``."""
    props = item.properties
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"]).upper()
    parts = [props.get(k) for k in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square")]
    if all(p is not None for p in parts):
        return f"{int(parts[0]):02d}{parts[1]}{parts[2]}".upper()  # type: ignore[arg-type]
    for name in (props.get("s2:product_uri"), item.id):
        match = _TILE_IN_NAME.search(str(name or ""))
        if match:
            return (match.group(1) or match.group(2)).zfill(5)
    return None


def processing_key(item: pystac.Item) -> tuple[Any, ...]:
    """Sort key: larger means a newer processing of the same acquisition.

    Compares the processing baseline, then the production time (``s2:generation_time``,
    ``s1:processing_datetime``, or the timestamp ending the product name), then the catalog's
    ``updated``/``created`` time, then the id (for a deterministic choice).
    """
    props = item.properties
    baseline = tuple(
        int(p) for p in re.findall(r"\d+", str(props.get("s2:processing_baseline") or "0"))
    )
    produced = str(props.get("s2:generation_time") or props.get("s1:processing_datetime") or "")
    if not produced:
        match = _TIMESTAMP_AT_END.search(str(props.get("s2:product_uri") or item.id))
        produced = _compact_to_iso(match.group(1)) if match else ""
    touched = str(props.get("updated") or props.get("created") or "")
    return baseline, _normalise_time(produced), _normalise_time(touched), item.id


_Scene = TypeVar("_Scene", S2Scene, S1Scene)


def dedupe(scenes: Sequence[_Scene]) -> tuple[_Scene, ...]:
    """Keep the newest processing of each acquisition, and its split parts, in time order.

    Scenes are one acquisition when platform and place match and their times differ by less
    than :data:`SAME_ACQUISITION`. The place is the MGRS tile, or for items without one (all
    Sentinel-1) the centre of the item's bbox to 0.1 degree, so that consecutive slices of one
    datatake stay apart. Within an acquisition, the newest processing is kept, then each older
    one that adds more than :data:`NEW_GROUND` of its footprint to the union of those kept.
    """
    groups: dict[tuple[str, object], list[list[_Scene]]] = {}
    for scene in sorted(scenes, key=lambda s: s.datetime):
        runs = groups.setdefault((scene.platform, _place(scene)), [])
        if runs and scene.datetime - runs[-1][-1].datetime < SAME_ACQUISITION:
            runs[-1].append(scene)
        else:
            runs.append([scene])
    kept = [scene for runs in groups.values() for run in runs for scene in _complementary(run)]
    return tuple(sorted(kept, key=lambda s: (s.datetime, s.id)))


def _complementary(run: Sequence[_Scene]) -> list[_Scene]:
    """The newest processing of ``run`` plus each other product that adds new ground."""
    ordered = sorted(run, key=lambda s: processing_key(s.item), reverse=True)
    if len(ordered) == 1:
        return ordered

    kept = [ordered[0]]
    try:
        union = shapely.make_valid(shapely.geometry.shape(ordered[0].item.geometry))
        for scene in ordered[1:]:
            footprint = shapely.make_valid(shapely.geometry.shape(scene.item.geometry))
            if (
                footprint.area > 0
                and footprint.difference(union).area > NEW_GROUND * footprint.area
            ):
                kept.append(scene)
                union = union.union(footprint)
    except (GEOSException, AttributeError, TypeError, ValueError, KeyError) as exc:
        log.warning(
            "products %s of one acquisition have no usable footprint (%s); keeping only %s",
            ", ".join(s.id for s in ordered), exc, ordered[0].id,
        )  # fmt: skip
        return kept[:1]
    return kept


def s1_acquisitions(items: Iterable[pystac.Item]) -> list[list[pystac.Item]]:
    """Sentinel-1 items grouped into acquisitions (all slices of one datatake), in time order.

    Slices belong together when platform and ``s1:datatake_id`` (else ``sat:absolute_orbit``)
    match; items that carry neither join the previous slice of their platform when they start
    within :data:`SAME_DATATAKE` of it. Slices within an acquisition are in time, then id, order.
    """
    groups: dict[tuple[str, str], list[pystac.Item]] = {}
    loose: dict[str, list[list[pystac.Item]]] = {}
    for item in sorted(items, key=lambda i: (item_datetime(i), i.id)):
        props = item.properties
        platform = str(props.get("platform", "unknown")).lower()
        take = next(
            (f"{k}={props[k]}" for k in ("s1:datatake_id", "sat:absolute_orbit") if props.get(k)),
            None,
        )
        if take is not None:
            groups.setdefault((platform, take), []).append(item)
            continue
        runs = loose.setdefault(platform, [])
        if runs and item_datetime(item) - item_datetime(runs[-1][-1]) <= SAME_DATATAKE:
            runs[-1].append(item)
        else:
            runs.append([item])
    every = [*groups.values(), *(run for runs in loose.values() for run in runs)]
    return sorted(every, key=lambda g: (item_datetime(g[0]), g[0].id))


def pair_nearest(
    s2: Sequence[S2Scene], s1: Sequence[S1Scene], tolerance: timedelta = DEFAULT_PAIR_TOLERANCE
) -> Mapping[str, str | None]:
    """Map each S2 id to the id of the S1 scene nearest in time within ``tolerance``, else None.

    Ties go to the earlier S1 scene.
    """
    pairs: dict[str, str | None] = {}
    times = [r.datetime for r in s1]
    for scene in s2:
        k = nearest_in_time(scene.datetime, times, tolerance)
        pairs[scene.id] = None if k is None else s1[k].id
    return MappingProxyType(pairs)


def nearest_in_time(when: datetime, times: Sequence[datetime], tolerance: timedelta) -> int | None:
    """Index of the time nearest ``when`` within ``tolerance`` (ties: the earlier), else None.

    The one pairing rule of clearcube: the search pairs scenes with it and the cube loader
    pairs dates with it when no pairing is given.
    """
    best = min(range(len(times)), key=lambda k: (abs(times[k] - when), times[k]), default=None)
    if best is None or abs(times[best] - when) > tolerance:
        return None
    return best


def _place(scene: S2Scene | S1Scene) -> object:
    """Where a scene is, for telling reprocessings from neighbouring scenes."""
    tile = getattr(scene, "tile", None)
    if tile:
        return tile
    box = scene.item.bbox
    if not box or len(box) < 4:
        return scene.id  # nowhere to compare: never merged with another scene
    half = len(box) // 2
    return (round((box[0] + box[half]) / 2, 1), round((box[1] + box[half + 1]) / 2, 1))


def _s2_level(item: pystac.Item, default: Level) -> Level:
    """``L1C`` or ``L2A`` from the product type, the id or the collection name."""
    product = str(item.properties.get("s2:product_type") or "").upper()
    if product.endswith("1C"):
        return "L1C"
    if product.endswith("2A"):
        return "L2A"
    for text in (item.id.upper(), (item.collection_id or "").upper()):
        if "L1C" in text:
            return "L1C"
        if "L2A" in text:
            return "L2A"
    return default


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _compact_to_iso(stamp: str) -> str:
    """``20201007T214652`` -> ``2020-10-07T21:46:52``."""
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"


def _normalise_time(text: str) -> str:
    """An ISO time as a sortable UTC string (``""`` when absent or unparsable)."""
    if not text:
        return ""
    try:
        when = pystac.utils.str_to_datetime(text)
    except (ValueError, TypeError):
        return ""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")
