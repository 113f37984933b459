"""The pipeline end to end: time per stage, and peak worker memory as the region grows.

    OMP_NUM_THREADS=2 python benchmarks/bench_pipeline.py demo --checkpoint model/checkpoints/demo.pt --steps 20
    python benchmarks/bench_pipeline.py memory --steps 2 --tile 256 --overlap 32

    python benchmarks/bench_pipeline.py malloc --checkpoint model/checkpoints/demo.pt --steps 10
    python benchmarks/bench_pipeline.py overhead --checkpoint model/checkpoints/demo.pt --steps 10 --tile 256 --overlap 32

``demo``: the whole demo region (``clearcube demo``'s call) with the result's per-stage timings
(search, cube, mask, inference, blend, cog). ``memory``: square regions of ``base``, 2× and 4×
``base`` pixels (1×, 4×, 16× the area; 16× of the default 288 px is the whole demo region, all the
demo catalog covers) inside the demo region, the whole ``composite`` (L2A route by default) in a
fresh subprocess and local cluster of 2 worker processes per size; the client's peak is the
subprocess's ``ru_maxrss``, a thread samples every worker's RSS (psutil, via ``client.run``)
every 0.25 s. Everything streams (cube by region, tiles one task at a time, products by window,
the quicklook decimated), so both must stay flat. The client process takes the CLI's malloc
setting (:mod:`clearcube.deploy.malloc`); ``--default-malloc`` leaves glibc's default.
``memory --worker-env KEY=VALUE`` adds a variable to the workers' environment (``MALLOC_ARENA_MAX=1``),
``--trim-after-task`` has each worker call ``malloc_trim(0)`` after every inference task.
``malloc``: inference of a 512 px box of the demo region, alternating the workers' glibc malloc
settings: distributed's (``MALLOC_TRIM_THRESHOLD_=65536``), a 1 GiB trim with a 32 MiB mmap
threshold, and that with two arenas (clearcube's, deploy/dask/distributed.yaml), in rounds in
one run on fresh local clusters; prints seconds per variant, the workers' minor page faults per
tile (the exited workers' ``RUSAGE_CHILDREN``) and their peak RSS.
``overhead``: the same box's inference through the pipeline's cluster against one process
running the same tile tasks in a loop; prints the ratio per core.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _worker_env_patch(env: dict[str, int | str], *, replace_malloc: bool = False) -> Any:
    """A stand-in for ``clearcube.deploy.config.dask_config``: the shipped settings with ``env``
    added to the workers' environment, after dropping the shipped ``MALLOC_*`` if
    ``replace_malloc`` (then distributed's own default, trim at 64 KiB, applies unless ``env``
    sets it)."""
    import clearcube.deploy.config as config

    shipped = config.dask_config

    def patched() -> dict[str, Any]:
        cfg = shipped()
        spawn = cfg["distributed"]["nanny"]["pre-spawn-environ"]
        if replace_malloc:
            spawn = {k: v for k, v in spawn.items() if not k.startswith("MALLOC_")}
        cfg["distributed"]["nanny"]["pre-spawn-environ"] = {**spawn, **env}
        return cfg

    return patched


def _parse_env(pairs: list[str]) -> dict[str, int | str]:
    env: dict[str, int | str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        env[key] = int(value) if value.isdigit() else value
    return env


def _trim_after_inference(client: Any) -> None:
    """Register a worker plugin that calls glibc's ``malloc_trim(0)`` after each inference task."""
    from distributed import WorkerPlugin
    from distributed.utils import key_split

    class TrimAfterInference(WorkerPlugin):  # type: ignore[misc]
        name = "trim-after-inference"

        def setup(self, worker: Any) -> None:
            import ctypes

            self.libc = ctypes.CDLL("libc.so.6")

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            if finish == "memory" and key_split(key) == "infer_tiles":
                self.libc.malloc_trim(0)

    client.register_plugin(TrimAfterInference())


@contextlib.contextmanager
def _worker_peaks(client: Any) -> Iterator[dict[str, int]]:
    """Every worker's peak RSS (bytes, by address) while the block runs, sampled every 0.25 s."""
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                for addr, rss in client.run(_rss).items():
                    peaks[addr] = max(peaks.get(addr, 0), rss)
            except Exception:  # a worker between tasks or restarting: next sample
                pass
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()


