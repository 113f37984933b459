"""Samplers: DDPM (full or respaced), DDIM(η), with or without SeqTIS; consistency / PDMSR.

:func:`sample_pdmsr` samples a distilled consistency student (model/consistency.py).

Every sampler is a pure function of (network, schedule, conditioning, noise source): no state,
no ``set_timesteps``. With a :class:`~clearcube.model.seqtis.SeqTISInputs` bundle each reverse
step is Algorithm 1 of SeqDMs; without one it is plain (unconditional) sampling.

One reverse step k → k-1 of a chain with ᾱ_k and ᾱ_prev (= ᾱ_{k-1}, 1 before the first step):

1. Ã_t: the SAR dates diffused to ᾱ_k and averaged (Eqs. 19-20); ε_a^l = 0 at the last
   step, as Algorithm 1 writes it.
2. X^unknown_{t-1}: one step of the sampler from X_t given Ã_t (Eq. 24; DDIM replaces the
   ancestral Gaussian by its η-step).
3. X^known_{t-1}: the clear pixels of every date diffused to ᾱ_prev and averaged (Eqs. 21-23).
4. X_{t-1}: the merge of Eq. 26.

On a respaced or DDIM chain the paper's "t - 1" of Eq. 21 is the *previous step of that chain*:
step 3 diffuses the known pixels to ᾱ_prev of the respaced chain, which is exactly the level
the sampler's step 2 lands on, so the merged sample stays on one noise level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from clearcube import BadInputError
from clearcube.model import noise as noise_mod
from clearcube.model import seqtis
from clearcube.model.diffusion import Denoiser, PMeanVar, Prediction, extract, p_mean_variance
from clearcube.model.noise import NoiseSource
from clearcube.model.schedule import Schedule, respace
from clearcube.model.seqtis import SarNoise, SeqTISInputs

#: ``progress(done, total)``: called after each of the ``total`` network calls.
Progress = Callable[[int, int], None]
#: One reverse update: (p_θ parameters, x_t, step k, noise z) -> the unconditional x_{t-1}.
_Update = Callable[[PMeanVar, Tensor, Tensor, Tensor], Tensor]


def sample_ddpm(
    net: Denoiser,
    schedule: Schedule,
    *,
    shape: tuple[int, int, int, int],
    noise: NoiseSource | torch.Generator,
    condition: SeqTISInputs | None = None,
    clip_denoised: bool = True,
    prediction: Prediction = "eps",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    clip_range: tuple[Tensor, Tensor] | None = None,
    sar_noise: SarNoise = "same_t",
) -> Tensor:
    """Ancestral sampling x_{t-1} ~ N(μ_θ, Σ_θ) over every step of ``schedule`` (Algorithm 1).

    A respaced ``schedule`` (:func:`~clearcube.model.schedule.respace`) gives respaced DDPM.

    Args:
        net: the denoiser, called with original training steps.
        schedule: the chain to walk, K network calls.
        shape: (B, C, H, W) of the output.
        noise: a NoiseSource or a torch.Generator.
        condition: the SeqTIS bundle; ``None`` samples unconditionally with an empty
            (B, 0, H, W) condition.
        clip_denoised: clip x̂_0 to [-1, 1] at every step.
        prediction: what the network predicts.
        dtype: of the sample (taken from ``condition.observed`` when given).
        device: of the sample (taken from ``condition.observed`` when given).
        progress: ``progress(i, K)`` after each step.
        clip_range: per-channel (lo, hi) of x̂_0 in a scaled diffusion space; None: [-1, 1].
        sar_noise: "same_t" diffuses the SAR to each step's level (Eqs. 19-20); "clean"
            passes the dates' mean clean SAR (a model trained with clean SAR).

    Returns:
        x_0, (B, C, H, W).
    """

    def update(p: PMeanVar, x: Tensor, k: Tensor, z: Tensor) -> Tensor:
        x_prev: Tensor = p.mean + (0.5 * p.log_variance).exp() * z  # Eq. 24 (z = 0: last step)
        return x_prev

    return _reverse_chain(
        net,
        schedule,
        update,
        shape=shape,
        noise=noise,
        condition=condition,
        clip_denoised=clip_denoised,
        prediction=prediction,
        dtype=dtype,
        device=device,
        progress=progress,
        clip_range=clip_range,
        sar_noise=sar_noise,
    )


def sample_ddim(
    net: Denoiser,
    schedule: Schedule,
    *,
    shape: tuple[int, int, int, int],
    noise: NoiseSource | torch.Generator,
    condition: SeqTISInputs | None = None,
    eta: float = 0.0,
    clip_denoised: bool = True,
    prediction: Prediction = "eps",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    clip_range: tuple[Tensor, Tensor] | None = None,
    sar_noise: SarNoise = "same_t",
) -> Tensor:
    """DDIM (Song et al. 2021, Eq. 12) over every step of ``schedule``; η = 0 is deterministic.

    x_{k-1} = √ᾱ_prev x̂_0 + √(1 - ᾱ_prev - σ²) ε̂ + σ z with
    σ = η √((1 - ᾱ_prev)/(1 - ᾱ_k)) √(1 - ᾱ_k/ᾱ_prev). Arguments as :func:`sample_ddpm`.
    """
    if eta < 0:
        raise BadInputError(f"DDIM eta must be >= 0, got {eta}")

    def update(p: PMeanVar, x: Tensor, k: Tensor, z: Tensor) -> Tensor:
        abar = extract(schedule.alphas_cumprod, k, x)
        abar_prev = extract(schedule.alphas_cumprod_prev, k, x)
        sigma = eta * ((1 - abar_prev) / (1 - abar)).sqrt() * (1 - abar / abar_prev).sqrt()
        direction = (1 - abar_prev - sigma.square()).clamp(min=0).sqrt() * p.eps
        x_prev: Tensor = abar_prev.sqrt() * p.pred_x0 + direction + sigma * z
        return x_prev

    return _reverse_chain(
        net,
        schedule,
        update,
        shape=shape,
        noise=noise,
        condition=condition,
        clip_denoised=clip_denoised,
        prediction=prediction,
        dtype=dtype,
        device=device,
        progress=progress,
        clip_range=clip_range,
        sar_noise=sar_noise,
    )


def sample_seqtis(
    net: Denoiser,
    schedule: Schedule,
    *,
    observed: Tensor,
    known: Tensor,
    sar: Tensor,
    generator: NoiseSource | torch.Generator,
    sampler: Literal["ddpm", "ddim"] = "ddpm",
    steps: int | str | None = None,
    eta: float = 0.0,
    clip_denoised: bool = True,
    prediction: Prediction = "eps",
    progress: Progress | None = None,
    clip_range: tuple[Tensor, Tensor] | None = None,
    sar_noise: SarNoise = "same_t",
) -> Tensor:
    """Cloud removal by SeqTIS conditional inference (Algorithm 1) for any number of dates L.

    Args:
        net: the denoiser.
        schedule: the training chain (respaced here when ``steps`` is given).
        observed: (B, L, C, H, W) optical dates in [-1, 1].
        known: (B, L, 1|C, H, W) bool, True = clear.
        sar: (B, L, Cs, H, W) SAR dates in [-1, 1].
        generator: a torch.Generator or a NoiseSource (e.g. CoordinateNoise for tiles).
        sampler: "ddpm" (ancestral) or "ddim".
        steps: None: every step of ``schedule``; else ``respace(schedule, steps)`` (e.g. 50,
            "ddim50").
        eta: DDIM's η.
        clip_denoised: clip x̂_0 to [-1, 1].
        prediction: what the network predicts.
        progress: ``progress(i, K)`` after each network call.
        clip_range: per-channel (lo, hi) of x̂_0 in a scaled diffusion space; None: [-1, 1].
        sar_noise: the model's SAR conditioning, "same_t" (Eq. 18) or "clean".

    Returns:
        (B, C, H, W) the cloud-free estimate X_0; pixels clear in some date equal the mean of
        their clear values (Eq. 26 at the last step).
    """
    condition = SeqTISInputs(observed=observed, known=known, sar=sar)
    chain = schedule if steps is None else respace(schedule, steps)
    b, _, c, h, w = observed.shape
    common = {
        "shape": (b, c, h, w),
        "noise": generator,
        "condition": condition,
        "clip_denoised": clip_denoised,
        "prediction": prediction,
        "progress": progress,
        "clip_range": clip_range,
        "sar_noise": sar_noise,
    }
    if sampler == "ddpm":
        return sample_ddpm(net, chain, **common)  # type: ignore[arg-type]
    if sampler == "ddim":
        return sample_ddim(net, chain, eta=eta, **common)  # type: ignore[arg-type]
    raise BadInputError(f"sampler {sampler!r} unknown; use 'ddpm' or 'ddim'")


def _reverse_chain(
    net: Denoiser,
    schedule: Schedule,
    update: _Update,
    *,
    shape: tuple[int, int, int, int],
    noise: NoiseSource | torch.Generator,
    condition: SeqTISInputs | None,
    clip_denoised: bool,
    prediction: Prediction,
    dtype: torch.dtype,
    device: torch.device | str,
    progress: Progress | None,
    clip_range: tuple[Tensor, Tensor] | None,
    sar_noise: SarNoise,
) -> Tensor:
    src = noise_mod.as_noise_source(noise)
    if condition is not None:
        dtype, device = condition.observed.dtype, condition.observed.device
        expected = (condition.observed.shape[0], *condition.observed.shape[2:])
        if tuple(shape) != tuple(expected):
            raise BadInputError(f"sample shape {tuple(shape)} does not match observed {expected}")
        region = seqtis.region_mask(condition.known)  # Eq. 25, fixed over the chain
    b, _, h, w = shape
    n = schedule.num_steps
    x: Tensor = src(
        shape, step=n, stream=noise_mod.STREAM_INIT, dtype=dtype, device=device
    )  # X_T ~ N(0, I)
    empty = torch.zeros((b, 0, h, w), dtype=dtype, device=device)
    for i, k in enumerate(reversed(range(n))):
        last = k == 0
        t_orig = int(schedule.timestep_map[k])
        kk = torch.full((b,), k, dtype=torch.int64, device=device)
        cond = (
            empty
            if condition is None
            else _fused_sar(condition, schedule, k, src, t_orig, last, sar_noise)
        )
        with torch.no_grad():
            out = net(x, torch.full((b,), t_orig, dtype=torch.int64, device=device), cond)
        p = p_mean_variance(
            schedule,
            out,
            x,
            kk,
            clip_denoised=clip_denoised,
            prediction=prediction,
            clip_range=clip_range,
        )
        z = (
            torch.zeros_like(x)
            if last
            else src(shape, step=t_orig, stream=noise_mod.STREAM_STEP, dtype=dtype, device=device)
        )
        x_unknown = update(p, x, kk, z)
        if condition is None:
            x = x_unknown
        else:
            x_known = _fused_known(condition, schedule, k, src, t_orig, last)
            x = seqtis.merge(region, x_known, x_unknown)  # Eq. 26
        if progress is not None:
            progress(i + 1, n)
    return x


def _frame_noise(
    frames: Tensor, src: NoiseSource, step: int, stream_of: Callable[[int], int], last: bool
) -> Tensor:
    """Per-date noise of a fusion module; zero at the last step (Algorithm 1, lines 4 and 7)."""
    if last:
        return torch.zeros_like(frames)
    drawn: Tensor = seqtis.draw_frames(
        src, tuple(frames.shape), step=step, stream_of=stream_of, dtype=frames.dtype,
        device=frames.device,
    )  # fmt: skip
    return drawn


def _fused_sar(
    cond: SeqTISInputs,
    schedule: Schedule,
    k: int,
    src: NoiseSource,
    step: int,
    last: bool,
    sar_noise: SarNoise,
) -> Tensor:
    """Ã_t at step k (Eqs. 19-20); ε_a^l = 0 at the last step (Algorithm 1, line 7).

    A model trained on clean SAR (``sar_noise="clean"``) gets the dates' mean clean SAR.
    """
    if sar_noise == "clean":
        clean: Tensor = seqtis.fuse_sar(cond.sar, 1.0, torch.zeros_like(cond.sar))
        return clean
    eps_a = _frame_noise(cond.sar, src, step, noise_mod.sar_stream, last)
    fused: Tensor = seqtis.fuse_sar(cond.sar, float(schedule.alphas_cumprod[k]), eps_a)
    return fused


def _fused_known(
    cond: SeqTISInputs, schedule: Schedule, k: int, src: NoiseSource, step: int, last: bool
) -> Tensor:
    """X^known_{t-1} at ᾱ_prev of step k (Eqs. 21-23); ε_x^l = 0 at the last step (line 4)."""
    obs = cond.observed
    eps_x = _frame_noise(obs, src, step, noise_mod.optical_stream, last)
    fused: Tensor = seqtis.fuse_optical(
        obs, cond.known, float(schedule.alphas_cumprod_prev[k]), eps_x
    )
    return fused


def sample_pdmsr(
    f: Callable[[Tensor, Tensor, Tensor], Tensor],
    ladder: Sequence[int],
    sigmas: Tensor,
    *,
    observed: Tensor,
    known: Tensor,
    sar: Tensor,
    generator: NoiseSource | torch.Generator,
    sigma_min: float,
    clip_range: tuple[Tensor, Tensor] | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Consistency sampling with the SeqTIS merge in x̂_0 space: 1 call, or K calls (PDMSR).

    Progressive Denoising via Multistep Resampling: x̂_0 = f(y, σ_1) from y = x̃ + σ_1 z, then
    for every lower level σ_k of the ladder the merged x̂_0 is re-noised to it,
    y = x̂_0 + √(σ_k² − σ_min²)·z_k, and denoised again by f. Every x̂_0 is clipped to the data
    range and merged (Eq. 26): pixels clear in some date take the mean of their clear values
    (Eqs. 21-23 at ᾱ = 1), the rest the network's estimate. x̃ is that merge of zeros.

    Args:
        f: the consistency function ``f(y, step, cond) -> x̂_0`` (VE form,
            :class:`~clearcube.model.consistency.ConsistencyFunction`).
        ladder: teacher steps of σ_1 > ... > σ_K, descending (one step: the ``consistency``
            sampler).
        sigmas: σ of every teacher step, (T,).
        observed: (B, L, C, H, W) optical dates in diffusion space.
        known: (B, L, 1|C, H, W) bool, True = clear.
        sar: (B, L, Cs, H, W) SAR dates; the condition is their mean (clean SAR, Eq. 20 at ᾱ = 1).
        generator: a torch.Generator or a NoiseSource (e.g. CoordinateNoise for tiles).
        sigma_min: the student's σ_min (re-noising adds √(σ² − σ_min²)).
        clip_range: per-channel (lo, hi) of x̂_0 in diffusion space; None: [-1, 1].
        progress: ``progress(i, K)`` after each network call.

    Returns:
        (B, C, H, W) the cloud-free estimate.
    """
    if not ladder or list(ladder) != sorted(set(ladder), reverse=True):
        raise BadInputError(f"PDMSR ladder {tuple(ladder)} must be distinct steps, descending")
    condition = SeqTISInputs(observed=observed, known=known, sar=sar)
    src = noise_mod.as_noise_source(generator)
    dtype, device = observed.dtype, observed.device
    b, _, c, h, w = observed.shape
    region = seqtis.region_mask(condition.known)  # Eq. 25
    fused = seqtis.fuse_optical(observed, known, 1.0, torch.zeros_like(observed))  # Eq. 23, ᾱ = 1
    cond = seqtis.fuse_sar(sar, 1.0, torch.zeros_like(sar))  # the dates' mean clean SAR
    x0 = seqtis.merge(region, fused, torch.zeros_like(fused))
    table = sigmas.to(device)
    for i, step in enumerate(ladder):
        sigma = float(table[step])
        stream = noise_mod.STREAM_INIT if i == 0 else noise_mod.STREAM_STEP
        z = src((b, c, h, w), step=int(step), stream=stream, dtype=dtype, device=device)
        scale = sigma if i == 0 else math.sqrt(max(sigma**2 - sigma_min**2, 0.0))
        y = x0 + scale * z
        with torch.no_grad():
            est = f(y, torch.full((b,), int(step), dtype=torch.int64, device=device), cond)
        if clip_range is None:
            est = est.clamp(-1.0, 1.0)
        else:
            est = torch.maximum(torch.minimum(est, clip_range[1]), clip_range[0])
        x0 = seqtis.merge(region, fused, est)  # Eq. 26 in x̂_0 space
        if progress is not None:
            progress(i + 1, len(ladder))
    return x0
