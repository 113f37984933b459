"""Consistency distillation of a SeqDMs teacher: the CM-CR student (Han, Huang & Li 2025).

The summary of CM-CR (shared/papers) states the method, not its equations: a SAR-conditioned
consistency model distilled from a diffusion teacher, refined by Progressive Denoising via
Multistep Resampling (PDMSR). The equations below are those of consistency distillation
(Song et al. 2023), written for this project's teacher, a discrete variance-preserving DDPM:

- **VP → VE.** Step t of the teacher has x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε. Dividing by √ᾱ_t gives
  y = x_t/√ᾱ_t = x_0 + σ_t ε with σ_t = √((1 − ᾱ_t)/ᾱ_t): the variance-exploding variable of
  the consistency-model literature. The teacher's denoiser at σ_t is its x̂_0 from
  x_t = y/√(1 + σ_t²) (since √ᾱ_t = 1/√(1 + σ_t²)), clipped to the data range as every sampler
  here clips it. Its probability-flow ODE is dy/dσ = (y − D(y, σ))/σ.
- **Grid.** N points of the Karras grid σ_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,
  each *snapped to the teacher's nearest discrete step* (in log σ), so the teacher is only ever
  evaluated at the steps it was trained on; σ_min is the teacher's first step (0.0064 for the
  cosine schedule), σ_max = 80 (step 990 of 1000).
- **Student.** f(y, σ) = c_skip(σ)·y + c_out(σ)·F(c_in(σ)·y, t(σ), SAR), with
  c_skip = σ_d²/((σ − σ_min)² + σ_d²), c_out = (σ − σ_min)·σ_d/√(σ² + σ_d²),
  c_in = 1/√(σ² + σ_d²): f(y, σ_min) = y exactly. F is the first C output channels of a U-Net
  of the teacher's shape, initialised from the teacher, called with the teacher's step t(σ).
  σ_d is measured on the training targets in diffusion space (their RMS), not the RGB 0.5.
- **Loss.** For a clean target x_0, z ~ N(0, I) and n ~ U{0..N−2}: y_{n+1} = x_0 + σ_{n+1} z;
  ŷ_n = one Heun step of the teacher's ODE from σ_{n+1} to σ_n; loss d(f_θ(y_{n+1}, σ_{n+1}),
  f_θ⁻(ŷ_n, σ_n)), θ⁻ = stop-gradient(θ) (μ = 0, the reference's CIFAR-10 setting), d = L2 or
  pseudo-Huber.
- **SeqTIS merge in x̂_0 space.** Where the sample's inputs show the pixel clear (M̃, Eq. 25),
  every x̂_0 (the teacher's, inside the Heun step, and the target's) is replaced by the known
  value (Eq. 26): the known region then follows its exact noisy trajectory x_0 + σ z and the
  student learns to carry visible pixels through, as the samplers apply the same merge.

Sampling (:func:`clearcube.model.samplers.sample_pdmsr`): x̂_0 = f(y, σ_max) from pure noise
(one call: ``consistency``), then for each lower σ of the ladder re-noise the merged x̂_0 to it,
y = x̂_0 + √(σ² − σ_min²)·z, and apply f again (K calls: ``pdmsr``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from clearcube import BadInputError
from clearcube.model import seqtis
from clearcube.model.config import ConsistencyConfig, ModelConfig
from clearcube.model.diffusion import Denoiser, x0_from_prediction
from clearcube.model.schedule import Schedule, from_config

#: The reference's largest noise level (EDM's σ_max).
SIGMA_MAX = 80.0
#: The reference's ρ of the Karras grid.
RHO = 7.0
#: ``x̂_0 = fn(y, step, cond)``: a denoiser in VE form; ``step`` (B,) int64 teacher steps.
VEDenoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
Distance = Literal["l2", "pseudo_huber"]


def teacher_sigmas(schedule: Schedule) -> Tensor:
    """σ_t = √((1 − ᾱ_t)/ᾱ_t) of every step of the (full) teacher chain, float64 (T,)."""
    abar = schedule.alphas_cumprod
    sigmas: Tensor = ((1.0 - abar) / abar).sqrt()
    return sigmas


def karras_grid(
    sigmas: Tensor, n: int, *, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> tuple[int, ...]:
    """The N-point Karras grid from the teacher's σ_min to ``sigma_max``, snapped to its steps.

    Args:
        sigmas: the teacher's σ per step (:func:`teacher_sigmas`), ascending.
        n: N, points of the grid before snapping (the reference uses 18-40).
        sigma_max: the top of the grid.
        rho: ρ.

    Returns:
        Distinct teacher steps, ascending; the first is step 0 (σ_min). Neighbouring Karras
        points that snap to one step are kept once, so the grid can be shorter than N.
    """
    if n < 2:
        raise BadInputError(f"distill: the grid needs N >= 2 points, got {n}")
    lo, hi = float(sigmas[0]), min(float(sigma_max), float(sigmas[-1]))
    if hi <= lo:
        raise BadInputError(f"distill: sigma_max {sigma_max} is below the teacher's σ_min {lo:.4g}")
    i = torch.arange(n, dtype=torch.float64) / (n - 1)
    karras = (hi ** (1 / rho) + i * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return tuple(sorted({nearest_step(sigmas, float(s)) for s in karras}))


def nearest_step(sigmas: Tensor, sigma: float) -> int:
    """The teacher step whose σ is nearest ``sigma`` in log σ."""
    if sigma <= 0:
        raise BadInputError(f"a noise level σ must be > 0, got {sigma}")
    return int((sigmas.log() - math.log(sigma)).abs().argmin())


def boundary_coefficients(sigma: Tensor, cc: ConsistencyConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in) at σ, float64; c_skip(σ_min) = 1 and c_out(σ_min) = 0 exactly."""
    s = sigma.double()
    sd, smin = cc.sigma_data, cc.sigma_min
    c_skip = sd**2 / ((s - smin) ** 2 + sd**2)
    c_out = (s - smin) * sd / (s.square() + sd**2).sqrt()
    c_in = 1.0 / (s.square() + sd**2).sqrt()
    return c_skip, c_out, c_in


