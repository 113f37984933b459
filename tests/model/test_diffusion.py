"""Gaussian diffusion maths (clearcube.model.diffusion) against closed forms and Monte-Carlo."""

from __future__ import annotations

import math

import pytest
import torch

from clearcube import BadInputError
from clearcube.model import diffusion as d
from clearcube.model.schedule import Schedule, make_schedule, respace

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _oracle(x0: torch.Tensor, full: Schedule, v: float = 0.0):
    """The network that knows x0: ε̂ = (x_t - √ᾱ_t x0)/√(1 - ᾱ_t) at the original step t."""

    def net(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        abar = full.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1, 1)
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
        return torch.cat([eps, torch.full_like(eps, v)], dim=1)

    return net


def test_q_sample_is_eq_2_per_sample() -> None:
    sched = make_schedule("linear", 100)
    x0 = torch.randn(3, 2, 4, 4, generator=_gen(), dtype=F64)
    eps = torch.randn(3, 2, 4, 4, generator=_gen(1), dtype=F64)
    t = torch.tensor([0, 50, 99])
    out = d.q_sample(sched, x0, t, eps)
    for i, ti in enumerate(t.tolist()):
        a = float(torch.prod(1 - sched.betas[: ti + 1]))
        assert torch.allclose(out[i], math.sqrt(a) * x0[i] + math.sqrt(1 - a) * eps[i], rtol=1e-12)


def test_posterior_matches_the_closed_form() -> None:
    sched = make_schedule("cosine", 50)
    x0 = torch.randn(2, 1, 3, 3, generator=_gen(), dtype=F64)
    xt = torch.randn(2, 1, 3, 3, generator=_gen(1), dtype=F64)
    t = torch.tensor([7, 30])
    mean, var, log_var = d.q_posterior(sched, x0, xt, t)
    for i, k in enumerate(t.tolist()):
        beta = sched.betas[k].item()
        abar, prev = sched.alphas_cumprod[k].item(), sched.alphas_cumprod[k - 1].item()
        want = (
            math.sqrt(prev) * beta / (1 - abar) * x0[i]
            + math.sqrt(1 - beta) * (1 - prev) / (1 - abar) * xt[i]
        )
        assert torch.allclose(mean[i], want, rtol=1e-12)
        assert var[i].item() == pytest.approx(beta * (1 - prev) / (1 - abar), rel=1e-12)
        assert log_var[i].item() == pytest.approx(
            math.log(beta * (1 - prev) / (1 - abar)), rel=1e-12
        )


@pytest.mark.parametrize("k", [1, 20, 49])
def test_posterior_moments_by_monte_carlo(k: int) -> None:
    """Draw x_{t-1} ~ q(x_{t-1}|x0), then x_t by one forward step (Eq. 1); the residual of x_{t-1}
    about μ̃(x_t, x0) must have zero mean, variance β̃_t and no correlation with x_t."""
    sched = make_schedule("linear", 50)
    n = 200_000
    x0 = torch.full((n, 1, 1, 1), 0.3, dtype=F64)
    prev = d.q_sample(
        sched, x0, torch.full((n,), k - 1), torch.randn(x0.shape, generator=_gen(2), dtype=F64)
    )
    beta = sched.betas[k].item()
    xt = math.sqrt(1 - beta) * prev + math.sqrt(beta) * torch.randn(
        x0.shape, generator=_gen(3), dtype=F64
    )
    mean, var, _ = d.q_posterior(sched, x0, xt, torch.full((n,), k))
    resid = (prev - mean).flatten()
    v = var[0].item()
    assert abs(resid.mean().item()) < 4 * math.sqrt(v / n)
    assert resid.var().item() == pytest.approx(v, rel=0.02)
    assert abs(torch.corrcoef(torch.stack([resid, xt.flatten()]))[0, 1].item()) < 0.01


