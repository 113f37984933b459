"""``clearcube cube``: search, then build a resumable S1/S2 Zarr cube with a progress bar."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from clearcube.bands import EARTH_SEARCH_ASSETS, L2A_MISSING, S2_BANDS
from clearcube.catalogs import search
from clearcube.catalogs.cli import add_query_arguments
from clearcube.errors import BadInputError
from clearcube.pipeline.outdir import output_lock

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cube`` subcommand."""
    p = subparsers.add_parser(
        "cube",
        help="build an S1/S2 Zarr v3 cube for a bbox and dates (resumes an interrupted build)",
        description="Search the catalog, load S2 (and paired S1) onto one 10 m grid, and write "
        "it region by region to a Zarr v3 store. Rerun the same command to resume.",
    )
    add_query_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="the cube store, e.g. cube.zarr")
    p.add_argument("--level", default="L1C", choices=("L1C", "L2A"))
    p.add_argument("--resolution", type=float, default=10.0, help="pixel size in metres")
    p.add_argument("--region-size", type=int, default=None, help="pixels per written region")
    add_read_arguments(p)
    p.set_defaults(func=run)


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    """The asset-reading flags shared by ``cube`` and ``run``."""
    p.add_argument(
        "--skip-bad-assets", action="store_true", help="drop dates whose assets cannot be read"
    )
    p.add_argument(
        "--requester-pays",
        action="store_true",
        help="read s3:// assets from requester-pays buckets (needs AWS credentials; you pay)",
    )


def run(args: argparse.Namespace) -> int:
    """Search, load and write the cube; return the exit code."""
    # Local for CLI start-up: these pull xarray and odc-stac, which ``clearcube --help`` skips.
    from clearcube.pipeline.cube import DEFAULT_REGION, write_cube
    from clearcube.pipeline.cube_load import load_scenes

    if args.out.exists() and not args.out.is_dir():
        raise BadInputError(f"--out {args.out} is a file, not a cube store; pass a new folder name")
    scenes = search(
        bbox=args.bbox, start=args.start, end=args.end, max_cloud=args.max_cloud,
        profile=args.profile, stac_url=args.stac_url, collections=args.collections,
        level=args.level, with_s1=not args.no_s1,
    )  # fmt: skip
    assets = scenes.profile.assets if scenes.profile is not None else EARTH_SEARCH_ASSETS
    ds = load_scenes(
        scenes,
        bbox=args.bbox,
        bands=[b for b in S2_BANDS if not (args.level == "L2A" and b in L2A_MISSING)],
        resolution=args.resolution,
        extra_assets={"scl": assets["SCL"]} if args.level == "L2A" else None,
        skip_bad_assets=args.skip_bad_assets,
        requester_pays=args.requester_pays,
    )

    lock = args.out.parent / f".{args.out.name}.lock"  # beside the store: it holds only Zarr
    with (
        output_lock(args.out, lock),
        tqdm(desc="cube regions", unit="region", file=sys.stderr) as bar,
    ):

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        write_cube(ds, args.out, region_size=args.region_size or DEFAULT_REGION, progress=progress)
    print(
        f"cube written: {args.out} ({ds.sizes['time']} dates, "
        f"{ds.sizes['y']}x{ds.sizes['x']} px, {ds.attrs['crs']})"
    )
    return 0
