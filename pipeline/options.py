"""What defines a composite run: the frozen options, checked cheaply before any I/O.

:func:`make_options` turns the flat keyword arguments of :func:`clearcube.pipeline.composite`
(and the CLI flags) into :class:`CompositeOptions`, whose parts are what the stages take: the
query (bbox, period, catalog), the :class:`~clearcube.pipeline.masking.MaskRequest`, the
:class:`~clearcube.pipeline.inference.ModelSpec` and the tiling. :func:`run_record` is the run's
identity as ``run.json`` stores it and a rerun compares it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clearcube.bands import L2A_MISSING, S2_BANDS
from clearcube.catalogs.profiles import Level
from clearcube.catalogs.search import validate_bbox, validate_dates
from clearcube.errors import BadInputError, redact
from clearcube.model.checkpoint import (
    checkpoint_config,
    checkpoint_sha256,
    default_checkpoint_path,
)
from clearcube.model.consistency import check_ladder
from clearcube.model.fill import CONSISTENCY_SAMPLERS, check_sampler, default_steps
from clearcube.model.precision import PRECISIONS
from clearcube.pipeline.inference import ModelSpec
from clearcube.pipeline.masking import MaskRequest

#: The keyword arguments of :func:`make_options` that fill the :class:`ModelSpec`.
MODEL_FIELDS = (
    "checkpoint", "sampler", "steps", "eta", "samples", "seed", "ladder", "precision", "batch",
)  # fmt: skip
#: Model fields that do not change a pixel, so not part of a run's identity.
OUTPUT_NEUTRAL = ("checkpoint", "batch")
#: Reverse steps of ddim/ddpm when none are given (consistency: 1 call, pdmsr: 2).
DIFFUSION_STEPS = 50
#: The keyword arguments that fill the :class:`MaskRequest` (``mask`` is its method).
MASK_FIELDS = {"mask": "method", "mask_asset": "asset", "mask_values": "values"}
#: The version of the output folder's layout (cube and mosaic fingerprints) in ``run.json``.
RUN_LAYOUT = 2


@dataclass(frozen=True)
class CompositeOptions:
    """Everything that defines a composite run (:func:`run_record` is its identity)."""

    bbox: tuple[float, float, float, float]
    """W, S, E, N in WGS84 degrees."""
    start: str
    """First day of the period (ISO date)."""
    end: str
    """Last day of the period (ISO date)."""
    model: ModelSpec
    """How tiles are sampled: checkpoint (resolved to a path), sampler, steps, eta, K, seed."""
    mask: MaskRequest = field(default_factory=MaskRequest)
    """The cloud masking route."""
    stac_url: str | None = None
    """A STAC API; None: the embedded demo catalog (or ``profile``)."""
    profile: str = "embedded"
    """Catalog profile when ``stac_url`` is None: embedded, earth-search, planetary-computer."""
    collections: tuple[str, ...] | None = None
    """Collection names for a custom ``stac_url``: the Sentinel-2 one, then the Sentinel-1 one."""
    max_cloud: float | None = None
    """Drop scenes with more cloud cover (percent) than this."""
    tile: int = 256
    """Tile edge in pixels."""
    overlap: int = 32
    """Overlap between neighbouring tiles (stride = tile - overlap)."""
    dates: int = 3
    """L, how many dates SeqTIS fuses per tile."""
    target: str | None = None
    """The composite's date; None: the middle of the period."""
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
    def level(self) -> Level:
        """Sentinel-2 processing level the masking route needs."""
        return "L2A" if self.mask.method == "scl" else "L1C"

    @property
    def s2_bands(self) -> tuple[str, ...]:
        """The Sentinel-2 bands the cube holds: all 13 for L1C, no B10 for L2A (the SCL route)."""
        return tuple(b for b in S2_BANDS if not (self.level == "L2A" and b in L2A_MISSING))


#: Every keyword :func:`make_options` accepts besides bbox, start and end.
OPTION_NAMES = frozenset(
    {f.name for f in dataclasses.fields(CompositeOptions)} - {"bbox", "start", "end", "model"}
    | set(MODEL_FIELDS)
    | set(MASK_FIELDS)
)


def make_options(bbox: Sequence[float], start: str, end: str, **kwargs: Any) -> CompositeOptions:
    """Validate the arguments cheaply (before any I/O) and freeze them.

    Raises:
        BadInputError: an unknown option or a bad value, with the fix.
    """
    box = validate_bbox(bbox)
    first, last = validate_dates(start, end)
    unknown = sorted(set(kwargs) - OPTION_NAMES)
    if unknown:
        raise BadInputError(f"unknown composite option(s) {unknown}; known: {sorted(OPTION_NAMES)}")
    _check_target(kwargs.get("target"), first, last, start, end)
    mask_args = {MASK_FIELDS[k]: kwargs.pop(k) for k in list(kwargs) if k in MASK_FIELDS}
    if mask_args.get("values") is not None:
        mask_args["values"] = tuple(int(v) for v in mask_args["values"])
    mask = MaskRequest(**mask_args)  # None for a field is refused by check(), as it must be
    mask.check()
    model_args = {k: kwargs.pop(k) for k in list(kwargs) if k in MODEL_FIELDS}
    model = _model_spec(model_args, "L2A" if mask.method == "scl" else "L1C")
    if kwargs.get("collections") is not None:
        kwargs["collections"] = tuple(kwargs["collections"])
    opts = CompositeOptions(
        bbox=box, start=str(start), end=str(end), model=model, mask=mask, **kwargs
    )
    _check_tiling(opts)
    return opts


