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
2. GDAL's COG driver translates the staging file into the COG (``rasterio.shutil.copy``,
   ``driver="COG"``): 512 px blocks, overviews built by the driver (``average`` resampling,
   nodata respected), deflate or zstd with the predictor chosen for the data type, BigTIFF when
   needed. GDAL works block by block within its block cache (``GDAL_CACHEMAX``).
3. The result is checked with ``rio_cogeo.cogeo.cog_validate`` (invalid: :class:`ClearcubeError`,
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

__all__ = ["COMPOSITE", "UNCERTAINTY", "CogEncoding", "quantise", "write_cog", "write_mosaic_cogs"]

log = logging.getLogger(__name__)


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
    resampling: Literal["average", "nearest", "bilinear"] = "average"
    """Overview resampling."""

    def __post_init__(self) -> None:
        if self.dtype == "uint16" and self.nodata != 0:
            raise BadInputError("uint16 COGs use nodata 0 (valid DN are 1..65535)")


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
    """
    values = np.asarray(values)
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


def write_cog(
    source: ArrayLike3D,
    path: str | Path,
    *,
    crs: Any,
    transform: Any,
    band_names: Sequence[str],
    tags: Mapping[str, str],
    encoding: CogEncoding = COMPOSITE,
    window: tuple[int, int] = (512, 512),
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
        encoding: storage type, scale, nodata, compression.
        window: ``(rows, cols)`` read per step; a multiple of 512 keeps GTiff blocks whole.
        threads: threads reading and quantising windows ahead of the writer (0: all on the
            calling thread). ``source`` must allow concurrent reads (numpy, Zarr do).
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
        "blockxsize": 512,
        "blockysize": 512,
        "bigtiff": "IF_SAFER",
    }
    try:
        with rasterio.open(stage, "w", **profile) as dst:
            dst.descriptions = tuple(band_names)
            if encoding.dtype == "uint16":
                dst.scales = (1.0 / encoding.scale,) * bands
            dst.update_tags(**dict(tags))
            windows = window_grid(height, width, *window)
            blocks = _quantised(source, windows, encoding, threads)
            for i, ((rows, cols), block) in enumerate(zip(windows, blocks, strict=True)):
                dst.write(block, window=((rows.start, rows.stop), (cols.start, cols.stop)))
                if progress is not None:
                    progress(i + 1, len(windows))
        rasterio.shutil.copy(
            stage,
            part,
            driver="COG",
            compress=encoding.compress.upper(),
            predictor="YES",
            blocksize=512,
            overviews="AUTO",
            overview_resampling=encoding.resampling.upper(),
            resampling=encoding.resampling.upper(),
            bigtiff="IF_SAFER",
            num_threads="ALL_CPUS",
        )
        valid, errors, _ = rio_cogeo.cogeo.cog_validate(str(part), quiet=True)
        if not valid:
            raise ClearcubeError(f"GDAL wrote an invalid COG for {path.name}: {'; '.join(errors)}")
        os.replace(part, path)
    finally:
        stage.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    log.info("wrote %s (%d bands, %d x %d)", path, bands, height, width)
    return path


def _quantised(
    source: ArrayLike3D,
    windows: Sequence[tuple[slice, slice]],
    encoding: CogEncoding,
    threads: int,
) -> Iterator[np.ndarray]:
    """The quantised windows of ``source`` in order, up to ``threads`` read ahead on a pool."""

    def load(rows: slice, cols: slice) -> np.ndarray:
        return quantise(np.asarray(source[:, rows, cols]), encoding)

    if threads <= 0:
        yield from (load(rows, cols) for rows, cols in windows)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="clearcube-stage") as pool:
        ahead: deque[Future[np.ndarray]] = deque()
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
