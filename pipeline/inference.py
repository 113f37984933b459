"""The per-tile work that runs on Dask workers: read a tile window, run SeqTIS, store the result.

One :class:`TileJob` is one task (DESIGN.md: one task per tile, ``resources={"GPU": 1}``). The
job carries only paths and small frozen values, so it pickles in microseconds; the worker opens
the cube and the mosaic store itself and loads the model once per process
(:func:`worker_model`). The sampler's noise is keyed by global pixel coordinates
(:class:`~clearcube.model.noise.CoordinateNoise`), so a pixel's result does not depend on which
tile, worker or order produced it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import zarr

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.deploy.local import require_gpu_slots
from clearcube.errors import BadInputError
from clearcube.model.checkpoint import load_checkpoint
from clearcube.model.data.normalize import s1_to_model, s2_from_model, s2_to_model
from clearcube.model.fill import SamplerName, fill_gaps
from clearcube.model.noise import CoordinateNoise
from clearcube.model.precision import InferenceNetwork, Precision
from clearcube.pipeline import chunk_io
from clearcube.pipeline.cube_masks import CLOUD_BIT, VALID_ATTR, VALID_BIT
from clearcube.pipeline.dates import choose_tile_dates, first_clear
from clearcube.pipeline.mosaic import MosaicStore
from clearcube.pipeline.provenance import provenance_layers
from clearcube.pipeline.scheduling import batched, run_bounded, tiles_per_task
from clearcube.pipeline.tiles import Tile

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

Sampler = SamplerName


@dataclass(frozen=True)
class ModelSpec:
    """How a worker samples a tile."""

    checkpoint: str
    """Path of the checkpoint file (readable from every worker)."""
    sampler: Sampler = "ddim"
    """``"ddim"`` (deterministic given x_T when ``eta`` is 0) or ``"ddpm"`` (ancestral, respaced)
    for a diffusion checkpoint; ``"consistency"`` (1 call) or ``"pdmsr"`` (``steps`` calls) for
    a consistency student."""
    steps: int = 50
    """Reverse steps (respacing of the trained schedule); network calls of pdmsr."""
    ladder: tuple[float, ...] = ()
    """pdmsr's noise levels σ, descending; empty: the student's default for ``steps`` calls."""
    eta: float = 0.0
    """DDIM η: 0 is deterministic, 1 matches DDPM's variance."""
    samples: int = 1
    """K samples per tile; their mean is the composite and their spread the uncertainty."""
    seed: int = 0
    """Seed of the coordinate-keyed noise."""
    precision: Precision = "auto"
    """The network call in ``"bf16"`` (autocast, channels-last: 1.75× faster on a CPU with
    native bf16 at the fp32 fill's quality, model/precision.py) or ``"fp32"``; ``"auto"``: bf16
    where the worker's device runs it natively, else fp32."""
    device: str = "auto"
    """``"auto"``: the worker's CUDA device when it has one, else the CPU."""
    batch: int = 0
    """Tile-samples per network call; 0: sized from the device's free memory on a GPU, 1 on
    the CPU (:func:`auto_batch`). The output does not depend on it."""


@dataclass(frozen=True)
class TileJob:
    """Everything one inference task needs."""

    cube: str
    """Path of the finished Zarr cube (variables ``s2``, ``s1``, ``cloud``)."""
    store: MosaicStore
    """The output mosaic store the tile is written into."""
    tile: Tile
    """The tile to compute."""
    dates: tuple[int, ...]
    """Candidate dates on the cube's time axis, nearest the target first; the tile fuses up to
    ``max_dates`` of them (:func:`~clearcube.pipeline.dates.choose_tile_dates`)."""
    model: ModelSpec
    """How to sample."""
    max_dates: int = 3
    """L, the most dates the tile fuses."""


@dataclass(frozen=True)
class TileOutcome:
    """What a task reports back (small: the pixels went to the store)."""

    number: int
    """The tile's number in the plan."""
    clear_fraction: float
    """Fraction of the tile's pixels clear in at least one input date (Eq. 25's M̃)."""
    generated_fraction: float
    """Fraction of the tile's valid pixels the model generated (cloudy in every fused date)."""
    dates: tuple[int, ...]
    """The dates the tile fused (cube time indices, nearest the target first)."""
    seconds: float
    """Wall time of the task on the worker."""
    worker: str
    """Address of the worker that ran it (empty outside Dask)."""


