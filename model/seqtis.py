"""SeqTIS: the sequential data fusion modules and the temporal training strategy (SeqDMs §3.2).

Shapes: a sequence of L dates is ``observed`` (B, L, C, H, W) optical x_0^l, ``known``
(B, L, 1|C, H, W) bool m^l (True = clear, Eq. 22's value 1), ``sar`` (B, L, Cs, H, W) a_0^l.
The paper has N auxiliary modalities; here the N SAR polarisations are the Cs channels of one
modality, which is the same computation (Eqs. 19-20 act per channel).

Conditional inference (Algorithm 1) is :func:`clearcube.model.samplers.sample_seqtis`; it calls
the fusion modules below once per reverse step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from clearcube import BadInputError
from clearcube.model import noise as noise_mod
from clearcube.model.diffusion import (
    LAMBDA_VLB,
    Denoiser,
    Prediction,
    call_net,
    pixel_mean,
    training_losses,
    x0_from_prediction,
)
from clearcube.model.noise import NoiseSource
from clearcube.model.schedule import Schedule

#: How the SAR condition is diffused: with the optical step's t (Eq. 18) or not at all.
SarNoise = Literal["same_t", "clean"]
#: What the cloudy-sequence step (Eq. 28) regresses: the paper's ε_x̂, or X̂_0 in x̂_0 space.
TemporalTarget = Literal["paper", "consistent"]
#: s of Eq. 23: keeps the known-region average finite where no date is clear.
FUSION_OFFSET = 1e-19


@dataclass(frozen=True)
class SeqTISInputs:
    """The cloudy multi-modal sequence that conditions one batch of tiles."""

    observed: Tensor
    """(B, L, C, H, W) optical dates x_0^l in [-1, 1]; values under clouds are ignored (may be NaN)."""
    known: Tensor
    """(B, L, 1|C, H, W) bool, True where date l is clear (m^l = 1)."""
    sar: Tensor
    """(B, L, Cs, H, W) SAR dates a_0^l in [-1, 1]."""

    def __post_init__(self) -> None:
        o, k, s = self.observed, self.known, self.sar
        if o.ndim != 5 or k.ndim != 5 or s.ndim != 5:
            raise BadInputError(
                "SeqTIS inputs must be 5-D: observed (B, L, C, H, W), known (B, L, 1|C, H, W), "
                f"sar (B, L, Cs, H, W); got {tuple(o.shape)}, {tuple(k.shape)}, {tuple(s.shape)}"
            )
        b, length, c, h, w = o.shape
        if length < 1:
            raise BadInputError("a SeqTIS sequence needs at least one date (L >= 1)")
        if k.dtype != torch.bool:
            raise BadInputError(f"known must be a bool tensor (True = clear), got {k.dtype}")
        if k.shape[:2] != (b, length) or k.shape[3:] != (h, w) or k.shape[2] not in (1, c):
            raise BadInputError(
                f"known has shape {tuple(k.shape)}; expected ({b}, {length}, 1 or {c}, {h}, {w})"
            )
        if s.shape[:2] != (b, length) or s.shape[3:] != (h, w):
            raise BadInputError(
                f"sar has shape {tuple(s.shape)}; expected ({b}, {length}, Cs, {h}, {w})"
            )

    @property
    def length(self) -> int:
        """L, the number of dates."""
        return int(self.observed.shape[1])


def _per_sample(abar: Tensor | float, like: Tensor) -> Tensor:
    """ᾱ as a (B, 1, 1, 1, 1) tensor in ``like``'s dtype (a scalar applies to every sample)."""
    a = torch.as_tensor(abar, dtype=torch.float64, device=like.device)
    return a.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def fuse_sar(sar: Tensor, abar_t: Tensor | float, noise: Tensor) -> Tensor:
    """Ã_t: every SAR date diffused to t (Eq. 19), then averaged over the L dates (Eq. 20).

    Args:
        sar: (B, L, Cs, H, W) a_0^l.
        abar_t: ᾱ_t, a scalar or (B,).
        noise: (B, L, Cs, H, W) ε_a^l.

    Returns:
        (B, Cs, H, W).
    """
    a = _per_sample(abar_t, sar)
    a_t = a.sqrt() * sar + (1.0 - a).sqrt() * noise  # Eq. 19
    return a_t.mean(dim=1)  # Eq. 20


