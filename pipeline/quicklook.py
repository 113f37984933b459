"""Quicklook PNG: the cloudiest target-date input beside the composite, in true colour.

True colour is (B04, B03, B02). Both panels share ONE stretch, the per-channel 2nd–98th
percentiles of the composite, so brightness compares across the two (clouds in the input
saturate to white instead of pulling the stretch). Large regions are decimated to at most
``max_size`` pixels on the long side before anything is loaded: a quicklook reads a strided view,
never the full-resolution region.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clearcube.errors import BadInputError
from clearcube.pipeline.provenance import PROVENANCE_COLOURS
from clearcube.pipeline.tiles import window_grid

__all__ = [
    "TRUE_COLOUR", "cloudiest_date", "decimate", "decimate_into", "decimated_empty", "least_clear",
    "panel_step", "stretch", "true_colour", "true_colour_bands", "write_panels", "write_quicklook",
]  # fmt: skip

TRUE_COLOUR: tuple[str, str, str] = ("B04", "B03", "B02")
"""Red, green and blue Sentinel-2 bands."""

READ_WINDOW = 512
"""Edge (px) of the windows a quicklook reads its sources in: one mosaic chunk."""


def cloudiest_date(known: np.ndarray, *, min_clear: float = 0.0) -> int:
    """Index of the date with the fewest clear pixels; ``known (time, y, x)``, True = clear.

    Dates whose clear fraction is at or below ``min_clear`` are passed over while another date
    is left (a fully cloudy panel shows nothing of what the composite replaced).
    """
    known = np.asarray(known, dtype=bool)
    if known.ndim != 3 or known.shape[0] == 0:
        raise BadInputError(f"known must be (time, y, x) with at least one date, got {known.shape}")
    return least_clear(known.reshape(known.shape[0], -1).mean(axis=1), min_clear=min_clear)


def least_clear(clear: np.ndarray, *, min_clear: float = 0.0) -> int:
    """:func:`cloudiest_date` from each date's clear fraction ``clear (time,)``.

    For a region too large to hold its masks: the fractions are reduced chunk by chunk.
    """
    clear = np.asarray(clear, dtype=np.float64)
    shows = clear > min_clear
    if shows.any():
        clear = np.where(shows, clear, np.inf)
    return int(np.argmin(clear))


def true_colour(image: Any, band_names: Sequence[str], *, max_size: int = 1024) -> np.ndarray:
    """``(3, h, w)`` float red/green/blue of ``image (band, y, x)``, decimated to ``max_size``."""
    return decimate(image, panel_step(image.shape, max_size), true_colour_bands(band_names))


def true_colour_bands(band_names: Sequence[str]) -> list[int]:
    """Positions of red, green and blue (:data:`TRUE_COLOUR`) in ``band_names``.

    Raises:
        BadInputError: when one of them is missing.
    """
    names = list(band_names)
    missing = [b for b in TRUE_COLOUR if b not in names]
    if missing:
        raise BadInputError(f"true colour needs bands {missing}, the image has {names}")
    return [names.index(b) for b in TRUE_COLOUR]


def panel_step(shape: Sequence[int], max_size: int = 1024) -> int:
    """The decimation step that fits ``shape (..., y, x)`` into ``max_size`` px a side."""
    return max(1, math.ceil(max(shape[-2:]) / max_size))


def decimate(image: Any, step: int, bands: Sequence[int] | None = None) -> np.ndarray:
    """``image[bands, ::step, ::step]`` of ``image (band, y, x)`` as float32, read in windows.

    Each window of about :data:`READ_WINDOW` px (a multiple of ``step``) is read whole, the
    chosen bands at once (``image[bands, rows, cols]``: numpy, Zarr and xarray index a list of
    bands orthogonally), and decimated: a Zarr array decodes whole chunks (every band of a
    mosaic chunk) whatever is sliced, so a strided read of the whole image held every chunk at
    once and grew with the region (+200 MB at 1152 px, benchmarks/RESULTS.md). Choosing the
    bands in the read keeps a lazy image's conversions (DN to reflectance) to those bands.
    """
    count, height, width = tuple(image.shape)
    picks: slice | list[int] = slice(None) if bands is None else list(bands)
    n = count if bands is None else len(bands)
    edge = step * max(1, math.ceil(READ_WINDOW / step))
    out = decimated_empty(n, height, width, step)
    for rows, cols in window_grid(height, width, edge, edge):
        decimate_into(out, np.asarray(image[picks, rows, cols]), rows, cols, step)
    return out


def decimated_empty(bands: int, height: int, width: int, step: int) -> np.ndarray:
    """The float32 ``(bands, ⌈height/step⌉, ⌈width/step⌉)`` array :func:`decimate_into` fills."""
    return np.empty((bands, -(-height // step), -(-width // step)), dtype=np.float32)


def decimate_into(out: np.ndarray, block: np.ndarray, rows: slice, cols: slice, step: int) -> None:
    """Put the pixels of ``block = image[:, rows, cols]`` on the image's ``::step`` grid into ``out``.

    Any window will do (not only multiples of ``step``): its first kept row and column are the
    first multiples of ``step`` at or after ``rows.start`` and ``cols.start``.
    """
    y0, x0 = -(-rows.start // step), -(-cols.start // step)  # first kept row / column
    kept = block[:, y0 * step - rows.start :: step, x0 * step - cols.start :: step]
    out[:, y0 : y0 + kept.shape[1], x0 : x0 + kept.shape[2]] = kept


def stretch(
    rgb: np.ndarray, limits: np.ndarray | None = None, *, percentiles: tuple[float, float] = (2, 98)
) -> tuple[np.ndarray, np.ndarray]:
    """Robust linear stretch of ``rgb (3, h, w)`` to ``(h, w, 3)`` uint8; NaN becomes black.

    Returns the image and the ``(3, 2)`` per-channel ``(low, high)`` limits used (computed from
    ``rgb`` when ``limits`` is None), so another image can share the stretch.
    """
    if limits is None:
        flat = rgb.reshape(3, -1)
        limits = np.array(
            [np.nanpercentile(c, percentiles) if np.isfinite(c).any() else (0.0, 1.0) for c in flat]
        )
    low, high = limits[:, 0, None, None], limits[:, 1, None, None]
    scaled = (rgb - low) / np.where(high > low, high - low, 1.0)
    out = np.nan_to_num(np.clip(scaled, 0.0, 1.0), nan=0.0) * 255.0
    return np.moveaxis(np.rint(out).astype(np.uint8), 0, -1), limits


def write_quicklook(
    before: Any,
    after: Any,
    band_names: Sequence[str],
    path: str | Path,
    *,
    max_size: int = 1024,
    percentiles: tuple[float, float] = (2, 98),
    provenance: Any = None,
) -> Path:
    """Write the before (cloudy input) | after (composite) [| provenance] PNG; return its path.

    Args:
        before: ``(band, y, x)`` the cloudiest target-date input (see :func:`cloudiest_date`).
        after: ``(band, y, x)`` the composite, same grid and bands.
        band_names: names of the bands of both.
        path: the PNG to write (replaced atomically).
        max_size: longest side of each panel in pixels.
        percentiles: stretch limits taken from the composite.
        provenance: ``(1, y, x)`` provenance classes (0/NaN nodata, 1 observed, 2 fused,
            3 generated; :mod:`clearcube.pipeline.provenance`), drawn as a third panel in
            green / blue / orange.
    """
    if tuple(before.shape) != tuple(after.shape):
        raise BadInputError(f"before {before.shape} and after {after.shape} differ; pass one grid")
    classes = None
    if provenance is not None:
        classes = decimate(provenance, panel_step(after.shape, max_size))[0]
    return write_panels(
        true_colour(before, band_names, max_size=max_size),
        true_colour(after, band_names, max_size=max_size),
        path, percentiles=percentiles, provenance=classes,
    )  # fmt: skip


def write_panels(
    before_rgb: np.ndarray,
    after_rgb: np.ndarray,
    path: str | Path,
    *,
    percentiles: tuple[float, float] = (2, 98),
    provenance: np.ndarray | None = None,
) -> Path:
    """Write :func:`write_quicklook`'s PNG from panels already decimated; return its path.

    Args:
        before_rgb: ``(3, h, w)`` red/green/blue of the cloudy input.
        after_rgb: ``(3, h, w)`` red/green/blue of the composite (its stretch is shared).
        path: the PNG to write (replaced atomically).
        percentiles: stretch limits taken from the composite.
        provenance: ``(h, w)`` classes (0/NaN nodata, 1 observed, 2 fused, 3 generated).
    """
    after_png, limits = stretch(after_rgb, percentiles=percentiles)
    before_png, _ = stretch(before_rgb, limits)
    gap = np.full((after_png.shape[0], 8, 3), 255, dtype=np.uint8)
    panels = [before_png, gap, after_png]
    if provenance is not None:
        classes = np.nan_to_num(provenance)
        panels += [gap, PROVENANCE_COLOURS[np.clip(classes, 0, 3).astype(np.intp)]]
    path = Path(path)
    part = path.with_name(f".{path.name}.{os.getpid()}.part.png")
    Image.fromarray(np.concatenate(panels, axis=1)).save(part, format="PNG")
    os.replace(part, path)
    return path
