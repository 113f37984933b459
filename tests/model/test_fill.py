"""fill_gaps and what a checkpoint's config decides: scaling, SAR conditioning, clipping."""

from __future__ import annotations

import pytest
import torch

from clearcube import BadInputError
from clearcube.model import scaling
from clearcube.model.config import DiffusionConfig, ModelConfig, ScalingConfig, UNetConfig
from clearcube.model.fill import fill_gaps
from clearcube.model.schedule import from_config

F64 = torch.float64
SCALING = ScalingConfig(s2_shift=(-0.8, -0.5), s2_scale=(0.1, 0.4))


def _cfg(**diffusion: object) -> ModelConfig:
    return ModelConfig(
        unet=UNetConfig(in_channels=2, cond_channels=1, model_channels=8, channel_mult=(1,),
                        attention_ds=(), num_heads=1, norm_groups=4),
        diffusion=DiffusionConfig(timesteps=50, **diffusion),  # type: ignore[arg-type]
        s2_bands=("a", "b"), s1_bands=("v",), scaling=SCALING,
    )  # fmt: skip


def test_scaling_round_trips_and_maps_the_data_range_to_the_clip_bounds() -> None:
    x = torch.rand(3, 2, 4, 4, dtype=F64) * 2 - 1
    z = scaling.to_diffusion(x, SCALING)
    torch.testing.assert_close(z[:, 0], (x[:, 0] + 0.8) / 0.1)  # (x - shift) / scale
    torch.testing.assert_close(scaling.from_diffusion(z, SCALING), x)
    lo, hi = scaling.clip_bounds(SCALING, x)
    torch.testing.assert_close(lo.flatten(), torch.tensor([-2.0, -1.25], dtype=F64))
    torch.testing.assert_close(hi.flatten(), torch.tensor([18.0, 3.75], dtype=F64))
    assert scaling.to_diffusion(x, ScalingConfig()) is x  # identity: the paper


def test_fitted_scaling_standardises_to_half_unit_std() -> None:
    g = torch.Generator().manual_seed(0)
    x = (
        torch.randn(64, 2, 8, 8, generator=g, dtype=F64)
        * torch.tensor([0.05, 0.2], dtype=F64)[:, None, None]
        + torch.tensor([-0.7, -0.3], dtype=F64)[:, None, None]
    )
    fitted = scaling.fit_scaling(x)
    z = scaling.to_diffusion(x, fitted)
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(2, dtype=F64), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2, 3)), torch.full((2,), 0.5, dtype=F64), atol=1e-5,
                               rtol=0)  # fmt: skip


def test_scaling_config_is_checked_and_survives_the_checkpoint_dict() -> None:
    cfg = _cfg()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({}).scaling.is_identity  # old checkpoints: the paper's scale
    with pytest.raises(BadInputError, match="one value per band"):
        ScalingConfig(s2_shift=(0.0,), s2_scale=())
    with pytest.raises(BadInputError, match="> 0"):
        ScalingConfig(s2_shift=(0.0,), s2_scale=(0.0,))
    with pytest.raises(BadInputError, match="sar_noise"):
        DiffusionConfig(sar_noise="louder")  # type: ignore[arg-type]


def _x0_oracle(x0_model: torch.Tensor, cfg: ModelConfig, seen: list[torch.Tensor]):
    """A v-predicting network that knows x0 (in diffusion space) and records its SAR input."""
    full = from_config(cfg.diffusion)

    def net(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        seen.append(cond.clone())
        abar = full.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1, 1)
        eps = (x_t - abar.sqrt() * x0_model) / (1 - abar).sqrt()
        v = abar.sqrt() * eps - (1 - abar).sqrt() * x0_model
        return torch.cat([v, torch.zeros_like(v)], dim=1)

    return net


@pytest.mark.parametrize("sar_noise", ["clean", "same_t"])
def test_fill_gaps_returns_the_truth_from_an_oracle_and_keeps_clear_pixels(sar_noise: str) -> None:
    cfg = _cfg(prediction="v", schedule="cosine", sar_noise=sar_noise)
    g = torch.Generator().manual_seed(1)
    truth = torch.rand(1, 2, 8, 8, generator=g, dtype=F64) * 0.4 - 0.9  # paper scale, narrow
    # the clear observations differ from the truth (other dates), so keeping them is visible
    observed = torch.stack([truth + 0.05, truth - 0.03], dim=1)
    known = torch.rand(1, 2, 1, 8, 8, generator=g) < 0.3
    sar = torch.rand(1, 2, 1, 8, 8, generator=g, dtype=F64) * 2 - 1
    seen: list[torch.Tensor] = []
    out = fill_gaps(
        _x0_oracle(scaling.to_diffusion(truth, cfg.scaling), cfg, seen), cfg,
        observed=observed, known=known, sar=sar, generator=torch.Generator().manual_seed(2),
        sampler="ddim", steps=10,
    )  # fmt: skip
    count = known.sum(dim=1)
    fused = (observed * known).sum(dim=1) / count.clamp(min=1)
    want = torch.where(count > 0, fused, truth)  # Eq. 26: clear pixels fused, the rest the oracle's
    assert (count > 0).any() and (count == 0).any()
    torch.testing.assert_close(out, want, atol=1e-9, rtol=0)
    mean_sar = sar.mean(dim=1)
    if sar_noise == "clean":  # every call sees the dates' mean clean SAR
        assert all(torch.equal(c, mean_sar) for c in seen)
    else:  # Eq. 19-20: noised, so only the last call (ε_a = 0, ᾱ_0 ≈ 1) is close to it
        assert not torch.allclose(seen[0], mean_sar, atol=0.1)
        torch.testing.assert_close(seen[-1], mean_sar, atol=1e-2, rtol=0)


def test_scaled_model_clips_x0_to_the_data_range_in_its_own_space() -> None:
    cfg = _cfg(prediction="x0", schedule="cosine")

    def wild(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x0 = torch.full_like(x_t, 1e3)  # far outside any data range
        return torch.cat([x0, torch.zeros_like(x0)], dim=1)

    observed = torch.zeros(1, 1, 2, 4, 4, dtype=F64)
    known = torch.zeros(1, 1, 1, 4, 4, dtype=torch.bool)
    out = fill_gaps(wild, cfg, observed=observed, known=known,
                    sar=torch.zeros(1, 1, 1, 4, 4, dtype=F64),
                    generator=torch.Generator().manual_seed(0), sampler="ddim", steps=5)  # fmt: skip
    torch.testing.assert_close(out, torch.ones_like(out), atol=1e-9, rtol=0)  # the top of [-1, 1]
