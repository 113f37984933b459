"""Scheduling overhead of the pipeline's task path, against a plain loop, over >= 10,000 tiles.

    OMP_NUM_THREADS=2 python benchmarks/bench_scheduling.py --size 25600 --tile 256 --overlap 32 \
        [--sleep-ms 20] [--per-task auto]

Plans a grid of tiles, then in ONE run, with a stand-in model that sleeps ``--sleep-ms`` per tile
(0: returns at once): (1) a plain loop does the same sleeps across the same number of slots
(one thread per worker slot, tiles dealt round-robin: the ideal schedule), (2) the pipeline's
path runs them on a local cluster of 2 worker processes advertising GPU=1: tiles grouped
``--per-task`` per task (``auto``: :func:`clearcube.pipeline.scheduling.tiles_per_task`, as
``run_tiles`` does), :func:`~clearcube.pipeline.scheduling.run_bounded` with the
``resources={"GPU": 1}`` restriction and its bounded window. Prints tasks per tile, wall times
and the share of the wall time not spent in the stand-in. The goal of issue 13: within 2 % of
the plain loop at 20 ms per tile.
"""

from __future__ import annotations

import argparse
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from clearcube.pipeline.tiles import Tile, plan_tiles


@dataclass(frozen=True)
class StandIn:
    """What the stand-in model returns: the tile's number and no pixels."""

    number: int
    worker: str = ""


@dataclass(frozen=True)
class SleepJob:
    """One tile for the stand-in: its number and how long it "computes"."""

    tile: Tile
    seconds: float


def stand_in(job: SleepJob) -> StandIn:
    """The stand-in model of one tile: sleeps, then returns the tile's number."""
    if job.seconds:
        time.sleep(job.seconds)
    return StandIn(job.tile.y0 * 1_000_003 + job.tile.x0)


def stand_in_batch(jobs: tuple[SleepJob, ...]) -> list[StandIn]:
    """The stand-in task of a batch of tiles (as ``infer_tiles``)."""
    return [stand_in(j) for j in jobs]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=25600, help="grid edge in pixels")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sleep-ms", type=float, default=20.0, help="stand-in time per tile")
    parser.add_argument("--per-task", default="auto", help="tiles per task, or auto")
    parser.add_argument("--window", type=int, default=None, help="max in flight (4 per worker)")
    args = parser.parse_args()

    from clearcube.deploy.local import local_cluster
    from clearcube.pipeline.scheduling import batched, run_bounded, tiles_per_task

    plan = plan_tiles(args.size, args.size, tile=args.tile, overlap=args.overlap)
    jobs = [SleepJob(t, args.sleep_ms / 1e3) for t in plan]
    n = len(jobs)
    per_task = tiles_per_task(n, args.workers) if args.per_task == "auto" else int(args.per_task)
    print(
        f"grid {args.size}x{args.size}, tile {args.tile}, overlap {args.overlap}: {n} tiles, "
        f"stand-in {args.sleep_ms:g} ms per tile, {per_task} tiles per task"
    )

    def lane(k: int) -> list[StandIn]:
        return [stand_in(j) for j in jobs[k :: args.workers]]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        loop = [r for part in pool.map(lane, range(args.workers)) for r in part]
    loop_s = time.perf_counter() - t0

    window = args.window or 4 * args.workers
    seen: list[int] = []
    with local_cluster(n_workers=args.workers, gpu=False, dashboard_address=None) as client:
        client.wait_for_workers(args.workers)
        t0 = time.perf_counter()
        stats = run_bounded(
            client, stand_in_batch, batched(jobs, per_task),
            on_result=lambda batch, results: seen.extend(r.number for r in results),
            max_in_flight=window, resources={"GPU": 1},
        )  # fmt: skip
        dask_s = time.perf_counter() - t0
    assert sorted(seen) == sorted(r.number for r in loop), "results differ from the plain loop"
    ideal = n * args.sleep_ms / 1e3 / args.workers
    print(f"machine: {platform.machine()}, {platform.python_version()}, workers {args.workers}")
    print(f"tasks submitted {stats.submitted} for {n} tiles: {stats.submitted / n:.3f} per tile")
    print(f"max in flight {stats.max_in_flight} (window {window})")
    print(f"plain loop over {args.workers} slots: {loop_s:.2f} s (sleeps alone {ideal:.2f} s)")
    print(f"pipeline path: {dask_s:.2f} s; ratio pipeline/loop {dask_s / loop_s:.4f}")
    if ideal:
        print(
            f"share of wall time not in the stand-in: loop {1 - ideal / loop_s:.2%}, "
            f"pipeline {1 - ideal / dask_s:.2%}"
        )


if __name__ == "__main__":
    main()
