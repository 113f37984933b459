"""The ADM-style U-Net: shapes per preset, attention, zero-initialised output, timestep embedding."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from clearcube import BadInputError
from clearcube.model.config import PRESETS, ModelConfig, UNetConfig, preset
from clearcube.model.nn import AttentionBlock, timestep_embedding
from clearcube.model.unet import UNet, count_parameters

TINY = UNetConfig(
    model_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_ds=(2,),
    num_heads=2,
    norm_groups=8,
)


def _inputs(cfg: UNetConfig, b: int = 2, hw: tuple[int, int] = (32, 32)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, cfg.in_channels, *hw, generator=g)
    c = torch.randn(b, cfg.cond_channels, *hw, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    return x, t, c


def test_timestep_embedding_closed_form():
    t = torch.tensor([0.0, 1.0, 37.0, 999.0])
    dim = 8
    emb = timestep_embedding(t, dim)
    for i, ti in enumerate(t.tolist()):
        for k in range(dim // 2):
            f = 10000.0 ** (-k / (dim // 2))
            assert emb[i, k].item() == pytest.approx(math.cos(ti * f), abs=1e-5)
            assert emb[i, k + dim // 2].item() == pytest.approx(math.sin(ti * f), abs=1e-5)
    assert timestep_embedding(t, 7).shape == (4, 7)  # odd width padded with a zero column
    assert torch.all(timestep_embedding(t, 7)[:, -1] == 0)


@pytest.mark.parametrize("learn_sigma", [True, False])
def test_output_shape_and_zero_at_init(learn_sigma):
    cfg = dataclasses.replace(TINY, learn_sigma=learn_sigma)
    net = UNet(cfg)
    x, t, c = _inputs(cfg, hw=(32, 48))  # non-square, any multiple of 2
    out = net(x, t, c)
    assert out.shape == (2, cfg.in_channels * (2 if learn_sigma else 1), 32, 48)
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv


def test_output_depends_on_every_input_once_trained_weights_move():
    torch.manual_seed(0)
    net = UNet(TINY)
    for p in net.parameters():  # break the zero init so the output carries information
        p.data.add_(0.05 * torch.randn_like(p))
    x, t, c = _inputs(TINY)
    base = net(x, t, c)
    assert not torch.allclose(base, net(x, t + 100, c))
    assert not torch.allclose(base, net(x, t, c + 1))
    assert not torch.allclose(base, net(x + 1, t, c))


def test_cpu_tiny_forward_at_256():
    cfg = preset("cpu-tiny").unet
    net = UNet(cfg).eval()
    x, t, c = _inputs(cfg, b=1, hw=(256, 256))
    with torch.no_grad():
        assert net(x, t, c).shape == (1, 26, 256, 256)


def test_paper_preset_layout():
    cfg = PRESETS["paper"].unet
    assert cfg.model_channels == 128 and cfg.num_res_blocks == 2 and cfg.num_heads == 4
    # attention at 32, 16 and 8 pixels for a 256 input
    assert sorted(cfg.image_size // d for d in cfg.attention_ds) == [8, 16, 32]
    with torch.device("meta"):  # no memory, no init time: only the structure is checked
        net = UNet(cfg)
    n_attn = sum(isinstance(m, AttentionBlock) for m in net.modules())
    # 3 attention levels x (2 down + 3 up blocks) + 1 in the middle
    assert n_attn == 3 * (cfg.num_res_blocks + cfg.num_res_blocks + 1) + 1
    assert 1e8 < count_parameters(net) < 2e8


def test_attention_block_is_permutation_equivariant():
    torch.manual_seed(1)
    block = AttentionBlock(16, num_heads=4, groups=8)
    torch.nn.init.normal_(block.proj.weight, std=0.1)
    x = torch.randn(1, 16, 4, 4)
    perm = torch.randperm(16)
    y = block(x).reshape(1, 16, 16)[..., perm]
    y_perm = block(x.reshape(1, 16, 16)[..., perm].reshape(1, 16, 4, 4)).reshape(1, 16, 16)
    torch.testing.assert_close(y, y_perm, atol=1e-5, rtol=1e-5)


def test_bad_shapes_are_refused():
    net = UNet(TINY)
    x, t, c = _inputs(TINY, hw=(31, 32))
    with pytest.raises(BadInputError, match="multiple of 2"):
        net(x, t, c)
    x, t, c = _inputs(TINY)
    with pytest.raises(BadInputError, match="cond"):
        net(x, t, c[:, :1])


def test_config_from_dict_refuses_unknown_keys():
    cfg = PRESETS["cpu-tiny"]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(BadInputError, match="unknown key"):
        ModelConfig.from_dict({"unet": {"model_chanels": 8}})
    with pytest.raises(BadInputError, match="unknown model preset"):
        preset("huge")
    with pytest.raises(BadInputError, match="in_channels"):
        ModelConfig.from_dict({"s2_bands": ["B02", "B03"]})
