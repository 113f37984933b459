"""The public entry point: a cloud-free composite from a bbox and a period.

    result = composite(bbox=(w, s, e, n), start="2024-05-01", end="2024-07-31", out_dir="out/")

:func:`composite` reads as the pipeline of DESIGN.md, one named stage per line; each stage is a
function of its own module, and only this orchestrator computes. The output folder holds the
cube (``cube.zarr``, masks included), the mosaic store (``mosaic.zarr``), the COGs, the quicklook,
the STAC item and ``run.json``. Every stage resumes: rerunning the same call after a crash reuses
the finished cube regions, the stored masks and the finished tiles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clearcube import __version__
from clearcube.errors import BadInputError, redact
from clearcube.pipeline.inference import ModelSpec, Sampler
from clearcube.pipeline.masking import MaskMethod

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``: how far a stage is; the CLI turns it into bars.
Progress = Callable[[str, int, int], None]

RUN_FILE = "run.json"


@dataclass(frozen=True)
class CompositeOptions:
    """Everything that defines a composite run (its fingerprint is a hash of these)."""

    bbox: tuple[float, float, float, float]
    """W, S, E, N in WGS84 degrees."""
    start: str
    """First day of the period (ISO date)."""
    end: str
    """Last day of the period (ISO date)."""
    stac_url: str | None = None
    """A STAC API; None: the embedded demo catalog (or ``profile``)."""
    profile: str = "embedded"
    """Catalog profile when ``stac_url`` is None: embedded, earth-search, planetary-computer."""
    collections: tuple[str, ...] | None = None
    """Collection names for a custom ``stac_url``: the Sentinel-2 one, then the Sentinel-1 one."""
    max_cloud: float | None = None
    """Drop scenes with more cloud cover (percent) than this."""
    checkpoint: str = ""
    """Model checkpoint path (resolved from None to the bundled demo checkpoint)."""
    sampler: Sampler = "ddim"
    """Reverse-process sampler."""
    steps: int = 50
    """Reverse steps."""
    eta: float = 0.0
    """DDIM η."""
    samples: int = 1
    """Samples per tile; with 2 or more an uncertainty COG holds their spread."""
    seed: int = 0
    """Seed of the coordinate-keyed sampler noise."""
    tile: int = 256
    """Tile edge in pixels."""
    overlap: int = 32
    """Overlap between neighbouring tiles (stride = tile - overlap)."""
    dates: int = 3
    """L, how many dates SeqTIS fuses."""
    target: str | None = None
    """The composite's date; None: the middle of the period."""
    mask: MaskMethod = "s2cloudless"
    """Cloud masking route: s2cloudless (L1C), scl (L2A scene classes) or asset (``mask_asset``)."""
    mask_asset: str | None = None
    """``mask="asset"``: the Sentinel-2 items' STAC asset key of a per-pixel class mask (e.g. the
    demo catalog's ``truth_cloud``: 0 clear, 1 thick, 2 thin cloud, 3 cirrus, 4 shadow)."""
    mask_values: tuple[int, ...] = (1,)
    """``mask="asset"``: the values of that mask that mean cloud (or shadow)."""
    resolution: float = 10.0
    """Output pixel size in metres."""
    with_s1: bool = True
    """Search and load Sentinel-1 (False: optical only; the model then sees no SAR)."""
    skip_bad_assets: bool = False
    """Probe every asset first and drop the dates (or SAR pairings) whose assets cannot be read."""
    requester_pays: bool = False
    """Read ``s3://`` assets of requester-pays buckets (Earth Search L1C), billed to the caller's
    AWS account; without it they are refused before any read."""

    @property
    def level(self) -> str:
        """Sentinel-2 processing level the masking route needs."""
        return "L2A" if self.mask == "scl" else "L1C"


