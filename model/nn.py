"""Building blocks of the ADM-style U-Net: timestep embedding, residual and attention blocks.

Written for clearcube after the architecture of "Diffusion Models Beat GANs" (Dhariwal & Nichol,
2021), which the SeqDMs paper uses (§4.4): GroupNorm with adaptive scale-shift from the
timestep embedding, BigGAN-style residual up/down sampling, multi-head QKV self-attention,
and zero-initialised output projections so every residual branch starts as the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RowLinear(nn.Linear):
    """``nn.Linear`` that, in eval mode, maps each row of a (B, D) input on its own.

    A matrix product picks a different kernel for one row (gemv) than for several (gemm), and
    their sums round differently (~1e-7), so a tile's fill would depend on how many tiles share
    its batch. Row by row, every batch size gives the batch-of-one values bit for bit
    (``tests/model/test_batch_invariance.py``). The rows are the timestep embeddings: a few
    hundred numbers each, so the loop costs microseconds. Training keeps the fused product.
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x @ Wᵀ + b``; in eval mode one row at a time."""
        if self.training or x.dim() != 2 or x.shape[0] == 1:
            return super().forward(x)
        return torch.cat(
            [F.linear(x[i : i + 1], self.weight, self.bias) for i in range(x.shape[0])]
        )


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    For ``half = dim // 2`` and frequencies ``f_k = max_period ** (-k / half)``, k = 0..half-1,
    the embedding is ``[cos(t f_0) .. cos(t f_{half-1}), sin(t f_0) .. sin(t f_{half-1})]``,
    zero-padded by one column when ``dim`` is odd.

    Args:
        t: (B,) timesteps.
        dim: embedding width.
        max_period: the slowest period.

    Returns:
        (B, dim) float32 embedding.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def zero_init(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (stable under fp16/bf16 autocast), cast back after."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` in float32 and return it in its own dtype."""
        return super().forward(x.float()).to(x.dtype)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution, or 2x2 average pooling."""

    def __init__(self, channels: int, out_channels: int | None = None, *, use_conv: bool = True):
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op: nn.Module = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            if out_channels != channels:
                raise ValueError("average-pool downsampling cannot change the channel count")
            self.op = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C', H/2, W/2)."""
        out: Tensor = self.op(x)
        return out


class Upsample(nn.Module):
    """Double H and W by nearest-neighbour repetition, optionally followed by a 3x3 conv."""

    def __init__(self, channels: int, out_channels: int | None = None, *, use_conv: bool = True):
        super().__init__()
        out_channels = out_channels or channels
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1) if use_conv else None

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C', 2H, 2W)."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding.

    ``h = conv(act(norm(x)))``, resampled with ``x`` when ``up``/``down`` (BigGAN style);
    then the embedding enters either as ``norm(h) * (1 + scale) + shift`` (adaptive group norm,
    ``use_scale_shift_norm``) or additively; a zero-initialised conv closes the branch.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        *,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = True,
        up: bool = False,
        down: bool = False,
        groups: int = 32,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_norm = GroupNorm32(groups, channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        if up:
            self.resample_h: nn.Module = Upsample(channels, use_conv=False)
            self.resample_x: nn.Module = Upsample(channels, use_conv=False)
        elif down:
            self.resample_h = Downsample(channels, use_conv=False)
            self.resample_x = Downsample(channels, use_conv=False)
        else:
            self.resample_h = self.resample_x = nn.Identity()
        self.emb_proj = RowLinear(
            emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels
        )
        self.out_norm = GroupNorm32(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip: nn.Module = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B, C, H, W), emb: (B, E) -> (B, C_out, H', W')."""
        h = F.silu(self.in_norm(x))
        h = self.in_conv(self.resample_h(h))
        x = self.resample_x(x)
        e = self.emb_proj(F.silu(emb)).to(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        h = self.out_conv(self.dropout(F.silu(h)))
        out: Tensor = self.skip(x) + h
        return out


class AttentionBlock(nn.Module):
    """Global multi-head self-attention over all H*W positions, with a residual connection."""

    def __init__(self, channels: int, *, num_heads: int = 1, groups: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels cannot be split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        # (B, 3, heads, C/heads, N) -> three (B, heads, N, C/heads)
        q, k, v = (
            qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).transpose(3, 4).unbind(1)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(d)) v
        out = out.transpose(2, 3).reshape(b, c, h * w)
        y: Tensor = x + self.proj(out).reshape(b, c, h, w)
        return y
