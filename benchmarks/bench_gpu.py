"""Network throughput per preset and batch, batch bit-identity, and a 2,000-tile region's inference.

    python benchmarks/bench_gpu.py                      # CUDA if present, else the CPU fallback
    python benchmarks/bench_gpu.py --presets cpu-tiny,small,paper --batches 1,4,8,16,32
    OMP_NUM_THREADS=1 python benchmarks/bench_gpu.py --device cpu --region-tiles 8
    python benchmarks/bench_gpu.py --parts tasks --cube synthetic    # no catalog or GDAL needed

Five parts (``--parts``), one process, random weights (time does not depend on them). On a lent
GPU machine, ``benchmarks/gpu-call.sh`` runs them all, and bench_tile_io.py, in one call.

``calls``: one network call on 256² tiles (13 bands + 2 SAR channels, the pipeline's
``InferenceNetwork``: bf16 autocast in channels-last, or fp32) per preset × batch; the median of
``--repeats`` calls after two warm-ups. Reported: seconds per call, tiles/s at ``--calls-per-tile``
network calls per tile, achieved TFLOP/s (2 × multiply-adds from torch's FLOP counter / seconds)
and, on a GPU whose bf16 dense peak is in :data:`BF16_DENSE_PEAK`, the fraction of it.

``identity``: each element of a batch of B against the same element run alone, per batch size,
``torch.equal`` and the largest difference. The pipeline's output must not depend on the batch
(issue 13). On the CPU ``InferenceNetwork`` runs a batch element by element, so this holds by
construction; on CUDA it is the real check.

``region``: ``--region-tiles`` synthetic tiles of 256² (L = 3 dates, half of each tile cloudy
on every date, so the model runs on all of them) through ``clearcube.pipeline.inference.
sample_tiles``, the function the pipeline's workers call, with a DDIM sampler of
``--calls-per-tile`` steps and the automatic batch (``ModelSpec.batch = 0``). Reported: seconds,
tiles/s, and the figure for a 100 km × 100 km region at 10 m (2,000 tiles of 256 px at 32 px
overlap ≈ 45 × 45), extrapolated when fewer tiles were run. Reading, writing and the cluster are
not in this figure.

``tasks``: the same number of tiles through ``infer_tiles``, the function a worker's task runs:
each tile's dates chosen and read from a Zarr cube (the demo's, from ``clearcube demo``, unless
``--cube`` names one or ``synthetic``: benchmarks/synthetic_cube.py), a cloud disc over half of
every tile so the model runs on each, sampled, and written into a mosaic store. ``tasks`` minus
``region`` is what reading and writing cost where both print the same tiles per network call;
only the scheduler is left out.

``pipeline``: the same jobs as Dask tasks on clearcube's local cluster, submitted as the
pipeline's inference stage (``run_tiles``) submits them: the whole stage, scheduler and worker
processes included. ``pipeline`` minus ``tasks`` is what the cluster costs.

Without CUDA everything runs on the CPU with the cpu-tiny preset, and the output says so.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from clearcube.model.checkpoint import save_checkpoint
from clearcube.model.config import preset
from clearcube.model.precision import InferenceNetwork, resolve_precision
from clearcube.model.unet import UNet
from clearcube.pipeline.inference import (
    ModelSpec,
    TileInputs,
    auto_batch,
    sample_tiles,
    worker_model,
)
from clearcube.pipeline.tiles import Tile

#: Dense (no sparsity) bf16 tensor-core peak in FLOP/s, from the vendors' data sheets.
BF16_DENSE_PEAK = {
    "H200": 989e12,
    "H100 80GB HBM3": 989e12,  # SXM
    "H100 PCIe": 756e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}
#: The parts, in the order they run (``--parts``).
PARTS = ("calls", "identity", "region", "tasks", "pipeline")
#: Tiles of a 100 km × 100 km region at 10 m in 256 px tiles with 32 px overlap (10,000 / 224)².
REGION_TILES = 2000


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in BF16_DENSE_PEAK.items() if k in name), None)


def _inputs(net_cfg: object, batch: int, tile: int, device: str) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, net_cfg.in_channels, tile, tile, generator=g)  # type: ignore[attr-defined]
    c = torch.randn(batch, net_cfg.cond_channels, tile, tile, generator=g)  # type: ignore[attr-defined]
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x.to(device), t.to(device), c.to(device)


def _macs(net: nn.Module, x: Tensor, t: Tensor, c: Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(x, t, c)
    return counter.get_total_flops() / 2


def time_call(net: nn.Module, x: Tensor, t: Tensor, c: Tensor, device: str, repeats: int) -> float:
    """Median seconds of one call of ``net`` on (x, t, c), after two warm-up calls."""
    seconds = []
    with torch.inference_mode():
        for k in range(repeats + 2):
            _sync(device)
            t0 = time.perf_counter()
            net(x, t, c)
            _sync(device)
            if k >= 2:
                seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def calls(args: argparse.Namespace, device: str, presets: list[str], batches: list[int]) -> None:
    """The per-preset × batch table."""
    peak = _peak(device)
    print(
        "\n| preset | precision | batch | GMAC/call | s/call | tiles/s | TFLOP/s | of bf16 peak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in presets:
        cfg = preset(name).unet
        net = InferenceNetwork(UNet(cfg).to(device), args.precision).eval()
        if args.compile:
            net = torch.compile(net)  # type: ignore[assignment]
        macs1 = None
        for batch in batches:
            try:
                x, t, c = _inputs(cfg, batch, args.tile, device)
                if macs1 is None:
                    macs1 = _macs(net, x[:1], t[:1], c[:1])
                s = time_call(net, x, t, c, device, args.repeats)
            except torch.OutOfMemoryError:
                print(f"| {name} | | {batch} | out of memory | | | | |")
                torch.cuda.empty_cache()
                break
            flops = 2 * macs1 * batch / s
            share = f"{flops / peak:.1%}" if peak else "n/a"
            print(
                f"| {name} | {net_precision(net)} | {batch} | {macs1 / 1e9:.1f} | {s:.4f} | "
                f"{batch / (s * args.calls_per_tile):.2f} | {flops / 1e12:.2f} | {share} |",
                flush=True,
            )
        del net
        if device == "cuda":
            torch.cuda.empty_cache()


def net_precision(net: nn.Module) -> str:
    """The precision an (optionally compiled) InferenceNetwork resolved."""
    inner = getattr(net, "_orig_mod", net)
    return str(getattr(inner, "precision", "?"))


def identity(args: argparse.Namespace, device: str, name: str, batches: list[int]) -> bool:
    """Each batch element against itself alone; True when every one is bit-identical."""
    cfg = preset(name).unet
    torch.manual_seed(0)
    net = InferenceNetwork(UNet(cfg).to(device), args.precision).eval()
    largest = max(batches)
    x, t, c = _inputs(cfg, largest, args.identity_tile, device)
    with torch.inference_mode():
        alone = torch.cat([net(x[i : i + 1], t[i : i + 1], c[i : i + 1]) for i in range(largest)])
        ok = True
        for batch in batches:
            together = torch.cat(
                [
                    net(x[i : i + batch], t[i : i + batch], c[i : i + batch])
                    for i in range(0, largest, batch)
                ]
            )[:largest]
            same = torch.equal(together, alone)
            ok &= same
            diff = (together - alone).abs().max().item()
            print(
                f"  {name} {net.precision} batch {batch:>2}: identical {same}, max |diff| {diff:.2e}"
            )
    return ok


#: Distinct synthetic tiles; more tiles reuse their values at other positions (the time of a
#: tile does not depend on its values, and 2,000 distinct ones would take ~22 GB of host memory).
DISTINCT_TILES = 16


def _synthetic_tiles(n: int, tile: int, dates: int, seed: int = 0) -> list[TileInputs]:
    rng = np.random.default_rng(seed)
    per_row = max(1, int(np.ceil(np.sqrt(n))))
    stride = tile - 32
    yy, xx = np.mgrid[:tile, :tile]
    cloud = (yy - tile / 2) ** 2 + (xx - tile / 2) ** 2 < (0.4 * tile) ** 2  # ~50 %
    known = np.broadcast_to(~cloud, (dates, tile, tile)).copy()
    values = [
        (
            rng.integers(200, 4000, size=(dates, 13, tile, tile)).astype(np.uint16),  # DN
            rng.normal(-12.0, 3.0, size=(dates, 2, tile, tile)).astype(np.float32),
        )
        for _ in range(min(n, DISTINCT_TILES))
    ]
    out = []
    for k in range(n):
        r, q = divmod(k, per_row)
        s2, s1 = values[k % len(values)]
        out.append(TileInputs(s2, s1, known, Tile((r, q), r * stride, q * stride, tile, tile)))
    return out


class _Rate:
    """Running figures about every tenth of a part, so that one stopped by a time limit still
    leaves a rate behind. Call :meth:`start` when the timing starts, then the object with the
    tiles done after each step of ``step`` tiles; ``sync`` runs before a figure is taken."""

    def __init__(self, part: str, total: int, step: int, sync: Any = None) -> None:
        self.part, self.total, self.step, self.sync = part, total, step, sync
        self.every = max(step, total // 10)
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, done: int) -> None:
        if done % self.every >= self.step or done >= self.total:
            return
        if self.sync is not None:
            self.sync()
        seconds = time.perf_counter() - self.t0
        print(f"  {self.part}: {done} of {self.total} tiles in {seconds:.1f} s, "
              f"{done / seconds:.2f} tiles/s", flush=True)  # fmt: skip


def region(args: argparse.Namespace, device: str, name: str) -> None:
    """The region figure through ``sample_tiles``."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset(name)
        torch.manual_seed(0)
        ckpt = save_checkpoint(Path(tmp) / f"{name}.pt", UNet(cfg.unet), cfg, step=0)
        spec = ModelSpec(
            checkpoint=str(ckpt), sampler="ddim", steps=args.calls_per_tile,
            precision=args.precision, device=device, batch=args.region_batch,
        )  # fmt: skip
        warm = _synthetic_tiles(1, args.tile, 3, seed=1)
        sample_tiles(warm, spec)  # loads the network, sizes the automatic batch
        net, mcfg, _ = worker_model(str(ckpt), device, args.precision)
        shape = (1, mcfg.unet.in_channels, args.tile, args.tile)
        batch = spec.batch or auto_batch(net, mcfg, device, shape)
        tiles = _synthetic_tiles(args.region_tiles, args.tile, 3)
        precision = resolve_precision(args.precision, device)
        print(f"region: {len(tiles)} tiles of {args.tile}², {name}, {args.calls_per_tile} calls "
              f"per tile, {precision}, batch {batch}", flush=True)  # fmt: skip
        chunk = max(batch, 1) * 4  # tiles per sample_tiles call; it runs them `batch` at a time
        rate = _Rate("region", len(tiles), chunk, sync=lambda: _sync(device))
        _sync(device)
        t0 = time.perf_counter()
        rate.start()
        done = 0
        for start in range(0, len(tiles), chunk):
            sample_tiles(tiles[start : start + chunk], spec)
            done += len(tiles[start : start + chunk])
            rate(done)
        _sync(device)
        seconds = time.perf_counter() - t0
    per_tile = seconds / done
    how = "measured" if done >= REGION_TILES else f"extrapolated from {done} tiles"
    print(
        f"\nregion: {done} tiles of {args.tile}², {name}, {args.calls_per_tile} calls per tile, "
        f"{resolve_precision(args.precision, device)}, batch {batch}: {seconds:.1f} s, "
        f"{done / seconds:.2f} tiles/s; {REGION_TILES} tiles (100 km x 100 km at 10 m): "
        f"{per_tile * REGION_TILES:.1f} s ({how}; goal on one GPU < 30 s)"
    )


