"""A sample's network output does not depend on the batch it is in, bit for bit.

Kernels are chosen by batch size and round differently: a fused matrix product for one row
(gemv) or several (gemm), oneDNN's convolutions by batch and image size. On the CPU
``InferenceNetwork`` therefore runs a batch element by element; the timestep-embedding layers
(``RowLinear``) map rows one by one for devices that run the batch whole. Without the CPU split
both tests here failed (fp32 and bf16: ~1e-6 differences at 32 px; seen before the fix).
"""

from __future__ import annotations

import pytest
import torch

from clearcube.model.config import preset
from clearcube.model.nn import RowLinear
from clearcube.model.precision import InferenceNetwork
from clearcube.model.unet import UNet


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_element_of_a_batch_is_its_batch_of_one(precision: str) -> None:
    torch.manual_seed(0)
    cfg = preset("cpu-tiny")
    net = InferenceNetwork(UNet(cfg.unet), precision).eval()  # type: ignore[arg-type]
    for p in net.parameters():  # zero-initialised output layers would hide differences
        p.data.normal_(0, 0.05)
    x = torch.randn(4, cfg.unet.in_channels, 32, 32)
    cond = torch.randn(4, cfg.unet.cond_channels, 32, 32)
    t = torch.tensor([700, 700, 10, 999])
    with torch.inference_mode():
        whole = net(x, t, cond)
        pairs = torch.cat([net(x[i : i + 2], t[i : i + 2], cond[i : i + 2]) for i in (0, 2)])
        singles = torch.cat([net(x[i : i + 1], t[i : i + 1], cond[i : i + 1]) for i in range(4)])
    assert whole.abs().max() > 0.1  # the network does something
    assert torch.equal(whole, singles)
    assert torch.equal(pairs, singles)


def test_row_linear_is_linear_in_training_and_eval() -> None:
    torch.manual_seed(1)
    layer = RowLinear(8, 5)
    x = torch.randn(6, 8)
    expected = x.double() @ layer.weight.double().T + layer.bias.double()
    for training in (True, False):
        layer.train(training)
        torch.testing.assert_close(layer(x).double(), expected, rtol=1e-6, atol=1e-6)
