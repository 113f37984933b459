"""Scheduling overhead of run_bounded: a zero-cost stand-in model over >= 10,000 tiles.

    OMP_NUM_THREADS=2 python benchmarks/bench_scheduling.py --size 25600 --tile 256 --overlap 32

Plans a grid of tiles, then in ONE run: (1) a plain Python loop calls the stand-in on every tile
job, (2) :func:`clearcube.pipeline.scheduling.run_bounded` runs the same function over the same
jobs on a local cluster of 2 worker processes advertising GPU=1 (the pipeline's path:
``resources={"GPU": 1}``, a bounded window, one task per tile). Prints tasks per tile, wall times,
per-task overhead and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass

from clearcube.pipeline.tiles import Tile, plan_tiles


@dataclass(frozen=True)
class StandIn:
    """What the stand-in model returns: the tile's number and no pixels."""

    number: int
    worker: str = ""


def zero_cost_model(tile: Tile) -> StandIn:
    """The stand-in model: returns at once."""
    return StandIn(tile.y0 * 1_000_003 + tile.x0)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=25600, help="grid edge in pixels")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=int, default=None, help="max in flight (4 per worker)")
    args = parser.parse_args()

    from clearcube.deploy.local import local_cluster
    from clearcube.pipeline.scheduling import run_bounded

    plan = plan_tiles(args.size, args.size, tile=args.tile, overlap=args.overlap)
    tiles = list(plan)
    print(
        f"grid {args.size}x{args.size}, tile {args.tile}, overlap {args.overlap}: {len(tiles)} tiles"
    )

    t0 = time.perf_counter()
    loop = [zero_cost_model(t) for t in tiles]
    loop_s = time.perf_counter() - t0

    window = args.window or 4 * args.workers
    seen: list[int] = []
    with local_cluster(n_workers=args.workers, gpu=False, dashboard_address=None) as client:
        client.wait_for_workers(args.workers)
        t0 = time.perf_counter()
        stats = run_bounded(
            client, zero_cost_model, iter(tiles), on_result=lambda j, r: seen.append(r.number),
            max_in_flight=window, resources={"GPU": 1},
        )  # fmt: skip
        dask_s = time.perf_counter() - t0
    assert sorted(seen) == sorted(r.number for r in loop), "results differ from the plain loop"
    n = len(tiles)
    print(f"machine: {platform.machine()}, {platform.python_version()}, workers {args.workers}")
    print(f"tasks submitted {stats.submitted} for {n} tiles: {stats.submitted / n:.2f} per tile")
    print(f"max in flight {stats.max_in_flight} (window {window})")
    print(f"plain loop: {loop_s * 1e3:.1f} ms total, {loop_s / n * 1e6:.2f} us per tile")
    print(f"run_bounded: {dask_s:.1f} s total, {dask_s / n * 1e3:.2f} ms per task")
    print(
        f"per-task overhead: {(dask_s - loop_s) / n * 1e3:.2f} ms; ratio dask/loop {dask_s / loop_s:.0f}x"
    )


if __name__ == "__main__":
    main()
