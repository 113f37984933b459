"""Gaussian diffusion maths of MmDMs (SeqDMs §2 and §3.1): q, the posterior, p_θ and the losses.

Timesteps ``t`` here are (B,) int64 indices into a :class:`~clearcube.model.schedule.Schedule`
(0-based: the paper's t - 1); the network is called with ``schedule.timestep_map[t]``, the
original training step, so respaced chains reuse the trained network unchanged.

Network output (the contract of ``clearcube.model.unet``): (B, 2C, H, W) = [prediction,
v ∈ [-1, 1]] with the learned-range variance of improved DDPM (its Eq. 14, the guided-diffusion
convention) log Σ = f·log β_t + (1 - f)·log β̃_t, f = (v + 1)/2; or (B, C, H, W) with a fixed
variance.

Two typos of the paper are not reproduced: Eq. 6 gives the posterior variance as β_t (it is
β̃_t of Eq. 8) and Eq. 9 writes √(1 - α_t) where DDPM has √(1 - ᾱ_t).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from clearcube import BadInputError
from clearcube.model.schedule import Schedule

#: The network contract: ``net(x_t (B, C, H, W), t (B,), cond (B, Cs, H, W)) -> output``.
Denoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
Prediction = Literal["eps", "x0", "v"]
#: λ of the hybrid objective L_simple + λ·L_vlb (Eq. 11; improved DDPM's value).
LAMBDA_VLB = 0.001


def extract(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``values[t]`` as (B, 1, 1, ...) broadcastable against ``like``, in ``like``'s dtype/device."""
    out = values.to(like.device)[t.to(like.device).long()]
    return out.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(schedule: Schedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε, a draw of q(x_t | x_0) (Eq. 2; also Eqs. 19 and 21)."""
    abar = schedule.alphas_cumprod
    return extract(abar.sqrt(), t, x0) * x0 + extract((1.0 - abar).sqrt(), t, x0) * noise


def q_posterior(
    schedule: Schedule, x0: Tensor, x_t: Tensor, t: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean μ̃_t (Eq. 7), variance β̃_t (Eq. 8) and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
    mean = (
        extract(schedule.posterior_mean_coef1, t, x_t) * x0
        + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    )
    var = extract(schedule.posterior_variance, t, x_t)
    log_var = extract(schedule.posterior_log_variance_clipped, t, x_t)
    return mean, var, log_var


def predict_x0_from_eps(schedule: Schedule, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """x̂_0 = (x_t - √(1 - ᾱ_t) ε) / √ᾱ_t, Eq. 2 solved for x_0."""
    abar = schedule.alphas_cumprod
    return (
        extract(1.0 / abar.sqrt(), t, x_t) * x_t
        - extract(((1.0 - abar) / abar).sqrt(), t, x_t) * eps
    )


def predict_eps_from_x0(schedule: Schedule, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
    """ε̂ = (x_t - √ᾱ_t x_0) / √(1 - ᾱ_t), Eq. 2 solved for ε."""
    abar = schedule.alphas_cumprod
    return (x_t - extract(abar.sqrt(), t, x_t) * x0) / extract((1.0 - abar).sqrt(), t, x_t)


@dataclass(frozen=True)
class PMeanVar:
    """Parameters of p_θ(x_{t-1} | x_t, Ã_t) (Eqs. 15, 24) and the predictions behind them."""

    mean: Tensor
    """μ_θ: the posterior mean (Eq. 7) at the predicted x_0, (B, C, H, W)."""
    variance: Tensor
    """Σ_θ, broadcastable to the mean."""
    log_variance: Tensor
    """log Σ_θ."""
    pred_x0: Tensor
    """x̂_0, clipped to [-1, 1] when asked."""
    eps: Tensor
    """ε̂ consistent with ``pred_x0`` (recomputed after clipping)."""


def p_mean_variance(
    schedule: Schedule,
    output: Tensor,
    x_t: Tensor,
    t: Tensor,
    *,
    clip_denoised: bool = True,
    prediction: Prediction = "eps",
    fixed_variance: Literal["large", "small"] = "large",
    clip_range: tuple[Tensor, Tensor] | None = None,
) -> PMeanVar:
    """Turn a network output into the reverse-step Gaussian.

    Args:
        schedule: the chain being sampled (respaced or not).
        output: (B, 2C, H, W) [prediction, v] with learned-range variance, or (B, C, H, W).
        x_t: (B, C, H, W) the current sample.
        t: (B,) step indices into ``schedule``.
        clip_denoised: clip x̂_0 to [-1, 1] (the data range) before forming the mean.
        prediction: what the first C output channels predict.
        fixed_variance: without learned variance, Σ = β_t ("large", with β̃_1 at the first
            step as in DDPM) or Σ = β̃_t ("small").
        clip_range: per-channel (lo, hi) broadcastable to x_t, the data range in a scaled
            diffusion space (:func:`clearcube.model.scaling.clip_bounds`); None: [-1, 1].
    """
    c = x_t.shape[1]
    if output.shape[1] == 2 * c:
        pred, v = output[:, :c], output[:, c:]
        min_log = extract(schedule.posterior_log_variance_clipped, t, x_t)  # log β̃_t
        max_log = extract(schedule.betas.log(), t, x_t)  # log β_t
        frac = (v.to(x_t.dtype) + 1.0) / 2.0
        log_var = frac * max_log + (1.0 - frac) * min_log
        var = log_var.exp()
    elif output.shape[1] == c:
        pred = output
        if fixed_variance == "large":
            betas = torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]])
            if schedule.num_steps == 1:
                betas = schedule.betas
            var, log_var = extract(betas, t, x_t), extract(betas.log(), t, x_t)
        else:
            var = extract(schedule.posterior_variance, t, x_t)
            log_var = extract(schedule.posterior_log_variance_clipped, t, x_t)
    else:
        raise BadInputError(
            f"network output has {output.shape[1]} channels for {c} input channels; "
            f"expected {c} or {2 * c} (learned variance)"
        )
    pred_x0 = x0_from_prediction(schedule, pred.to(x_t.dtype), x_t, t, prediction)
    if clip_denoised:
        if clip_range is None:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        else:
            pred_x0 = torch.maximum(torch.minimum(pred_x0, clip_range[1]), clip_range[0])
    mean, _, _ = q_posterior(schedule, pred_x0, x_t, t)
    eps = predict_eps_from_x0(schedule, x_t, t, pred_x0)
    return PMeanVar(mean=mean, variance=var, log_variance=log_var, pred_x0=pred_x0, eps=eps)


def x0_from_prediction(
    schedule: Schedule, pred: Tensor, x_t: Tensor, t: Tensor, prediction: Prediction
) -> Tensor:
    """x̂_0 from the network's first C output channels, for any ``prediction`` type."""
    if prediction == "eps":
        return predict_x0_from_eps(schedule, x_t, t, pred)
    if prediction == "x0":
        return pred
    if prediction == "v":  # v = √ᾱ ε - √(1-ᾱ) x_0  ⇒  x_0 = √ᾱ x_t - √(1-ᾱ) v
        abar = schedule.alphas_cumprod
        return extract(abar.sqrt(), t, x_t) * x_t - extract((1.0 - abar).sqrt(), t, x_t) * pred
    raise BadInputError(f"prediction {prediction!r} unknown; use 'eps', 'x0' or 'v'")


def prediction_target(
    schedule: Schedule, x0: Tensor, noise: Tensor, t: Tensor, prediction: Prediction
) -> Tensor:
    """What the network should output for ``prediction``: ε (Eq. 10), x_0, or v."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        abar = schedule.alphas_cumprod
        return extract(abar.sqrt(), t, x0) * noise - extract((1.0 - abar).sqrt(), t, x0) * x0
    raise BadInputError(f"prediction {prediction!r} unknown; use 'eps', 'x0' or 'v'")


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2).square() * torch.exp(-logvar2)
    )


def approx_standard_normal_cdf(x: Tensor) -> Tensor:
    """Φ(x) by the tanh approximation used for the DDPM decoder likelihood."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(
    x: Tensor, *, means: Tensor, log_scales: Tensor, half_bin: float = 1.0 / 255.0
) -> Tensor:
    """Log-likelihood log p(x) of data in [-1, 1] discretised into bins of width 2·``half_bin`` (DDPM's L_0).

    The first and last bins extend to -∞ and +∞. Elementwise, in nats.
    """
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + half_bin))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - half_bin))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def vb_terms_bpd(
    schedule: Schedule,
    output: Tensor,
    x0: Tensor,
    x_t: Tensor,
    t: Tensor,
    *,
    prediction: Prediction = "eps",
    weight: Tensor | None = None,
) -> Tensor:
    """L_{t-1} of Eq. 17 per sample, (B,), in bits per (weighted) dimension.

    KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) for t > 0 and the decoder's -log p_θ(x_0 | x_1)
    at the first step. Never clips x̂_0 (the bound is for the unclipped model). ``weight``
    (B, 1, H, W) weighs the pixels as in :func:`pixel_mean`.
    """
    true_mean, _, true_log_var = q_posterior(schedule, x0, x_t, t)
    p = p_mean_variance(schedule, output, x_t, t, clip_denoised=False, prediction=prediction)
    kl = pixel_mean(normal_kl(true_mean, true_log_var, p.mean, p.log_variance), weight)
    nll = pixel_mean(
        -discretized_gaussian_log_likelihood(
            x0, means=p.mean, log_scales=0.5 * p.log_variance.expand_as(p.mean)
        ),
        weight,
    )
    return torch.where(t.to(kl.device) == 0, nll, kl) / math.log(2.0)