def _task_jobs(args: argparse.Namespace, device: str, name: str, tmp: Path) -> list[Any]:
    """``--region-tiles`` inference jobs over a cloudy copy of the masked cube, a new mosaic
    store each time the cube's plan comes round again (no tile written twice into one store;
    the Dask keys of the ``pipeline`` part, tokens of the jobs, stay distinct)."""
    import zarr
    from bench_tile_io import cloudy_copy, masked_cube  # beside this script

    from clearcube.pipeline.cube_masks import VALID_ATTR
    from clearcube.pipeline.inference import TileJob
    from clearcube.pipeline.mosaic import open_mosaic, spec_for_cube

    cube = cloudy_copy(masked_cube(args.cube, tmp), tmp / "cloudy.zarr", args.tile)
    cfg = preset(name)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / f"{name}.pt", UNet(cfg.unet), cfg, step=0)
    spec = ModelSpec(
        checkpoint=str(ckpt), sampler="ddim", steps=args.calls_per_tile,
        precision=args.precision, device=device, batch=args.region_batch,
    )  # fmt: skip
    layout = spec_for_cube(cube, tile=args.tile, overlap=32, uncertainty=False, run={})
    plan = list(layout.plan)
    candidates = tuple(int(i) for i in zarr.open_group(cube, mode="r").attrs[VALID_ATTR])  # type: ignore[union-attr]
    jobs = []
    for k in range(args.region_tiles + 1):  # + 1: the warm-up job
        rounds, i = divmod(k, len(plan))
        if i == 0:
            store = open_mosaic(tmp / f"mosaic-{rounds}.zarr", layout)
        jobs.append(TileJob(str(cube), store, plan[i], candidates, spec, max_dates=3))
    return jobs


