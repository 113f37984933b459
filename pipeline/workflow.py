"""The public entry point: a cloud-free composite from a bbox and a period.

    from clearcube.pipeline import composite
    result = composite(bbox=(w, s, e, n), start="2024-05-01", end="2024-07-31", out_dir="out/")

:func:`composite` reads as the pipeline of DESIGN.md, one stage per line, each a function of its
stage's module with narrow inputs (docs/ARCHITECTURE.md): search → cube → masks and dates →
tiles on the cluster → blend → products. The output folder holds the cube (``cube.zarr``,
masks included), the mosaic store (``mosaic.zarr``), the COGs, the quicklook, the STAC item and
``run.json``. Every stage resumes: rerunning the same call after a crash reuses the finished
cube regions, the stored masks and the finished tiles.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearcube import __version__
from clearcube.bands import S1_BANDS
from clearcube.catalogs.search import search
from clearcube.deploy.local import connect, require_gpu_slots
from clearcube.model.checkpoint import check_checkpoint_bands, checkpoint_sha256
from clearcube.pipeline.cube_load import load_scenes, warn_missing_sar
from clearcube.pipeline.cube_masks import mask_and_choose
from clearcube.pipeline.cube_store import write_cube
from clearcube.pipeline.dates import DateSelection
from clearcube.pipeline.inference import Sampler, run_tiles
from clearcube.pipeline.mosaic import assemble_on, open_mosaic, spec_for_cube
from clearcube.pipeline.options import CompositeOptions, make_options, run_record
from clearcube.pipeline.outdir import (
    check_output_dir,
    claim_output_dir,
    output_lock,
    write_run_record,
)
from clearcube.pipeline.products import write_products

if TYPE_CHECKING:
    import pystac
    from distributed import Client

log = logging.getLogger(__name__)

#: Where the mask stage computes when clearcube started the local cluster itself: this
#: process's threads (demo s2cloudless masks 62.0 -> 44.1 s, SCL 7.3 -> 4.0 s, identical masks;
#: benchmarks/RESULTS.md). A cluster the user gives computes the masks on its workers.
MASK_SCHEDULER = "threads"

#: ``progress(stage, done, total)``: how far a stage is; the CLI turns it into bars.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CompositeResult:
    """What :func:`composite` produced."""

    out_dir: Path
    """The run's folder."""
    cog_path: Path
    """The cloud-free composite COG (uint16 reflectance × 10000, the cube's bands)."""
    uncertainty_path: Path | None
    """Per-pixel spread over the K samples (float32 reflectance; None with one sample)."""
    provenance_path: Path | None
    """Per-pixel provenance: 1 observed, 2 fused, 3 generated, 0 nodata (uint16 COG)."""
    quicklook_path: Path
    """True-colour PNG: the cloudiest input | the composite | the provenance."""
    stac_item_path: Path
    """The STAC item describing the products."""
    stac_item: pystac.Item
    """The same item."""
    dates: tuple[str, ...]
    """Candidate acquisition dates (ISO); each tile fuses up to ``dates`` of them."""
    tiles: dict[str, int]
    """Tile counts: total, computed now, resumed (already done), without any clear pixel."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """``{"overall": {observed, fused, generated}, "generated_per_tile": {"y0,x0": share}}``."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: search, cube, mask, inference, blend, cog."""
    disk_bytes: int = 0
    """Bytes the run's folder holds at the end (cube, mosaic store, products)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (``clearcube run --json``)."""
        return {
            "out_dir": str(self.out_dir),
            "cog_path": str(self.cog_path),
            "uncertainty_path": str(self.uncertainty_path) if self.uncertainty_path else None,
            "provenance_path": str(self.provenance_path) if self.provenance_path else None,
            "quicklook_path": str(self.quicklook_path),
            "stac_item_path": str(self.stac_item_path),
            "dates": list(self.dates),
            "tiles": dict(self.tiles),
            "provenance": self.provenance,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "disk_bytes": self.disk_bytes,
        }


