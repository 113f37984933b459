"""clearcube.model.sizing: the formulas behind deploy/README.md's sizing section."""

from __future__ import annotations

import numpy as np

from clearcube.bands import S1_BANDS, S2_BANDS
from clearcube.model.sizing import model_report, tile_memory


def test_tile_memory_matches_the_arrays_it_stands_for() -> None:
    dates, tile = 5, 64
    s2 = np.zeros((dates, len(S2_BANDS), tile, tile), np.float32)
    s1 = np.zeros((dates, len(S1_BANDS), tile, tile), np.float32)
    known = np.zeros((dates, tile, tile), bool)
    composite = np.zeros((len(S2_BANDS), tile, tile), np.float32)
    memory = tile_memory(dates, tile)
    assert memory.inputs == s2.nbytes + s1.nbytes + known.nbytes
    assert memory.outputs == 2 * composite.nbytes
    assert memory.total == memory.inputs + memory.outputs


def test_cpu_report_counts_every_weight_of_the_preset() -> None:
    import torch

    from clearcube.model.config import preset
    from clearcube.model.unet import UNet

    report = model_report("cpu-tiny", [1], device="cpu")
    net = UNet(preset("cpu-tiny").unet)
    params = sum(p.numel() for p in net.parameters())
    assert report["parameters"] == params
    assert report["weights_bytes"] == params * torch.finfo(torch.float32).bits // 8
    assert report["peak_bytes"] == {}  # measured on CUDA only