def read_tile_inputs(
    cube_path: str, tile: Tile, dates: tuple[int, ...], *, max_dates: int
) -> tuple[tuple[int, ...], TileInputs, np.ndarray]:
    """Read one tile window from the cube store: the dates it fuses, their inputs, its cover.

    :func:`read_tiles_inputs` of one tile.
    """
    return read_tiles_inputs(cube_path, [tile], dates, max_dates=max_dates)[0]


def read_tiles_inputs(
    cube_path: str,
    tiles: list[Tile],
    dates: tuple[int, ...],
    *,
    max_dates: int,
    threads: int = 1,
) -> list[tuple[tuple[int, ...], TileInputs, np.ndarray]]:
    """Read tile windows from the cube store: the dates each fuses, their inputs, its cover.

    Each tile's dates are chosen (:func:`~clearcube.pipeline.dates.choose_tile_dates`) from
    every candidate's validity and cloud mask, which the mask stage wrote into the cube's
    ``mask_state`` (one chunk per 256 px block and 16 dates); the 13 bands and the SAR are
    then read for the chosen dates only (demo cube, 9 candidates, up to 3 fused: 94 -> 13 ms a
    tile, session 15; 6.7 ms with the chunks decoded by :mod:`.chunk_io`, session 16,
    benchmarks/RESULTS.md). Neighbouring tiles of one row that fuse the same
    date are read as one window, so the Zarr chunks they share (a 256 px tile at a 224 px
    stride spans four 256 px chunks) are decoded once. ``threads`` read the windows at once.

    Returns:
        Per tile, ``(picked, inputs, covered)``: positions into ``dates`` of the fused dates;
        their ``s2 (L, 13, h, w)`` uint16 DN, ``s1 (L, 2, h, w)`` float32 dB (NaN: no SAR) and
        ``known (L, h, w)`` (clear and observed, each pixel in its first such date only,
        :func:`~clearcube.pipeline.dates.first_clear`); ``covered (h, w)``: some candidate
        observed the pixel (every band > 0).
    """
    group = zarr.open_group(cube_path, mode="r")
    missing = sorted(set(dates) - set(group.attrs.get(VALID_ATTR) or []))  # type: ignore[arg-type]
    if missing:
        raise ValueError(
            f"{cube_path}: dates {missing} have no recorded validity; run the mask stage "
            "(clearcube.pipeline.cube_masks.mask_and_choose) on this cube first"
        )
    index = np.asarray(dates, dtype=np.int64)

    def choose(tile: Tile) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
        rows, cols = tile.window
        state = _read(cube_path, "mask_state", (index, rows, cols))
        valid = (state & VALID_BIT) > 0
        known = valid & ((state & CLOUD_BIT) == 0)
        picked = choose_tile_dates(known, max_dates=max_dates)
        return picked, first_clear(known[list(picked)]), np.asarray(valid.any(axis=0))

    choices = _each(choose, tiles, threads)
    # One window per (date, row of tiles, run of touching tiles in that row fusing the date).
    spans: dict[tuple[int, int, int], list[int]] = {}
    for k in sorted(range(len(tiles)), key=lambda k: (tiles[k].y0, tiles[k].x0)):
        tile = tiles[k]
        for date in index[list(choices[k][0])]:
            runs = [key for key in spans if key[:2] == (int(date), tile.y0)]
            last = spans[runs[-1]] if runs else None
            if (
                last is not None
                and tiles[last[-1]].x1 >= tile.x0
                and (tiles[last[-1]].y1 == tile.y1)
            ):
                last.append(k)
            else:
                spans[(int(date), tile.y0, len(runs))] = [k]

    def read_span(key: tuple[int, int, int]) -> tuple[int, np.ndarray, np.ndarray]:
        """The span's window of bands and SAR, and its first column."""
        members = [tiles[k] for k in spans[key]]
        rows = slice(members[0].y0, members[0].y1)
        cols = slice(min(t.x0 for t in members), max(t.x1 for t in members))
        s2 = _read(cube_path, "s2", (key[0], slice(None), rows, cols))
        s1 = _read(cube_path, "s1", (key[0], slice(None), rows, cols))
        return cols.start, s2, s1

    keys = list(spans)
    windows = dict(zip(keys, _each(read_span, keys, threads), strict=True))
    where = {(key[0], k): key for key, members in spans.items() for k in members}
    out = []
    for k, (tile, (picked, known, covered)) in enumerate(zip(tiles, choices, strict=True)):
        parts = []
        for date in index[list(picked)]:
            x0, s2_window, s1_window = windows[where[(int(date), k)]]
            cols = slice(tile.x0 - x0, tile.x1 - x0)
            parts.append((s2_window[:, :, cols], s1_window[:, :, cols]))
        s2 = np.stack([a for a, _ in parts])
        s1 = np.stack([b for _, b in parts]).astype(np.float32)
        out.append((picked, TileInputs(s2, s1, known, tile), covered))
    return out


