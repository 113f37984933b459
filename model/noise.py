"""Noise sources for the samplers: a torch generator, or noise keyed by global pixel coordinates.

Every random draw of a sampler (x_T, the per-step noise, the per-frame fusion noises ε_x^l and
ε_a^l of Eqs. 19 and 21) goes through a :class:`NoiseSource` with its own *stream* id and the
step it belongs to. :class:`CoordinateNoise` makes the draw a pure function of
``(seed, sample, step, stream, band, global y, global x)``: two overlapping tiles then draw
identical noise on their shared pixels, whatever the tiling or the order of the tasks
(DESIGN.md, "Noise").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from clearcube import BadInputError

#: Stream of the initial sample x_T ~ N(0, I) (Algorithm 1, line 1).
STREAM_INIT = 0
#: Stream of the ancestral / DDIM step noise z of each reverse step (Eq. 24).
STREAM_STEP = 1
#: Streams of the temporal training strategy (Algorithm 2): ε_x̂, ε_â, and the N(0, I) fill.
STREAM_TRAIN_TARGET = 2
STREAM_TRAIN_TARGET_SAR = 3
STREAM_TRAIN_UNKNOWN = 4
_OPTICAL_BASE = 1_000
_SAR_BASE = 2_000
#: Longest sequence whose frames get distinct streams.
MAX_FRAMES = 1_000


def optical_stream(frame: int) -> int:
    """Stream of ε_x^l, the noise diffusing optical frame ``l`` (Eq. 21)."""
    return _OPTICAL_BASE + _check_frame(frame)


def sar_stream(frame: int) -> int:
    """Stream of ε_a^l, the noise diffusing SAR frame ``l`` (Eq. 19)."""
    return _SAR_BASE + _check_frame(frame)


class NoiseSource(Protocol):
    """Draws standard normal noise for one purpose (``stream``) at one sampler ``step``."""

    def __call__(
        self,
        shape: Sequence[int],
        *,
        step: int,
        stream: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Return N(0, I) noise of ``shape`` = (B, C, H, W)."""
        ...


