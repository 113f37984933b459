"""Samplers (clearcube.model.samplers): oracle recovery, known pixels, L = 1..6, determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clearcube import BadInputError
from clearcube.model.noise import CoordinateNoise
from clearcube.model.samplers import sample_ddim, sample_ddpm, sample_seqtis
from clearcube.model.schedule import Schedule, make_schedule, respace
from clearcube.model.seqtis import SeqTISInputs

F64 = torch.float64
T = 60


def _oracle(x0: torch.Tensor, full: Schedule):
    """The network that knows x0 (learned-range output, v = 0)."""

    def net(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.int64 and int(t.max()) < full.num_steps  # original steps
        abar = full.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1, 1)
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
        return torch.cat([eps, torch.zeros_like(eps)], dim=1)

    return net


def _data(
    b: int = 2,
    length: int = 3,
    c: int = 2,
    cs: int = 2,
    hw: int = 8,
    p_clear: float = 0.0,
    seed: int = 0,
):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(b, c, hw, hw, generator=g, dtype=F64) * 1.6 - 0.8
    obs = torch.rand(b, length, c, hw, hw, generator=g, dtype=F64) * 2 - 1
    known = torch.rand(b, length, 1, hw, hw, generator=g) < p_clear
    sar = torch.rand(b, length, cs, hw, hw, generator=g, dtype=F64) * 2 - 1
    return x0, SeqTISInputs(obs, known, sar)


CHAINS = {
    "ddpm": lambda full: (sample_ddpm, full, {}),
    "ddpm-respaced": lambda full: (sample_ddpm, respace(full, 10), {}),
    "ddim": lambda full: (sample_ddim, respace(full, "ddim10"), {}),
    "ddim-eta": lambda full: (sample_ddim, respace(full, 7), {"eta": 0.7}),
}


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("conditioned", [False, True])
def test_oracle_network_makes_every_sampler_return_x0(chain: str, conditioned: bool) -> None:
    full = make_schedule("linear", T)
    x0, cond = _data()  # no date is clear: every pixel is unknown
    fn, sched, kw = CHAINS[chain](full)
    out = fn(
        _oracle(x0, full),
        sched,
        shape=tuple(x0.shape),
        noise=torch.Generator().manual_seed(1),
        condition=cond if conditioned else None,
        dtype=F64,
        **kw,
    )
    assert torch.allclose(out, x0, atol=1e-9)


@pytest.mark.parametrize("chain", list(CHAINS))
def test_known_pixels_come_out_as_the_mean_of_the_clear_dates(chain: str) -> None:
    full = make_schedule("cosine", T)
    x0, cond = _data(p_clear=0.4, seed=3)
    fn, sched, kw = CHAINS[chain](full)
    out = fn(
        _oracle(x0, full),
        sched,
        shape=tuple(x0.shape),
        noise=torch.Generator().manual_seed(2),
        condition=cond,
        **kw,
    )
    clear = cond.known.expand_as(cond.observed)
    count = clear.sum(1)
    mean_clear = (cond.observed * clear).sum(1) / count.clamp(min=1)
    assert (count > 0).any() and (count == 0).any()
    want = torch.where(count > 0, mean_clear, x0)  # Eq. 26 at the last step; the oracle elsewhere
    assert torch.allclose(out, want, atol=1e-9)


def test_sample_seqtis_is_the_respaced_sampler_and_is_deterministic() -> None:
    full = make_schedule("linear", T)
    x0, cond = _data(p_clear=0.5, seed=4)
    net = _oracle(x0, full)
    calls: list[tuple[int, int]] = []
    kwargs = {"observed": cond.observed, "known": cond.known, "sar": cond.sar}
    a = sample_seqtis(
        net,
        full,
        **kwargs,
        generator=torch.Generator().manual_seed(5),
        sampler="ddim",
        steps="ddim10",
        eta=0.5,
        progress=lambda i, n: calls.append((i, n)),
    )
    b = sample_ddim(
        net,
        respace(full, "ddim10"),
        shape=tuple(x0.shape),
        noise=torch.Generator().manual_seed(5),
        condition=cond,
        eta=0.5,
    )
    assert torch.equal(a, b)
    assert calls == [(i, 10) for i in range(1, 11)]


class _TinyNet(nn.Module):
    """A small conv net with the U-Net's contract; random weights, no training."""

    def __init__(self, c: int, cs: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(c + cs, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 2 * c, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv1(torch.cat([x, cond], 1)) + t.view(-1, 1, 1, 1).float() / 100)
        return torch.tanh(self.conv2(h))


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 6])
def test_any_sequence_length_runs_with_one_network(length: int) -> None:
    net = _TinyNet(3, 2)
    full = make_schedule("linear", T)
    _, cond = _data(b=1, length=length, c=3, p_clear=0.3, seed=length)
    obs = cond.observed.float()
    out = sample_seqtis(
        net,
        full,
        observed=obs,
        known=cond.known,
        sar=cond.sar.float(),
        generator=torch.Generator().manual_seed(0),
        sampler="ddpm",
        steps=5,
    )
    assert out.shape == (1, 3, 8, 8) and torch.isfinite(out).all()
    clear = cond.known.expand_as(obs)
    count = clear.sum(1)
    mean_clear = (obs * clear).sum(1) / count.clamp(min=1)
    assert torch.allclose(out[count > 0], mean_clear[count > 0], atol=1e-6)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_are_deterministic_given_the_noise_source(sampler: str) -> None:
    net = _TinyNet(2, 2)
    full = make_schedule("linear", T)
    _, cond = _data(b=1, p_clear=0.3, seed=9)
    kw = {
        "observed": cond.observed.float(),
        "known": cond.known,
        "sar": cond.sar.float(),
        "sampler": sampler,
        "steps": 6,
        "eta": 1.0,
    }

    def run(noise: object) -> torch.Tensor:
        return sample_seqtis(net, full, generator=noise, **kw)  # type: ignore[arg-type]

    assert torch.equal(run(torch.Generator().manual_seed(1)), run(torch.Generator().manual_seed(1)))
    assert not torch.equal(
        run(torch.Generator().manual_seed(1)), run(torch.Generator().manual_seed(2))
    )
    assert torch.equal(run(CoordinateNoise(3, (64, 32))), run(CoordinateNoise(3, (64, 32))))
    assert not torch.equal(run(CoordinateNoise(3, (64, 32))), run(CoordinateNoise(4, (64, 32))))


