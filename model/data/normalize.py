"""The paper's value scaling (§4.4): S2 DN clipped to [0, 10000], S1 dB clipped to [-25, 0], both to [-1, 1].

Functions accept numpy arrays or torch tensors and return the same kind (float32 for numpy).
"""

from __future__ import annotations

from typing import Final, TypeVar

import numpy as np
import torch

from clearcube.bands import DN_PER_REFLECTANCE

S2_RANGE: Final = (0.0, DN_PER_REFLECTANCE)
"""Sentinel-2 L1C digital numbers (reflectance x 10000) kept before scaling."""
S1_RANGE: Final = (-25.0, 0.0)
"""Sentinel-1 backscatter in dB kept before scaling."""

_A = TypeVar("_A", np.ndarray, torch.Tensor)


def _to_unit(x: _A, lo: float, hi: float) -> _A:
    if isinstance(x, torch.Tensor):
        xf = x.float() if not x.is_floating_point() else x
        # a divisor tensor, not a Python number: CUDA turns division by a number into a
        # multiplication by its reciprocal (one ulp off); this is numpy's division on any device
        span = torch.tensor(hi - lo, dtype=xf.dtype, device=xf.device)
        return (xf.clamp(lo, hi) - lo) / span * 2.0 - 1.0
    return ((np.clip(np.asarray(x, dtype=np.float32), lo, hi) - lo) / (hi - lo) * 2.0 - 1.0).astype(
        np.float32
    )


def _from_unit(x: _A, lo: float, hi: float) -> _A:
    if isinstance(x, torch.Tensor):
        return (x.clamp(-1.0, 1.0) + 1.0) / 2.0 * (hi - lo) + lo
    return (
        (np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0) + 1.0) / 2.0 * (hi - lo) + lo
    ).astype(np.float32)


def s2_to_model(dn: _A) -> _A:
    """Sentinel-2 DN -> [-1, 1]: clip to [0, 10000], then 0 -> -1 and 10000 -> 1."""
    return _to_unit(dn, *S2_RANGE)


def s2_from_model(x: _A) -> _A:
    """Inverse of :func:`s2_to_model` (values outside [-1, 1] are clipped first): DN as float."""
    return _from_unit(x, *S2_RANGE)


def s1_to_model(db: _A) -> _A:
    """Sentinel-1 dB -> [-1, 1]: clip to [-25, 0], then -25 -> -1 and 0 -> 1. NaN stays NaN."""
    return _to_unit(db, *S1_RANGE)


def s1_from_model(x: _A) -> _A:
    """Inverse of :func:`s1_to_model`: dB as float."""
    return _from_unit(x, *S1_RANGE)