def _inner_box(
    region: tuple[float, float, float, float], edge_m: float = 5120.0
) -> tuple[float, float, float, float]:
    """A square box of ``edge_m`` metres (512 px at 10 m) near the south-west corner of ``region``."""
    west, south = region[0] + 0.01, region[1] + 0.01
    return (
        west,
        south,
        west + edge_m / (111_320 * math.cos(math.radians(south))),
        south + edge_m / 111_320,
    )


def demo(args: argparse.Namespace) -> None:
    """Time the demo end to end, split by stage."""
    from clearcube.catalogs.demo import DEMO_BBOX, DEMO_END, DEMO_START
    from clearcube.pipeline import composite

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = composite(
            DEMO_BBOX, DEMO_START, DEMO_END, Path(tmp) / "out", checkpoint=args.checkpoint,
            steps=args.steps, tile=args.tile, overlap=args.overlap,
        )  # fmt: skip
        total = time.perf_counter() - t0
    print(f"demo region, {result.tiles['total']} tiles of {args.tile} px, {args.steps} steps")
    for stage, seconds in result.timings.items():
        print(f"  {stage:<10} {seconds:7.1f} s")
    print(f"  {'total':<10} {total:7.1f} s (includes starting the local cluster)")


def memory(args: argparse.Namespace) -> None:
    """Peak RSS of the client process and of each worker for 1×, 4× and 16× the area.

    Each size runs in a fresh subprocess (``memory-one``), so the client's peak is that size's
    own (``ru_maxrss`` of the process) and not the largest size's so far.
    """
    import json
    import subprocess
    import sys

    rows = []
    for factor in (1, 2, 4):
        cmd = [sys.executable, __file__, "memory-one", "--edge", str(args.base * factor),
               "--steps", str(args.steps), "--tile", str(args.tile), "--overlap", str(args.overlap),
               "--mask", args.mask, "--dates", str(args.dates)]  # fmt: skip
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        if args.default_malloc:
            cmd += ["--default-malloc"]
        if args.trim_after_task:
            cmd += ["--trim-after-task"]
        for pair in args.worker_env:
            cmd += ["--worker-env", pair]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{factor * factor:>2}x ({row['edge']} px): {row['tiles']:4d} tiles, "
            f"{row['generated']:.1%} generated, total {row['seconds']:6.1f} s, client peak {row['client_mib']} MiB, "
            f"worker peaks {row['worker_mib']} MiB",
            flush=True,
        )
    for key in ("client_mib", "worker_mib"):
        first, last = max(np.atleast_1d(rows[0][key])), max(np.atleast_1d(rows[-1][key]))
        print(f"{key}: 1x {first} -> 16x {last} MiB ({last / first - 1:+.0%}; goal within 15 %)")


def memory_one(args: argparse.Namespace) -> None:
    """One size of :func:`memory`: prints one JSON line."""
    import json
    import resource

    from clearcube.catalogs.demo import DEMO_BBOX
    from clearcube.deploy.local import local_cluster
    from clearcube.deploy.malloc import stream_large_blocks
    from clearcube.pipeline import composite

    if not args.default_malloc:
        stream_large_blocks()  # as `clearcube run` / `clearcube demo` do at start-up
    if args.worker_env:
        import clearcube.deploy.config as config

        config.dask_config = _worker_env_patch(_parse_env(args.worker_env))  # type: ignore[assignment]
    west, south = DEMO_BBOX[0] + 0.002, DEMO_BBOX[1] + 0.002
    edge_m = args.edge * 10.0
    bbox = (west, south, west + edge_m / (111_320 * math.cos(math.radians(south))),
            south + edge_m / 111_320)  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_cluster(n_workers=2, gpu=False, dashboard_address=None) as client,
    ):
        client.wait_for_workers(2)
        if args.trim_after_task:
            _trim_after_inference(client)
        t0 = time.perf_counter()
        extra = {"checkpoint": args.checkpoint} if args.checkpoint else {}
        with _worker_peaks(client) as peaks:
            result = composite(
                bbox, "2024-05-01", "2024-07-31", Path(tmp) / "out", steps=args.steps,
                tile=args.tile, overlap=args.overlap, dates=args.dates, mask=args.mask, client=client,
                **extra,
            )  # fmt: skip
        seconds = time.perf_counter() - t0
    client_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "edge": args.edge, "tiles": result.tiles["total"], "seconds": round(seconds, 1),
        "generated": round(result.provenance["overall"]["generated"], 3),
        "client_mib": round(client_kib / 1024),
        "worker_mib": sorted(round(v / 2**20) for v in peaks.values()),
    }))  # fmt: skip