@dataclass(frozen=True)
class CompositeResult:
    """What :func:`composite` produced."""

    out_dir: Path
    """The run's folder."""
    cog_path: Path
    """The cloud-free composite COG (uint16 reflectance × 10000, 13 bands)."""
    uncertainty_path: Path | None
    """Per-pixel spread over the samples (None with one sample)."""
    provenance_path: Path | None
    """Per-pixel provenance: 1 observed, 2 fused, 3 generated, 0 nodata (uint16 COG)."""
    quicklook_path: Path
    """True-colour PNG: the cloudiest input beside the composite."""
    stac_item_path: Path
    """The STAC item describing the products."""
    stac_item: Any
    """The same item as a ``pystac.Item``."""
    dates: tuple[str, ...]
    """Candidate acquisition dates (ISO); each tile fuses up to ``dates`` of them."""
    tiles: dict[str, int]
    """Tile counts: total, computed now, resumed (already done), without any clear pixel."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """``{"overall": {observed, fused, generated}, "generated_per_tile": {"y0,x0": share}}``."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: search, cube, mask, inference, blend, cog."""

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
    steps: int = 50,
    tile: int = 256,
    overlap: int = 32,
    client: Any = None,
    progress: Progress | None = None,
    max_in_flight: int | None = None,
    **options: Any,
) -> CompositeResult:
    """Make a cloud-free Sentinel-2 composite of ``bbox`` over ``[start, end]``.

    Args:
        bbox: W, S, E, N in WGS84 degrees.
        start: first day of the period, ISO date.
        end: last day of the period, ISO date.
        out_dir: the run's folder; rerunning with the same arguments resumes.
        stac_url: a STAC API; None uses the embedded demo catalog.
        checkpoint: a model checkpoint; None uses the bundled demo checkpoint.
        sampler: ``"ddim"`` or ``"ddpm"``.
        steps: reverse steps.
        tile: tile edge in pixels.
        overlap: overlap between neighbouring tiles.
        client: a ``distributed.Client``, a scheduler address, or None for a local cluster.
        progress: ``progress(stage, done, total)`` callback.
        max_in_flight: inference tasks submitted at once (default: 4 per GPU slot).
        **options: further :class:`CompositeOptions` fields (``dates``, ``samples``, ``seed``,
            ``target``, ``mask``, ``mask_asset``, ``mask_values``, ``max_cloud``, ``profile``,
            ``collections``, ``eta``, ...).

    Raises:
        BadInputError: bad arguments, no data, a checkpoint that does not fit, an output folder
            of another run, a scheduler that does not answer.
    """
    from clearcube.pipeline import stages

    opts = make_options(
        bbox, start, end, stac_url=stac_url, checkpoint=checkpoint, sampler=sampler,
        steps=steps, tile=tile, overlap=overlap, **options,
    )  # fmt: skip
    timer = StageTimer()
    report = progress or (lambda stage, done, total: None)
    from clearcube.deploy.local import connect

    # Every cheap check (checkpoint, scheduler, catalog) comes before the output folder is
    # claimed, so a bad input leaves no folder behind that a corrected rerun would refuse.
    stages.check_checkpoint(opts)
    with contextlib.ExitStack() as held, connect(client) as dask_client:
        stages.check_gpu_slots(dask_client)
        with timer("search"):
            scenes = stages.search_scenes(opts)
            stages.check_mask_asset(scenes, opts)
            stages.warn_missing_sar(scenes, opts)
        out = Path(out_dir)
        check_output_dir(out, opts)  # another run's or a foreign folder: refused untouched
        held.enter_context(output_lock(out))  # one run per folder, until this one returns
        claim_output_dir(out, opts)
        with timer("cube"):
            cube_path = stages.build_cube(scenes, opts, out / "cube.zarr", report)
        with timer("mask"):
            selection = stages.mask_and_choose(cube_path, opts, report)
        with timer("inference"):
            store, tiles = stages.run_inference(
                dask_client, cube_path, selection, opts, out / "mosaic.zarr", report,
                max_in_flight=max_in_flight,
            )  # fmt: skip
        with timer("blend"):
            stages.blend(dask_client, store, report)
        with timer("cog"):
            products = stages.write_products(store, cube_path, selection, opts, out, report)
        result = CompositeResult(
            out_dir=out,
            cog_path=products["composite"],
            uncertainty_path=products.get("uncertainty"),
            provenance_path=products.get("provenance"),
            quicklook_path=products["quicklook"],
            stac_item_path=products["item"],
            stac_item=products["stac_item"],
            dates=tuple(str(d)[:10] for d in selection.dates),
            tiles=tiles,
            provenance=products.get("provenance_report", {}),
            timings=timer.seconds,
        )
        write_run_record(out, opts, result)
    return result


