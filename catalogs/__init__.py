"""clearcube.catalogs: STAC search, typed scene records and the embedded STAC API.

from clearcube.catalogs import search
scenes = search(bbox=(w, s, e, n), start="2024-05-01", end="2024-08-31", max_cloud=60)
scenes.s2_items(), scenes.s1_items_paired()   # plain pystac Items for the cube builder
"""

from __future__ import annotations

from clearcube.catalogs.profiles import (
    EARTH_SEARCH,
    EMBEDDED,
    PLANETARY_COMPUTER,
    PROFILES,
    CatalogProfile,
    resolve_profile,
)
from clearcube.catalogs.records import (
    DEFAULT_PAIR_TOLERANCE,
    S1Scene,
    S2Scene,
    SceneSet,
    build_scene_set,
)
from clearcube.catalogs.search import search, search_items, validate_bbox, validate_dates
from clearcube.catalogs.server import serve_catalog

__all__ = [
    "DEFAULT_PAIR_TOLERANCE",
    "EARTH_SEARCH",
    "EMBEDDED",
    "PLANETARY_COMPUTER",
    "PROFILES",
    "CatalogProfile",
    "S1Scene",
    "S2Scene",
    "SceneSet",
    "build_scene_set",
    "resolve_profile",
    "search",
    "search_items",
    "serve_catalog",
    "validate_bbox",
    "validate_dates",
]