def fuse_optical(observed: Tensor, known: Tensor, abar: Tensor | float, noise: Tensor) -> Tensor:
    """X^known: clear pixels of every date diffused to ᾱ (Eq. 21), kept (Eq. 22) and averaged (Eq. 23).

    Args:
        observed: (B, L, C, H, W) x_0^l.
        known: (B, L, 1|C, H, W) bool m^l.
        abar: ᾱ of the target step (ᾱ_{t-1} at inference, ᾱ_t in training), scalar or (B,).
        noise: (B, L, C, H, W) ε_x^l.

    Returns:
        (B, C, H, W); 0 where no date is clear (the numerator is 0 there, s keeps it finite).

    Note: as written, the n dates clear at a pixel are noised independently and averaged, so
    the noise there has standard deviation √(1-ᾱ)/√n, not √(1-ᾱ) as under q(x_t | x_0). We
    keep the paper's form; a sampler that wants the exact level must pass the same ε to every
    date.
    """
    work = observed.dtype if observed.dtype in (torch.float32, torch.float64) else torch.float32
    x0, eps = observed.to(work), noise.to(work)
    a = _per_sample(abar, x0)
    x_l = a.sqrt() * x0 + (1.0 - a).sqrt() * eps  # Eq. 21
    kept = torch.where(known, x_l, 0.0)  # Eq. 22, x ⊙ m (NaN under clouds cannot leak)
    fused = kept.sum(dim=1) / (known.to(work).sum(dim=1) + FUSION_OFFSET)  # Eq. 23
    return fused.to(observed.dtype)


def region_mask(known: Tensor) -> Tensor:
    """M̃ = Θ(Σ_l m^l): 1 where at least one date is clear (Eq. 25); (B, 1|C, H, W) bool."""
    return known.any(dim=1)


def merge(region: Tensor, x_known: Tensor, x_unknown: Tensor) -> Tensor:
    """X = M̃ ⊙ X^known + (1 - M̃) ⊙ X^unknown (Eq. 26)."""
    return torch.where(region, x_known, x_unknown)  # Eq. 26


def draw_frames(
    source: NoiseSource,
    shape: tuple[int, ...],
    *,
    step: int,
    stream_of: Callable[[int], int],
    dtype: torch.dtype,
    device: torch.device | str,
) -> Tensor:
    """Per-date noise (B, L, C, H, W), date ``l`` from stream ``stream_of(l)``."""
    b, length, c, h, w = shape
    frames = [
        source((b, c, h, w), step=step, stream=stream_of(i), dtype=dtype, device=device)
        for i in range(length)
    ]
    return torch.stack(frames, dim=1)


