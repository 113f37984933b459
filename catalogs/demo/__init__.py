"""The embedded demo region: a deterministic, realistic Sentinel-1/2 catalog that needs no internet.

``ensure_demo_catalog()`` returns a folder of Cloud-Optimized GeoTIFFs and STAC documents
(collections ``sentinel-2-l1c``, ``sentinel-2-l2a``, ``sentinel-1-grd``) over farmland in the Po
valley (EPSG:32632, 10 m), generating it once into the cache. See :mod:`.generate` for the layout.
"""

from __future__ import annotations

from clearcube.catalogs.demo.generate import (
    DEMO_BBOX,
    DEMO_END,
    DEMO_EPSG,
    DEMO_START,
    DEMO_VERSION,
    default_cache_dir,
    ensure_demo_catalog,
    generate_demo_region,
)

__all__ = [
    "DEMO_BBOX",
    "DEMO_END",
    "DEMO_EPSG",
    "DEMO_START",
    "DEMO_VERSION",
    "default_cache_dir",
    "ensure_demo_catalog",
    "generate_demo_region",
]
