"""Cloud-Optimized GeoTIFFs from the mosaic store: one COG per product, validated, written atomically.

How a COG is written (and the memory it takes):

1. The source ``(band, y, x)`` (a Zarr array of the mosaic store, or any array that slices) is
   read window by window (``window`` rows × columns, 512 × 512 by default: with 13 float32
   bands 13 MiB; 512 × 4096 made the client's peak grow with the region's width up to 4096 px,
   benchmarks/RESULTS.md) and each window is quantised and written into a temporary TILED,
   UNCOMPRESSED GTiff beside the output. ``threads`` threads (2) read and quantise the next
   windows while the calling thread writes, at most ``threads + 1`` windows in memory: the
   Zarr decode and numpy's passes release the GIL, and on 2 cores this stages 1.7× faster than
   one thread (RESULTS.md, session 10). Nothing holds the whole region in memory; the staging
   file takes the raw size on disk for a moment.
2. The overview pyramid is built in the same pass, by clearcube, not by GDAL: each quantised
   window is halved again and again (:func:`halve`: every overview pixel from its 2 × 2 source
   pixels, the average of the valid ones, or the top-left one for ``nearest``) and each level's
   piece is written into that level's staging file, ``stage.tif.ovr``, ``stage.tif.ovr.ovr``, …,
   the chain GDAL opens as the staging file's overviews. Window starts are multiples of 512, so
   the pieces tile each level exactly as halving the whole image would. Levels follow GDAL's
   ``OVERVIEWS=AUTO`` rule (halve until both sides fit one 512 px block; :func:`overview_count`).
   On even sides the levels equal GDAL's ``average`` overviews bit for bit (tested). On odd
   sides GDAL spreads the odd pixel over the row (fractional weights, ratio ``w / ⌈w/2⌉``)
   while clearcube keeps whole 2 × 2 blocks: there a reader places an overview pixel up to half
   of one of its own pixels off, at the far edge. Why not GDAL's own overviews: GDAL 3.10
   builds them through its block cache, which held 152 MB of the client's 449 MB peak at
   1,152 px and grew with the region (881 MiB over the base at 4,608 px); a capped cache trades memory for time (4,608 px × 12 bands, box idle: 32 MiB
   33.5 s and 328 MiB over base, 128 MiB 14.3 s and 381 MiB, uncapped 13.7 s and 892 MiB;
   clearcube's pyramid 9.2 s and 115 MiB, RESULTS.md session 12).
3. GDAL's COG driver translates the staging file into the COG (``rasterio.shutil.copy``,
   ``driver="COG"``, ``OVERVIEWS=FORCE_USE_EXISTING``): 512 px blocks, the staged overviews,
   deflate or zstd with the predictor chosen for the data type, BigTIFF when needed. Staging
   and copy run with a block cache of :data:`CACHE_BYTES` (copying block by block needs no
   more), so the process's memory does not grow with the region. GDAL's cache size is one
   setting for the whole process: while a COG is written, other threads' GDAL reads share it.
4. The result is checked with ``rio_cogeo.cogeo.cog_validate`` (invalid: :class:`ClearcubeError`,
   nothing left behind) and renamed onto the final name, so a reader never sees half a COG.

Encodings: the composite is stored as uint16 digital numbers ``round(reflectance × 10000)``
clipped to ``[1, 65535]`` with nodata 0 (NaN becomes 0) and GDAL band scale ``1e-4`` so readers
can turn DN back into reflectance; the uncertainty as float32 with nodata NaN. Band names go to
the band descriptions, and the caller's ``tags`` (clearcube version, checkpoint hash, sampler,
steps, dates used) to the dataset metadata.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import rasterio
import rasterio.shutil
import rio_cogeo.cogeo
from affine import Affine
from rasterio.crs import CRS

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.errors import BadInputError, ClearcubeError
from clearcube.pipeline.mosaic import MosaicStore
from clearcube.pipeline.provenance import ProvenanceView
from clearcube.pipeline.tiles import window_grid

__all__ = [
    "COMPOSITE",
    "UNCERTAINTY",
    "CogEncoding",
    "halve",
    "overview_count",
    "quantise",
    "write_cog",
    "write_mosaic_cogs",
]

log = logging.getLogger(__name__)

BLOCK = 512
"""COG block size (px), also the size the smallest overview must fit."""
CACHE_BYTES = 2 * 2**20
"""GDAL block cache while staging and translating, in bytes (rasterio hands an integer to GDAL
as bytes). Staging writes whole blocks and the copy reads each block once, so the cache needs
to hold nothing: one write_cog of 12 bands at 4,608 px peaked 115 MiB over the process's base
with 2 MiB, 129 with 16 MiB, 148 with 32 MiB, in the same time (RESULTS.md, session 12)."""


class ArrayLike3D(Protocol):
    """Anything sliced like a ``(band, y, x)`` array: numpy, a Zarr array, an xarray variable."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...