def composite(
    bbox: Sequence[float],
    start: str,
    end: str,
    out_dir: str | os.PathLike[str],
    *,
    stac_url: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    sampler: Sampler = "ddim",
    steps: int | None = None,
    tile: int = 256,
    overlap: int = 32,
    client: Client | str | None = None,
    progress: Progress | None = None,
    max_in_flight: int | None = None,
    tiles_per_task: int | None = None,
    keep_scratch: bool = False,
    **options: Any,
) -> CompositeResult:
    """Make a cloud-free Sentinel-2 composite of ``bbox`` over ``[start, end]``.

    Args:
        bbox: W, S, E, N in WGS84 degrees.
        start: first day of the period, ISO date.
        end: last day of the period, ISO date.
        out_dir: the run's folder; rerunning with the same arguments resumes.
        stac_url: a STAC API; None uses the embedded demo catalog (or ``profile``).
        checkpoint: a model checkpoint; None uses the bundled one of the masking route's level
            (the bundled consistency student for ``consistency`` and ``pdmsr``).
        sampler: ``"ddim"`` or ``"ddpm"`` (a diffusion checkpoint); ``"consistency"`` (one
            network call) or ``"pdmsr"`` (``steps`` calls) for a consistency student.
        steps: reverse steps of ddim/ddpm (default 50), network calls of pdmsr (default 2).
        tile: tile edge in pixels.
        overlap: overlap between neighbouring tiles.
        client: a ``distributed.Client``, a scheduler address, or None for a local cluster.
        progress: ``progress(stage, done, total)`` callback.
        max_in_flight: inference tasks submitted at once (default: 4 per GPU slot).
        tiles_per_task: tiles one inference task computes (default: up to 16, keeping >= 8
            tasks per GPU slot); the output does not depend on it.
        keep_scratch: keep the mosaic store's per-tile scratch (about 1.3× the products) after
            the products are written; by default it is removed then.
        **options: further :class:`~clearcube.pipeline.options.CompositeOptions` fields
            (``dates``, ``samples``, ``seed``, ``eta``, ``target``, ``mask``, ``mask_asset``,
            ``mask_values``, ``max_cloud``, ``profile``, ``collections``, ``with_s1``, ...).

    Raises:
        BadInputError: bad arguments, no data, a checkpoint that does not fit, an output folder
            of another run, a scheduler that does not answer.
    """
    opts = make_options(
        bbox, start, end, stac_url=stac_url, checkpoint=checkpoint, sampler=sampler,
        steps=steps, tile=tile, overlap=overlap, **options,
    )  # fmt: skip
    report = progress or (lambda stage, done, total: None)
    timer = StageTimer()
    record = run_record(opts)
    out = Path(out_dir)
    # Every cheap check (checkpoint, scheduler, catalog) comes before the output folder is
    # claimed, so a bad input leaves no folder behind that a corrected rerun would refuse.
    check_checkpoint_bands(opts.model.checkpoint, s2_bands=opts.s2_bands, s1_bands=S1_BANDS)
    with contextlib.ExitStack() as held, connect(client) as dask_client:
        require_gpu_slots(dask_client)
        with timer("search"):
            scenes = search(
                bbox=opts.bbox, start=opts.start, end=opts.end, max_cloud=opts.max_cloud,
                profile=opts.profile, stac_url=opts.stac_url, collections=opts.collections,
                level=opts.level, with_s1=opts.with_s1,
            )  # fmt: skip
            opts.mask.check_items(scenes.s2_items())
            warn_missing_sar(scenes, with_s1=opts.with_s1)
        check_output_dir(out, record)  # another run's or a foreign folder: refused untouched
        held.enter_context(output_lock(out))  # one run per folder, until this one returns
        claim_output_dir(out, record)
        with timer("cube"):
            scl = scenes.profile.assets.get("SCL", "scl") if scenes.profile else "scl"
            cube = load_scenes(
                scenes, bbox=opts.bbox, bands=opts.s2_bands, resolution=opts.resolution,
                extra_assets=opts.mask.cube_assets(scl), requester_pays=opts.requester_pays,
                skip_bad_assets=opts.skip_bad_assets,
            )  # fmt: skip
            # On the local cluster clearcube starts itself, the cube is read on this process's
            # threads: one GDAL cache and no task transfers (demo cube 15.1 s -> 9.8 s,
            # benchmarks/RESULTS.md); a given cluster reads where its workers are.
            cube_path = write_cube(
                cube, out / "cube.zarr", progress=_stage(report, "cube"),
                scheduler="threads" if client is None else None,
            )  # fmt: skip
        with timer("mask"):
            selection = mask_and_choose(
                cube_path, opts.mask, start=opts.start, end=opts.end, target=opts.target,
                fuse=opts.dates, progress=_stage(report, "mask"),
                scheduler=MASK_SCHEDULER if client is None else None,
            )  # fmt: skip
        with timer("inference"):
            spec = spec_for_cube(
                cube_path, tile=opts.tile, overlap=opts.overlap,
                uncertainty=opts.model.samples > 1, run=tile_run_record(opts, selection),
            )  # fmt: skip
            store = open_mosaic(out / "mosaic.zarr", spec)
            tiles = run_tiles(
                dask_client, cube_path, store, selection.preference or selection.indices,
                opts.model, max_dates=opts.dates, progress=_stage(report, "inference"),
                max_in_flight=max_in_flight, per_task=tiles_per_task,
            )  # fmt: skip
        with timer("blend"):
            assemble_on(dask_client, store, _stage(report, "blend"))
        with timer("cog"):
            products = write_products(
                store, cube_path, selection, out, start=opts.start, end=opts.end,
                tags=_product_tags(opts, selection), progress=report,
            )  # fmt: skip
        if not keep_scratch:
            store.discard_scratch()
        result = CompositeResult(
            out_dir=out,
            cog_path=products.composite,
            uncertainty_path=products.uncertainty,
            provenance_path=products.provenance,
            quicklook_path=products.quicklook,
            stac_item_path=products.item_path,
            stac_item=products.item,
            dates=tuple(str(d)[:10] for d in selection.dates),
            tiles=tiles,
            provenance=products.provenance_report,
            timings=timer.seconds,
            disk_bytes=folder_bytes(out),
        )
        write_run_record(out, record, result.to_json())
    log.info("the run's folder holds %.1f MB", result.disk_bytes / 1e6)
    return result


