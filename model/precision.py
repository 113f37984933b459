"""How the network runs at inference: fp32 as stored, or bf16 autocast in channels-last layout.

One cpu-tiny call on a 256² tile, one thread: 0.60 s fp32, 0.47 s channels-last fp32, 0.27 s
bf16 channels-last (2.3×). bf16 changes the network's output by up to ~3e-2 in diffusion space;
whether the *fill* stays within the fp32 fill's quality is measured on the held-out simulated set
(``benchmarks/bench_precision.py``, benchmarks/RESULTS.md): RMSE(cloudy) 0.0264 vs 0.0265,
SSIM and SAM equal, at most 0.0003 change on any patch, 1.75× faster per 128 px patch. That is
why bf16 is the pipeline's default. On 128 px patches channels-last alone was *slower* in fp32
(3.40 vs 3.03 s), so fp32 keeps the stored layout. The sampler's arithmetic (the merge, the
noise, the update) stays in fp32 whatever the precision: only the network call is autocast.

Those figures are from a CPU with native bf16 (AVX-512 BF16). Without it oneDNN emulates bf16
and the same call is ~6× *slower* than fp32 (AMD EPYC, AVX2: 6.0 s vs 0.9 s per 256² call), so
the default is ``"auto"``: bf16 on a CUDA device that supports it and on a CPU with native bf16,
fp32 elsewhere (:func:`resolve_precision`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from clearcube import BadInputError

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16")


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` runs bf16 convolutions natively (not emulated, which is slower)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind != "cpu":
        return False
    try:  # oneDNN's own test: AVX-512 BF16 or AMX on x86, the bf16 extensions on Arm
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: Precision, device: str | torch.device) -> Precision:
    """``"auto"`` -> ``"bf16"`` where ``device`` has native bf16, else ``"fp32"``; others as is."""
    if precision not in PRECISIONS:
        raise BadInputError(f"precision {precision!r} unknown; use auto, fp32 or bf16")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


class InferenceNetwork(nn.Module):
    """``net`` under bf16 autocast in channels-last layout (``"bf16"``), or as is; fp32 out.

    ``"auto"`` is resolved for the device ``net``'s parameters are on (:func:`resolve_precision`).
    """

    def __init__(self, net: nn.Module, precision: Precision = "fp32"):
        """Wrap ``net`` (moved to channels-last in place for bf16)."""
        super().__init__()
        device = next(net.parameters()).device
        precision = resolve_precision(precision, device)
        if precision == "bf16":
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net = net
        self.precision = precision

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The wrapped network's output for (x_t, t, cond), float32, contiguous.

        On the CPU a batch is run one element at a time: oneDNN picks its convolution kernels
        by batch size, and their sums round differently (~1e-6 at 32 px), so a tile's value
        would depend on its batch-mates; one at a time it never does, and was faster per tile
        anyway (one cpu-tiny 256² call: 0.91 s alone, 1.35 s per element in a batch of 4).
        """
        if x_t.device.type == "cpu" and x_t.shape[0] > 1:
            rows = range(x_t.shape[0])
            return torch.cat(
                [self._call(x_t[i : i + 1], t[i : i + 1], cond[i : i + 1]) for i in rows]
            )
        return self._call(x_t, t, cond)

    def _call(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        if self.precision == "fp32":
            out: Tensor = self.net(x_t, t, cond)
            return out
        x = x_t.contiguous(memory_format=torch.channels_last)
        c = cond.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = self.net(x, t, c)
        return out.float().contiguous()
