"""The peer a user would run instead of clearcube, against clearcube's non-model stages, in one run.

    python benchmarks/bench_peer.py [--repeats 2] [--results benchmarks/RESULTS.md]

Peer: the demo catalog served on loopback (the project's own server), ``pystac-client`` search of
its L2A collection over the demo region and period, ``odc.stac.load`` of the 12 bands and SCL
(1024 px Dask chunks, grouped by solar day), the per-pixel median of the observations whose SCL
is not nodata, saturated, shadow, cloud or cirrus, computed with Dask's threaded scheduler and
written to a COG with ``odc.geo``'s ``write_cog``. clearcube: ``composite`` of the same region
and period on the L2A route (``mask="scl"``, the bundled L2A checkpoint), whose stage timings
give the non-model part (search + cube + mask + blend + cog; inference left out). Alternated
``--repeats`` times; the ratio uses the best of each. Issue 13's goal is ≤ 1.5×.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

#: SCL classes that are not a clear observation: nodata, saturated, shadow, cloud medium/high, cirrus.
NOT_CLEAR = (0, 1, 3, 8, 9, 10)
BANDS = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
         "nir09", "swir16", "swir22")  # fmt: skip


def peer(url: str, out: Path) -> float:
    """Seconds of the odc-stac median composite written to ``out``."""
    import odc.geo.xr  # the .odc accessor
    import odc.stac
    import pystac_client

    from clearcube.catalogs.demo.generate import DEMO_BBOX, DEMO_END, DEMO_START

    t0 = time.perf_counter()
    items = (
        pystac_client.Client.open(url)
        .search(collections=["sentinel-2-l2a"], bbox=DEMO_BBOX, datetime=f"{DEMO_START}/{DEMO_END}")
        .item_collection()
    )
    for item in items:  # the demo catalog's assets are local paths: not relative to the API
        item.set_self_href(None)
    ds = odc.stac.load(
        items, bands=[*BANDS, "scl"], bbox=DEMO_BBOX, resolution=10, groupby="solar_day",
        chunks={"x": 1024, "y": 1024},
    )  # fmt: skip
    clear = ~ds["scl"].isin(NOT_CLEAR)
    stack = ds[list(BANDS)].to_array("band").where(clear)
    median = stack.median("time", skipna=True).fillna(0).astype("uint16").compute()
    median.odc.write_cog(str(out), overwrite=True)
    return time.perf_counter() - t0


def ours(out: Path) -> tuple[float, dict[str, float]]:
    """Seconds of clearcube's non-model stages on the L2A route, and every stage's time."""
    from clearcube.catalogs.demo.generate import DEMO_BBOX, DEMO_END, DEMO_START
    from clearcube.pipeline import composite

    result = composite(DEMO_BBOX, DEMO_START, DEMO_END, out, mask="scl", steps=10)
    timings = dict(result.timings)
    return sum(v for k, v in timings.items() if k != "inference"), timings


def main(argv: list[str] | None = None) -> int:
    """Run both sides alternately and print the ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--results", type=Path)
    args = p.parse_args(argv)
    from clearcube.catalogs.demo.generate import ensure_demo_catalog
    from clearcube.catalogs.server import serve_catalog

    times: dict[str, list[float]] = {"peer": [], "clearcube": []}
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, serve_catalog(ensure_demo_catalog()) as url:
        for r in range(args.repeats):
            times["peer"].append(peer(url, Path(tmp) / f"peer-{r}.tif"))
            seconds, stages = ours(Path(tmp) / f"ours-{r}")
            times["clearcube"].append(seconds)
            print(f"round {r + 1}: peer {times['peer'][-1]:.1f} s, clearcube non-model "
                  f"{seconds:.1f} s {stages}", flush=True)  # fmt: skip
    best_peer, best_ours = min(times["peer"]), min(times["clearcube"])
    text = "\n".join(
        [
            "## The odc-stac median peer vs clearcube's non-model stages (bench_peer.py)",
            "",
            f"Command: `python benchmarks/bench_peer.py --repeats {args.repeats}`  ",
            f"Machine: {platform.machine()}, Python {sys.version.split()[0]}; the demo region "
            "(L2A collection, 9 dates, SCL masks), alternated in one run.",
            "",
            f"- peer (search, odc-stac load of 12 bands + SCL, median of the clear observations, "
            f"COG): {', '.join(f'{t:.1f}' for t in times['peer'])} s",
            f"- clearcube, search + cube + mask + blend + cog of `composite(mask='scl')`: "
            f"{', '.join(f'{t:.1f}' for t in times['clearcube'])} s (last run's stages: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
            + ")",
            f"- **ratio clearcube / peer: {best_ours / best_peer:.2f}×** (best of each)",
            "",
        ]
    )
    print(text)
    if args.results:
        with args.results.open("a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