@dataclass(frozen=True)
class CogEncoding:
    """How a product's float values are stored in its COG."""

    dtype: Literal["uint16", "float32"]
    """Stored data type."""
    scale: float
    """Stored value = value × scale (rounded for uint16)."""
    nodata: float
    """Nodata value written for NaN (0 for uint16, NaN for float32)."""
    compress: Literal["deflate", "zstd"] = "deflate"
    """Block compression (with the predictor fitting the data type)."""
    resampling: Literal["average", "nearest"] = "average"
    """Overview resampling (:func:`halve`): mean of the valid pixels, or one pixel of each 2 × 2."""

    def __post_init__(self) -> None:
        if self.dtype == "uint16" and self.nodata != 0:
            raise BadInputError("uint16 COGs use nodata 0 (valid DN are 1..65535)")
        if self.resampling not in ("average", "nearest"):
            raise BadInputError(
                f"overview resampling {self.resampling!r} is not offered; use 'average' or "
                "'nearest'"
            )


COMPOSITE = CogEncoding(dtype="uint16", scale=DN_PER_REFLECTANCE, nodata=0)
"""Reflectance as uint16 DN (reflectance × 10000), nodata 0."""
UNCERTAINTY = CogEncoding(dtype="float32", scale=1.0, nodata=math.nan)
"""Uncertainty as float32 in reflectance units, nodata NaN."""
PROVENANCE_ENCODING = CogEncoding(dtype="uint16", scale=1.0, nodata=0, resampling="nearest")
"""Provenance classes 1 observed / 2 fused / 3 generated, nodata 0 (overviews: nearest)."""


def quantise(values: np.ndarray, encoding: CogEncoding) -> np.ndarray:
    """Encode float ``values`` for storage: the exact pixel values the COG will hold.

    uint16: ``rint(value × scale)`` as float64 arithmetic defines it, computed in float32 (4×
    less memory traffic) and redone in float64 only where the float32 product lies within
    1e-3 of a rounding tie, the one place the two can disagree (|error| < 0.004 DN below 65536).
    A ``(band, y, x)`` window is encoded band by band, so the temporaries are one band's size:
    whole-window temporaries were ~45 MB per staging thread at 13 bands × 512², the client's
    largest allocation in the COG stage after the reads (memray, benchmarks/RESULTS.md).
    """
    values = np.asarray(values)
    if values.ndim < 3 or values.shape[0] == 1:
        return _quantise(values, encoding)
    return _by_band(lambda plane: _quantise(plane, encoding), values, values.shape, encoding.dtype)


def _by_band(
    fn: Callable[[np.ndarray], np.ndarray], stack: np.ndarray, shape: tuple[int, ...], dtype: Any
) -> np.ndarray:
    """``fn`` of each band of ``stack (band, ...)``, gathered into one ``shape`` array.

    One band's temporaries at a time instead of the whole window's.
    """
    out = np.empty(shape, dtype=dtype)
    for band, plane in enumerate(stack):
        out[band] = fn(plane)
    return out


def _quantise(values: np.ndarray, encoding: CogEncoding) -> np.ndarray:
    """:func:`quantise` of one array at once."""
    if encoding.dtype == "uint16":
        if values.dtype != np.float32:
            values = values.astype(np.float64)
        scaled = values * values.dtype.type(encoding.scale)
        missing = ~np.isfinite(scaled)
        scaled[missing] = 0
        rounded = np.rint(scaled)
        if scaled.dtype == np.float32:
            near_tie = np.abs(np.abs(scaled - rounded) - np.float32(0.5)) < np.float32(1e-3)
            if near_tie.any():
                rounded[near_tie] = np.rint(values[near_tie].astype(np.float64) * encoding.scale)
        dn: np.ndarray = np.clip(rounded, 1, 65535).astype(np.uint16)
        dn[missing] = 0
        return dn
    out = np.asarray(values, dtype=np.float64) * encoding.scale
    missing = ~np.isfinite(out)
    out = out.astype(np.float32)
    out[missing] = np.float32(encoding.nodata)
    return out


