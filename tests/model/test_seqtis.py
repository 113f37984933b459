"""SeqTIS fusion modules and the temporal training strategy (clearcube.model.seqtis)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from clearcube import BadInputError
from clearcube.model import noise as noise_mod
from clearcube.model import seqtis
from clearcube.model.noise import CoordinateNoise
from clearcube.model.schedule import make_schedule
from clearcube.model.seqtis import SeqTISInputs

F64 = torch.float64
NAN = float("nan")


def _t(rows: list[list[list[float]]]) -> torch.Tensor:
    """(L, H, W) nested lists -> (1, L, 1, H, W) float64."""
    return torch.tensor(rows, dtype=F64)[None, :, None]


def test_sar_fusion_equals_hand_derived_values() -> None:
    sar = _t([[[1, -1], [0.5, 0]], [[0, 1], [0.5, -0.5]]])
    eps = _t([[[0.5, 0], [1, -1]], [[-0.5, 1], [0, 1]]])
    # ᾱ = 0.64: a^l = 0.8 a_0^l + 0.6 ε^l (Eq. 19) -> [[1.1, -0.8], [1.0, -0.6]] and
    # [[-0.3, 1.4], [0.4, 0.2]]; their mean (Eq. 20):
    want = torch.tensor([[[[0.4, 0.3], [0.7, -0.2]]]], dtype=F64)
    assert torch.allclose(seqtis.fuse_sar(sar, 0.64, eps), want, atol=1e-14)


def test_optical_fusion_equals_hand_derived_values_and_ignores_cloudy_values() -> None:
    obs = _t([[[1, 0.5], [NAN, NAN]], [[0, NAN], [0.25, NAN]]])
    known = _t([[[1, 1], [0, 0]], [[1, 0], [1, 0]]]).bool()
    eps = _t([[[0.5, -1], [2, 3]], [[1, 0], [-1, 2]]])
    # ᾱ = 0.64 (Eq. 21): frame 1 -> [[1.1, -0.2], ...], frame 2 -> [[0.6, ...], [-0.4, ...]].
    # Eq. 23: (0,0) both clear: (1.1 + 0.6)/2; (0,1) frame 1 only; (1,0) frame 2 only; (1,1) none.
    want = torch.tensor([[[[0.85, -0.2], [-0.4, 0.0]]]], dtype=F64)
    fused = seqtis.fuse_optical(obs, known, 0.64, eps)
    assert torch.allclose(fused, want, atol=1e-14)
    region = seqtis.region_mask(known)  # Eq. 25
    assert region.tolist() == [[[[True, True], [True, False]]]]
    unknown = torch.full_like(fused, 9.0)
    merged = seqtis.merge(region, fused, unknown)  # Eq. 26
    assert torch.allclose(
        merged, torch.tensor([[[[0.85, -0.2], [-0.4, 9.0]]]], dtype=F64), atol=1e-14
    )


def test_clean_level_fusion_is_the_mean_of_clear_dates_per_band() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(2, 4, 3, 5, 5, generator=g, dtype=F64)
    known = torch.rand(2, 4, 3, 5, 5, generator=g) < 0.4  # a mask per band
    fused = seqtis.fuse_optical(obs, known, 1.0, torch.randn(obs.shape, generator=g, dtype=F64))
    count = known.sum(1)
    mean = (obs * known).sum(1) / count.clamp(min=1)
    assert torch.allclose(fused, torch.where(count > 0, mean, 0.0), atol=1e-12)
    for c in range(3):  # one band at a time gives the same
        alone = seqtis.fuse_optical(
            obs[:, :, c : c + 1], known[:, :, c : c + 1], 1.0, torch.zeros_like(obs[:, :, :1])
        )
        assert torch.allclose(alone[:, 0], fused[:, c], atol=1e-12)


def test_fusion_is_finite_in_float16() -> None:
    obs = torch.zeros(1, 2, 1, 2, 2, dtype=torch.float16)
    known = torch.zeros(1, 2, 1, 2, 2, dtype=torch.bool)
    assert torch.isfinite(
        seqtis.fuse_optical(obs, known, 0.5, obs)
    ).all()  # s would underflow in fp16


def test_inputs_are_validated() -> None:
    obs = torch.zeros(1, 2, 3, 4, 4)
    ok = SeqTISInputs(obs, torch.ones(1, 2, 1, 4, 4, dtype=torch.bool), torch.zeros(1, 2, 2, 4, 4))
    assert ok.length == 2
    bad = [
        (obs, torch.ones(1, 2, 1, 4, 4), torch.zeros(1, 2, 2, 4, 4)),  # float mask
        (obs, torch.ones(1, 2, 2, 4, 4, dtype=torch.bool), torch.zeros(1, 2, 2, 4, 4)),  # 2 != 1|3
        (obs, torch.ones(1, 2, 1, 4, 4, dtype=torch.bool), torch.zeros(1, 3, 2, 4, 4)),  # L differs
        (
            obs[:, :0],
            torch.ones(1, 0, 1, 4, 4, dtype=torch.bool),
            torch.zeros(1, 0, 2, 4, 4),
        ),  # L = 0
        (obs[0], torch.ones(2, 1, 4, 4, dtype=torch.bool), torch.zeros(2, 2, 4, 4)),  # 4-D
    ]
    for o, k, s in bad:
        with pytest.raises(BadInputError):
            SeqTISInputs(o, k, s)


class _ConstantStreams:
    """A NoiseSource whose every draw of a stream is one constant."""

    def __init__(self, values: dict[int, float]):
        self.values = values

    def __call__(
        self,
        shape: Sequence[int],
        *,
        step: int,
        stream: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        return torch.full(tuple(shape), self.values[stream], dtype=dtype, device=device)


def test_eq_28_inputs_equal_hand_derived_values() -> None:
    sched = make_schedule("linear", 100)
    src = _ConstantStreams(
        {
            noise_mod.optical_stream(0): 1.0,
            noise_mod.optical_stream(1): -1.0,
            noise_mod.sar_stream(0): 0.5,
            noise_mod.sar_stream(1): 0.25,
            noise_mod.STREAM_TRAIN_UNKNOWN: 7.0,
        }
    )
    obs = torch.tensor([0.2, -0.6], dtype=F64).view(1, 2, 1, 1, 1).expand(2, 2, 1, 1, 3).clone()
    known = (
        torch.tensor([[True, True, False], [True, False, False]])
        .view(1, 2, 1, 1, 3)
        .expand(2, -1, -1, -1, -1)
    )
    # pixel 0 clear in both dates, pixel 1 in date 0 only, pixel 2 in none
    assert known[0, :, 0, 0].tolist() == [[True, True, False], [True, False, False]]
    sar = torch.tensor([0.4, 0.0], dtype=F64).view(1, 2, 1, 1, 1).expand(2, 2, 1, 1, 3).clone()
    t = torch.tensor([30, 0])
    x_t, a_t = seqtis.temporal_training_inputs(sched, SeqTISInputs(obs, known, sar), t, src)
    r = math.sqrt(sched.alphas_cumprod[30].item())
    q = math.sqrt(1 - sched.alphas_cumprod[30].item())
    r0 = math.sqrt(sched.alphas_cumprod[0].item())
    frame0, frame1 = r * 0.2 + q * 1.0, r * -0.6 + q * -1.0
    assert x_t[0, 0, 0].tolist() == pytest.approx([(frame0 + frame1) / 2, frame0, 7.0], abs=1e-12)
    # t = 0 (the paper's t = 1): Algorithm 2 zeroes ε_x^l and ε_a^l; the fill stays N(0, I)
    assert x_t[1, 0, 0].tolist() == pytest.approx([r0 * (0.2 - 0.6) / 2, r0 * 0.2, 7.0], abs=1e-12)
    assert a_t[0].flatten().tolist() == pytest.approx([r * 0.2 + q * 0.375] * 3, abs=1e-12)
    assert a_t[1].flatten().tolist() == pytest.approx([r0 * 0.2] * 3, abs=1e-12)


class _TinyNet(nn.Module):
    def __init__(self, c: int, cs: int):
        super().__init__()
        self.conv = nn.Conv2d(c + cs, 2 * c, 3, padding=1, dtype=F64)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, cond], 1)) + t.view(-1, 1, 1, 1).to(x.dtype) / 1000


def test_cloudy_step_equals_clean_step_when_every_date_is_the_clear_target() -> None:
    """With L copies of the target, all clear, and the same noise in every stream, Eq. 28's
    X_t and Ã_t are Eq. 27's inputs, so the two losses agree; both backpropagate."""
    sched = make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 4, 4, generator=g, dtype=F64) * 2 - 1
    target_sar = torch.rand(2, 2, 4, 4, generator=g, dtype=F64) * 2 - 1
    inputs = SeqTISInputs(
        target[:, None].expand(-1, 3, -1, -1, -1),
        torch.ones(2, 3, 1, 4, 4, dtype=torch.bool),
        target_sar[:, None].expand(-1, 3, -1, -1, -1),
    )
    coord = CoordinateNoise(5, (0, 0))

    def same_noise(
        shape: Sequence[int],
        *,
        step: int,
        stream: int,
        dtype: torch.dtype = F64,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        return coord(shape, step=0, stream=0, dtype=dtype, device=device)

    net = _TinyNet(3, 2)
    out = seqtis.temporal_training_losses(
        net,
        sched,
        target=target,
        target_sar=target_sar,
        inputs=inputs,
        t=torch.tensor([3, 60]),
        source=same_noise,
    )
    assert set(out) >= {
        "loss",
        "loss_clean",
        "loss_cloudy",
        "mse_clean",
        "vb_clean",
        "mse_cloudy",
        "vb_cloudy",
    }
    assert torch.allclose(out["loss_cloudy"], out["loss_clean"], rtol=1e-9)
    assert torch.allclose(out["loss"], out["loss_clean"] + out["loss_cloudy"])
    out["loss"].mean().backward()
    assert net.conv.weight.grad is not None and net.conv.weight.grad.abs().sum() > 0
    # with real clouds and independent noise the cloudy step differs
    cloudy = SeqTISInputs(inputs.observed, torch.rand(2, 3, 1, 4, 4, generator=g) < 0.3, inputs.sar)
    out2 = seqtis.temporal_training_losses(
        net,
        sched,
        target=target,
        target_sar=target_sar,
        inputs=cloudy,
        t=torch.tensor([3, 60]),
        source=torch.Generator().manual_seed(0),
    )
    assert not torch.allclose(out2["loss_cloudy"], out2["loss_clean"])


def test_consistent_eq_28_is_zero_for_the_network_that_maps_any_input_to_the_target() -> None:
    """The consistent cloudy step scores x̂_0 of the actual fused X_t against the target: an
    oracle that returns the v taking X_t to the target has zero loss there, whatever noise built
    X_t; the paper's form (regressing the clean pair's ε) does not."""
    sched = make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, 4, 4, generator=g, dtype=F64) * 2 - 1
    target_sar = torch.rand(2, 2, 4, 4, generator=g, dtype=F64) * 2 - 1
    inputs = SeqTISInputs(
        torch.rand(2, 3, 3, 4, 4, generator=g, dtype=F64) * 2 - 1,
        torch.rand(2, 3, 1, 4, 4, generator=g) < 0.4,
        torch.rand(2, 3, 2, 4, 4, generator=g, dtype=F64) * 2 - 1,
    )

    def oracle(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
        v = (abar.sqrt() * x_t - target) / (1 - abar).sqrt()  # x̂_0 = √ᾱ x_t − √(1−ᾱ) v
        return torch.cat([v, torch.zeros_like(v)], dim=1)

    common = {"target": target, "target_sar": target_sar, "inputs": inputs,
              "t": torch.tensor([5, 70]), "prediction": "v"}  # fmt: skip
    consistent = seqtis.temporal_training_losses(
        oracle, sched, source=torch.Generator().manual_seed(0), temporal_target="consistent",
        **common,  # type: ignore[arg-type]
    )  # fmt: skip
    torch.testing.assert_close(consistent["mse_cloudy"], torch.zeros(2, dtype=F64), atol=1e-18,
                               rtol=0)  # fmt: skip
    paper = seqtis.temporal_training_losses(
        oracle, sched, source=torch.Generator().manual_seed(0), **common,  # type: ignore[arg-type]
    )  # fmt: skip
    assert bool((paper["mse_cloudy"] > 1e-3).all())