def _model_spec(args: dict[str, Any], level: str) -> ModelSpec:
    """The ModelSpec of the arguments: the checkpoint resolved and fitting the sampler."""
    sampler = args.get("sampler") or "ddim"
    checkpoint = args.get("checkpoint")
    if checkpoint is None:
        checkpoint = default_checkpoint_path(level, student=sampler in CONSISTENCY_SAMPLERS)
    if not Path(checkpoint).is_file():
        raise BadInputError(f"checkpoint {checkpoint} does not exist; pass --checkpoint PATH")
    args["checkpoint"] = str(Path(checkpoint).resolve())
    check_sampler(checkpoint_config(checkpoint), sampler, where=f"checkpoint {checkpoint}")
    if args.get("steps") is None:
        args["steps"] = default_steps(sampler, DIFFUSION_STEPS)
    if sampler == "consistency" and args["steps"] != 1:
        raise BadInputError(
            f"the consistency sampler makes one network call (steps {args['steps']} given); "
            "pass --sampler pdmsr --steps K for K calls"
        )
    ladder = tuple(float(v) for v in (args.get("ladder") or ()))
    if ladder and sampler != "pdmsr":
        raise BadInputError("--ladder applies to --sampler pdmsr only; drop it or use pdmsr")
    if ladder:
        check_ladder(ladder)
        args["steps"] = len(ladder)
    args["ladder"] = ladder
    batch = args.get("batch", 0)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 0:
        raise BadInputError(
            f"batch {batch!r} must be a whole number of tiles per network call (0: automatic)"
        )
    if args.get("precision", "auto") not in PRECISIONS:
        raise BadInputError(
            f"precision {args['precision']!r} unknown; pass --precision auto, bf16 or fp32"
        )
    return ModelSpec(**args)


def _check_target(target: str | None, first: Any, last: Any, start: str, end: str) -> None:
    if target is None:
        return
    try:
        when, _ = validate_dates(target, target)
    except BadInputError:
        raise BadInputError(
            f"--target {target!r} is not a date; use YYYY-MM-DD inside the period"
        ) from None
    if not first <= when <= last:
        raise BadInputError(
            f"--target {target} lies outside the period {start} .. {end}; "
            "pass a date inside it or widen the period"
        )


def _check_tiling(opts: CompositeOptions) -> None:
    if opts.tile < 16 or opts.tile % 16:
        raise BadInputError(f"tile {opts.tile} must be a multiple of 16 (>= 16); pass --tile 256")
    if not 0 <= opts.overlap < opts.tile:
        raise BadInputError(
            f"overlap {opts.overlap} must be in [0, tile={opts.tile}); pass e.g. --overlap "
            f"{min(32, opts.tile // 4)}"
        )
    for name, value in (
        ("steps", opts.model.steps),
        ("samples", opts.model.samples),
        ("dates", opts.dates),
    ):
        if value < 1:
            raise BadInputError(f"{name} must be >= 1, got {value}")


def run_record(opts: CompositeOptions) -> dict[str, Any]:
    """The run's identity as ``run.json`` stores it and a rerun compares it (flat, JSON-ready).

    The checkpoint is named by its hash (a moved file with the same content is the same run);
    a signed STAC URL's query is a credential and never written down.
    """
    record: dict[str, Any] = {
        f.name: getattr(opts, f.name)
        for f in dataclasses.fields(opts)
        if f.name not in ("model", "mask")
    }
    record.update({k: getattr(opts.model, k) for k in MODEL_FIELDS if k not in OUTPUT_NEUTRAL})
    if not opts.model.ladder:  # records of runs without a ladder stay as they always were
        del record["ladder"]
    record["checkpoint_sha256"] = checkpoint_sha256(opts.model.checkpoint)
    record["mask"] = opts.mask.method
    # What the folder's stores were written with: folders of a clearcube whose cube and mosaic
    # fingerprints were computed otherwise lack it and are refused up front, not half-resumed.
    record["layout"] = RUN_LAYOUT
    if opts.mask.method == "asset":  # keeps runs made before the asset route existed resumable
        record["mask_asset"] = opts.mask.asset
        record["mask_values"] = list(opts.mask.values)
    if record.get("stac_url"):
        record["stac_url"] = redact(str(record["stac_url"]))
    record["bbox"] = list(opts.bbox)
    if opts.collections is not None:
        record["collections"] = list(opts.collections)
    return record