def _tasks_how(jobs: list[Any], per_task: int, where: str) -> str:
    """What a ``tasks`` or ``pipeline`` figure ran: printed before the timed loop and after it."""
    from clearcube.pipeline.inference import _tiles_per_call, io_threads

    spec = jobs[0].model
    per_call = _tiles_per_call(spec, per_task)
    return (
        f"{len(jobs)} tiles of {jobs[0].tile.height}², {Path(spec.checkpoint).stem}, "
        f"{spec.steps} calls per tile, {where}, {per_task} tiles per task, up to {per_call} "
        f"per network call (batch {spec.batch or 'automatic'}), {io_threads(per_call)} I/O "
        f"thread(s), {len(jobs[0].dates)} candidates"
    )


def _tasks_line(part: str, how: str, outcomes: list[Any], seconds: float) -> str:
    generated = statistics.mean(o.generated_fraction for o in outcomes)
    if generated < 0.25:  # the discs cover ~50 %: the tiles' dates did not see them
        raise SystemExit(f"{part}: only {generated:.0%} of the pixels generated; not a figure")
    fused = statistics.mean(len(o.dates) for o in outcomes)
    n = len(outcomes)
    extrapolated = "measured" if n >= REGION_TILES else f"extrapolated from {n}"
    return (
        f"\n{part}: {how}; L = {fused:.2f} dates fused on average, {generated:.0%} generated: "
        f"{seconds:.1f} s, {n / seconds:.2f} tiles/s; {REGION_TILES} tiles: "
        f"{seconds / n * REGION_TILES:.1f} s ({extrapolated}; goal < 30 s)"
    )