@pytest.mark.parametrize(("sampler", "timesteps"), [("ddpm", 100), ("ddim", 200)])
def test_exact_denoiser_of_gaussian_data_samples_that_gaussian(
    sampler: str, timesteps: int
) -> None:
    """For x0 ~ N(μ, s²) the optimal ε̂(x_t) = √(1-ᾱ)(x_t - √ᾱ μ)/(ᾱ s² + 1 - ᾱ) is known in
    closed form; sampling with it over the full chain must give N(μ, s²) back."""
    full = make_schedule("linear", timesteps)
    mu, s = 0.2, 0.3

    def net(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a = full.alphas_cumprod[t].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s * s + 1 - a)

    fn = sample_ddpm if sampler == "ddpm" else sample_ddim
    x = fn(
        net,
        full,
        shape=(1, 1, 100, 100),
        noise=CoordinateNoise(0, (0, 0)),
        clip_denoised=False,
        dtype=F64,
    )
    assert x.mean().item() == pytest.approx(mu, abs=0.012)
    assert x.std().item() == pytest.approx(s, abs=0.012)


def test_bad_sampler_arguments_are_refused() -> None:
    full = make_schedule("linear", T)
    x0, cond = _data()
    kw = {
        "observed": cond.observed,
        "known": cond.known,
        "sar": cond.sar,
        "generator": torch.Generator(),
    }
    with pytest.raises(BadInputError):
        sample_seqtis(_oracle(x0, full), full, **kw, sampler="euler")  # type: ignore[arg-type]
    with pytest.raises(BadInputError):
        sample_ddim(_oracle(x0, full), full, shape=(2, 2, 8, 8), noise=torch.Generator(), eta=-1)
    with pytest.raises(BadInputError):
        sample_ddpm(
            _oracle(x0, full), full, shape=(2, 2, 4, 4), noise=torch.Generator(), condition=cond
        )


@pytest.mark.parametrize("steps", [None, 8, "ddim8"])
def test_fused_inputs_sit_on_the_noise_level_of_the_chain(steps: int | str | None) -> None:
    """All L dates clear with value 0 and SAR 0: the network must see x_t = √(1-ᾱ_k)/√L·N(0, 1)
    (the known merge of the previous step averaged L dates noised to this chain's level, Eqs.
    21-23 at its t-1) and Ã_t = √(1-ᾱ_k)/√L·N(0, 1) (Eqs. 19-20), with ε_a = 0 at the last
    step. (Averaging independently noised dates shrinks the noise by √n where n dates are
    clear: a property of Eq. 23 as written.)"""
    full = make_schedule("linear", 40)
    chain = full if steps is None else respace(full, steps)
    length, hw = 4, 64
    seen: list[tuple[int, float, float]] = []

    def net(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        seen.append((int(t[0]), x.std().item(), cond.std().item()))
        return torch.zeros_like(x)

    zeros = torch.zeros(1, length, 1, hw, hw, dtype=F64)
    sample_seqtis(
        net,
        full,
        observed=zeros,
        known=torch.ones_like(zeros, dtype=torch.bool),
        sar=zeros,
        generator=CoordinateNoise(1, (0, 0)),
        sampler="ddim",
        steps=steps,
    )
    assert [s[0] for s in seen] == chain.timestep_map.flip(0).tolist()
    abar = dict(zip(chain.timestep_map.tolist(), chain.alphas_cumprod.tolist(), strict=True))
    for i, (t, x_std, cond_std) in enumerate(seen):
        level = (1 - abar[t]) ** 0.5
        if i > 0:
            assert x_std == pytest.approx(level / length**0.5, rel=0.06)
        assert cond_std == pytest.approx(
            0.0 if i == len(seen) - 1 else level / length**0.5, rel=0.06, abs=1e-12
        )
