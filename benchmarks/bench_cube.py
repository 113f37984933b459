"""Cube build throughput and peak memory against a plain rasterio windowed read.

    python benchmarks/bench_cube.py [--base 512] [--dates 3] [--work /tmp/bench_cube]

Writes local COG scenes (tests/pipeline/cube_fixtures.py: 4 bands at 10 m, 2 at 20 m, UTM 33N)
covering a square region of ``base`` px, then ``2·base`` and ``4·base`` (area 1×, 4×, 16×).
For each size, in a FRESH subprocess (so peak RSS is that run's alone, GDAL caches included):

- ``cube``: ``load_cube`` + ``write_cube`` (Zarr v3, default 256 px chunks, 1024 px regions);
- ``rasterio``: a plain windowed read of the same source pixels, 20 m bands repeated to 10 m
  with numpy (the same output array, no Zarr write);
- ``rasterio+zarr``: the same read, then the array written to a Zarr v3 array with the cube's
  chunks (1 date × all bands × 256 × 256) and codec (LZ4 + shuffle): the plain script a user
  would write to get the same store, the reference of issue 13 ("incl. the Zarr write").

Each child runs ``--runs`` times: ``ratio`` compares the best warm runs (after the first) with the
plain read, ``ratio+zarr`` with the read and its Zarr write, ``cold ratio`` the first runs (a fixed start-up cost per process, which small regions feel most).
Throughput is output bytes (uint16 10 m pixels) per second; peak memory is the largest RSS seen
by a thread sampling psutil every 10 ms. Streaming means the cube's peak stays flat as the
region grows while the plain read's grows with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pipeline"))

BANDS = ("B02", "B03", "B04", "B08", "B05", "B11")


class PeakRSS:
    """Largest resident set size of this process, sampled in a background thread."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def make_scenes(work: Path, size_px: int, dates: int) -> list:
    """Write (or reuse) the COG scenes of one size; return their items."""
    import pystac
    from cube_fixtures import make_s2_item

    folder = work / f"scenes-{size_px}"
    items_file = folder / "items.json"
    if items_file.exists():
        return [pystac.Item.from_dict(d) for d in json.loads(items_file.read_text())]
    shutil.rmtree(folder, ignore_errors=True)
    items = [
        make_s2_item(
            folder,
            f"s2-{k}",
            datetime(2024, 6, 1 + 10 * k, 10, tzinfo=UTC),
            k,
            bands=BANDS,
            size_m=size_px * 10.0,
        )
        for k in range(dates)
    ]
    items_file.write_text(json.dumps([i.to_dict() for i in items]))
    return items


def region_bbox(size_px: int) -> tuple[float, float, float, float]:
    """WGS84 bbox of the scene area minus a 300 m margin (so the grid stays inside the scenes)."""
    from cube_fixtures import EPSG, ORIGIN
    from pyproj import Transformer

    x0, y0 = ORIGIN
    x1, y1 = x0 + size_px * 10.0, y0 - size_px * 10.0
    t = Transformer.from_crs(EPSG, 4326, always_xy=True)
    (w, e), (s, n) = t.transform([x0 + 300, x1 - 300], [y1 + 300, y0 - 300])
    return (w, s, e, n)


def run_cube(items: list, size_px: int, out: Path) -> dict[str, Any]:
    from clearcube.bands import EARTH_SEARCH_ASSETS
    from clearcube.pipeline.cube import load_cube, write_cube

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    ds = load_cube(
        items, None, bbox=region_bbox(size_px), s2_assets={b: EARTH_SEARCH_ASSETS[b] for b in BANDS}
    )
    write_cube(ds, out)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": float(ds["s2"].nbytes), "shape": list(ds["s2"].shape)}