class ConsistencyFunction:
    """f(y, σ) of a student network: the boundary-conditioned parameterisation above."""

    def __init__(self, net: Denoiser, cfg: ModelConfig):
        """Wrap ``net`` (the student U-Net) with the boundary coefficients of ``cfg``."""
        if cfg.consistency is None:
            raise BadInputError(
                "this checkpoint is a diffusion model, not a consistency student; use sampler "
                "ddim or ddpm, or distill one with `clearcube distill`"
            )
        self.net, self.cfg, self.cc = net, cfg, cfg.consistency
        self.sigmas = teacher_sigmas(from_config(cfg.diffusion))

    def sigma(self, step: Tensor) -> Tensor:
        """σ (float64, (B,)) of teacher steps ``step``."""
        sigma: Tensor = self.sigmas.to(step.device)[step.long()]
        return sigma

    def __call__(self, y: Tensor, step: Tensor, cond: Tensor) -> Tensor:
        """f(y, σ(step)) for y (B, C, H, W) in VE form, step (B,) int64, cond (B, Cs, H, W)."""
        c_skip, c_out, c_in = (
            c.to(y.dtype).reshape(-1, 1, 1, 1)
            for c in boundary_coefficients(self.sigma(step), self.cc)
        )
        out = self.net(c_in * y, step, cond)
        f: Tensor = c_skip * y + c_out * out[:, : y.shape[1]].to(y.dtype)
        return f


def teacher_denoiser(
    net: Denoiser, cfg: ModelConfig, clip_range: tuple[Tensor, Tensor] | None
) -> VEDenoiser:
    """The teacher's x̂_0 as a function of the VE variable y (see the module docstring)."""
    chain = from_config(cfg.diffusion)
    sigmas = teacher_sigmas(chain)

    def denoise(y: Tensor, step: Tensor, cond: Tensor) -> Tensor:
        s = sigmas.to(y.device)[step.long()].to(y.dtype).reshape(-1, 1, 1, 1)
        x_t = y / (1.0 + s.square()).sqrt()
        out = net(x_t, step, cond)
        c = y.shape[1]
        x0 = x0_from_prediction(chain, out[:, :c].to(y.dtype), x_t, step, cfg.diffusion.prediction)
        if clip_range is None:
            return x0.clamp(-1.0, 1.0)
        return torch.maximum(torch.minimum(x0, clip_range[1]), clip_range[0])

    return denoise


def heun_step(
    denoise: VEDenoiser,
    y: Tensor,
    step_from: Tensor,
    step_to: Tensor,
    cond: Tensor,
    sigmas: Tensor,
    merge: Callable[[Tensor], Tensor] = lambda x0: x0,
) -> Tensor:
    """One Heun step of dy/dσ = (y − D(y, σ))/σ from σ(step_from) down to σ(step_to).

    ``merge`` is applied to every x̂_0 (the SeqTIS merge in x̂_0 space).
    """
    s1 = sigmas.to(y.device)[step_from.long()].to(y.dtype).reshape(-1, 1, 1, 1)
    s0 = sigmas.to(y.device)[step_to.long()].to(y.dtype).reshape(-1, 1, 1, 1)
    d1 = (y - merge(denoise(y, step_from, cond))) / s1
    y_euler = y + (s0 - s1) * d1
    d0 = (y_euler - merge(denoise(y_euler, step_to, cond))) / s0
    out: Tensor = y + (s0 - s1) * (d1 + d0) / 2
    return out


def distance(a: Tensor, b: Tensor, kind: Distance) -> Tensor:
    """Per-sample distance of (B, C, H, W) tensors: mean squared error or pseudo-Huber.

    Pseudo-Huber (improved consistency training) is √(‖a − b‖² + c²) − c with c = 0.00054·√d
    over the d values of a sample; divided by √d that is √(mean² + 0.00054²) − 0.00054 on the
    per-value mean, which is what is computed (independent of the patch size).
    """
    sq = (a - b).float().square().mean(dim=(1, 2, 3))
    if kind == "l2":
        return sq
    if kind == "pseudo_huber":
        c = 0.00054
        return (sq + c**2).sqrt() - c
    raise BadInputError(f"distill: distance {kind!r} unknown; use l2 or pseudo_huber")


