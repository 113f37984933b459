"""One SeqTIS fill with a trained model: the call the pipeline and the evaluation share.

It maps the paper-scale inputs into the model's diffusion space (its
:class:`~clearcube.model.config.ScalingConfig`), runs :func:`~clearcube.model.samplers.
sample_seqtis` with the model's prediction type, SAR conditioning and clipping range, and maps
the result back. Everything a checkpoint decides comes from its :class:`ModelConfig`; only the
sampler choice and the randomness come from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from clearcube import BadInputError
from clearcube.model import scaling
from clearcube.model.config import ModelConfig
from clearcube.model.consistency import ConsistencyFunction, ladder_steps
from clearcube.model.diffusion import Denoiser
from clearcube.model.noise import NoiseSource
from clearcube.model.samplers import Progress, sample_pdmsr, sample_seqtis
from clearcube.model.schedule import from_config

#: Samplers of a diffusion model and of a distilled consistency student.
SamplerName = Literal["ddpm", "ddim", "consistency", "pdmsr"]
DIFFUSION_SAMPLERS = ("ddim", "ddpm")
CONSISTENCY_SAMPLERS = ("consistency", "pdmsr")


#: Network calls of pdmsr when none are asked for: the bundled student's best on the validation
#: landscapes (RMSE(cloudy) 0.0201 at 2 calls, 0.0197 at 3, 0.0213 at 4; scripts/tune-ladder.py).
PDMSR_CALLS = 2


def default_steps(sampler: str, diffusion_steps: int = 50) -> int:
    """Steps (network calls) a sampler runs when the caller gives none."""
    return {"consistency": 1, "pdmsr": PDMSR_CALLS}.get(sampler, diffusion_steps)


def check_sampler(cfg: ModelConfig, sampler: str, where: str = "checkpoint") -> None:
    """Refuse a sampler the model cannot run, naming the ones it can (one line)."""
    fits = CONSISTENCY_SAMPLERS if cfg.is_consistency else DIFFUSION_SAMPLERS
    if sampler in fits:
        return
    kind = "a consistency student" if cfg.is_consistency else "a diffusion model"
    if sampler in DIFFUSION_SAMPLERS + CONSISTENCY_SAMPLERS:
        raise BadInputError(
            f"sampler {sampler!r} does not fit {where}: it is {kind}; pass --sampler "
            f"{' or '.join(fits)}"
        )
    raise BadInputError(
        f"unknown sampler {sampler!r}; pass --sampler {' or '.join(fits)} for {kind}"
    )


def fill_gaps(
    net: Denoiser,
    cfg: ModelConfig,
    *,
    observed: Tensor,
    known: Tensor,
    sar: Tensor,
    generator: NoiseSource | torch.Generator,
    sampler: SamplerName = "ddim",
    steps: int | str | None = 50,
    eta: float = 0.0,
    progress: Progress | None = None,
    ladder: Sequence[float] = (),
) -> Tensor:
    """The cloud-free estimate of a cloudy sequence, on the paper's [-1, 1] scale.

    Args:
        net: the trained denoiser of ``cfg``.
        cfg: the model's config (from its checkpoint).
        observed: (B, L, C, H, W) optical dates on the paper's [-1, 1] scale.
        known: (B, L, 1|C, H, W) bool, True = clear.
        sar: (B, L, Cs, H, W) SAR dates on the paper's [-1, 1] scale.
        generator: a torch.Generator or a NoiseSource.
        sampler: ``"ddim"``/``"ddpm"`` for a diffusion model (as
            :func:`~clearcube.model.samplers.sample_seqtis`), ``"consistency"`` (one call) or
            ``"pdmsr"`` (``steps`` calls) for a consistency student
            (:func:`~clearcube.model.samplers.sample_pdmsr`).
        steps: reverse steps of ddim/ddpm, or network calls of pdmsr.
        eta: as :func:`~clearcube.model.samplers.sample_seqtis`.
        progress: ``progress(i, K)`` after each network call.
        ladder: pdmsr's noise levels σ, descending (snapped to the student's grid); empty:
            the student's default ladder for ``steps`` calls.

    Returns:
        (B, C, H, W) on [-1, 1]; pixels clear in some date are the mean of their clear values.
    """
    x_in = scaling.to_diffusion(observed, cfg.scaling)
    bounds = None
    if not cfg.scaling.is_identity:
        bounds = scaling.clip_bounds(cfg.scaling, observed[0, 0])
    check_sampler(cfg, sampler)
    if cfg.is_consistency:
        f = ConsistencyFunction(net, cfg)
        calls = 1 if sampler == "consistency" else _calls(steps)
        rungs = ladder_steps(f, calls, ladder if sampler == "pdmsr" else ())
        assert cfg.consistency is not None
        x0 = sample_pdmsr(
            f,
            rungs,
            f.sigmas,
            observed=x_in,
            known=known,
            sar=sar,
            generator=generator,
            sigma_min=cfg.consistency.sigma_min,
            clip_range=bounds,
            progress=progress,
        )
        return scaling.from_diffusion(x0, cfg.scaling)
    x0 = sample_seqtis(
        net,
        from_config(cfg.diffusion),
        observed=x_in,
        known=known,
        sar=sar,
        generator=generator,
        sampler="ddpm" if sampler == "ddpm" else "ddim",  # check_sampler: one of the two
        steps=steps,
        eta=eta,
        prediction=cfg.diffusion.prediction,
        clip_range=bounds,
        sar_noise=cfg.diffusion.sar_noise,
        progress=progress,
    )
    filled: Tensor = scaling.from_diffusion(x0, cfg.scaling)
    return filled


def _calls(steps: int | str | None) -> int:
    """Network calls of pdmsr from ``steps`` (a count)."""
    text = str(steps if steps is not None else PDMSR_CALLS).strip()
    if not text.isdigit() or int(text) < 1:
        raise BadInputError(
            f"pdmsr takes a number of network calls as steps (e.g. 4), got {steps!r}"
        )
    return int(text)