def run_rasterio(items: list, size_px: int, zarr_out: Path | None = None) -> dict[str, Any]:
    """Read the same pixels window by window with rasterio, 20 m bands repeated to 10 m.

    With ``zarr_out``, then write them there as the cube stores them (chunks, codec), timed too.
    """
    import rasterio
    from rasterio.windows import Window

    from clearcube.bands import EARTH_SEARCH_ASSETS, S2_RESOLUTION
    from clearcube.pipeline.cube import target_geobox

    gbox = target_geobox(region_bbox(size_px), "EPSG:32633", 10)
    left, _, _, top = gbox.boundingbox
    ny, nx = gbox.shape.yx
    out = np.zeros((len(items), len(BANDS), ny, nx), dtype="uint16")
    start = time.perf_counter()
    for t, item in enumerate(items):
        for b, band in enumerate(BANDS):
            k = S2_RESOLUTION[band] // 10
            with rasterio.open(item.assets[EARTH_SEARCH_ASSETS[band]].href) as src:
                # offsets of the grid in 10 m pixels from the source's corner, then native pixels
                oy, ox = round((src.transform.f - top) / 10), round((left - src.transform.c) / 10)
                row0, col0 = oy // k, ox // k
                win = Window(col0, row0, -(-(ox + nx) // k) - col0, -(-(oy + ny) // k) - row0)
                data = src.read(1, window=win)
            up = np.repeat(np.repeat(data, k, axis=0), k, axis=1)
            out[t, b] = up[oy - row0 * k : oy - row0 * k + ny, ox - col0 * k : ox - col0 * k + nx]
    if zarr_out is not None:
        import zarr

        from clearcube.pipeline.cube_store import CUBE_CODECS

        shutil.rmtree(zarr_out, ignore_errors=True)
        store = zarr.create_array(
            zarr_out, shape=out.shape, chunks=(1, len(BANDS), 256, 256), dtype="uint16",
            compressors=CUBE_CODECS,
        )  # fmt: skip
        store[:] = out
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": float(out.nbytes), "shape": list(out.shape)}


def child(mode: str, size_px: int, dates: int, work: Path, runs: int) -> None:
    """``runs`` measurements in this (fresh) process; prints one JSON line.

    The first run is cold (lazy imports, GDAL and Dask start-up, a fixed cost per process);
    the later ones show the throughput a long job runs at. ``seconds`` lists them all.
    """
    items = make_scenes(work, size_px, dates)
    seconds = []
    with PeakRSS() as rss:
        for _ in range(runs):
            if mode == "cube":
                result = run_cube(items, size_px, work / f"cube-{size_px}.zarr")
            elif mode == "rasterio+zarr":
                result = run_rasterio(items, size_px, work / f"plain-{size_px}.zarr")
            else:
                result = run_rasterio(items, size_px)
            seconds.append(result["seconds"])
    result["seconds"] = seconds
    result["peak_rss_mb"] = rss.peak / 2**20
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=512, help="edge of the 1x region, px")
    parser.add_argument("--dates", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_cube"))
    parser.add_argument("--runs", type=int, default=3, help="runs per process (first: cold)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.dates, args.work, args.runs)
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    print(f"{'area':>5} {'px':>10} {'cube MB/s':>10} {'rio MB/s':>9} {'rio+zarr MB/s':>14} "
          f"{'ratio':>6} {'ratio+zarr':>10} {'cold ratio':>10} {'cube peak MB':>13} "
          f"{'rio peak MB':>12} {'cube s':>7}")  # fmt: skip
    for factor in (1, 2, 4):
        size = args.base * factor
        make_scenes(args.work, size, args.dates)  # here, so the children only read them
        res = {}
        for mode in ("rasterio", "rasterio+zarr", "cube"):
            cmd = [sys.executable, __file__, "--child", mode, str(size), "--dates", str(args.dates),
                   "--work", str(args.work), "--runs", str(args.runs)]  # fmt: skip
            line = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            res[mode] = json.loads(line.strip().splitlines()[-1])
        # warm: the best of the runs after the first (the first alone when --runs 1)
        warm = {m: min(r["seconds"][1:] or r["seconds"]) for m, r in res.items()}
        mbs = {m: res[m]["bytes"] / 2**20 / warm[m] for m in res}
        cold = res["rasterio"]["seconds"][0] / res["cube"]["seconds"][0]
        print(f"{factor * factor:>4}x {size:>5}x{size:<4} {mbs['cube']:>10.1f} "
              f"{mbs['rasterio']:>9.1f} {mbs['rasterio+zarr']:>14.1f} "
              f"{mbs['cube'] / mbs['rasterio']:>6.2f} {mbs['cube'] / mbs['rasterio+zarr']:>10.2f} "
              f"{cold:>10.2f} {res['cube']['peak_rss_mb']:>13.0f} "
              f"{res['rasterio']['peak_rss_mb']:>12.0f} {warm['cube']:>7.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