def _read(cube_path: str, name: str, selection: tuple[Any, ...]) -> np.ndarray:
    """An orthogonal selection of a cube array, decoded on this thread (:mod:`.chunk_io`)."""
    return chunk_io.read(f"{cube_path}/{name}", selection)


@functools.lru_cache(maxsize=2)
def worker_model(
    checkpoint: str, device: str, precision: Precision = "auto"
) -> tuple[Any, Any, str]:
    """Load the network once per worker process (and device, precision): ``(net, cfg, sha256)``."""
    net, cfg, meta = load_checkpoint(checkpoint, device=device)
    wrapped = InferenceNetwork(net, precision).eval()
    log.info("network %s on %s in %s", Path(checkpoint).name, device, wrapped.precision)
    return wrapped, cfg, meta["sha256"]


def resolve_device(device: str) -> str:
    """``"auto"`` -> the worker's CUDA device if it has one, else ``"cpu"``."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def sample_tile(
    s2: np.ndarray, s1: np.ndarray, known: np.ndarray, tile: Tile, spec: ModelSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Run SeqTIS on one tile: ``(composite, spread)``, each ``(13, h, w)`` float32 in DN.

    The composite is the mean of ``spec.samples`` samples; the spread their standard deviation
    (zero for one sample). Clear pixels come out as the mean of their clear observations
    (Eq. 26), whatever the model, taken from the DN themselves: the model's value range
    (reflectance clipped to [0, 1]) must not clip a bright clear pixel (snow, salt pans, SWIR).
    A tile whose every pixel is clear on some date has nothing to generate: the network is
    not run (nor loaded) and the result is exactly what the merge would give.
    """
    return sample_tiles([TileInputs(s2, s1, known, tile)], spec)[0]


@dataclass(frozen=True)
class TileInputs:
    """One tile's chosen dates, as :func:`read_tile_inputs` returns them."""

    s2: np.ndarray
    """``(L, 13, h, w)`` DN."""
    s1: np.ndarray
    """``(L, 2, h, w)`` dB, NaN: no SAR."""
    known: np.ndarray
    """``(L, h, w)`` bool, True = clear."""
    tile: Tile
    """Where the tile lies (keys its noise)."""


