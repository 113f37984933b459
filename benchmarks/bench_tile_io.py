"""What an inference task spends per tile outside the network: reading its inputs, writing its result.

    python benchmarks/bench_tile_io.py [--cube out/demo/cube.zarr] [--repeats 3] [--threads 1,2,4]
    python benchmarks/bench_tile_io.py --cube synthetic   # no catalog or GDAL (GPU machine)

On a masked cube (default: ``clearcube demo`` is run into a temporary folder and its cube used),
for every tile of the demo's plan (256 px, 32 px overlap) and the run's candidate dates, in
alternated rounds in one process:

``every candidate``: the read the inference task did before session 15, written out here: the
13 bands, the SAR and the cloud mask of every candidate, then ``known = ~cloud & (every band >
0)``, the greedy choice of dates, and the chosen dates sliced out.
``chosen only``: :func:`clearcube.pipeline.inference.read_tile_inputs`: every candidate's
validity and cloud bits from the cube's ``mask_state``, the choice, then the bands and SAR of
the chosen dates only.

Both must return the same arrays for every tile (checked, the run fails otherwise). Then the
store write of a tile's products (:meth:`MosaicStore.write_tile`, into a scratch store), and a
task's worth of tiles (``--batch``) on ``--threads`` threads, read tile by tile and together
(:func:`~clearcube.pipeline.inference.read_tiles_inputs`: neighbours fusing a date share one
window), then written: a GPU task reads its whole batch before the network call and writes it
after, and the host's cores are idle meanwhile.

Last, ``task host``: the whole inference task (:func:`~clearcube.pipeline.inference.infer_tiles`,
``--batch`` tiles per task and per network call, its I/O threads) with the network stood in by
a function that returns the nearest date at once, after sleeping ``--stand-in-ms`` per tile:
what a GPU waits for per tile. The scaling the pipeline does on the network's device runs on the
CPU here, so on a GPU host the figure is smaller by that share.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from clearcube.pipeline.dates import choose_tile_dates, first_clear
from clearcube.pipeline.inference import read_tile_inputs, read_tiles_inputs, tile_products
from clearcube.pipeline.mosaic import open_mosaic, spec_for_cube
from clearcube.pipeline.tiles import Tile


def read_every_candidate(
    cube: str, tile: Tile, dates: tuple[int, ...], max_dates: int
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The reference: every candidate's bands read, then the chosen dates sliced out."""
    group = zarr.open_group(cube, mode="r")
    index = np.asarray(dates, dtype=np.int64)
    rows, cols = tile.window
    s2 = np.asarray(group["s2"].get_orthogonal_selection((index, slice(None), rows, cols)))  # type: ignore[union-attr]
    s1 = np.asarray(group["s1"].get_orthogonal_selection((index, slice(None), rows, cols)))  # type: ignore[union-attr]
    cloud = np.asarray(group["cloud"].get_orthogonal_selection((index, rows, cols)), dtype=bool)  # type: ignore[union-attr]
    known = ~cloud & np.all(s2 > 0, axis=1)
    picked = choose_tile_dates(known, max_dates=max_dates)
    chosen = list(picked)
    covered = np.any(np.all(s2 > 0, axis=1), axis=0)
    return picked, s2[chosen], s1[chosen].astype(np.float32), first_clear(known[chosen]), covered


def demo_cube(tmp: Path) -> Path:
    """Run ``clearcube demo`` into ``tmp`` and return its masked cube (bench_gpu.py uses it too)."""
    out = tmp / "demo"
    clearcube = Path(sys.executable).with_name("clearcube")
    subprocess.run([str(clearcube), "demo", "--out", str(out)], check=True, capture_output=True)
    return out / "cube.zarr"


def masked_cube(given: Path | None, tmp: Path) -> Path:
    """The ``--cube`` of bench_tile_io.py and bench_gpu.py: a path, ``synthetic`` or the demo's.

    ``synthetic`` (benchmarks/synthetic_cube.py) needs neither the catalog nor GDAL: the GPU
    machine's way (benchmarks/gpu-call.sh).
    """
    if given is None:
        return demo_cube(tmp)
    if str(given) == "synthetic":
        from synthetic_cube import synthetic_cube  # beside this script

        return synthetic_cube(tmp / "synthetic.zarr")
    return given


def _candidates(cube: Path) -> tuple[int, ...]:
    """Every date whose validity the mask stage recorded (the demo: its nine candidates)."""
    from clearcube.pipeline.cube_masks import VALID_ATTR

    recorded = zarr.open_group(cube, mode="r").attrs.get(VALID_ATTR) or []
    return tuple(int(i) for i in recorded)  # type: ignore[union-attr]