def _stage(report: Progress, stage: str) -> Callable[[int, int], None]:
    return lambda done, total: report(stage, done, total)


def tile_run_record(opts: CompositeOptions, selection: DateSelection) -> dict[str, Any]:
    """What makes the tiles' values: the mosaic store resumes only for the same."""
    return {
        "dates": [str(d) for d in selection.dates],
        "per_tile_dates": opts.dates,
        # the order tiles pick candidates in depends on the target: another target, another run
        "preference": [int(i) for i in selection.preference],
        "checkpoint_sha256": checkpoint_sha256(opts.model.checkpoint),
        "values": "reflectance",  # stores from before DN were divided by 10000 must not resume
        **{k: getattr(opts.model, k) for k in ("sampler", "steps", "eta", "samples", "seed")},
        **({"ladder": list(opts.model.ladder)} if opts.model.ladder else {}),
        "precision": opts.model.precision,
        "mask": opts.mask.key,
    }


def _product_tags(opts: CompositeOptions, selection: DateSelection) -> dict[str, str]:
    """Provenance tags of every product (COG metadata and ``clearcube:*`` item properties)."""
    return {
        "clearcube_version": __version__,
        "checkpoint_sha256": checkpoint_sha256(opts.model.checkpoint),
        "sampler": opts.model.sampler,
        "steps": str(opts.model.steps),
        **({"ladder": ",".join(map(str, opts.model.ladder))} if opts.model.ladder else {}),
        "samples": str(opts.model.samples),
        "dates": ",".join(str(d)[:10] for d in selection.dates),
        "target_date": str(selection.target)[:10],
    }


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (what the run costs on disk)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class StageTimer:
    """Wall time per named stage, logged as each stage ends."""

    def __init__(self) -> None:
        """Start with no stages timed."""
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Time the ``with`` block as ``stage``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0
            log.info("stage %s took %.2f s", stage, self.seconds[stage])


__all__ = ["CompositeOptions", "CompositeResult", "composite"]