def sample_tiles(
    tiles: list[TileInputs], spec: ModelSpec, *, threads: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`sample_tile` for several tiles, ``spec.batch`` tile-samples per network call.

    Every (tile, sample) pair that needs the model is one batch element; pairs of the same
    padded shape and date count share a call, and each step's noise for the whole batch is one
    :class:`~clearcube.model.noise.CoordinateNoise` draw (one origin per element). On the CPU
    the network runs the batch element by element (``InferenceNetwork``: kernels chosen by
    batch size round differently), the noise is keyed by coordinates and the merge is per
    pixel, so each tile's result is bit-identical whatever the batch size
    (``tests/pipeline/test_inference_batch.py``). On a GPU the batch is one call; whether
    cuDNN keeps it bit-identical is not yet verified (no GPU run since).

    The tiles go to the network's device as they were read (uint16 DN, dB) and are scaled to
    the model's range there, and the samples come back in DN: on a GPU the host does no
    per-pixel arithmetic but the clear-pixel mean and the merge, each tile on one of
    ``threads`` threads (numpy releases the GIL).
    """
    prepared = _each(lambda item: _clear_mean(item.s2, item.known), tiles, threads)
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(tiles)
    means: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, (clear_mean, seen) in enumerate(prepared):
        if seen.all():
            results[i] = (clear_mean, np.zeros(clear_mean.shape, dtype=np.float32))
        else:
            means[i] = (clear_mean, seen)
    if not means:
        return [r for r in results if r is not None]

    device = resolve_device(spec.device)
    net, cfg, _ = worker_model(spec.checkpoint, device, spec.precision)
    multiple = cfg.unet.size_multiple
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for i in means:
        shape = _padded_shape(tiles[i].s2.shape, multiple)
        groups.setdefault(shape, []).extend((i, k) for k in range(spec.samples))
    size = spec.batch or auto_batch(net, cfg, device, next(iter(groups)))
    draws: dict[int, list[np.ndarray]] = {i: [] for i in means}
    with torch.inference_mode():
        uploaded = _each(lambda i: _model_inputs(tiles[i], multiple, device), list(means), threads)
        inputs = dict(zip(means, uploaded, strict=True))
        for units in groups.values():
            for chunk in batched(iter(units), size):
                x0 = _fill_batch(net, cfg, chunk, tiles, inputs, spec, device)
                for (i, _), x in zip(chunk, x0, strict=True):
                    h, w = tiles[i].s2.shape[-2:]
                    draws[i].append(s2_from_model(x[:, :h, :w].float()).cpu().numpy())

    def merge(i: int) -> tuple[np.ndarray, np.ndarray]:
        clear_mean, seen = means[i]
        if spec.samples == 1:  # the mean of one sample is itself, its spread zero
            return np.where(seen[None], clear_mean, draws[i][0]), np.zeros_like(clear_mean)
        stack = np.stack(draws[i])  # samples in order k = 0..K-1
        composite = np.where(seen[None], clear_mean, stack.mean(axis=0))
        spread = np.where(seen[None], np.float32(0.0), stack.std(axis=0))
        return composite.astype(np.float32), spread.astype(np.float32)

    for i, merged in zip(means, _each(merge, list(means), threads), strict=True):
        results[i] = merged
    return [r for r in results if r is not None]


def _padded_shape(shape: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    """``(L, C, h, w)`` with ``h`` and ``w`` rounded up to ``multiple`` (the U-Net's need)."""
    *lead, h, w = shape
    return (*lead, h + -h % multiple, w + -w % multiple)


def _model_inputs(
    item: TileInputs, multiple: int, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(observed, sar, known)`` of one tile on ``device`` in model space, padded to ``multiple``.

    The U-Net needs sides divisible by 2^(levels-1); a region smaller than a tile gives a tile
    of any size, so the data is reflected into the padding, which is marked unknown (cropped
    after). The DN go to the device as uint16 (half the bytes of float32) and are scaled there.
    """
    h, w = item.s2.shape[-2:]
    s2 = item.s2 if item.s2.dtype == np.uint16 else item.s2.astype(np.float32, copy=False)
    s1, known = np.asarray(item.s1, dtype=np.float32), item.known
    if h % multiple or w % multiple:  # rare (a small region), so done on the host
        pad = ((0, 0), (0, 0), (0, -h % multiple), (0, -w % multiple))
        s2 = np.pad(s2, pad, mode="reflect")
        s1 = np.pad(s1, pad, mode="reflect")
        known = np.pad(known, pad[1:], mode="constant", constant_values=False)

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    observed = s2_to_model(put(s2))
    sar = _fill_missing_sar(s1_to_model(put(s1)))
    return observed, sar, put(np.asarray(known, dtype=bool))


def _fill_batch(
    net: Any,
    cfg: Any,
    chunk: tuple[tuple[int, int], ...],
    tiles: list[TileInputs],
    inputs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    spec: ModelSpec,
    device: str,
) -> torch.Tensor:
    """One :func:`fill_gaps` call over the (tile, sample) pairs of ``chunk``: ``(B, C, H, W)``."""

    def stacked(part: int) -> torch.Tensor:
        return torch.stack([inputs[i][part] for i, _ in chunk])

    noise = CoordinateNoise(
        spec.seed,
        origin=[(tiles[i].tile.y0, tiles[i].tile.x0) for i, _ in chunk],
        sample=[k for _, k in chunk],
    )
    x0: torch.Tensor = fill_gaps(
        net,
        cfg,
        observed=stacked(0),
        known=stacked(2)[:, :, None],
        sar=stacked(1),
        generator=noise,
        sampler=spec.sampler,
        steps=spec.steps,
        eta=spec.eta,
        ladder=spec.ladder,
    )
    return x0


#: Upper bound of an automatic batch (tile-samples per network call).
MAX_AUTO_BATCH = 32
#: Share of the device's free memory an automatic batch may take.
AUTO_BATCH_MEMORY = 0.6


def batch_for_memory(free_bytes: int, per_element_bytes: int) -> int:
    """Batch elements that fit in :data:`AUTO_BATCH_MEMORY` of ``free_bytes`` (1..32)."""
    fits = int(AUTO_BATCH_MEMORY * free_bytes) // max(per_element_bytes, 1)
    return max(1, min(MAX_AUTO_BATCH, fits))


@functools.lru_cache(maxsize=8)
def _probe_bytes(net: Any, device: str, shape: tuple[int, ...], cond: int) -> int:
    """Peak CUDA memory of one network call on one element of ``shape`` (C, H, W)."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.zeros((1, *shape), device=device)
    c = torch.zeros((1, cond, *shape[1:]), device=device)
    with torch.inference_mode():
        net(x, torch.zeros(1, dtype=torch.int64, device=device), c)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


def auto_batch(net: Any, cfg: Any, device: str, shape: tuple[int, ...]) -> int:
    """The batch a worker uses when ``ModelSpec.batch`` is 0.

    On a GPU: as many tile-samples as fit in 60 % of the free memory, from one probe call's
    peak (cached per process), at most 32. On the CPU: 1, because batching was slower per tile
    there (benchmarks/RESULTS.md, "Batch size").
    """
    if torch.device(device).type != "cuda":
        return 1
    _, channels, h, w = shape
    per = _probe_bytes(net, device, (channels, h, w), cfg.unet.cond_channels)
    free, _ = torch.cuda.mem_get_info(device)
    return batch_for_memory(free, per)


def _clear_mean(s2: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean DN of each pixel's clear observations (C, h, w) float32, seen (h, w))``.

    Summed in float32: DN are integers below 2^16, so the sum of up to 256 dates is exact,
    and one float32 division rounds as the float64 quotient rounded to float32 would (double
    rounding is innocuous for division when 53 >= 2 * 24 + 2): the float64 mean, cast.
    """
    known = np.asarray(known, dtype=bool)
    total = np.zeros(s2.shape[1:], dtype=np.float32)
    for date, clear in zip(s2, known, strict=True):
        np.add(total, date, out=total, where=clear[None])
    count = known.sum(axis=0)
    return total / np.maximum(count, 1).astype(np.float32)[None], count > 0


def _fill_missing_sar(sar: torch.Tensor) -> torch.Tensor:
    """``(L, Cs, h, w)`` SAR with each date's missing values filled.

    A missing value (NaN: no S1 pair) is taken from the mean of the dates that have one, so the
    dates' mean (Eq. 20) is the mean of real SAR; the middle of the range (0) only where no date
    has SAR. The mean is computed as ``np.nanmean`` does (dates summed in order in float32,
    divided in float64), so the CPU gives the values the numpy version gave.
    """
    missing = sar.isnan()
    present = torch.where(missing, 0.0, sar)
    total = present[0].clone()
    for date in present[1:]:
        total += date
    count = (~missing).sum(dim=0)
    mean = (total.double() / count.double()).float()  # 0 / 0: NaN where no date has SAR
    return torch.nan_to_num(torch.where(missing, mean, sar), nan=0.0)


def infer_tiles(jobs: tuple[TileJob, ...]) -> list[TileOutcome]:
    """The Dask task: read, sample (batched, :func:`sample_tiles`), write and report a few tiles.

    Each tile is written to the store on its own as soon as its batch is done, so a resumed run
    skips exactly the finished tiles. ``seconds`` of each outcome is the task's wall time shared
    evenly among its tiles.
    """
    start = time.perf_counter()
    torch_threads = os.environ.get("CLEARCUBE_TORCH_THREADS")
    if torch_threads:
        torch.set_num_threads(int(torch_threads))
    specs = {job.model for job in jobs}
    assert len(specs) == 1, "one task samples with one ModelSpec"
    reads = {(job.cube, job.dates, job.max_dates) for job in jobs}
    assert len(reads) == 1, "one task reads one cube's candidates"
    per_call = _tiles_per_call(jobs[0].model, len(jobs))
    threads = io_threads(min(per_call, len(jobs)))
    outcomes: list[Outcome] = []
    for group in batched(iter(jobs), per_call):
        outcomes += _infer_group(group, threads)
    seconds = (time.perf_counter() - start) / len(jobs)
    worker = _worker_address()
    return [
        TileOutcome(
            number=job.store.spec.plan.number(job.tile),
            clear_fraction=float(seen.mean()),
            generated_fraction=float((cover & ~seen).mean()),
            dates=tuple(job.dates[i] for i in picked),
            seconds=seconds,
            worker=worker,
        )
        for job, picked, seen, cover in outcomes
    ]


def _tiles_per_call(spec: ModelSpec, n: int) -> int:
    """How many of a task's ``n`` tiles are read and sampled together.

    A task's tiles are held in memory only as many at a time as one network call takes, so a
    worker's memory does not grow with the tiles per task (which grow with the region): the
    given batch's worth of tiles, one on the CPU (its automatic batch), all of them on a GPU
    with the automatic batch (sized there from the device's memory, not the host's).
    """
    if spec.batch:
        return max(1, spec.batch // spec.samples)
    return n if torch.device(resolve_device(spec.device)).type == "cuda" else 1


def io_threads(tiles: int) -> int:
    """Threads that read (and then write) the ``tiles`` of one network call at once.

    A GPU task reads its whole batch before the call and writes it after, while the host's
    cores wait; one tile's read and write take ~12 ms of one core (bench_tile_io.py), most of a
    tile's ~15 ms share of a GPU call. The chunks are decoded and encoded off the GIL
    (:mod:`.chunk_io`), so the threads overlap. ``CLEARCUBE_IO_THREADS`` overrides the default
    of one per core, at most 8. A CPU task's call holds one tile: no threads.
    """
    configured = os.environ.get("CLEARCUBE_IO_THREADS")
    if configured and not configured.strip().isdigit():
        raise BadInputError(
            f"CLEARCUBE_IO_THREADS={configured!r} is not a number of threads; set it to e.g. 4, "
            "or unset it for one per core"
        )
    limit = int(configured) if configured else min(8, os.cpu_count() or 1)
    return max(1, min(tiles, limit))


def _each(fn: Callable[[Any], Any], items: list[Any], threads: int) -> list[Any]:
    """``[fn(item) for item in items]``, on ``threads`` threads when more than one."""
    if threads <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(threads, thread_name_prefix="clearcube-io") as pool:
        return list(pool.map(fn, items))


Outcome = tuple[TileJob, tuple[int, ...], Any, Any]
"""``(job, picked dates, seen, covered)`` of one written tile."""


def _infer_group(jobs: tuple[TileJob, ...], threads: int) -> list[Outcome]:
    """Read, sample and write the tiles of one network call, each step on ``threads`` threads.

    Overlapping the next call's read and the last one's write with the network call was
    measured and left out: on the 2-core machine, with a stand-in network that sleeps 15 ms a
    tile, it took 44 ms a tile against 39 ms in turn (benchmarks/RESULTS.md, session 16).
    """
    first = jobs[0]
    reads = read_tiles_inputs(
        first.cube, [j.tile for j in jobs], first.dates, max_dates=first.max_dates,
        threads=threads,
    )  # fmt: skip
    results = sample_tiles([inputs for _, inputs, _ in reads], first.model, threads=threads)

    def write(item: tuple[TileJob, Any, Any]) -> Outcome:
        job, (picked, inputs, cover), (composite, spread) = item
        seen = inputs.known.any(axis=0)
        products = tile_products(composite, spread, inputs.known, cover)
        job.store.write_tile(
            job.tile, {p: products[p] for p in job.store.spec.products}, clear_fraction=seen.mean()
        )
        return job, picked, seen, cover

    return _each(write, list(zip(jobs, reads, results, strict=True)), threads)


def infer_tile(job: TileJob) -> TileOutcome:
    """One tile as its own task (:func:`infer_tiles` of one)."""
    return infer_tiles((job,))[0]


def tile_products(
    composite: np.ndarray, spread: np.ndarray, known: np.ndarray, covered: np.ndarray
) -> dict[str, np.ndarray]:
    """What a tile writes to the mosaic store: composite and spread in reflectance, provenance.

    A pixel that no candidate date covers (``covered`` False: outside every footprint) is
    nodata (NaN, provenance 0), not generated: clouds hide ground that exists, beyond the swath
    there is nothing to fill.
    """
    return {
        "composite": np.where(covered, composite / DN_PER_REFLECTANCE, np.nan),
        "uncertainty": np.where(covered, spread / DN_PER_REFLECTANCE, np.nan),
        "provenance": provenance_layers(known) * covered,
    }


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def run_tiles(
    client: Client,
    cube: Path,
    store: MosaicStore,
    candidates: tuple[int, ...],
    spec: ModelSpec,
    *,
    max_dates: int,
    progress: Callable[[int, int], None],
    max_in_flight: int | None = None,
    per_task: int | None = None,
) -> dict[str, int]:
    """Run GPU-pinned tasks of a few pending tiles each over ``store``; return the tile counts.

    Args:
        client: the Dask client (its workers advertise ``GPU`` slots).
        cube: the finished, masked Zarr cube.
        store: the output mosaic store (finished tiles are skipped: resume).
        candidates: the dates tiles choose from, nearest the target first.
        spec: how to sample.
        max_dates: L, the most dates a tile fuses.
        progress: ``progress(done, total)`` over all tiles (resumed ones count as done).
        max_in_flight: tasks submitted at once (default: 4 per GPU slot).
        per_task: tiles per task (default: :func:`~clearcube.pipeline.scheduling.tiles_per_task`,
            up to 16 while every slot keeps >= 8 tasks). Every tile is still written to the
            store on its own, so a resumed run skips exactly the finished tiles.

    Returns:
        ``{"total", "computed", "resumed", "without_clear"}``; ``without_clear`` is counted
        from the store, so a resumed run reports every tile.
    """
    plan = store.spec.plan
    pending = store.pending()
    total = len(plan)
    counts = {"total": total, "computed": 0, "resumed": total - len(pending), "without_clear": 0}
    slots = require_gpu_slots(client)
    size = per_task or tiles_per_task(len(pending), slots)
    jobs = batched(
        (
            TileJob(str(cube), store, tile, candidates, spec, max_dates=max_dates)
            for tile in pending
        ),
        size,
    )
    progress(counts["resumed"], total)

    def done_batch(batch: tuple[TileJob, ...], outcomes: list[TileOutcome]) -> None:
        for job, outcome in zip(batch, outcomes, strict=True):
            done(job, outcome)

    def done(job: TileJob, outcome: TileOutcome) -> None:
        counts["computed"] += 1
        if outcome.clear_fraction == 0.0:
            counts["without_clear"] += 1
            log.warning(
                "tile %s has no clear observation on any candidate date; filled from SAR by "
                "the model",
                job.tile.index,
            )
        log.debug(
            "tile %s fused dates %s, generated %.1f %%",
            job.tile.index,
            outcome.dates,
            100 * outcome.generated_fraction,
        )
        progress(counts["resumed"] + counts["computed"], total)

    stats = run_bounded(
        client, infer_tiles, jobs, on_result=done_batch,
        max_in_flight=max_in_flight or 4 * slots, resources={"GPU": 1},
    )  # fmt: skip
    recorded = store.clear_fractions()
    if np.isfinite(recorded).all():
        counts["without_clear"] = int(np.sum(recorded == 0.0))
    log.info(
        "inference: %d tiles in %d tasks (%d per task) in %.1f s on %d workers",
        counts["computed"],
        stats.completed,
        size,
        stats.seconds,
        len(stats.workers),
    )
    return counts