def test_normal_kl_is_zero_for_equal_gaussians_and_matches_torch_distributions() -> None:
    g = _gen(4)
    m1, m2 = torch.randn(100, generator=g, dtype=F64), torch.randn(100, generator=g, dtype=F64)
    l1, l2 = torch.randn(100, generator=g, dtype=F64), torch.randn(100, generator=g, dtype=F64)
    assert torch.allclose(d.normal_kl(m1, l1, m1, l1), torch.zeros(100, dtype=F64), atol=1e-14)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * l1).exp()),
        torch.distributions.Normal(m2, (0.5 * l2).exp()),
    )
    assert torch.allclose(d.normal_kl(m1, l1, m2, l2), ref, rtol=1e-10)


def test_discretized_likelihood_is_a_distribution_over_the_bins() -> None:
    centres = torch.linspace(-1, 1, 256, dtype=F64)
    for mean, log_scale in [(0.1, math.log(0.05)), (-0.9, math.log(0.3)), (0.99, math.log(0.01))]:
        ll = d.discretized_gaussian_log_likelihood(
            centres,
            means=torch.full_like(centres, mean),
            log_scales=torch.full_like(centres, log_scale),
        )
        assert ll.exp().sum().item() == pytest.approx(1.0, abs=2e-3)
    # an inner bin is Φ((x + h - μ)/σ) - Φ((x - h - μ)/σ) (the tanh form of Φ is accurate to ~1e-3)
    x, mu, sigma, h = torch.tensor([0.2], dtype=F64), 0.25, 0.02, 1 / 255
    exact = torch.distributions.Normal(mu, sigma)
    p = (exact.cdf(x + h) - exact.cdf(x - h)).item()
    got = (
        d.discretized_gaussian_log_likelihood(
            x,
            means=torch.tensor([mu], dtype=F64),
            log_scales=torch.tensor([math.log(sigma)], dtype=F64),
        )
        .exp()
        .item()
    )
    assert got == pytest.approx(p, abs=2e-3)