def overview_count(height: int, width: int, block: int = BLOCK) -> int:
    """How many overview levels a ``height × width`` COG gets: halve until a level fits a block.

    Both sides are halved rounding up (as ``gdaladdo`` sizes levels, so the last row and column
    are kept) until both fit one ``block``: 2,304 px → 3 levels (factors 2, 4, 8), 512 px → none.
    This is GDAL's ``OVERVIEWS=AUTO`` count except at sides just over ``512 · 2^k``: GDAL 3.10's
    COG driver rounds level sizes down (1,025 px → 512, one level; here 513, 257: two).
    """
    levels = 0
    while height > block or width > block:
        height, width, levels = -(-height // 2), -(-width // 2), levels + 1
    return levels


def halve(stored: np.ndarray, encoding: CogEncoding) -> np.ndarray:
    """One overview level of stored ``(band, h, w)`` values: ``(band, ⌈h/2⌉, ⌈w/2⌉)``.

    Each output pixel comes from its 2 × 2 source pixels (1 or 2 at an odd edge). ``average``:
    the mean of the valid ones (nodata when none is valid); for uint16 ``⌊mean + ½⌋``, computed
    in integers, for float32 the float64 mean rounded to float32. ``nearest``: the top-left one.
    """
    if encoding.resampling == "nearest":
        return np.ascontiguousarray(stored[:, ::2, ::2])
    bands, h, w = stored.shape
    shape = (bands, -(-h // 2), -(-w // 2))
    return _by_band(lambda plane: _halve_average(plane, encoding), stored, shape, stored.dtype)


def _halve_average(plane: np.ndarray, encoding: CogEncoding) -> np.ndarray:
    """:func:`halve` of one ``(h, w)`` plane with ``average``.

    The four pixels of each 2 × 2 are four strided views added elementwise (a reduction over
    the reshaped axes was 4× slower than :func:`quantise`); where all four are valid, the mean
    is ``(a + b + c + d) / 4`` at once, and only the pixels with nodata among their four take
    the general formula.
    """
    h, w = plane.shape
    h2, w2 = -(-h // 2), -(-w // 2)
    if (h, w) != (2 * h2, 2 * w2):  # an odd edge: pad with nodata
        pad = np.full((2 * h2, 2 * w2), encoding.nodata, dtype=plane.dtype)
        pad[:h, :w] = plane
        plane = pad
    quad = (plane[0::2, 0::2], plane[0::2, 1::2], plane[1::2, 0::2], plane[1::2, 1::2])
    if encoding.dtype == "uint16":
        total = quad[0].astype(np.uint32)
        for part in quad[1:]:
            total += part
        out: np.ndarray = ((total + 2) >> 2).astype(np.uint16)  # ⌊total / 4 + ½⌋
        smallest = np.minimum(np.minimum(quad[0], quad[1]), np.minimum(quad[2], quad[3]))
        partial = smallest == 0  # some of the four are nodata (0)
        if partial.any():
            count = sum((part[partial] != 0).astype(np.uint32) for part in quad)
            # ⌊total / count + ½⌋ in integers; no valid pixel: total 0, so 0, the nodata value
            out[partial] = (2 * total[partial] + count) // np.maximum(2 * count, 1)
        return out
    nodata = plane.dtype.type(encoding.nodata)  # as the file stores it (0.1 is not exact)
    wide = [part.astype(np.float64) for part in quad]
    total64 = wide[0] + wide[1] + wide[2] + wide[3]
    out = (total64 / 4).astype(np.float32)
    partial = ~np.isfinite(total64)
    if not np.isnan(nodata):
        partial |= np.any([part == nodata for part in quad], axis=0)
    if partial.any():
        valid = np.stack([np.isfinite(part[partial]) & (part[partial] != nodata) for part in quad])
        values = np.stack([part[partial] for part in wide])
        count = valid.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(valid, values, 0).sum(axis=0) / count
        out[partial] = np.where(count > 0, mean, nodata).astype(np.float32)
    return out


def _twos(n: int) -> int:
    """How many times ``n`` halves evenly (the power of two in ``n``)."""
    return (n & -n).bit_length() - 1


def write_cog(
    source: ArrayLike3D,
    path: str | Path,
    *,
    crs: Any,
    transform: Any,
    band_names: Sequence[str],
    tags: Mapping[str, str],
    encoding: CogEncoding = COMPOSITE,
    window: tuple[int, int] = (BLOCK, BLOCK),
    threads: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``source (band, y, x)`` float values to a validated COG at ``path``; return the path.

    Args:
        source: the product, sliced window by window (never loaded whole).
        path: the COG to write; replaced atomically when it exists.
        crs: the grid's CRS (anything ``rasterio.crs.CRS.from_user_input`` takes).
        transform: the grid's affine transform (``affine.Affine`` or its 6 coefficients).
        band_names: one name per band, written as band descriptions.
        tags: dataset metadata (clearcube version, checkpoint hash, sampler, steps, dates).
        encoding: storage type, scale, nodata, compression, overview resampling.
        window: ``(rows, cols)`` read per step; a multiple of 512 keeps GTiff blocks whole and
            lets every overview level be built from the windows (other sizes: the levels the
            windows cannot halve evenly are built from the level before, read back).
        threads: threads reading, quantising and halving windows ahead of the writer (0: all on
            the calling thread). ``source`` must allow concurrent reads (numpy, Zarr do).
        progress: called with ``(windows done, windows total)``.

    Raises:
        BadInputError: when ``band_names`` does not match the bands of ``source``.
        ClearcubeError: when GDAL's output fails rio-cogeo validation.
    """
    bands, height, width = source.shape
    if len(band_names) != bands:
        raise BadInputError(f"{len(band_names)} band names for {bands} bands; pass one per band")
    path = Path(path)
    stage = path.with_name(f".{path.name}.{os.getpid()}.stage.tif")
    part = path.with_name(f".{path.name}.{os.getpid()}.part.tif")
    levels = overview_count(height, width)
    # levels built from the windows; any further ones from the level before (odd window sizes)
    streamed = min(levels, _twos(window[0]), _twos(window[1]))
    overviews = [Path(f"{stage}{'.ovr' * k}") for k in range(1, levels + 1)]
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": encoding.dtype,
        "crs": CRS.from_user_input(crs),
        "transform": transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6]),
        "nodata": encoding.nodata,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "bigtiff": "IF_SAFER",
        # band by band on disk: the COG driver then holds one band's block at a time while it
        # interleaves the COG's pixels (12 bands, 1,152 to 4,608 px: 115 -> 105 MiB over base)
        "interleave": "band",
    }
    try:
        # READDIR: GDAL finds the .ovr chain by listing the folder (retry.py turns that off)
        with rasterio.Env(GDAL_CACHEMAX=CACHE_BYTES, GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):
            with ExitStack() as files:
                dst = files.enter_context(rasterio.open(stage, "w", **profile))
                dst.descriptions = tuple(band_names)
                if encoding.dtype == "uint16":
                    dst.scales = (1.0 / encoding.scale,) * bands
                dst.update_tags(**dict(tags))
                pyramid = [
                    files.enter_context(rasterio.open(overviews[k - 1], "w", **_level(profile, k)))
                    for k in range(1, streamed + 1)
                ]
                windows = window_grid(height, width, *window)
                staged = _staged(source, windows, encoding, threads, streamed)
                for i, ((rows, cols), pieces) in enumerate(zip(windows, staged, strict=True)):
                    for k, (out, piece) in enumerate(zip([dst, *pyramid], pieces, strict=True)):
                        r0, c0 = rows.start >> k, cols.start >> k
                        out.write(piece, window=_span(r0, c0, piece))
                    if progress is not None:
                        progress(i + 1, len(windows))
            for k in range(streamed + 1, levels + 1):  # level 0 is the staging file itself
                finer = stage if k == 1 else overviews[k - 2]
                _halve_file(finer, overviews[k - 1], _level(profile, k), encoding)
            rasterio.shutil.copy(
                stage,
                part,
                driver="COG",
                compress=encoding.compress.upper(),
                predictor="YES",
                blocksize=BLOCK,
                overviews="FORCE_USE_EXISTING" if levels else "NONE",
                bigtiff="IF_SAFER",
                num_threads="ALL_CPUS",
            )
            with rasterio.open(part) as written:
                found = len(written.overviews(1))
        if found != levels:
            raise ClearcubeError(
                f"GDAL wrote {found} overview levels for {path.name}, clearcube staged {levels}"
            )
        valid, errors, _ = rio_cogeo.cogeo.cog_validate(str(part), quiet=True)
        if not valid:
            raise ClearcubeError(f"GDAL wrote an invalid COG for {path.name}: {'; '.join(errors)}")
        os.replace(part, path)
    finally:
        for temporary in (stage, part, *overviews):
            temporary.unlink(missing_ok=True)
    log.info("wrote %s (%d bands, %d x %d, %d overviews)", path, bands, height, width, levels)
    return path


def _level(profile: Mapping[str, Any], k: int) -> dict[str, Any]:
    """The staging profile of overview level ``k`` (factor ``2**k``).

    Its blocks are the size of a 512 px window's piece at that level (16 px at least, GTiff's
    smallest tile), so down to level 5 the pieces of 512 px windows fill whole blocks; finer
    pieces (levels 6+, regions over 16,384 px) and other window sizes write parts of blocks,
    which GDAL completes by reading them back (correct, slower, small at those levels).
    """
    block = max(16, BLOCK >> k)
    return {
        **profile,
        "height": -(-profile["height"] // 2**k),
        "width": -(-profile["width"] // 2**k),
        "transform": profile["transform"] @ Affine.scale(2**k),
        "blockxsize": block,
        "blockysize": block,
    }


def _span(r0: int, c0: int, piece: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """The rasterio window ``piece (band, h, w)`` covers from row ``r0``, column ``c0``."""
    return (r0, r0 + piece.shape[1]), (c0, c0 + piece.shape[2])


def _halve_file(
    finer: Path, coarser: Path, profile: Mapping[str, Any], encoding: CogEncoding
) -> None:
    """Write overview level ``coarser`` from the staged level ``finer``, 1,024 px at a time."""
    with rasterio.open(finer) as src, rasterio.open(coarser, "w", **profile) as dst:
        for rows, cols in window_grid(src.height, src.width, 2 * BLOCK, 2 * BLOCK):
            piece = halve(
                src.read(window=((rows.start, rows.stop), (cols.start, cols.stop))), encoding
            )
            dst.write(piece, window=_span(rows.start // 2, cols.start // 2, piece))


def _staged(
    source: ArrayLike3D,
    windows: Sequence[tuple[slice, slice]],
    encoding: CogEncoding,
    threads: int,
    levels: int,
) -> Iterator[list[np.ndarray]]:
    """Per window in order: its quantised values and their first ``levels`` halvings.

    Up to ``threads`` windows are read, quantised and halved ahead on a pool.
    """

    def load(rows: slice, cols: slice) -> list[np.ndarray]:
        pieces = [quantise(np.asarray(source[:, rows, cols]), encoding)]
        for _ in range(levels):
            pieces.append(halve(pieces[-1], encoding))
        return pieces

    if threads <= 0:
        yield from (load(rows, cols) for rows, cols in windows)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="clearcube-stage") as pool:
        ahead: deque[Future[list[np.ndarray]]] = deque()
        for rows, cols in windows:
            ahead.append(pool.submit(load, rows, cols))
            if len(ahead) > threads:  # threads loading, one yielded to the writer
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def write_mosaic_cogs(
    store: MosaicStore,
    out_dir: str | Path,
    *,
    tags: Mapping[str, str],
    encodings: Mapping[str, CogEncoding] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Path]:
    """Write ``<out_dir>/<product>.tif`` for every product of a complete mosaic store.

    ``encodings`` defaults to :data:`COMPOSITE` for ``composite`` and :data:`UNCERTAINTY` for
    every other product. Returns ``{product: path}``.

    Raises:
        ClearcubeError: when the store is not complete yet.
        BadInputError: when the store has no CRS or transform.
    """
    spec = store.spec
    if not store.complete:
        raise ClearcubeError(f"{store.path} is not assembled yet; run MosaicStore.assemble() first")
    if spec.crs is None or spec.transform is None:
        raise BadInputError(
            f"{store.path} has no CRS/transform; create it with MosaicSpec(crs=..., transform=...)"
        )
    chosen = {"composite": COMPOSITE, **(encodings or {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in spec.products:
        step = None if progress is None else (lambda done, total, n=name: progress(n, done, total))
        source: ArrayLike3D = store.array(name)
        bands: Sequence[str] = spec.bands
        encoding = chosen.get(name, UNCERTAINTY)
        if name == "provenance":
            source = ProvenanceView(source, store.array("composite"))
            bands, encoding = ("provenance",), chosen.get(name, PROVENANCE_ENCODING)
        paths[name] = write_cog(
            source,
            out_dir / f"{name}.tif",
            crs=spec.crs,
            transform=spec.transform,
            band_names=bands,
            tags=tags,
            encoding=encoding,
            progress=step,
        )
    return paths
