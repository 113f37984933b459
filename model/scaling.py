"""The map between the paper's [-1, 1] data scale and the diffusion space of a model.

Datasets, the pipeline and the evaluation hand the model optical values on the paper's scale
(§4.4: DN clipped to [0, 10000] → [-1, 1]); a model whose :class:`~clearcube.model.config.
ScalingConfig` is not the identity diffuses ``(x - shift_b) / scale_b`` instead, band by band.
Every entry point that crosses that boundary (the training losses, :func:`~clearcube.model.fill.
fill_gaps`) goes through these two functions, so the rest of the diffusion code never knows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from clearcube.model.config import ScalingConfig

#: Smallest per-band std a fitted scaling divides by (paper scale; 25 DN): a nearly constant
#: band (B10 over clear land) would otherwise blow its quantisation steps up into noise.
MIN_STD = 0.005


def _affine(scaling: ScalingConfig, like: Tensor) -> tuple[Tensor, Tensor]:
    """(shift, scale) shaped (C, 1, 1) in ``like``'s dtype and device."""
    shift = torch.tensor(scaling.s2_shift, dtype=like.dtype, device=like.device)
    scale = torch.tensor(scaling.s2_scale, dtype=like.dtype, device=like.device)
    return shift[:, None, None], scale[:, None, None]


def to_diffusion(x: Tensor, scaling: ScalingConfig) -> Tensor:
    """Paper-scale optical ``x: (..., C, H, W)`` → the model's diffusion space."""
    if scaling.is_identity:
        return x
    shift, scale = _affine(scaling, x)
    return (x - shift) / scale


def from_diffusion(x: Tensor, scaling: ScalingConfig) -> Tensor:
    """Inverse of :func:`to_diffusion`."""
    if scaling.is_identity:
        return x
    shift, scale = _affine(scaling, x)
    return x * scale + shift


def clip_bounds(scaling: ScalingConfig, like: Tensor) -> tuple[Tensor, Tensor]:
    """The image of the data range [-1, 1] in diffusion space: per-band (lo, hi), (C, 1, 1).

    x̂_0 is clipped to these at every sampler step, as the paper clips to [-1, 1].
    """
    c = like.shape[-3]
    ones = torch.ones((c, 1, 1), dtype=like.dtype, device=like.device)
    return to_diffusion(-ones, scaling), to_diffusion(ones, scaling)


def fit_scaling(samples: Tensor) -> ScalingConfig:
    """Standardising scaling from paper-scale samples ``(N, C, H, W)``: shift = mean, scale = 2·std.

    Twice the std puts ±1 at two standard deviations, so the data has variance 1/4 as an
    image scaled to [-1, 1] by its range roughly would; the noise schedules were designed for
    that scale.
    """
    x = samples.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=MIN_STD)
    return ScalingConfig(
        s2_shift=tuple(round(float(v), 6) for v in mean),
        s2_scale=tuple(round(float(2.0 * v), 6) for v in std),
    )