def test_learned_range_variance_spans_beta_tilde_to_beta() -> None:
    sched = make_schedule("linear", 100)
    x = torch.zeros(1, 2, 2, 2, dtype=F64)
    t = torch.tensor([40])
    for v, want in [(1.0, sched.betas[40]), (-1.0, sched.posterior_variance[40])]:
        out = torch.cat([torch.zeros_like(x), torch.full_like(x, v)], 1)
        p = d.p_mean_variance(sched, out, x, t)
        assert torch.allclose(p.variance, torch.full_like(x, want.item()), rtol=1e-12)
    mid = d.p_mean_variance(sched, torch.cat([torch.zeros_like(x), torch.zeros_like(x)], 1), x, t)
    geo = math.sqrt(sched.betas[40].item() * sched.posterior_variance[40].item())
    assert torch.allclose(mid.variance, torch.full_like(x, geo), rtol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_every_prediction_type_recovers_x0_from_its_true_target(prediction: str) -> None:
    sched = make_schedule("cosine", 100)
    x0 = torch.rand(2, 3, 4, 4, generator=_gen(5), dtype=F64) * 2 - 1
    eps = torch.randn(x0.shape, generator=_gen(6), dtype=F64)
    t = torch.tensor([10, 90])
    xt = d.q_sample(sched, x0, t, eps)
    target = d.prediction_target(sched, x0, eps, t, prediction)  # type: ignore[arg-type]
    p = d.p_mean_variance(sched, target, xt, t, clip_denoised=False, prediction=prediction)  # type: ignore[arg-type]
    assert torch.allclose(p.pred_x0, x0, atol=1e-10)
    assert torch.allclose(p.eps, eps, atol=1e-9)
    true_mean, _, _ = d.q_posterior(sched, x0, xt, t)
    assert torch.allclose(p.mean, true_mean, atol=1e-10)


def test_vb_is_zero_when_the_model_is_the_true_posterior() -> None:
    sched = make_schedule("linear", 100)
    x0 = torch.rand(3, 2, 4, 4, generator=_gen(7), dtype=F64) * 2 - 1
    t = torch.tensor([5, 50, 99])
    xt = d.q_sample(sched, x0, t, torch.randn(x0.shape, generator=_gen(8), dtype=F64))
    out = _oracle(x0, sched, v=-1.0)(xt, t, torch.zeros(3, 0, 4, 4))  # v = -1: Σ = β̃_t
    assert torch.allclose(
        d.vb_terms_bpd(sched, out, x0, xt, t), torch.zeros(3, dtype=F64), atol=1e-10
    )
    wrong = _oracle(x0, sched, v=1.0)(xt, t, torch.zeros(3, 0, 4, 4))
    assert (d.vb_terms_bpd(sched, wrong, x0, xt, t) > 0).all()


def test_training_losses_shapes_oracle_and_stop_gradient() -> None:
    sched = respace(make_schedule("linear", 100), 100)
    x0 = torch.rand(4, 2, 4, 4, generator=_gen(9), dtype=F64) * 2 - 1
    eps = torch.randn(x0.shape, generator=_gen(10), dtype=F64)
    t = torch.tensor([0, 1, 50, 99])
    cond = torch.zeros(4, 1, 4, 4, dtype=F64)
    out = d.training_losses(_oracle(x0, sched), sched, x0, t, cond, eps)
    assert set(out) == {"loss", "mse", "vb", "pred_x0"}
    assert all(out[k].shape == (4,) for k in ("loss", "mse", "vb"))
    assert torch.allclose(out["mse"], torch.zeros(4, dtype=F64), atol=1e-18)
    assert torch.allclose(out["loss"], out["mse"] + d.LAMBDA_VLB * out["vb"])
    assert torch.allclose(out["pred_x0"], x0, atol=1e-10)

    eps_p = torch.zeros(1, 2, 4, 4, dtype=F64, requires_grad=True)
    v_p = torch.zeros(1, 2, 4, 4, dtype=F64, requires_grad=True)

    def net(x_t: torch.Tensor, tt: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.cat([eps_p, v_p], 1).expand(x_t.shape[0], -1, -1, -1)

    d.training_losses(net, sched, x0, t, cond, eps)["vb"].sum().backward()
    assert eps_p.grad is None or not eps_p.grad.any()  # the vb term only trains Σ_θ
    assert v_p.grad is not None and v_p.grad.abs().sum() > 0


def test_training_losses_uses_a_given_x_t_and_refuses_bad_outputs() -> None:
    sched = make_schedule("linear", 20)
    x0 = torch.zeros(1, 2, 2, 2, dtype=F64)
    given = torch.full_like(x0, 0.5)
    seen: list[torch.Tensor] = []

    def net(x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen.append(x_t)
        return torch.zeros_like(x_t)

    out = d.training_losses(net, sched, x0, torch.tensor([3]), x0, torch.ones_like(x0), x_t=given)
    assert seen[0] is given
    assert out["mse"].item() == pytest.approx(1.0) and out["vb"].item() == 0.0
    with pytest.raises(BadInputError):
        d.training_losses(
            lambda x, t, c: torch.zeros(1, 3, 2, 2, dtype=F64), sched, x0, torch.tensor([3]), x0, x0
        )


def test_pixel_weight_of_ones_is_the_plain_loss_and_zero_weight_pixels_do_not_count() -> None:
    sched = make_schedule("cosine", 40)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 17])

    def net(x_t: torch.Tensor, tt: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 * x_t, torch.tanh(x_t)], dim=1)  # a fixed, input-dependent "net"

    cond = torch.zeros(2, 0, 8, 8, dtype=torch.float64)
    plain = d.training_losses(net, sched, x0, t, cond, noise, prediction="v")
    ones = d.training_losses(net, sched, x0, t, cond, noise, prediction="v",
                             weight=torch.ones(2, 1, 8, 8))  # fmt: skip
    for key in ("mse", "vb", "loss"):
        torch.testing.assert_close(ones[key], plain[key])
    # the loss of a half-weighted image ignores the other half's target, whatever it holds
    weight = torch.zeros(2, 1, 8, 8)
    weight[..., :4] = 1
    x_t = d.q_sample(sched, x0, t, noise)
    other = x0.clone()
    other[..., 4:] = -x0[..., 4:]
    a = d.training_losses(net, sched, x0, t, cond, noise, x_t=x_t, prediction="x0", weight=weight)
    b = d.training_losses(net, sched, other, t, cond, noise, x_t=x_t, prediction="x0",
                          weight=weight)  # fmt: skip
    torch.testing.assert_close(a["mse"], b["mse"])
    assert not torch.allclose(a["mse"], plain["mse"])