def main() -> None:
    """Run the rounds and print per-tile figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cube", type=Path, help="a masked cube or `synthetic` (default: run the demo)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-dates", type=int, default=3, help="L, dates a tile fuses (demo: 3)")
    p.add_argument("--threads", default="1,2,4", help="reader threads for the batch read")
    p.add_argument("--batch", type=int, default=16, help="tiles per batch read (a GPU task)")
    p.add_argument("--stand-in-ms", type=float, default=0.0, help="stand-in network time per tile")
    args = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cube = masked_cube(args.cube, tmp)
        candidates = _candidates(cube)
        spec = spec_for_cube(cube, tile=256, overlap=32, uncertainty=False, run={"bench": 1})
        tiles = list(spec.plan)
        print(f"cube {cube}: {len(tiles)} tiles of 256 px, {len(candidates)} candidates, "
              f"L = {args.max_dates}")  # fmt: skip
        fused = []
        for tile in tiles:  # the two reads agree on every tile
            a = read_every_candidate(str(cube), tile, candidates, args.max_dates)
            picked, inputs, covered = read_tile_inputs(
                str(cube), tile, candidates, max_dates=args.max_dates
            )
            same = a[0] == picked and all(
                np.array_equal(x, y)
                for x, y in zip(a[1:], (inputs.s2, inputs.s1, inputs.known, covered), strict=True)
            )
            if not same:
                raise SystemExit(f"tile {tile.index}: the two reads differ")
            fused.append(len(picked))
        print("identical: both reads give the same dates and arrays for every tile; they fuse "
              f"{np.mean(fused):.2f} dates on average")  # fmt: skip

        times: dict[str, list[float]] = {"every candidate": [], "chosen only": []}
        for _ in range(args.repeats):
            for name in times:
                t0 = time.perf_counter()
                for tile in tiles:
                    if name == "every candidate":
                        read_every_candidate(str(cube), tile, candidates, args.max_dates)
                    else:
                        read_tile_inputs(str(cube), tile, candidates, max_dates=args.max_dates)
                times[name].append((time.perf_counter() - t0) / len(tiles))
        for name, values in times.items():
            rounds = " ".join(f"{1e3 * v:.1f}" for v in values)
            print(
                f"read, {name:<16} ms per tile: {rounds} (median {1e3 * statistics.median(values):.1f})"
            )

        store = open_mosaic(tmp / "mosaic.zarr", spec)
        writes = []
        for tile in tiles:
            products = _products(store, _read(cube, tile, candidates, args.max_dates))
            t0 = time.perf_counter()
            store.write_tile(tile, products, clear_fraction=0.5)
            writes.append(time.perf_counter() - t0)
        print(f"write, per tile ms: median {1e3 * statistics.median(writes):.1f}, "
              f"mean {1e3 * statistics.mean(writes):.1f}")  # fmt: skip
        shutil.rmtree(tmp / "mosaic.zarr")

        # A GPU task's batch: its tiles read, then written, on n threads (pipeline/inference.py
        # io_threads); the batch repeats the demo's tiles when it holds more than 25.
        batch = [tiles[k % len(tiles)] for k in range(args.batch)]
        for threads in (int(t) for t in args.threads.split(",")):
            for how in ("tile by tile", "together"):
                best_read = best_write = float("inf")
                for r in range(args.repeats):
                    store = open_mosaic(tmp / f"batch-{threads}-{how[0]}-{r}.zarr", spec)
                    t0 = time.perf_counter()
                    if how == "together":  # what a task of several tiles per call does
                        reads = read_tiles_inputs(
                            str(cube), batch, candidates, max_dates=args.max_dates,
                            threads=threads,
                        )  # fmt: skip
                    else:
                        with ThreadPoolExecutor(threads) as pool:
                            reads = list(
                                pool.map(
                                    lambda t: _read(cube, t, candidates, args.max_dates), batch
                                )
                            )
                    t1 = time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(functools.partial(_write, store), batch, reads))
                    t2 = time.perf_counter()
                    best_read, best_write = min(best_read, t1 - t0), min(best_write, t2 - t1)
                print(f"batch of {args.batch} tiles on {threads} thread(s), read {how}: "
                      f"{1e3 * best_read / args.batch:.1f}, written "
                      f"{1e3 * best_write / args.batch:.1f} ms per tile (best of {args.repeats})")  # fmt: skip
        task_host(cube, candidates, args, tmp)


def task_host(cube: Path, candidates: tuple[int, ...], args: argparse.Namespace, tmp: Path) -> None:
    """``infer_tiles`` over 4 tasks of ``--batch`` tiles, the network stood in (module doc)."""
    from unittest import mock

    import torch

    from clearcube.model.checkpoint import save_checkpoint
    from clearcube.model.config import preset
    from clearcube.model.unet import UNet
    from clearcube.pipeline import inference

    def stand_in(net: Any, cfg: Any, *, observed: torch.Tensor, **_: Any) -> torch.Tensor:
        time.sleep(args.stand_in_ms / 1e3 * observed.shape[0])
        return observed[:, 0].clone()

    cfg = preset("cpu-tiny")
    ckpt = save_checkpoint(tmp / "tiny.pt", UNet(cfg.unet), cfg, step=0)
    model = inference.ModelSpec(str(ckpt), steps=4, device="cpu", batch=args.batch)
    spec = spec_for_cube(cube, tile=256, overlap=32, uncertainty=False, run={"bench": 2})
    tiles = list(spec.plan)
    cube = cloudy_copy(cube, tmp / "cloudy.zarr", 256)
    best, generated = float("inf"), 0.0
    with mock.patch.object(inference, "fill_gaps", stand_in):
        for r in range(args.repeats):
            store = open_mosaic(tmp / f"task-{r}.zarr", spec)
            jobs = [
                inference.TileJob(str(cube), store, tiles[k % len(tiles)], candidates, model,
                                  max_dates=args.max_dates)
                for k in range(4 * args.batch)
            ]  # fmt: skip
            inference.infer_tiles(tuple(jobs[:1]))  # loads the network
            t0 = time.perf_counter()
            outcomes = []
            for start in range(0, len(jobs), args.batch):
                outcomes += inference.infer_tiles(tuple(jobs[start : start + args.batch]))
            best = min(best, (time.perf_counter() - t0) / len(jobs))
            generated = statistics.mean(o.generated_fraction for o in outcomes)
    if generated < 0.25:  # the discs cover ~50 %: without them no tile would need the network
        raise SystemExit(f"task host: only {generated:.0%} of the pixels generated; not a figure")
    threads = inference.io_threads(args.batch)
    print(f"task host: {args.batch} tiles per task on {threads} I/O thread(s), stand-in "
          f"{args.stand_in_ms:g} ms per tile, {generated:.0%} generated: {1e3 * best:.1f} ms per tile "
          f"(best of {args.repeats})")  # fmt: skip


def cloudy_copy(cube: Path, dest: Path, tile: int) -> Path:
    """``cube`` copied with a cloud disc over ~50 % of every tile on every date.

    The demo's dates between them see every pixel, so its tiles would need no network call;
    with the discs the model runs on every tile (bench_gpu.py's ``region`` and ``tasks``, and
    ``task host`` here).
    """
    import shutil

    import zarr

    shutil.copytree(cube, dest)
    cloud = zarr.open_array(dest / "cloud", mode="r+")
    height, width = cloud.shape[-2:]
    stride = tile - 32
    yy, xx = np.mgrid[:height, :width]
    disc = (yy % stride - tile / 2) ** 2 + (xx % stride - tile / 2) ** 2 < (0.4 * tile) ** 2
    for i in range(cloud.shape[0]):
        cloud[i] = np.asarray(cloud[i], dtype=bool) | disc
    # the tiles choose their dates from mask_state: write the new clouds into it, as the mask
    # stage would have
    from clearcube.pipeline.cube_masks import VALID_ATTR, clear_fractions

    group = zarr.open_group(dest, mode="r+")
    clear_fractions(group, [int(i) for i in group.attrs[VALID_ATTR]], record=True)  # type: ignore[union-attr]
    return dest


def _products(store: Any, read: Any) -> dict[str, np.ndarray]:
    """A tile's products as a task writes them, its first fused date standing for the fill."""
    _, inputs, covered = read
    composite = inputs.s2[0].astype(np.float32)
    products = tile_products(composite, np.zeros_like(composite), inputs.known, covered)
    return {k: products[k] for k in store.spec.products}


def _write(store: Any, tile: Tile, read: Any) -> None:
    store.write_tile(tile, _products(store, read), clear_fraction=0.5)


def _read(cube: Path, tile: Tile, candidates: tuple[int, ...], max_dates: int) -> Any:
    return read_tile_inputs(str(cube), tile, candidates, max_dates=max_dates)


if __name__ == "__main__":
    main()