def malloc(args: argparse.Namespace) -> None:
    """Inference seconds with distributed's and with clearcube's malloc settings, alternated.

    Each variant runs on its own local cluster of 2 workers given as ``client``, so the cube and
    the masks are computed on the workers too (their faults are in the count). ``--trim-variant``
    adds the shipped settings with a ``malloc_trim(0)`` after every inference task (a worker
    plugin).
    """
    import os
    import resource

    import clearcube.deploy.config as config
    from clearcube.catalogs.demo import DEMO_BBOX
    from clearcube.deploy.local import local_cluster
    from clearcube.pipeline import composite

    shipped = config.dask_config
    ours: dict[str, int | str] = {
        "MALLOC_TRIM_THRESHOLD_": 1073741824, "MALLOC_MMAP_THRESHOLD_": 33554432,
    }  # fmt: skip
    variants: dict[str, tuple[dict[str, int | str], bool]] = {
        "distributed (trim 64 KiB)": ({"MALLOC_TRIM_THRESHOLD_": 65536}, False),
        "trim 1 GiB, mmap 32 MiB": (ours, False),
        "trim 1 GiB, mmap 32 MiB, 2 arenas": ({**ours, "MALLOC_ARENA_MAX": 2}, False),
    }
    if args.trim_variant:
        variants["2 arenas + malloc_trim after each task"] = ({**ours, "MALLOC_ARENA_MAX": 2}, True)
    bbox = _inner_box(DEMO_BBOX)
    times: dict[str, list[float]] = {k: [] for k in variants}
    faults: dict[str, list[float]] = {k: [] for k in variants}
    mib: dict[str, list[int]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, (env, trim) in variants.items():
            config.dask_config = _worker_env_patch(env, replace_malloc=True)  # type: ignore[assignment]
            # The local cluster's worker processes are this process's children: once they
            # have exited and been joined, their minor page faults are in RUSAGE_CHILDREN.
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
            # distributed's Nanny also copies its workers' MALLOC_* settings into this
            # process's environment, where the next variant's workers would inherit them
            for key in [k for k in os.environ if k.startswith("MALLOC_")]:
                del os.environ[key]
            try:
                with (
                    tempfile.TemporaryDirectory() as tmp,
                    local_cluster(n_workers=2, gpu=False, dashboard_address=None) as client,
                ):
                    client.wait_for_workers(2)
                    if trim:
                        _trim_after_inference(client)
                    with _worker_peaks(client) as peaks:
                        result = composite(
                            bbox, "2024-05-01", "2024-07-31", Path(tmp) / "out",
                            checkpoint=args.checkpoint, steps=args.steps, tile=args.tile,
                            overlap=args.overlap, client=client,
                        )  # fmt: skip
            finally:
                config.dask_config = shipped  # type: ignore[assignment]
            per_tile = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before) / max(
                result.tiles["total"], 1
            )
            times[name].append(result.timings["inference"])
            faults[name].append(per_tile)
            mib[name].append(round(max(peaks.values(), default=0) / 2**20))
            print(f"{name:<40} inference {result.timings['inference']:6.1f} s "
                  f"({result.tiles['total']} tiles, {args.steps} steps), "
                  f"{per_tile / 1e3:,.0f} k minor page faults per tile (all workers, whole run), "
                  f"worker peak {mib[name][-1]} MiB", flush=True)  # fmt: skip
    for name, values in times.items():
        print(
            f"{name:<40} best {min(values):6.1f} s  all {[round(v, 1) for v in values]}  "
            f"faults per tile {[round(f / 1e3) for f in faults[name]]} k  "
            f"worker peaks {mib[name]} MiB"
        )