def tasks(args: argparse.Namespace, device: str, name: str) -> None:
    """The region through the pipeline's task function, with the cube's reads and the store's writes.

    ``clearcube.pipeline.inference.infer_tiles`` (what a worker runs) over ``--region-tiles``
    jobs of the cube's tiles over and over (the cube from ``clearcube demo``, ``--cube`` or
    ``synthetic``, made cloudy by ``bench_tile_io.cloudy_copy``), ``--tiles-per-task`` per
    call (default 16, the pipeline's most), in this process. Not in it: the scheduler and
    the cluster (the ``pipeline`` part).
    """
    from clearcube.pipeline.inference import infer_tiles
    from clearcube.pipeline.scheduling import MAX_TILES_PER_TASK

    with tempfile.TemporaryDirectory() as tmp_name:
        warm, *jobs = _task_jobs(args, device, name, Path(tmp_name))
        per_task = args.tiles_per_task or MAX_TILES_PER_TASK
        how = _tasks_how(jobs, per_task, "infer_tiles in this process")
        print(f"tasks: {how}", flush=True)
        infer_tiles((warm,))  # loads the network, sizes the automatic batch
        rate = _Rate("tasks", len(jobs), per_task)
        _sync(device)
        t0 = time.perf_counter()
        rate.start()
        outcomes = []
        for start in range(0, len(jobs), per_task):
            outcomes += infer_tiles(tuple(jobs[start : start + per_task]))
            rate(len(outcomes))
        _sync(device)
        seconds = time.perf_counter() - t0
    print(_tasks_line("tasks", how, outcomes, seconds))