def temporal_training_inputs(
    schedule: Schedule,
    inputs: SeqTISInputs,
    t: Tensor,
    source: NoiseSource | torch.Generator,
    *,
    zero_noise_at_first_step: bool = True,
    sar_noise: SarNoise = "same_t",
) -> tuple[Tensor, Tensor]:
    """The inputs of the cloudy-sequence step (Eq. 28; Algorithm 2, lines 10-24).

    Every date is diffused to t and its clear pixels averaged (Eqs. 21-23 at t), pixels clear
    in no date are filled with N(0, I) (line 20), the two are merged by the region mask (Eqs.
    25-26), and the SAR dates are diffused to t and averaged (Eqs. 19-20).

    Args:
        schedule: the training chain.
        inputs: the cloudy sequence.
        t: (B,) int64 step indices.
        source: the randomness (streams ``optical_stream(l)``, ``sar_stream(l)``,
            ``STREAM_TRAIN_UNKNOWN``, step 0).
        zero_noise_at_first_step: ε_x^l = ε_a^l = 0 where t is the first step, as Algorithm 2
            lines 11 and 15 write it.
        sar_noise: "clean" averages the clean SAR dates instead of diffusing them.

    Returns:
        X_t (B, C, H, W) and Ã_t (B, Cs, H, W).
    """
    src = noise_mod.as_noise_source(source)
    obs, sar = inputs.observed, inputs.sar
    dev, dt = obs.device, obs.dtype
    abar = schedule.alphas_cumprod.to(dev)[t.to(dev)]
    eps_x = draw_frames(
        src, tuple(obs.shape), step=0, stream_of=noise_mod.optical_stream, dtype=dt, device=dev
    )
    eps_a = draw_frames(
        src, tuple(sar.shape), step=0, stream_of=noise_mod.sar_stream, dtype=dt, device=dev
    )
    if zero_noise_at_first_step:
        eps_x, eps_a = _zero_at_first(eps_x, t), _zero_at_first(eps_a, t)
    x_known = fuse_optical(obs, inputs.known, abar, eps_x)  # Eqs. 21-23 at t
    b, _, c, h, w = obs.shape
    x_unknown = src(
        (b, c, h, w), step=0, stream=noise_mod.STREAM_TRAIN_UNKNOWN, dtype=dt, device=dev
    )
    x_t = merge(region_mask(inputs.known), x_known, x_unknown)  # Eqs. 25-26
    a_t = _fuse_sar_as(sar, abar, eps_a, sar_noise)  # Eqs. 19-20
    return x_t, a_t


