"""Training-free cloud-removal baselines of the SeqDMs paper (§4.3), plus a temporal median.

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
    return ~cloud & np.all(np.isfinite(x), axis=1)


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
    return x[least_cloudy_index(c)].copy()


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


#: The baselines by their CLI names.
BASELINES: Mapping[str, Baseline] = MappingProxyType(
    {"least-cloudy": least_cloudy, "mosaicing": mosaicing, "median": temporal_median}
)
