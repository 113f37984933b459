"""β schedules and respacing (clearcube.model.schedule) against closed forms."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from clearcube import BadInputError
from clearcube.model.config import DiffusionConfig
from clearcube.model.schedule import (
    cosine_betas,
    from_config,
    linear_betas,
    make_schedule,
    respace,
)


@pytest.mark.parametrize("t", [1000, 100])
def test_linear_betas_span_the_scaled_ddpm_range(t: int) -> None:
    betas = linear_betas(t)
    scale = 1000 / t
    assert betas.dtype == torch.float64 and betas.shape == (t,)
    assert betas[0].item() == pytest.approx(1e-4 * scale, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.02 * scale, rel=1e-12)
    assert torch.allclose(
        betas.diff(), torch.full((t - 1,), (0.02 - 1e-4) * scale / (t - 1), dtype=torch.float64)
    )


def test_cosine_alphas_cumprod_follow_f_of_t_until_the_clip() -> None:
    t = 100
    sched = make_schedule("cosine", t)

    def f(u: float) -> float:
        return math.cos((u / t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = cosine_betas(t)
    assert betas.max().item() == pytest.approx(0.999)  # f(T) = 0: the last beta is clipped
    unclipped = int((betas < 0.999).sum())
    for i in range(unclipped):
        assert sched.alphas_cumprod[i].item() == pytest.approx(f(i + 1) / f(0), rel=1e-10)


def test_derived_quantities_match_eqs_7_and_8() -> None:
    sched = make_schedule("linear", 50)
    abar, prod = [], 1.0
    for b in sched.betas.tolist():
        prod *= 1 - b
        abar.append(prod)
    for k, beta in enumerate(sched.betas.tolist()):
        prev = abar[k - 1] if k else 1.0
        assert sched.alphas_cumprod[k].item() == pytest.approx(abar[k], rel=1e-12)
        assert sched.alphas_cumprod_prev[k].item() == pytest.approx(prev, rel=1e-12)
        var = beta * (1 - prev) / (1 - abar[k])  # Eq. 8
        assert sched.posterior_variance[k].item() == pytest.approx(var, rel=1e-12, abs=1e-300)
        assert sched.posterior_mean_coef1[k].item() == pytest.approx(
            math.sqrt(prev) * beta / (1 - abar[k]), rel=1e-12
        )
        assert sched.posterior_mean_coef2[k].item() == pytest.approx(
            math.sqrt(1 - beta) * (1 - prev) / (1 - abar[k]), rel=1e-12
        )
    assert sched.posterior_variance[0].item() == 0.0
    assert sched.posterior_log_variance_clipped[0].item() == pytest.approx(
        math.log(sched.posterior_variance[1].item())
    )
    assert torch.isfinite(sched.posterior_log_variance_clipped).all()


def test_schedule_is_frozen_float64() -> None:
    sched = make_schedule("cosine", 20)
    for f in dataclasses.fields(sched):
        value = getattr(sched, f.name)
        if isinstance(value, torch.Tensor) and f.name != "timestep_map":
            assert value.dtype == torch.float64, f.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.betas = sched.betas  # type: ignore[misc]


def test_from_config_builds_the_configured_chain() -> None:
    sched = from_config(DiffusionConfig(timesteps=40, schedule="cosine"))
    assert torch.equal(sched.betas, cosine_betas(40))
    assert sched.num_train_timesteps == 40 and not sched.is_respaced


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_respace_to_every_step_is_the_original(kind: str) -> None:
    full = make_schedule(kind, 60)  # type: ignore[arg-type]
    same = respace(full, 60)
    for f in dataclasses.fields(full):
        a, b = getattr(full, f.name), getattr(same, f.name)
        if isinstance(a, torch.Tensor):
            assert torch.allclose(a, b, rtol=1e-10, atol=0), f.name
        else:
            assert a == b


def test_respaced_chain_keeps_alphas_cumprod_and_maps_to_original_steps() -> None:
    full = make_schedule("linear", 100)
    ddim = respace(full, "ddim10")
    assert ddim.timestep_map.tolist() == list(range(0, 100, 10))
    even = respace(full, "10")
    assert even.timestep_map.tolist() == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    for sched in (ddim, even):
        assert sched.is_respaced and sched.num_train_timesteps == 100
        assert torch.allclose(
            sched.alphas_cumprod, full.alphas_cumprod[sched.timestep_map], rtol=1e-12
        )
        # recomputed betas: Π(1 - β_k) over the short chain reproduces ᾱ of the long one
        assert torch.allclose(
            torch.cumprod(1 - sched.betas, 0), full.alphas_cumprod[sched.timestep_map], rtol=1e-12
        )
    nested = respace(respace(full, 50), 5)
    inner = [0, 12, 25, 37, 49]  # i * 49/4 rounded half up
    assert nested.timestep_map.tolist() == respace(full, 50).timestep_map[inner].tolist()


@pytest.mark.parametrize("steps", [0, 101, "abc", "ddim60", "ddim", -3])
def test_respace_rejects_impossible_step_counts(steps: int | str) -> None:
    with pytest.raises(BadInputError):
        respace(make_schedule("linear", 100), steps)


def test_respace_indices_are_strictly_increasing_for_every_count() -> None:
    full = make_schedule("linear", 37)
    for k in range(1, 38):
        tmap = respace(full, k).timestep_map
        assert len(tmap) == k and bool((tmap.diff() > 0).all())
        assert tmap[-1].item() == 36
