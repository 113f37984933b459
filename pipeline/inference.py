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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import zarr

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.deploy.local import require_gpu_slots
from clearcube.model.checkpoint import load_checkpoint
from clearcube.model.data.normalize import s1_to_model, s2_from_model, s2_to_model
from clearcube.model.fill import SamplerName, fill_gaps
from clearcube.model.noise import CoordinateNoise
from clearcube.model.precision import InferenceNetwork, Precision
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
    precision: Precision = "bf16"
    """The network call in ``"bf16"`` (autocast, channels-last: 1.75× faster on CPU at the fp32
    fill's quality, model/precision.py) or ``"fp32"``."""
    device: str = "auto"
    """``"auto"``: the worker's CUDA device when it has one, else the CPU."""


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
    cube_path: str, tile: Tile, dates: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one tile window of the chosen dates from the cube store.

    Returns:
        ``s2 (L, 13, h, w)`` uint16 DN, ``s1 (L, 2, h, w)`` float32 dB (NaN: no SAR),
        ``known (L, h, w)`` bool (True = clear and observed).
    """
    group = zarr.open_group(cube_path, mode="r")
    index = np.asarray(dates, dtype=np.int64)
    rows, cols = tile.window

    def pick(name: str, selection: tuple[Any, ...]) -> np.ndarray:
        array = group[name]
        assert isinstance(array, zarr.Array), f"{cube_path}/{name} is not an array"
        return np.asarray(array.get_orthogonal_selection(selection))

    s2 = pick("s2", (index, slice(None), rows, cols))
    s1 = pick("s1", (index, slice(None), rows, cols))
    cloud = pick("cloud", (index, rows, cols)).astype(bool)
    known = ~cloud & np.all(s2 > 0, axis=1)  # DN 0 is nodata
    return s2, s1.astype(np.float32), known


@functools.lru_cache(maxsize=2)
def worker_model(
    checkpoint: str, device: str, precision: Precision = "bf16"
) -> tuple[Any, Any, str]:
    """Load the network once per worker process (and device, precision): ``(net, cfg, sha256)``."""
    net, cfg, meta = load_checkpoint(checkpoint, device=device)
    return InferenceNetwork(net, precision).eval(), cfg, meta["sha256"]


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
    clear_mean, seen = _clear_mean(s2, known)
    if seen.all():
        return clear_mean.astype(np.float32), np.zeros(clear_mean.shape, dtype=np.float32)

    device = resolve_device(spec.device)
    net, cfg, _ = worker_model(spec.checkpoint, device, spec.precision)
    # The U-Net needs sides divisible by 2^(levels-1); a region smaller than a tile gives a
    # tile of any size, so pad (reflect the data, mark the padding unknown) and crop after.
    h, w = s2.shape[-2:]
    pad = ((0, 0), (0, 0), (0, -h % cfg.unet.size_multiple), (0, -w % cfg.unet.size_multiple))
    s2 = np.pad(s2, pad, mode="reflect")
    s1 = np.pad(s1, pad, mode="reflect")
    known = np.pad(known, pad[1:], mode="constant", constant_values=False)
    observed = torch.from_numpy(s2_to_model(s2.astype(np.float32)))[None].to(device)
    sar = _fill_missing_sar(s1_to_model(s1))
    sar_t = torch.from_numpy(sar.astype(np.float32))[None].to(device)
    known_t = torch.from_numpy(known)[None, :, None].to(device)
    outs = []
    with torch.inference_mode():
        for k in range(spec.samples):
            noise = CoordinateNoise(spec.seed, origin=(tile.y0, tile.x0), sample=k)
            x0 = fill_gaps(
                net,
                cfg,
                observed=observed,
                known=known_t,
                sar=sar_t,
                generator=noise,
                sampler=spec.sampler,
                steps=spec.steps,
                eta=spec.eta,
                ladder=spec.ladder,
            )
            outs.append(s2_from_model(x0[0, :, :h, :w].float().cpu().numpy()))
    stack = np.stack(outs)
    spread = stack.std(axis=0) if spec.samples > 1 else np.zeros_like(stack[0])
    composite = np.where(seen[None], clear_mean, stack.mean(axis=0))
    return composite.astype(np.float32), np.where(seen[None], 0.0, spread).astype(np.float32)


def _clear_mean(s2: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean DN of each pixel's clear observations (C, h, w), seen (h, w))``."""
    known = np.asarray(known, dtype=bool)
    count = known.sum(axis=0)
    total = np.einsum("lchw,lhw->chw", s2.astype(np.float64), known.astype(np.float64))
    return total / np.maximum(count, 1)[None], count > 0


def _fill_missing_sar(sar: np.ndarray) -> np.ndarray:
    """``(L, Cs, h, w)`` SAR with each date's missing values filled.

    A missing value (NaN: no S1 pair) is taken from the mean of the dates that have one, so the
    dates' mean (Eq. 20) is the mean of real SAR; the middle of the range (0) only where no date
    has SAR.
    """
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: handled below
        mean = np.nanmean(sar, axis=0, keepdims=True)
    filled = np.where(np.isnan(sar), mean, sar)
    return np.nan_to_num(filled, nan=0.0).astype(np.float32)


def infer_tiles(jobs: tuple[TileJob, ...]) -> list[TileOutcome]:
    """The Dask task: :func:`infer_tile` for each of a few tiles (amortises the scheduling)."""
    return [infer_tile(job) for job in jobs]


def infer_tile(job: TileJob) -> TileOutcome:
    """The Dask task: read, sample, write the pre-weighted tile to the store, report."""
    start = time.perf_counter()
    torch_threads = os.environ.get("CLEARCUBE_TORCH_THREADS")
    if torch_threads:
        torch.set_num_threads(int(torch_threads))
    s2, s1, known = read_tile_inputs(job.cube, job.tile, job.dates)
    covered = np.any(np.all(s2 > 0, axis=1), axis=0)
    picked = list(choose_tile_dates(known, max_dates=job.max_dates))
    s2, s1, known = s2[picked], s1[picked], first_clear(known[picked])
    composite, spread = sample_tile(s2, s1, known, job.tile, job.model)
    seen = known.any(axis=0)
    products = tile_products(composite, spread, known, covered)
    job.store.write_tile(
        job.tile, {p: products[p] for p in job.store.spec.products}, clear_fraction=seen.mean()
    )
    return TileOutcome(
        number=job.store.spec.plan.number(job.tile),
        clear_fraction=float(seen.mean()),
        generated_fraction=float((covered & ~seen).mean()),
        dates=tuple(job.dates[i] for i in picked),
        seconds=time.perf_counter() - start,
        worker=_worker_address(),
    )


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
