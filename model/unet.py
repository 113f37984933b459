"""The conditional U-Net of MmDMs: ε_θ(x_t, t, a_t) with the noised SAR concatenated (Eq. 18).

An ADM-style encoder/decoder (see :mod:`clearcube.model.nn` for the blocks): a sinusoidal
timestep embedding through a two-layer MLP conditions every residual block; the encoder halves
the resolution ``len(channel_mult) - 1`` times (BigGAN residual downsampling by default), a
middle stage of residual + attention + residual blocks follows, and the decoder mirrors the
encoder with skip connections from every encoder stage. The output projection is zero-initialised,
so an untrained network predicts exactly zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clearcube import BadInputError
from clearcube.model.config import UNetConfig
from clearcube.model.nn import (
    AttentionBlock,
    Downsample,
    GroupNorm32,
    ResBlock,
    RowLinear,
    Upsample,
    timestep_embedding,
    zero_init,
)


class _Stage(nn.ModuleList):
    """A sequence of layers; residual blocks also receive the timestep embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """ADM-style U-Net predicting ε (and the learned-range variance v) from (x_t, t, cond)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        emb_ch = 4 * mc
        self.time_embed = nn.Sequential(RowLinear(mc, emb_ch), nn.SiLU(), RowLinear(emb_ch, emb_ch))

        def res(ch_in: int, ch_out: int, **kw: bool) -> ResBlock:
            return ResBlock(
                ch_in,
                emb_ch,
                ch_out,
                dropout=cfg.dropout,
                use_scale_shift_norm=cfg.use_scale_shift_norm,
                groups=cfg.norm_groups,
                **kw,
            )

        def attn(ch: int) -> AttentionBlock:
            heads = ch // cfg.num_head_channels if cfg.num_head_channels > 0 else cfg.num_heads
            return AttentionBlock(ch, num_heads=heads, groups=cfg.norm_groups)

        ch = mc * cfg.channel_mult[0]
        self.input_stages = nn.ModuleList(
            [_Stage([nn.Conv2d(cfg.in_channels + cfg.cond_channels, ch, 3, padding=1)])]
        )
        skip_channels = [ch]
        ds = 1
        last = len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_ds:
                    layers.append(attn(ch))
                self.input_stages.append(_Stage(layers))
                skip_channels.append(ch)
            if level != last:
                down = res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch)
                self.input_stages.append(_Stage([down]))
                skip_channels.append(ch)
                ds *= 2

        self.middle = _Stage([res(ch, ch), attn(ch), res(ch, ch)])

        self.output_stages = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_ds:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch))
                    ds //= 2
                self.output_stages.append(_Stage(layers))

        self.out = nn.Sequential(
            GroupNorm32(cfg.norm_groups, ch),
            nn.SiLU(),
            zero_init(nn.Conv2d(ch, cfg.out_channels, 3, padding=1)),
        )

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predict the noise (and variance interpolation) of a noisy optical batch.

        Args:
            x_t: (B, C, H, W) noisy Sentinel-2 bands, C = ``cfg.in_channels``.
            t: (B,) timesteps (integer or fractional, on the training scale 0..T-1).
            cond: (B, Cs, H, W) noised SAR, Cs = ``cfg.cond_channels`` (Eq. 18).

        Returns:
            (B, 2C, H, W) with ε in the first C channels and v in the last C when
            ``learn_sigma``, else (B, C, H, W).
        """
        self._check_inputs(x_t, t, cond)
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))
        h = torch.cat([x_t, cond.to(x_t.dtype)], dim=1)
        skips = []
        for stage in self.input_stages:
            h = stage(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for stage in self.output_stages:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        out: Tensor = self.out(h)
        return out

    def _check_inputs(self, x_t: Tensor, t: Tensor, cond: Tensor) -> None:
        cfg = self.cfg
        if x_t.ndim != 4 or x_t.shape[1] != cfg.in_channels:
            raise BadInputError(
                f"U-Net expects x_t of shape (B, {cfg.in_channels}, H, W); got {tuple(x_t.shape)}"
            )
        b, _, h, w = x_t.shape
        if cond.shape != (b, cfg.cond_channels, h, w):
            raise BadInputError(
                f"U-Net expects cond of shape ({b}, {cfg.cond_channels}, {h}, {w}); "
                f"got {tuple(cond.shape)}"
            )
        if t.shape != (b,):
            raise BadInputError(f"U-Net expects t of shape ({b},); got {tuple(t.shape)}")
        m = cfg.size_multiple
        if h % m or w % m:
            raise BadInputError(
                f"tile {h}x{w} is not a multiple of {m} (this model downsamples "
                f"{len(cfg.channel_mult) - 1} times); pad the tile or choose tile sizes divisible by {m}"
            )


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