class TorchNoise:
    """Noise from a ``torch.Generator``: deterministic given the seed and the order of draws."""

    def __init__(self, generator: torch.Generator):
        """Wrap ``generator``; draws happen on its device and are moved to the requested one."""
        self.generator = generator

    def __call__(
        self,
        shape: Sequence[int],
        *,
        step: int,
        stream: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Return N(0, I) noise of ``shape``; ``step`` and ``stream`` are not used."""
        z = torch.randn(
            tuple(shape), generator=self.generator, dtype=dtype, device=self.generator.device
        )
        return z.to(device)


class CoordinateNoise:
    """Counter-based noise: a hash of (seed, sample, step, stream, band, global y, global x).

    The hash is a chain of splitmix64 finalisers computed with torch int64 ops (on the
    requested device); its 64-bit output gives two 32-bit uniforms and one normal value by
    Box-Muller. Batch element ``b`` of a draw covers global rows ``origin[b][0] + 0..H-1`` and
    columns ``origin[b][1] + 0..W-1``.
    """

    def __init__(
        self,
        seed: int,
        origin: tuple[int, int] | Sequence[tuple[int, int]] = (0, 0),
        *,
        sample: int | Sequence[int] | None = None,
    ):
        """Key the noise.

        Args:
            seed: the run's seed.
            origin: global pixel (y0, x0) of the tile's top-left corner, or one per batch
                element when a batch holds several tiles.
            sample: the sample index per batch element (several stochastic samples of one
                tile); one int for all; ``None``: the batch index. Tiles of one batch that
                must agree on their overlaps need the same sample index (e.g. ``sample=0``).
        """
        self.seed = int(seed)
        first = origin[0]
        if isinstance(first, int):
            self.origins: list[tuple[int, int]] | None = None
            self.origin = (int(origin[0]), int(origin[1]))  # type: ignore[arg-type]
        else:
            self.origins = [(int(o[0]), int(o[1])) for o in origin]  # type: ignore[index]
            self.origin = self.origins[0]
        self.sample = sample

    def __call__(
        self,
        shape: Sequence[int],
        *,
        step: int,
        stream: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Return N(0, I) noise of ``shape`` = (B, C, H, W), a pure function of its key."""
        if len(shape) != 4:
            raise BadInputError(
                f"CoordinateNoise draws (B, C, H, W) noise; got shape {tuple(shape)}"
            )
        b, c, h, w = (int(n) for n in shape)
        origins = self.origins if self.origins is not None else [self.origin] * b
        if len(origins) != b:
            raise BadInputError(f"CoordinateNoise has {len(origins)} origins for a batch of {b}")
        if self.sample is None:
            samples = list(range(b))
        elif isinstance(self.sample, int):
            samples = [self.sample] * b
        else:
            samples = [int(s) for s in self.sample]
            if len(samples) != b:
                raise BadInputError(
                    f"CoordinateNoise has {len(samples)} samples for a batch of {b}"
                )
        key = _mix_int(_mix_int(_mix_int(self.seed) ^ (step & _MASK64)) ^ (stream & _MASK64))

        def i64(values: Sequence[int] | int) -> Tensor:
            if isinstance(values, int):
                return torch.arange(values, dtype=torch.int64, device=device)
            return torch.tensor(list(values), dtype=torch.int64, device=device)

        sample_t = i64(samples)
        oy = i64([o[0] for o in origins])
        ox = i64([o[1] for o in origins])
        gy = oy[:, None] + i64(h)[None, :]  # (B, H)
        gx = ox[:, None] + i64(w)[None, :]  # (B, W)
        hb = _mix(sample_t ^ _signed(key))  # (B,)
        hc = _mix(hb[:, None] ^ i64(c)[None, :])  # (B, C)
        hy = _mix(hc[:, :, None] ^ gy[:, None, :])  # (B, C, H)
        hx = _mix(hy[:, :, :, None] ^ gx[:, None, None, :])  # (B, C, H, W)
        return _box_muller(hx).to(dtype)


_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """An unsigned 64-bit value as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def _mix_int(x: int) -> int:
    """splitmix64 on Python ints (exact, unsigned)."""
    z = (x + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MUL1) & _MASK64
    z = ((z ^ (z >> 27)) * _MUL2) & _MASK64
    return z ^ (z >> 31)


def _srl(x: Tensor, k: int) -> Tensor:
    # torch's >> on int64 is arithmetic; masking the sign-extended bits makes it logical.
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(x: Tensor) -> Tensor:
    """splitmix64 on int64 tensors; products wrap modulo 2**64 like the unsigned original."""
    z = x + _signed(_GOLDEN)
    z = (z ^ _srl(z, 30)) * _signed(_MUL1)
    z = (z ^ _srl(z, 27)) * _signed(_MUL2)
    return z ^ _srl(z, 31)


def _box_muller(bits: Tensor) -> Tensor:
    """One N(0, 1) value (float64) per 64-bit word: its high and low halves are two uniforms."""
    u1 = (_srl(bits, 32).double() + 0.5) / 2.0**32  # in (0, 1): the log stays finite
    u2 = ((bits & 0xFFFFFFFF).double() + 0.5) / 2.0**32
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)


def as_noise_source(noise: NoiseSource | torch.Generator | None) -> NoiseSource:
    """A generator becomes :class:`TorchNoise`; a :class:`NoiseSource` is returned as is."""
    if noise is None:
        raise BadInputError(
            "samplers need explicit randomness: pass a torch.Generator or a NoiseSource"
        )
    if isinstance(noise, torch.Generator):
        return TorchNoise(noise)
    return noise


def _check_frame(frame: int) -> int:
    if not 0 <= frame < MAX_FRAMES:
        raise BadInputError(f"sequence frame {frame} out of range 0..{MAX_FRAMES - 1}")
    return frame
