"""CLI commands of the catalogs package: ``search``, ``catalog serve`` and ``catalog demo-data``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from clearcube.catalogs.profiles import LEVELS, PROFILES
from clearcube.catalogs.records import DEFAULT_PAIR_TOLERANCE, SceneSet
from clearcube.catalogs.search import search
from clearcube.catalogs.server import serve_catalog
from clearcube.errors import BadInputError, CatalogError


def add_query_arguments(p: argparse.ArgumentParser) -> None:
    """The catalog query flags shared by ``search``, ``cube`` and ``run``: where and when, and which API."""
    p.add_argument("--bbox", nargs=4, type=float, required=True, metavar=("W", "S", "E", "N"))
    p.add_argument("--start", required=True, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", required=True, help="last day, YYYY-MM-DD (UTC, inclusive)")
    p.add_argument("--max-cloud", type=float, default=None, help="max scene cloud cover, %%")
    p.add_argument("--profile", default="embedded", help=f"one of: {', '.join(PROFILES)}")
    p.add_argument("--stac-url", default=None, help="a STAC API root URL (needs --collections)")
    p.add_argument(
        "--collections", nargs="+", default=None, metavar="NAME", help="S2 [S1] collection names"
    )
    p.add_argument("--no-s1", action="store_true", help="no Sentinel-1 (optical only)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``search`` and ``catalog {serve,demo-data}`` to the ``clearcube`` parser."""
    p = subparsers.add_parser(
        "search",
        help="find Sentinel-2 scenes (and paired Sentinel-1) in a STAC API",
        description="Search a STAC API (default: the embedded demo catalog) for Sentinel-2 "
        "scenes over a bbox and date range, with the nearest Sentinel-1 acquisition paired.",
    )
    add_query_arguments(p)
    p.add_argument("--level", choices=LEVELS, default="L1C", help="Sentinel-2 processing level")
    p.add_argument("--limit", type=int, default=None, help="keep the N least cloudy S2 scenes")
    p.add_argument(
        "--pair-days",
        type=float,
        default=DEFAULT_PAIR_TOLERANCE.total_seconds() / 86400,
        help="largest S2-S1 gap in days for pairing (default %(default)g)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=run_search)

    catalog = subparsers.add_parser("catalog", help="the embedded STAC API")
    sub = catalog.add_subparsers(dest="catalog_command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve a catalog folder as a STAC API on 127.0.0.1 until Ctrl-C",
        description="Serve a folder of STAC collections and items through `rustac serve` "
        "(in-memory) on the loopback interface; prints the API URL, stops on Ctrl-C.",
    )
    serve.add_argument("dir", type=Path, help="catalog folder (collection.json, items.json, ...)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    serve.set_defaults(func=run_serve)
    demo = sub.add_parser("demo-data", help="generate the embedded demo catalog and print its path")
    demo.add_argument("--out", type=Path, default=None, help="folder (default: the user cache)")
    demo.set_defaults(func=run_demo_data)


def run_search(args: argparse.Namespace) -> int:
    """``clearcube search``: print the scenes as a table, or as JSON with ``--json``."""
    if not args.pair_days >= 0:
        raise BadInputError(
            f"--pair-days {args.pair_days:g} is negative; give the largest S2-S1 gap in days, "
            f"e.g. --pair-days {DEFAULT_PAIR_TOLERANCE.days}"
        )
    scenes = search(
        bbox=args.bbox,
        start=args.start,
        end=args.end,
        max_cloud=args.max_cloud,
        profile=args.profile,
        stac_url=args.stac_url,
        collections=args.collections,
        level=args.level,
        with_s1=not args.no_s1,
        limit=args.limit,
        pair_tolerance=timedelta(days=args.pair_days),
    )
    if args.json:
        print(json.dumps(scene_set_json(scenes), indent=2))
    else:
        print(scene_table(scenes))
    return 0


def scene_set_json(scenes: SceneSet) -> dict[str, Any]:
    """A JSON-ready description of a search result (stable keys for scripts)."""
    profile = scenes.profile
    s1_dates = {s.id: s.datetime for s in scenes.s1}
    return {
        "profile": profile.name if profile else None,
        "stac_url": profile.url if profile else None,
        "s2": [
            {
                "id": s.id,
                "collection": s.collection,
                "datetime": _iso(s.datetime),
                "platform": s.platform,
                "tile": s.tile,
                "cloud_cover": s.cloud_cover,
                "epsg": s.epsg,
                "level": s.level,
                "s1_id": scenes.pairs.get(s.id),
                "s1_datetime": _iso(s1_dates.get(scenes.pairs.get(s.id) or "")),
            }
            for s in scenes.s2
        ],
        "s1": [
            {
                "id": s.id,
                "collection": s.collection,
                "datetime": _iso(s.datetime),
                "platform": s.platform,
                "epsg": s.epsg,
                "level": s.level,
            }
            for s in scenes.s1
        ],
    }


def scene_table(scenes: SceneSet) -> str:
    """A readable table: one row per S2 scene with its paired S1 date, then a summary line."""
    s1_dates = {s.id: s.datetime for s in scenes.s1}
    header = ("date (UTC)", "platform", "tile", "cloud %", "level", "paired S1 (UTC)", "id")
    rows = [header]
    for s in scenes.s2:
        s1_id = scenes.pairs.get(s.id)
        cloud = "-" if s.cloud_cover is None else f"{s.cloud_cover:.1f}"
        paired = s1_dates[s1_id].strftime("%Y-%m-%d %H:%M") if s1_id else "-"
        when = s.datetime.strftime("%Y-%m-%d %H:%M")
        rows.append((when, s.platform, s.tile or "-", cloud, s.level, paired, s.id))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    n_paired = sum(v is not None for v in scenes.pairs.values())
    lines.append(
        f"{len(scenes.s2)} Sentinel-2 scenes, {len(scenes.s1)} Sentinel-1 scenes, {n_paired} paired"
    )
    return "\n".join(lines)


def run_serve(args: argparse.Namespace) -> int:
    """``clearcube catalog serve DIR``: serve in the foreground, print the URL, stop on Ctrl-C."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with serve_catalog(args.dir, port=args.port) as url:
            print(url, flush=True)
            print("serving on the loopback interface; press Ctrl-C to stop", file=sys.stderr)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo_data(args: argparse.Namespace) -> int:
    """``clearcube catalog demo-data``: generate the demo catalog (if needed), print its folder."""
    try:
        from clearcube.catalogs.demo import ensure_demo_catalog
    except ModuleNotFoundError as exc:
        raise CatalogError(f"the embedded demo catalog is unavailable ({exc})") from exc
    print(ensure_demo_catalog(args.out))
    return 0


def _iso(when: Any) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