def make_options(bbox: Sequence[float], start: str, end: str, **kwargs: Any) -> CompositeOptions:
    """Validate the arguments cheaply (before any I/O) and freeze them."""
    from clearcube.catalogs.search import validate_bbox, validate_dates

    box = validate_bbox(bbox)
    first, last = validate_dates(start, end)
    if kwargs.get("target") is not None:
        try:
            when, _ = validate_dates(kwargs["target"], kwargs["target"])
        except BadInputError:
            raise BadInputError(
                f"--target {kwargs['target']!r} is not a date; use YYYY-MM-DD inside the period"
            ) from None
        if not first <= when <= last:
            raise BadInputError(
                f"--target {kwargs['target']} lies outside the period {start} .. {end}; "
                "pass a date inside it or widen the period"
            )
    known = set(CompositeOptions.__dataclass_fields__)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise BadInputError(f"unknown composite option(s) {unknown}; known: {sorted(known)}")
    if kwargs.get("checkpoint") is None:
        from clearcube.model.checkpoint import default_checkpoint_path

        level = "L2A" if kwargs.get("mask") == "scl" else "L1C"
        kwargs["checkpoint"] = str(default_checkpoint_path(level))
    kwargs["checkpoint"] = str(Path(kwargs["checkpoint"]).resolve())
    if kwargs.get("collections") is not None:
        kwargs["collections"] = tuple(kwargs["collections"])
    if kwargs.get("mask_values") is not None:
        kwargs["mask_values"] = tuple(int(v) for v in kwargs["mask_values"])
    opts = CompositeOptions(bbox=box, start=str(start), end=str(end), **kwargs)
    if opts.tile < 16 or opts.tile % 16:
        raise BadInputError(f"tile {opts.tile} must be a multiple of 16 (>= 16); pass --tile 256")
    if not 0 <= opts.overlap < opts.tile:
        raise BadInputError(
            f"overlap {opts.overlap} must be in [0, tile={opts.tile}); pass e.g. --overlap "
            f"{min(32, opts.tile // 4)}"
        )
    for name, low in (("steps", 1), ("samples", 1), ("dates", 1)):
        if getattr(opts, name) < low:
            raise BadInputError(f"{name} must be >= {low}, got {getattr(opts, name)}")
    _check_mask(opts)
    if opts.sampler not in ("ddim", "ddpm"):
        raise BadInputError(f"unknown sampler {opts.sampler!r}; pass --sampler ddim or ddpm")
    if not Path(opts.checkpoint).is_file():
        raise BadInputError(f"checkpoint {opts.checkpoint} does not exist; pass --checkpoint PATH")
    return opts


def _check_mask(opts: CompositeOptions) -> None:
    if opts.mask not in ("s2cloudless", "scl", "asset"):
        raise BadInputError(f"unknown mask {opts.mask!r}; pass --mask s2cloudless, scl or asset")
    if opts.mask == "asset" and not opts.mask_asset:
        raise BadInputError(
            "--mask asset needs the items' mask asset key; pass --mask-asset KEY (e.g. truth_cloud)"
        )
    if opts.mask != "asset" and opts.mask_asset:
        raise BadInputError(
            f"--mask-asset {opts.mask_asset} is only used with --mask asset; pass --mask asset"
        )
    if not opts.mask_values:
        raise BadInputError("--mask-values is empty; pass the mask values that mean cloud, e.g. 1")


