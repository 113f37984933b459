"""Noise sources (clearcube.model.noise): normality, tile agreement, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from clearcube import BadInputError
from clearcube.model import noise as noise_mod
from clearcube.model.noise import CoordinateNoise, TorchNoise, as_noise_source


def test_int64_splitmix_matches_exact_unsigned_arithmetic() -> None:
    values = [0, 1, 2**63 - 1, 2**63, 2**64 - 1, 0x0123456789ABCDEF, 0xFEDCBA9876543210]
    values += [
        int(v) & (2**64 - 1)
        for v in torch.randint(-(2**62), 2**62, (50,), generator=torch.Generator().manual_seed(0))
    ]
    as_signed = torch.tensor([noise_mod._signed(v) for v in values], dtype=torch.int64)
    mixed = noise_mod._mix(as_signed)
    assert [int(m) & (2**64 - 1) for m in mixed.tolist()] == [noise_mod._mix_int(v) for v in values]


def test_coordinate_noise_is_standard_normal() -> None:
    z = CoordinateNoise(seed=7, origin=(123, -45))(
        (4, 5, 70, 72), step=3, stream=1, dtype=torch.float64
    )
    flat = z.flatten()
    assert flat.numel() > 100_000
    assert abs(flat.mean().item()) < 0.01
    assert abs(flat.std().item() - 1.0) < 0.01
    srt, _ = flat.sort()
    n = srt.numel()
    normal_cdf = 0.5 * (1 + torch.erf(srt / math.sqrt(2)))
    ks = (normal_cdf - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max().item()
    assert ks < 1.63 / math.sqrt(n)  # Kolmogorov-Smirnov at the 1 % level
    for dim in (-1, -2, 1, 0):  # neighbouring pixels, bands and samples are uncorrelated
        a, b = (
            z.narrow(dim, 0, z.shape[dim] - 1).flatten(),
            z.narrow(dim, 1, z.shape[dim] - 1).flatten(),
        )
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.02


def test_overlapping_tiles_draw_identical_noise_on_shared_pixels() -> None:
    shape = (1, 3, 16, 16)
    left = CoordinateNoise(seed=1, origin=(100, 200), sample=0)(shape, step=5, stream=2)
    right = CoordinateNoise(seed=1, origin=(104, 210), sample=0)(shape, step=5, stream=2)
    assert torch.equal(left[..., 4:, 10:], right[..., :12, :6])
    assert not torch.isclose(left[..., :, :10], right[..., :, :10]).any()
    # a batch of two tiles gives what the tiles give alone
    both = CoordinateNoise(seed=1, origin=[(100, 200), (104, 210)], sample=0)(
        (2, 3, 16, 16), step=5, stream=2
    )
    assert torch.equal(both[0], left[0]) and torch.equal(both[1], right[0])


@pytest.mark.parametrize("change", ["seed", "step", "stream", "sample"])
def test_every_key_part_changes_the_noise(change: str) -> None:
    base = {"seed": 3, "step": 4, "stream": 5, "sample": 0}
    other = dict(base, **{change: base[change] + 1})

    def draw(k: dict[str, int]) -> torch.Tensor:
        return CoordinateNoise(k["seed"], (0, 0), sample=k["sample"])(
            (1, 2, 8, 8), step=k["step"], stream=k["stream"]
        )

    a, b = draw(base), draw(other)
    assert torch.equal(a, draw(base))
    assert not torch.isclose(a, b).any()
    assert not torch.isclose(a[:, 0], a[:, 1]).any()  # bands differ too


def test_default_sample_index_is_the_batch_index() -> None:
    z = CoordinateNoise(9, (0, 0))((2, 1, 4, 4), step=0, stream=0)
    assert not torch.isclose(z[0], z[1]).any()
    one = CoordinateNoise(9, (0, 0), sample=1)((1, 1, 4, 4), step=0, stream=0)
    assert torch.equal(z[1], one[0])


def test_torch_noise_is_deterministic_given_the_seed() -> None:
    a = TorchNoise(torch.Generator().manual_seed(5))((2, 3), step=0, stream=0)
    b = TorchNoise(torch.Generator().manual_seed(5))((2, 3), step=9, stream=9)
    assert torch.equal(a, b)


def test_bad_noise_requests_are_refused() -> None:
    with pytest.raises(BadInputError):
        as_noise_source(None)
    with pytest.raises(BadInputError):
        CoordinateNoise(0)((2, 3), step=0, stream=0)
    with pytest.raises(BadInputError):
        CoordinateNoise(0, [(0, 0)])((2, 1, 2, 2), step=0, stream=0)
    with pytest.raises(BadInputError):
        noise_mod.optical_stream(noise_mod.MAX_FRAMES)
    assert noise_mod.optical_stream(3) != noise_mod.sar_stream(3)