def distillation_losses(
    student: ConsistencyFunction,
    teacher: VEDenoiser,
    *,
    target: Tensor,
    cond: Tensor,
    region: Tensor,
    generator: torch.Generator,
    kind: Distance = "l2",
) -> dict[str, Tensor]:
    """Per-sample consistency-distillation loss of one batch (module docstring, "Loss").

    Args:
        student: f_θ (its network in training mode; the target f_θ⁻ is the same network
            without gradient).
        teacher: the teacher's VE denoiser.
        target: (B, C, H, W) clean targets x_0 in diffusion space.
        cond: (B, Cs, H, W) the SAR condition.
        region: (B, 1, H, W) bool, M̃: pixels the sample's inputs show clear (merged).
        generator: the randomness (n and z).
        kind: the distance.

    Returns:
        ``{"loss": (B,), "n": (B,) grid index}``.
    """
    grid = torch.tensor(student.cc.grid, dtype=torch.int64, device=target.device)
    b = target.shape[0]
    n = torch.randint(0, grid.numel() - 1, (b,), generator=generator, device=target.device)
    step_hi, step_lo = grid[n + 1], grid[n]
    z = torch.randn(target.shape, generator=generator, device=target.device, dtype=target.dtype)
    s_hi = student.sigma(step_hi).to(target.dtype).reshape(-1, 1, 1, 1)
    y_hi = target + s_hi * z

    def merged(x0: Tensor) -> Tensor:
        return seqtis.merge(region, target, x0)  # Eq. 26 in x̂_0 space

    with torch.no_grad():
        y_lo = heun_step(teacher, y_hi, step_hi, step_lo, cond, student.sigmas, merged)
        goal = merged(student(y_lo, step_lo, cond))
    pred = student(y_hi, step_hi, cond)
    return {"loss": distance(pred, goal, kind), "n": n.float()}


def measure_sigma_data(targets: Sequence[Tensor]) -> float:
    """σ_d: the RMS of clean targets in diffusion space (each (B, C, H, W))."""
    total = sum(float(t.double().square().sum()) for t in targets)
    count = sum(t.numel() for t in targets)
    if count == 0:
        raise BadInputError("distill: no training targets to measure sigma_data from")
    return math.sqrt(total / count)


def ladder_steps(
    student: ConsistencyFunction, calls: int, sigmas: Sequence[float] = ()
) -> tuple[int, ...]:
    """Teacher steps of a PDMSR ladder, descending.

    ``sigmas`` are snapped to the student's grid; without them, the default for ``calls``
    network calls: it starts at σ_max (the grid's top) and spaces the rest on the Karras rule (ρ of
    the config) down to ``ladder_low``; one call is the plain consistency sampler.
    """
    cc, table = student.cc, student.sigmas
    grid = list(cc.grid)
    grid_sigmas = table[torch.tensor(grid)]
    if sigmas:
        check_ladder(sigmas)
        picked = [grid[nearest_step(grid_sigmas, s)] for s in sigmas]
    else:
        if calls < 1:
            raise BadInputError(f"a consistency sampler needs >= 1 network call, got {calls}")
        top, low = float(grid_sigmas[-1]), min(cc.ladder_low, float(grid_sigmas[-1]))
        if calls == 1:
            values = [top]
        else:
            i = torch.arange(calls, dtype=torch.float64) / (calls - 1)
            r = cc.rho
            values = ((top ** (1 / r) + i * (low ** (1 / r) - top ** (1 / r))) ** r).tolist()
        picked = [grid[nearest_step(grid_sigmas, s)] for s in values]
    out: list[int] = []
    for step in picked:  # two levels that snap to one grid point: keep it once
        if not out or step < out[-1]:
            out.append(step)
    return tuple(out)


def check_ladder(sigmas: Sequence[float]) -> None:
    """Refuse a PDMSR ladder that is not positive noise levels in descending order (one line)."""
    if any(s <= 0 for s in sigmas) or list(sigmas) != sorted(sigmas, reverse=True):
        raise BadInputError(
            f"--ladder {','.join(f'{s:g}' for s in sigmas)} must be positive noise levels, "
            "descending (e.g. 80,2,0.5)"
        )


def student_from_teacher(teacher_cfg: ModelConfig, cc: ConsistencyConfig) -> ModelConfig:
    """The student's config: the teacher's with the consistency settings."""
    if teacher_cfg.consistency is not None:
        raise BadInputError(
            "distill: the teacher is itself a consistency student; pass a diffusion checkpoint"
        )
    if teacher_cfg.diffusion.sar_noise != "clean":
        raise BadInputError(
            "distill: the teacher conditions on SAR noised with t (sar_noise same_t); distillation "
            "supports clean-SAR teachers (sar_noise: clean), like the bundled demo.pt"
        )
    return dataclasses.replace(teacher_cfg, consistency=cc)


def frozen(net: nn.Module) -> nn.Module:
    """``net`` in eval mode without gradients (the teacher)."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
