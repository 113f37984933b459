"""One SeqTIS fill with a trained model: the call the pipeline and the evaluation share.

It maps the paper-scale inputs into the model's diffusion space (its
:class:`~clearcube.model.config.ScalingConfig`), runs :func:`~clearcube.model.samplers.
sample_seqtis` with the model's prediction type, SAR conditioning and clipping range, and maps
the result back. Everything a checkpoint decides comes from its :class:`ModelConfig`; only the
sampler choice and the randomness come from the caller.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from clearcube.model import scaling
from clearcube.model.config import ModelConfig
from clearcube.model.diffusion import Denoiser
from clearcube.model.noise import NoiseSource
from clearcube.model.samplers import Progress, sample_seqtis
from clearcube.model.schedule import from_config


def fill_gaps(
    net: Denoiser,
    cfg: ModelConfig,
    *,
    observed: Tensor,
    known: Tensor,
    sar: Tensor,
    generator: NoiseSource | torch.Generator,
    sampler: Literal["ddpm", "ddim"] = "ddim",
    steps: int | str | None = 50,
    eta: float = 0.0,
    progress: Progress | None = None,
) -> Tensor:
    """The cloud-free estimate of a cloudy sequence, on the paper's [-1, 1] scale.

    Args:
        net: the trained denoiser of ``cfg``.
        cfg: the model's config (from its checkpoint).
        observed: (B, L, C, H, W) optical dates on the paper's [-1, 1] scale.
        known: (B, L, 1|C, H, W) bool, True = clear.
        sar: (B, L, Cs, H, W) SAR dates on the paper's [-1, 1] scale.
        generator: a torch.Generator or a NoiseSource.
        sampler: as :func:`~clearcube.model.samplers.sample_seqtis`.
        steps: as :func:`~clearcube.model.samplers.sample_seqtis`.
        eta: as :func:`~clearcube.model.samplers.sample_seqtis`.
        progress: ``progress(i, K)`` after each network call.

    Returns:
        (B, C, H, W) on [-1, 1]; pixels clear in some date are the mean of their clear values.
    """
    x_in = scaling.to_diffusion(observed, cfg.scaling)
    bounds = None
    if not cfg.scaling.is_identity:
        bounds = scaling.clip_bounds(cfg.scaling, observed[0, 0])
    x0 = sample_seqtis(
        net,
        from_config(cfg.diffusion),
        observed=x_in,
        known=known,
        sar=sar,
        generator=generator,
        sampler=sampler,
        steps=steps,
        eta=eta,
        prediction=cfg.diffusion.prediction,
        clip_range=bounds,
        sar_noise=cfg.diffusion.sar_noise,
        progress=progress,
    )
    filled: Tensor = scaling.from_diffusion(x0, cfg.scaling)
    return filled
