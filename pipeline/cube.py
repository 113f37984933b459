"""Cubes: Sentinel-1/2 scenes on one grid, as a lazy ``xr.Dataset`` and as a resumable Zarr v3 store.

    ds = load_cube(scenes.s2_items, scenes.s1_items, bbox=bbox, s2_assets=assets, ...)
    write_cube(ds, "cube.zarr", progress=bar_update)
    cube = open_cube("cube.zarr")

Loading lives in :mod:`clearcube.pipeline.cube_load`, storage in
:mod:`clearcube.pipeline.cube_store`, read retries in :mod:`clearcube.pipeline.retry`.
"""

from __future__ import annotations

from clearcube.pipeline.cube_grid import target_geobox
from clearcube.pipeline.cube_load import DEFAULT_CHUNK, load_cube, load_scenes
from clearcube.pipeline.cube_store import DEFAULT_REGION, open_cube, plan_regions, write_cube
from clearcube.pipeline.retry import RetryPolicy

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_REGION",
    "RetryPolicy",
    "load_cube",
    "load_scenes",
    "open_cube",
    "plan_regions",
    "target_geobox",
    "write_cube",
]