def model_spec(opts: CompositeOptions) -> ModelSpec:
    """The worker-side sampling settings of a run."""
    return ModelSpec(
        checkpoint=opts.checkpoint, sampler=opts.sampler, steps=opts.steps, eta=opts.eta,
        samples=opts.samples, seed=opts.seed,
    )  # fmt: skip


def options_fingerprint(opts: CompositeOptions) -> dict[str, Any]:
    """The run arguments as stored in ``run.json`` and compared on a rerun."""
    record = asdict(opts)
    if opts.mask != "asset":  # keeps runs made before the asset route existed resumable
        record.pop("mask_asset")
        record.pop("mask_values")
    from clearcube.model.checkpoint import checkpoint_sha256

    record["checkpoint_sha256"] = checkpoint_sha256(opts.checkpoint)
    record.pop("checkpoint")  # a moved file with the same content is the same run
    if record.get("stac_url"):  # a signed URL's query is a credential, never written down
        record["stac_url"] = redact(str(record["stac_url"]))
    return json.loads(json.dumps(record, default=str))


#: The lock file in an output folder: held (``flock``) by the run that owns the folder.
LOCK_FILE = ".clearcube.lock"


@contextmanager
def output_lock(out: Path, lock_path: Path | None = None) -> Iterator[None]:
    """Own ``out`` for the ``with`` block: an OS-level exclusive lock on ``out/.clearcube.lock``
    (or on ``lock_path``, e.g. beside a Zarr store that must hold nothing else).

    The kernel drops the lock when its process dies, so a crashed run leaves no stale lock; the
    file's text (pid, host, start time) only names the holder in the error.

    Raises:
        BadInputError: another process holds the lock, or ``out`` is a file.
    """
    import fcntl
    import socket

    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; pass a folder")
    if lock_path is None:
        out.mkdir(parents=True, exist_ok=True)
        lock_path = out / LOCK_FILE
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise BadInputError(
            f"--out {out} is in use by a running clearcube ({holder}); wait for it to finish "
            "or choose another folder"
        ) from None
    os.ftruncate(fd, 0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}".encode(), 0)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def claim_output_dir(out: Path, opts: CompositeOptions) -> Path:
    """Create ``out`` or reopen it for the same run; refuse another run's folder.

    Raises:
        BadInputError: ``out`` is a file, holds another run, or holds files that are not a run's.
    """
    check_output_dir(out, opts)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_json(
        out / RUN_FILE,
        {"clearcube": __version__, "options": options_fingerprint(opts), "finished": False},
    )
    return out


def check_output_dir(out: Path, opts: CompositeOptions) -> None:
    """Refuse (without writing anything) a folder that is a file, another run's, or foreign.

    Raises:
        BadInputError: as :func:`claim_output_dir`.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; pass a folder")
    args = options_fingerprint(opts)
    record = out / RUN_FILE
    if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        if not record.is_file():
            raise BadInputError(
                f"--out {out} holds files that are not a clearcube run; choose an empty folder"
            )
        found = json.loads(record.read_text()).get("options")
        if found != args:
            changed = sorted(
                k for k in set(args) | set(found or {}) if (found or {}).get(k) != args.get(k)
            )
            missing = [k for k in changed if k not in (found or {})]
            if missing and len(missing) == len(changed):
                version = json.loads(record.read_text()).get("clearcube", "?")
                raise BadInputError(
                    f"--out {out} holds a run of clearcube {version}, whose record lacks "
                    f"{', '.join(missing)}; delete the folder or choose another (its cube was "
                    "loaded without this version's radiometric corrections)"
                )
            raise BadInputError(
                f"--out {out} holds another run (different {', '.join(changed)}); "
                "choose another folder or delete it"
            )
        log.info("resuming the run in %s", out)


def write_run_record(out: Path, opts: CompositeOptions, result: CompositeResult) -> None:
    """Mark the run finished in ``run.json`` with its result summary."""
    _atomic_json(
        out / RUN_FILE,
        {"clearcube": __version__, "options": options_fingerprint(opts), "finished": True,
         "result": result.to_json()},
    )  # fmt: skip


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


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
