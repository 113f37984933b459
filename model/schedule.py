"""Variance schedules of the Gaussian diffusion process (SeqDMs §2, Eqs. 1-8).

Schedules are pure functions returning a frozen :class:`Schedule` of float64 tensors (STYLE.md
rule 12). Index ``k`` of a schedule is the code's 0-based step; the paper's diffusion time step
is ``t = k + 1`` for the full schedule, so ``alphas_cumprod_prev[0] = ᾱ_0 = 1``.

A *respaced* schedule (:func:`respace`) keeps a sub-sequence of the original steps
``timestep_map = (τ_1 < ... < τ_K)`` with ᾱ_k = ᾱ_orig[τ_k] and recomputed
β_k = 1 - ᾱ_k / ᾱ_{k-1} (improved DDPM §4), so every formula below holds unchanged on the
shorter chain; the network is always called with the *original* step ``timestep_map[k]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from clearcube import BadInputError

if TYPE_CHECKING:
    from clearcube.model.config import DiffusionConfig

#: β is clipped here in the cosine schedule (improved DDPM §3.2), avoiding singularities at t = T.
COSINE_MAX_BETA = 0.999
#: s of the cosine schedule: a small offset so that β_1 is not vanishingly small.
COSINE_OFFSET = 0.008


@dataclass(frozen=True, eq=False)
class Schedule:
    """One diffusion chain of K steps; every tensor is float64, shape (K,), never modified."""

    betas: Tensor
    """β_k, the per-step noise variances of q(x_t | x_{t-1}) (Eq. 1)."""
    alphas_cumprod: Tensor
    """ᾱ_k = Π_{j≤k} (1 - β_j), the signal level of q(x_t | x_0) (Eq. 2)."""
    alphas_cumprod_prev: Tensor
    """ᾱ of the previous step, with 1 before the first step."""
    posterior_variance: Tensor
    """β̃_k = β_k (1 - ᾱ_{k-1}) / (1 - ᾱ_k), the variance of q(x_{t-1} | x_t, x_0) (Eq. 8)."""
    posterior_log_variance_clipped: Tensor
    """log β̃_k with β̃_0 = 0 replaced by β̃_1 so that the log stays finite."""
    posterior_mean_coef1: Tensor
    """√ᾱ_{k-1} β_k / (1 - ᾱ_k): the weight of x_0 in μ̃ (Eq. 7)."""
    posterior_mean_coef2: Tensor
    """√α_k (1 - ᾱ_{k-1}) / (1 - ᾱ_k): the weight of x_t in μ̃ (Eq. 7)."""
    timestep_map: Tensor
    """int64 (K,): the original training step of each step (identity unless respaced)."""
    num_train_timesteps: int
    """T of the schedule the network was trained on (the original chain's length)."""

    @property
    def num_steps(self) -> int:
        """K, the number of steps of this chain (network calls of a sampler)."""
        return int(self.betas.shape[0])

    @property
    def is_respaced(self) -> bool:
        """True when this chain is a strict sub-sequence of the training chain."""
        return self.num_steps != self.num_train_timesteps


def from_betas(
    betas: Tensor, *, timestep_map: Tensor | None = None, num_train_timesteps: int | None = None
) -> Schedule:
    """Build a :class:`Schedule` from β_k (float64 (K,), each in (0, 1]).

    Args:
        betas: (K,) noise variances.
        timestep_map: (K,) original step of each step; default ``arange(K)``.
        num_train_timesteps: T of the training chain; default K.
    """
    betas = torch.as_tensor(betas, dtype=torch.float64).detach().clone()
    if betas.ndim != 1 or betas.numel() < 1:
        raise BadInputError("a schedule needs a 1-D tensor of at least one beta")
    if not bool(((betas > 0) & (betas <= 1)).all()):
        raise BadInputError("every beta must lie in (0, 1]; check the schedule parameters")
    k = betas.numel()
    alphas = 1.0 - betas
    abar = torch.cumprod(alphas, dim=0)  # Eq. 2: ᾱ_t = Π α_s
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)  # Eq. 8
    # β̃_0 = 0: use β̃_1 in the log (as improved DDPM does); a 1-step chain falls back to log β_0.
    first = post_var[1] if k > 1 else betas[0]
    post_log_var = torch.log(torch.cat([first.reshape(1), post_var[1:]]))
    coef1 = betas * torch.sqrt(abar_prev) / (1.0 - abar)  # Eq. 7, weight of x_0
    coef2 = (1.0 - abar_prev) * torch.sqrt(alphas) / (1.0 - abar)  # Eq. 7, weight of x_t
    tmap = torch.arange(k, dtype=torch.int64) if timestep_map is None else timestep_map
    return Schedule(
        betas=betas,
        alphas_cumprod=abar,
        alphas_cumprod_prev=abar_prev,
        posterior_variance=post_var,
        posterior_log_variance_clipped=post_log_var,
        posterior_mean_coef1=coef1,
        posterior_mean_coef2=coef2,
        timestep_map=torch.as_tensor(tmap, dtype=torch.int64).detach().clone(),
        num_train_timesteps=k if num_train_timesteps is None else int(num_train_timesteps),
    )