def temporal_training_losses(
    net: Denoiser,
    schedule: Schedule,
    *,
    target: Tensor,
    target_sar: Tensor,
    inputs: SeqTISInputs,
    t: Tensor,
    source: NoiseSource | torch.Generator,
    lambda_vlb: float = LAMBDA_VLB,
    prediction: Prediction = "eps",
    zero_noise_at_first_step: bool = True,
    with_cloudy: bool = True,
    sar_noise: SarNoise = "same_t",
    weight: Tensor | None = None,
    temporal_target: TemporalTarget = "paper",
) -> dict[str, Tensor]:
    """Per-sample losses of one step of the temporal training strategy (Algorithm 2).

    Args:
        net: the denoiser.
        schedule: the training chain.
        target: (B, C, H, W) the clear optical image X̂_0.
        target_sar: (B, Cs, H, W) its paired SAR Â_0.
        inputs: the L cloudy dates that go with the target.
        t: (B,) int64 step indices (uniform over the chain, line 5).
        source: the randomness.
        lambda_vlb: λ of Eq. 11.
        prediction: what the network predicts.
        zero_noise_at_first_step: ε = 0 where t is the first step (lines 6-7, 11, 15 as written).
        with_cloudy: also run the cloudy-sequence step (Eq. 28); ``False`` skips its network call
            (a training run that gives Eq. 28 no weight) and returns only the clean parts.
        sar_noise: "same_t" noises the SAR with t (Eq. 18); "clean" conditions on it as is.
        weight: (B, 1, H, W) per-pixel loss weight of both steps (1 = target known).
        temporal_target: what Eq. 28 regresses. ``"paper"``: the clean pair's ε_x̂, as
            Algorithm 2 line 25 writes it (unpredictable: X_t was built with other noise).
            ``"consistent"``: the clean target X̂_0 itself, scored in x̂_0 space,
            ‖x̂_0(X_t, Ã_t) − X̂_0‖², where x̂_0 is the network's estimate from the *actual*
            fused input X_t; equivalently ε* = (X_t − √ᾱ X̂_0)/√(1 − ᾱ), the noise that X_t
            carries, weighted by (1 − ᾱ)/ᾱ. Its optimum is E[X̂_0 | X_t, Ã_t]: it teaches the
            multi-date task itself. No vb term (the variance is learned by Eq. 27).

    Returns:
        ``"loss_clean"`` (Eq. 27) and ``"loss_cloudy"`` (Eq. 28), their ``"mse_*"`` and
        ``"vb_*"`` parts, and ``"loss"`` = their sum, all (B,). Both steps regress the clean
        pair's ε_x̂, as Algorithm 2 line 25 writes it.
    """
    src = noise_mod.as_noise_source(source)
    dev, dt = target.device, target.dtype
    eps = src(
        tuple(target.shape), step=0, stream=noise_mod.STREAM_TRAIN_TARGET, dtype=dt, device=dev
    )
    eps_a = src(
        tuple(target_sar.shape),
        step=0,
        stream=noise_mod.STREAM_TRAIN_TARGET_SAR,
        dtype=dt,
        device=dev,
    )
    if zero_noise_at_first_step:
        eps, eps_a = _zero_at_first(eps, t), _zero_at_first(eps_a, t)
    abar = schedule.alphas_cumprod.to(dev)[t.to(dev)]
    a_hat = _fuse_sar_as(target_sar[:, None], abar, eps_a[:, None], sar_noise)  # Eq. 18 (L = 1)
    clean = training_losses(
        net, schedule, target, t, a_hat, eps, lambda_vlb=lambda_vlb, prediction=prediction,
        weight=weight,
    )  # Eq. 27  # fmt: skip
    if not with_cloudy:
        return {
            "loss": clean["loss"],
            "loss_clean": clean["loss"],
            "mse_clean": clean["mse"],
            "vb_clean": clean["vb"],
        }
    x_t, a_t = temporal_training_inputs(
        schedule,
        inputs,
        t,
        src,
        zero_noise_at_first_step=zero_noise_at_first_step,
        sar_noise=sar_noise,
    )
    if temporal_target == "consistent":
        cloudy = _x0_space_losses(net, schedule, target, t, a_t, x_t, prediction, weight)
    else:
        cloudy = training_losses(
            net, schedule, target, t, a_t, eps, x_t=x_t, lambda_vlb=lambda_vlb,
            prediction=prediction, weight=weight,
        )  # Eq. 28  # fmt: skip
    return {
        "loss": clean["loss"] + cloudy["loss"],
        "loss_clean": clean["loss"],
        "mse_clean": clean["mse"],
        "vb_clean": clean["vb"],
        "loss_cloudy": cloudy["loss"],
        "mse_cloudy": cloudy["mse"],
        "vb_cloudy": cloudy["vb"],
    }


def _x0_space_losses(
    net: Denoiser,
    schedule: Schedule,
    target: Tensor,
    t: Tensor,
    cond: Tensor,
    x_t: Tensor,
    prediction: Prediction,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """The consistent Eq. 28: per-sample ‖x̂_0(X_t, Ã_t) − X̂_0‖² (see temporal_training_losses).

    Meant for v- and x_0-predicting networks: from ε, x̂_0 divides by √ᾱ and the loss weighs
    the last steps by up to (1 − ᾱ)/ᾱ.
    """
    output = call_net(net, schedule, x_t, t, cond)
    c = target.shape[1]
    x0 = x0_from_prediction(schedule, output[:, :c].to(x_t.dtype), x_t, t, prediction)
    mse = pixel_mean((x0 - target).square(), weight)
    return {"loss": mse, "mse": mse, "vb": torch.zeros_like(mse)}


def _fuse_sar_as(sar: Tensor, abar: Tensor, noise: Tensor, sar_noise: SarNoise) -> Tensor:
    """Eqs. 19-20 at ᾱ (``"same_t"``), or the dates' mean clean SAR (``"clean"``)."""
    if sar_noise == "clean":
        return sar.mean(dim=1)
    return fuse_sar(sar, abar, noise)


def _zero_at_first(noise: Tensor, t: Tensor) -> Tensor:
    first = (t.to(noise.device) == 0).reshape(-1, *([1] * (noise.ndim - 1)))
    return torch.where(first, torch.zeros((), dtype=noise.dtype, device=noise.device), noise)