def overhead(args: argparse.Namespace) -> None:
    """Inference through the pipeline against one process calling the same tasks, per core.

    The same box, tiles, dates and sampler: (a) ``composite`` as shipped, tiles on a local
    cluster of ``--workers`` single-thread worker processes; (b) the same ``composite`` with
    the cluster submission replaced by an in-process loop over the very same tile tasks
    (``infer_tiles``) on one torch thread. Both start from a copy of one finished cube, so
    only the inference differs; alternated A/B ``--repeats`` times. Ratio per core =
    (a) × workers / (b); the goal of issue 13 is <= 1.3.
    """
    import shutil

    import torch

    import clearcube.pipeline.inference as inference
    from clearcube.catalogs.demo import DEMO_BBOX
    from clearcube.deploy.local import local_cluster
    from clearcube.pipeline import composite
    from clearcube.pipeline.scheduling import RunStats

    bbox = _inner_box(DEMO_BBOX)
    run_args = dict(
        checkpoint=args.checkpoint, steps=args.steps, tile=args.tile, overlap=args.overlap,
        dates=1, samples=1,
    )  # fmt: skip
    shipped = inference.run_bounded

    def in_process(client: Any, fn: Any, jobs: Any, *, on_result: Any, **_: Any) -> RunStats:
        stats = RunStats()
        t0 = time.perf_counter()
        for job in jobs:
            on_result(job, fn(job))
            stats.submitted += 1
            stats.completed += 1
        stats.seconds = time.perf_counter() - t0
        return stats

    times: dict[str, list[float]] = {"pipeline": [], "one process": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_cluster(n_workers=args.workers, gpu=False, dashboard_address=None) as client,
    ):
        first = composite(
            bbox, "2024-05-01", "2024-07-31", Path(tmp) / "first", client=client, **run_args
        )
        print(
            f"{first.tiles['total']} tiles, {first.provenance['overall']['generated']:.0%} generated"
        )
        for r in range(args.repeats):
            for name in times:
                out = Path(tmp) / f"{name.replace(' ', '-')}-{r}"
                out.mkdir()
                shutil.copy2(first.out_dir / "run.json", out / "run.json")
                shutil.copytree(first.out_dir / "cube.zarr", out / "cube.zarr")
                threads = torch.get_num_threads()
                if name == "one process":
                    inference.run_bounded = in_process  # type: ignore[assignment]
                    torch.set_num_threads(1)
                try:
                    result = composite(
                        bbox, "2024-05-01", "2024-07-31", out, client=client, **run_args
                    )
                finally:
                    inference.run_bounded = shipped
                    torch.set_num_threads(threads)
                times[name].append(result.timings["inference"])
                print(f"{name:<12} inference {result.timings['inference']:6.1f} s", flush=True)
    pipe, single = min(times["pipeline"]), min(times["one process"])
    print(f"best: pipeline {pipe:.1f} s on {args.workers} workers, one process {single:.1f} s")
    print(f"ratio per core (pipeline x workers / one process): {pipe * args.workers / single:.2f}")


def main() -> None:
    """Parse the command line and run one benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name, fn in (
        ("demo", demo),
        ("memory", memory),
        ("memory-one", memory_one),
        ("malloc", malloc),
        ("overhead", overhead),
    ):
        p = sub.add_parser(name)
        p.add_argument(
            "--checkpoint",
            required=name not in ("memory", "memory-one"),
            help="model checkpoint (memory: default, the route's bundled one)",
        )
        p.add_argument("--edge", type=int, default=256, help="memory-one: region edge (px)")
        p.add_argument("--mask", default="scl", help="memory: the cloud-mask route")
        p.add_argument("--dates", type=int, default=1, help="memory: dates fused per tile")
        p.add_argument("--steps", type=int, default=2)
        p.add_argument("--tile", type=int, default=256 if name == "demo" else 64)
        p.add_argument("--overlap", type=int, default=32 if name == "demo" else 16)
        p.add_argument("--base", type=int, default=288, help="memory: edge of the 1x region (px)")
        p.add_argument("--repeats", type=int, default=2, help="malloc, overhead: A/B rounds")
        p.add_argument("--workers", type=int, default=2, help="overhead: worker processes")
        p.add_argument(
            "--default-malloc", action="store_true",
            help="memory: leave the client on glibc's default malloc (the CLI's setting is off)",
        )  # fmt: skip
        p.add_argument(
            "--worker-env", action="append", default=[], metavar="KEY=VALUE",
            help="memory: a worker environment variable added to the shipped ones",
        )  # fmt: skip
        p.add_argument(
            "--trim-after-task", action="store_true",
            help="memory: workers call malloc_trim(0) after each inference task",
        )  # fmt: skip
        p.add_argument(
            "--trim-variant", action="store_true",
            help="malloc: a third variant, clearcube's settings plus malloc_trim after each task",
        )  # fmt: skip
        p.set_defaults(fn=fn)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