def linear_betas(timesteps: int) -> Tensor:
    """DDPM's linear β schedule, scaled so any T spans the same range as T = 1000.

    β runs linearly from ``1e-4 · 1000/T`` to ``0.02 · 1000/T`` (the guided-diffusion scaling).
    """
    _check_timesteps(timesteps)
    scale = 1000.0 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, *, s: float = COSINE_OFFSET) -> Tensor:
    """Improved DDPM's cosine schedule: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2).

    β_t = min(1 - ᾱ(t)/ᾱ(t-1), 0.999).
    """
    _check_timesteps(timesteps)

    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [
        min(1.0 - f((i + 1) / timesteps) / f(i / timesteps), COSINE_MAX_BETA)
        for i in range(timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


def make_schedule(kind: Literal["linear", "cosine"], timesteps: int) -> Schedule:
    """The full training chain of T = ``timesteps`` steps for a named β schedule."""
    if kind == "linear":
        return from_betas(linear_betas(timesteps))
    if kind == "cosine":
        return from_betas(cosine_betas(timesteps))
    raise BadInputError(f"unknown beta schedule {kind!r}; use 'linear' or 'cosine'")


def from_config(cfg: DiffusionConfig) -> Schedule:
    """The training chain described by a :class:`~clearcube.model.config.DiffusionConfig`."""
    return make_schedule(cfg.schedule, cfg.timesteps)


def alphas_cumprod(cfg: DiffusionConfig) -> Tensor:
    """ᾱ_k (float64 (T,)) of the configured training chain."""
    return from_config(cfg).alphas_cumprod


def respace(schedule: Schedule, steps: int | str) -> Schedule:
    """A shorter chain over a sub-sequence of ``schedule``'s steps (improved DDPM §4).

    Args:
        schedule: the chain to thin (usually the full training chain; respacing a respaced
            chain composes the timestep maps).
        steps: ``K`` or ``"K"``: K steps as evenly spaced as possible from the first to the last
            step, both included; ``"ddimK"``: the DDIM sequence ``0, s, 2s, ...`` with an integer
            stride ``s`` giving exactly K steps.

    Returns:
        A schedule with ᾱ_k = ᾱ[τ_k], β_k = 1 - ᾱ_k/ᾱ_{k-1} and ``timestep_map = map[τ]``.
    """
    indices = _spaced_indices(schedule.num_steps, steps)
    abar = schedule.alphas_cumprod[indices]
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return from_betas(
        1.0 - abar / abar_prev,
        timestep_map=schedule.timestep_map[indices],
        num_train_timesteps=schedule.num_train_timesteps,
    )


def _spaced_indices(n: int, steps: int | str) -> Tensor:
    spec = str(steps).strip().lower()
    ddim = spec.startswith("ddim")
    digits = spec[4:] if ddim else spec
    if not digits.isdigit() or int(digits) < 1:
        raise BadInputError(
            f"steps {steps!r} is not understood; give a positive count like 50 or 'ddim50'"
        )
    k = int(digits)
    if k > n:
        raise BadInputError(f"cannot respace a {n}-step schedule to {k} steps; use at most {n}")
    if ddim:
        for stride in range(1, n + 1):
            if len(range(0, n, stride)) == k:
                return torch.arange(0, n, stride, dtype=torch.int64)
        raise BadInputError(
            f"no integer stride gives exactly {k} DDIM steps out of {n}; use steps={k} instead"
        )
    if k == 1:
        return torch.tensor([n - 1], dtype=torch.int64)
    frac = (n - 1) / (k - 1)
    # floor(x + 0.5), not round(): banker's rounding could map two steps to one index.
    return torch.tensor([math.floor(i * frac + 0.5) for i in range(k)], dtype=torch.int64)


def _check_timesteps(timesteps: int) -> None:
    if timesteps < 1:
        raise BadInputError(f"timesteps must be >= 1, got {timesteps}")
