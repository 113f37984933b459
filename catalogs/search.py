"""Search a STAC API for Sentinel-2 scenes (and the Sentinel-1 scenes to pair with them).

The one entry point is :func:`search`; it validates the request, resolves the catalog profile,
runs a POST item search per sensor with pystac-client (following every page), and turns the
items into a :class:`~clearcube.catalogs.records.SceneSet`. This package is the only place that
imports ``pystac_client``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pystac

from clearcube.catalogs.profiles import LEVELS, CatalogProfile, Level, resolve_profile
from clearcube.catalogs.records import (
    DEFAULT_PAIR_TOLERANCE,
    SceneSet,
    build_scene_set,
    pair_nearest,
)
from clearcube.catalogs.server import serve_catalog
from clearcube.catalogs.stac_api import fetch_items, open_api
from clearcube.errors import BadInputError, CatalogError

log = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]
DateLike = str | date | datetime


def search(
    *,
    bbox: Sequence[float],
    start: DateLike,
    end: DateLike,
    max_cloud: float | None = None,
    profile: str | CatalogProfile = "embedded",
    stac_url: str | None = None,
    collections: Sequence[str] | None = None,
    level: Level = "L1C",
    with_s1: bool = True,
    limit: int | None = None,
    page_size: int = 100,
    pair_tolerance: timedelta = DEFAULT_PAIR_TOLERANCE,
    timeout: float = 60.0,
) -> SceneSet:
    """Find Sentinel-2 scenes over ``bbox`` between ``start`` and ``end``, with S1 paired.

    Args:
        bbox: ``(west, south, east, north)`` in WGS84 degrees.
        start: first day (``"2024-05-01"``) or instant (ISO 8601; naive means UTC).
        end: last day, inclusive to its end, or instant.
        max_cloud: keep S2 scenes with ``eo:cloud_cover`` <= this percentage (0-100).
        profile: ``"embedded"``, ``"earth-search"``, ``"planetary-computer"`` or a profile.
        stac_url: a custom STAC API root; needs ``collections`` unless it is a profile's URL.
        collections: ``[S2]`` or ``[S2, S1]`` collection names overriding the profile's.
        level: Sentinel-2 processing level, ``"L1C"`` or ``"L2A"``.
        with_s1: also search Sentinel-1 (widened by ``pair_tolerance``) and pair it.
        limit: keep at most this many S2 scenes, the least cloudy ones.
        page_size: items per page requested from the API (every page is followed).
        pair_tolerance: largest gap between an S2 date and its paired S1 acquisition.
        timeout: seconds per HTTP request.

    Returns:
        The scenes, one per acquisition, in time order.

    Raises:
        BadInputError: a malformed request, an unknown profile or collection, an API that
            cannot be reached, or no Sentinel-2 item matching.
        CatalogError: the API failed while answering, or the embedded API did not start.
        ImportError: Planetary Computer without ``planetary_computer`` installed.
    """
    box = validate_bbox(bbox)
    t0, t1 = validate_dates(start, end)
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise BadInputError(f"--max-cloud {max_cloud} is not a percentage; give 0 to 100")
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit {limit} must be at least 1")
    if level not in LEVELS:
        raise BadInputError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    prof = resolve_profile(profile, stac_url=stac_url, collections=collections, level=level)
    request = _Request(box, t0, t1, max_cloud, level, with_s1, page_size, pair_tolerance, timeout)
    if prof.url is None:
        with embedded_api() as url:
            scenes = _search_api(url, prof, request)
    else:
        scenes = _search_api(prof.url, prof, request)
    if limit is not None and len(scenes.s2) > limit:
        kept = sorted(scenes.s2, key=lambda s: (_cloud_or_inf(s.cloud_cover), s.datetime))
        s2 = tuple(sorted(kept[:limit], key=lambda s: (s.datetime, s.id)))
        pairs = pair_nearest(s2, scenes.s1, pair_tolerance)
        scenes = SceneSet(s2=s2, s1=scenes.s1, pairs=pairs, profile=scenes.profile)
    return scenes


def search_items(**kwargs: Any) -> tuple[list[pystac.Item], list[pystac.Item]]:
    """Run :func:`search` and return plain pystac Items: ``(s2_items, paired_s1_items)``."""
    scenes = search(**kwargs)
    return scenes.s2_items(), scenes.s1_items_paired()


def validate_bbox(bbox: Sequence[float]) -> BBox:
    """Return ``bbox`` as four floats, or raise :class:`BadInputError` saying what to fix."""
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        raise BadInputError(
            f"bbox {bbox!r} is not four numbers; give --bbox WEST SOUTH EAST NORTH in degrees"
        ) from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise BadInputError(
            f"bbox {bbox!r} is not four finite numbers; give --bbox WEST SOUTH EAST NORTH"
        )
    w, s, e, n = values
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise BadInputError(
            f"bbox {values} is out of range; longitudes must be in [-180, 180] and latitudes "
            "in [-90, 90] (WGS84 degrees, order WEST SOUTH EAST NORTH)"
        )
    if w >= e or s >= n:
        raise BadInputError(
            f"bbox {values} is inverted or empty; the order is WEST SOUTH EAST NORTH with "
            "west < east and south < north (split areas across the antimeridian in two)"
        )
    return (w, s, e, n)


def validate_dates(start: DateLike, end: DateLike) -> tuple[datetime, datetime]:
    """Return ``(start, end)`` as UTC datetimes; a bare date as ``end`` means its last instant.

    Raises:
        BadInputError: an unparsable date, or ``start`` after ``end``.
    """
    t0 = _parse_when(start, "start", end_of_day=False)
    t1 = _parse_when(end, "end", end_of_day=True)
    if t0 > t1:
        raise BadInputError(f"start {_iso(t0)} is after end {_iso(t1)}; swap --start and --end")
    return t0, t1


def _parse_when(value: DateLike, name: str, *, end_of_day: bool) -> datetime:
    day_only = isinstance(value, date) and not isinstance(value, datetime)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadInputError(
                f"--{name} {value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time"
            ) from None
        day_only = len(text) <= 10
    elif isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        raise BadInputError(f"--{name} {value!r} is not a date; use YYYY-MM-DD")
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if day_only and end_of_day:
        parsed = parsed + timedelta(days=1) - timedelta(microseconds=1)
    return parsed


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cloud_or_inf(cloud: float | None) -> float:
    return math.inf if cloud is None else cloud


@contextmanager
def embedded_api() -> Iterator[str]:
    """Serve the embedded demo catalog (generated on first use) for a ``with`` block."""
    try:
        from clearcube.catalogs.demo import ensure_demo_catalog
    except ModuleNotFoundError as exc:
        raise CatalogError(
            f"the embedded demo catalog is unavailable ({exc}); give --stac-url or --profile"
        ) from exc
    with serve_catalog(ensure_demo_catalog()) as url:
        yield url


@dataclass(frozen=True)
class _Request:
    """The validated search parameters passed between the helpers below."""

    bbox: BBox
    start: datetime
    end: datetime
    max_cloud: float | None
    level: Level
    with_s1: bool
    page_size: int
    tolerance: timedelta
    timeout: float


def _search_api(url: str, prof: CatalogProfile, req: _Request) -> SceneSet:
    """Search one API for the S2 (and S1) collections of ``prof`` and build the scene set."""
    client = open_api(url, timeout=req.timeout, collections=_wanted(prof, req))
    s2_collection = prof.s2_collection(req.level)
    s2 = fetch_items(
        client, url, s2_collection, req.bbox, req.start, req.end, req.max_cloud, req.page_size
    )
    if req.max_cloud is not None:
        s2 = [i for i in s2 if _cloud_or_inf(i.properties.get("eo:cloud_cover")) <= req.max_cloud]
    if not s2:
        cloud = "" if req.max_cloud is None else f" with cloud <= {req.max_cloud:g}%"
        raise BadInputError(
            f"no Sentinel-2 items in {s2_collection} at {url} in bbox {list(req.bbox)} between "
            f"{_iso(req.start)} and {_iso(req.end)}{cloud}; widen the dates or the bbox, "
            "or raise --max-cloud"
        )
    s1: list[pystac.Item] = []
    if req.with_s1 and prof.s1 is not None:
        s1_start, s1_end = req.start - req.tolerance, req.end + req.tolerance
        s1 = fetch_items(client, url, prof.s1, req.bbox, s1_start, s1_end, None, req.page_size)
    if prof.signer is not None:
        s2, s1 = [prof.signer(i) for i in s2], [prof.signer(i) for i in s1]
    log.info("%s: %d S2 and %d S1 items", url, len(s2), len(s1))
    return build_scene_set(s2, s1, level=req.level, tolerance=req.tolerance, profile=prof)


def _wanted(prof: CatalogProfile, req: _Request) -> list[str]:
    wanted = [prof.s2_collection(req.level)]
    if req.with_s1 and prof.s1 is not None:
        wanted.append(prof.s1)
    return wanted