def call_net(net: Denoiser, schedule: Schedule, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
    """Call the network at step indices ``t`` of ``schedule`` with the original training steps."""
    return net(x_t, schedule.timestep_map.to(x_t.device)[t.to(x_t.device).long()], cond)


def training_losses(
    net: Denoiser,
    schedule: Schedule,
    x0: Tensor,
    t: Tensor,
    cond: Tensor,
    noise: Tensor,
    *,
    x_t: Tensor | None = None,
    lambda_vlb: float = LAMBDA_VLB,
    prediction: Prediction = "eps",
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-sample hybrid loss L_simple + λ·L_vlb (Eq. 11; Eq. 18 with the SAR in ``cond``).

    Args:
        net: the denoiser.
        schedule: the training chain.
        x0: (B, C, H, W) clean target X̂_0.
        t: (B,) int64 step indices.
        cond: (B, Cs, H, W) the noised SAR condition (Eq. 18, or Ã_t of Eq. 20).
        noise: (B, C, H, W) ε, the regression target of L_simple (Eq. 10).
        x_t: the network input; default q_sample(x0, t, noise). Given for Eq. 28, where X_t is
            the fused cloudy sequence and the target is still the clean pair's ε_x̂.
        lambda_vlb: λ of Eq. 11.
        prediction: what the network predicts.
        weight: (B, 1, H, W) per-pixel weight of both terms (1 = a pixel whose target is
            known); None weighs every pixel. Fitting on partly observed targets uses it.

    Returns:
        ``"mse"``: L_simple; ``"vb"``: T·L_{t-1}, the one-sample estimate of L_vlb (bits/dim),
        computed with the mean's prediction detached so it only trains Σ_θ (improved DDPM §3.1);
        ``"loss"`` = mse + λ·vb; all (B,). ``"pred_x0"`` (B, C, H, W), detached. Without
        learned variance ``"vb"`` is zero.
    """
    if x_t is None:
        x_t = q_sample(schedule, x0, t, noise)
    output = call_net(net, schedule, x_t, t, cond)
    c = x0.shape[1]
    target = prediction_target(schedule, x0, noise, t, prediction)
    mse = pixel_mean((output[:, :c] - target).square(), weight)
    if output.shape[1] == 2 * c:
        frozen = torch.cat([output[:, :c].detach(), output[:, c:]], dim=1)
        vb = vb_terms_bpd(schedule, frozen, x0, x_t, t, prediction=prediction, weight=weight)
        vb = vb * schedule.num_steps
    elif output.shape[1] == c:
        vb = torch.zeros_like(mse)
    else:
        raise BadInputError(
            f"network output has {output.shape[1]} channels for {c} optical channels; "
            f"expected {c} or {2 * c}"
        )
    with torch.no_grad():
        pred_x0 = x0_from_prediction(schedule, output[:, :c].to(x_t.dtype), x_t, t, prediction)
    return {"loss": mse + lambda_vlb * vb, "mse": mse, "vb": vb, "pred_x0": pred_x0}


def pixel_mean(values: Tensor, weight: Tensor | None = None) -> Tensor:
    """Per-sample mean of ``values`` (B, C, H, W), each pixel weighted by ``weight`` (B, 1, H, W).

    None weighs every pixel alike; a pixel of weight 0 (its target unknown) does not count.
    """
    if weight is None:
        return values.flatten(1).mean(1)
    w = weight.to(values.dtype).expand_as(values)
    return (values * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1.0)