def pipeline(args: argparse.Namespace, device: str, name: str) -> None:
    """The ``tasks`` jobs as the pipeline's inference stage runs them: Dask tasks on a cluster.

    clearcube's local cluster (``clearcube.deploy.local.local_cluster``: on a GPU machine one
    ``LocalCUDACluster`` worker per GPU, else CPU workers), tasks of ``tiles_per_task`` tiles (or
    ``--tiles-per-task``) submitted by ``run_bounded`` with the ``GPU`` resource and 4 tasks in
    flight per slot, as ``run_tiles`` does; the figure includes the scheduler, the task transfers
    and the workers' processes. Should the GPU cluster not start (dask-cuda missing or failing),
    one plain worker process on the GPU instead, and the output says so.
    """
    import contextlib

    from clearcube.deploy.local import local_cluster, require_gpu_slots
    from clearcube.pipeline.inference import infer_tiles
    from clearcube.pipeline.scheduling import batched, run_bounded, tiles_per_task

    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        warm, *jobs = _task_jobs(args, device, name, Path(tmp_name))
        kind = "clearcube's local cluster"
        print("  pipeline: starting the local cluster", flush=True)
        started = time.perf_counter()
        try:
            client = stack.enter_context(local_cluster(dashboard_address=None))
        except Exception as exc:  # any failure of the GPU cluster: say so and go on
            if device != "cuda":
                raise
            print(f"  pipeline: the GPU cluster did not start ({str(exc)[:120]}); one worker")
            kind = "one plain worker process (no dask-cuda)"
            client = stack.enter_context(
                local_cluster(gpu=False, n_workers=1, dashboard_address=None)
            )
        slots = require_gpu_slots(client)
        print(f"  pipeline: {slots} slot(s) after {time.perf_counter() - started:.1f} s")
        size = args.tiles_per_task or tiles_per_task(len(jobs), slots)
        how = _tasks_how(jobs, size, f"{kind}, {slots} slot(s)")
        print(f"pipeline: {how}", flush=True)
        for worker in client.scheduler_info()["workers"]:  # each loads its network first
            client.submit(
                infer_tiles, (warm,), workers=[worker], resources={"GPU": 1}, pure=False
            ).result()
        outcomes: list[Any] = []
        rate = _Rate("pipeline", len(jobs), size)

        def done(batch: Any, results: list[Any]) -> None:
            outcomes.extend(results)
            rate(len(outcomes))

        t0 = time.perf_counter()
        rate.start()
        run_bounded(
            client, infer_tiles, batched(jobs, size), on_result=done,
            max_in_flight=4 * slots, resources={"GPU": 1},
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    print(_tasks_line("pipeline", how, outcomes, seconds))


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument(
        "--presets", help="comma-separated; default paper,small,cpu-tiny (CPU: cpu-tiny)"
    )
    p.add_argument("--batches", help="comma-separated; default 1,2,4,8,16,32 (CPU: 1,2,4)")
    p.add_argument("--precision", default="bf16", choices=["auto", "bf16", "fp32"])
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--identity-tile", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls-per-tile", type=int, default=4)
    p.add_argument("--region-tiles", type=int, help="default 2000 on CUDA, 4 on the CPU")
    p.add_argument("--region-preset", help="default paper on CUDA, cpu-tiny on the CPU")
    p.add_argument("--region-batch", type=int, default=0, help="0: the automatic batch")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (calls only)")
    p.add_argument(
        "--cube", type=Path, help="tasks: a masked cube or `synthetic` (default: run the demo)"
    )
    p.add_argument(
        "--tiles-per-task",
        type=int,
        help="tasks, pipeline: tiles per task (default: 16, the pipeline's choice)",
    )
    p.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}"
    )
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := sorted(set(parts) - set(PARTS)):
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if args.device == "cuda" and not cuda:
        print("--device cuda: no CUDA device here; run without --device for the CPU fallback")
        return 2
    device = "cuda" if cuda else "cpu"
    presets = (args.presets or ("paper,small,cpu-tiny" if cuda else "cpu-tiny")).split(",")
    batches = [int(b) for b in (args.batches or ("1,2,4,8,16,32" if cuda else "1,2,4")).split(",")]
    args.region_tiles = args.region_tiles or (REGION_TILES if cuda else 4)
    if not cuda and args.precision == "bf16" and resolve_precision("auto", "cpu") == "fp32":
        print("note: this CPU has no native bf16 (oneDNN would emulate it, ~6x slower): fp32")
        args.precision = "fp32"
    where = (
        torch.cuda.get_device_name()
        if cuda
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    print(f"device: {where}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    if not cuda:
        print("NO GPU: this is the CPU fallback with the cpu-tiny preset; the GPU goals "
              "(25 % of bf16 peak, 2,000 tiles < 30 s) are not measured by it")  # fmt: skip
    region_preset = args.region_preset or ("paper" if cuda else "cpu-tiny")
    ok = True
    if "calls" in parts:
        calls(args, device, presets, batches)
    if "identity" in parts:
        print(f"\nidentity (batch vs alone, {args.identity_tile}² tiles):")
        ok = identity(args, device, region_preset, batches)  # the preset the region runs
    if "region" in parts:
        region(args, device, region_preset)
    if "tasks" in parts:
        tasks(args, device, region_preset)
    if "pipeline" in parts:
        pipeline(args, device, region_preset)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
