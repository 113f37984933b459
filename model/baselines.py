"""Training-free cloud-removal baselines.

The SeqDMs paper's (§4.3), a temporal median, the clear-mean fill and the per-pixel geometric
median (the Digital Earth Australia composite).

Every baseline is a function ``(inputs, cloud) -> (C, H, W)`` of

* ``inputs``: (L, C, H, W) optical input dates on [0, 1];
* ``cloud``: (L, H, W) bool, True = cloud (not observed) in that date.

An input pixel with a non-finite value in any band counts as not observed (like a cloud) for
mosaicing and the median; ``least_cloudy`` forwards its date unchanged, NaNs included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from clearcube.model.metrics import as_numpy

#: Value the paper's mosaicing uses where no date is clear (§4.3).
NO_CLEAR_FILL = 0.5

Baseline = Callable[[Any, Any], np.ndarray]


def _check(inputs: Any, cloud: Any) -> tuple[np.ndarray, np.ndarray]:
    x = as_numpy(inputs)
    c = np.asarray(as_numpy(cloud) != 0)
    if x.ndim != 4 or c.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(
            f"baselines need inputs (L, C, H, W) and cloud (L, H, W); got {x.shape} and {c.shape}"
        )
    return x, c


def _observed(x: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """(L, H, W) bool: True where the date is clear and every band is finite."""
    observed: np.ndarray = ~cloud & np.all(np.isfinite(x), axis=1)
    return observed


def least_cloudy_index(cloud: Any) -> int:
    """Index of the input date with the fewest cloudy pixels (the earliest one on a tie)."""
    c = np.asarray(as_numpy(cloud) != 0)
    return int(np.argmin(c.reshape(c.shape[0], -1).sum(axis=1)))


def least_cloudy(inputs: Any, cloud: Any) -> np.ndarray:
    """The least cloudy input date, forwarded unchanged (paper §4.3, baseline 1).

    Returns:
        (C, H, W) float64 copy of ``inputs[least_cloudy_index(cloud)]``.
    """
    x, c = _check(inputs, cloud)
    chosen: np.ndarray = x[least_cloudy_index(c)].copy()
    return chosen


def mosaicing(inputs: Any, cloud: Any, *, fill: float = NO_CLEAR_FILL) -> np.ndarray:
    """Per pixel, the mean over the clear dates; ``fill`` (0.5) where no date is clear (§4.3).

    One clear date is copied, several are averaged band by band, none gives ``fill``.

    Returns:
        (C, H, W) float64.
    """
    x, c = _check(inputs, cloud)
    seen = _observed(x, c)[:, None]  # (L, 1, H, W)
    total = np.where(seen, x, 0.0).sum(axis=0)
    count = seen.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), fill)


def temporal_median(
    inputs: Any,
    cloud: Any,
    *,
    fallback: Literal["constant", "least-cloudy"] = "constant",
    fill: float = NO_CLEAR_FILL,
) -> np.ndarray:
    """Per pixel and band, the median over the clear dates.

    With an even number of clear dates the two middle values are averaged (``np.median``).
    Where no date is clear the pixel takes ``fill`` (0.5, as mosaicing does, so the two
    baselines differ only in mean vs median) or, with ``fallback="least-cloudy"``, the value of
    the least cloudy date.

    Returns:
        (C, H, W) float64.
    """
    x, c = _check(inputs, cloud)
    seen = _observed(x, c)[:, None]
    stacked = np.where(seen, x, np.nan)
    none_clear = np.logical_not(np.any(seen, axis=0))  # (1, H, W)
    safe = np.where(none_clear[np.newaxis], 0.0, stacked)  # keeps nanmedian quiet on all-NaN pixels
    median = np.nanmedian(safe, axis=0)
    if fallback == "constant":
        other: np.ndarray | float = fill
    elif fallback == "least-cloudy":
        other = x[least_cloudy_index(c)]
    else:
        raise ValueError(f"fallback must be 'constant' or 'least-cloudy'; got {fallback!r}")
    return np.where(none_clear, other, median)


def clear_mean_fill(inputs: Any, cloud: Any) -> np.ndarray:
    """Mosaicing, with the per-band mean of every clear observation where no date is clear.

    The simplest fill that uses the sample's own data for the gap: what a model must beat in
    the pixels cloudy in every date. A sample with no clear pixel at all gets 0.5.

    Returns:
        (C, H, W) float64.
    """
    x, c = _check(inputs, cloud)
    return _mosaic_or(x, c, _band_means(x, c))


def _mosaic_or(x: np.ndarray, c: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Per-pixel mean of the clear dates; ``fill`` (C,) where no date is clear."""
    seen = _observed(x, c)[:, None]
    total = np.where(seen, x, 0.0).sum(axis=0)
    count = seen.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), fill[:, None, None])


def geometric_median(
    inputs: Any, cloud: Any, *, iterations: int = 50, tol: float = 1e-7
) -> np.ndarray:
    """Per pixel, the geometric median of the clear dates' spectra (Weiszfeld's algorithm).

    The point m minimising Σ_l ||x_l - m||₂ over the clear dates l, with the C bands as one
    vector: the composite Digital Earth Australia publishes (Roberts et al. 2017), robust to a
    missed cloud or shadow in one date, and spectrally consistent (unlike a per-band median).
    Where no date is clear the pixel takes the clear-mean fill's band means.

    Returns:
        (C, H, W) float64.
    """
    x, c = _check(inputs, cloud)
    seen = _observed(x, c)  # (L, H, W)
    w_seen = seen[:, None].astype(np.float64)
    data = np.where(seen[:, None], x, 0.0)
    estimate = _mosaic_or(x, c, _band_means(x, c))  # the start: the clear dates' mean
    for _ in range(iterations):
        dist = np.sqrt(((data - estimate[None]) ** 2).sum(axis=1, keepdims=True))  # (L, 1, H, W)
        weight = w_seen / np.maximum(dist, 1e-12)
        total = weight.sum(axis=0)
        new = np.where(total > 0, (weight * data).sum(axis=0) / np.maximum(total, 1e-300), estimate)
        step = float(np.abs(new - estimate).max()) if new.size else 0.0
        estimate = new
        if step < tol:
            break
    return estimate


def _band_means(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(C,) mean of every clear observation per band; 0.5 when nothing is clear."""
    seen = _observed(x, c)[:, None]
    count = int(seen.sum())
    if count == 0:
        return np.full(x.shape[1], NO_CLEAR_FILL)
    means: np.ndarray = np.where(seen, x, 0.0).sum(axis=(0, 2, 3)) / count
    return means


#: The baselines by their CLI names.
BASELINES: Mapping[str, Baseline] = MappingProxyType(
    {
        "least-cloudy": least_cloudy,
        "mosaicing": mosaicing,
        "median": temporal_median,
        "clear-mean": clear_mean_fill,
        "geomedian": geometric_median,
    }
)
