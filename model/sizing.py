"""Worker sizing: host memory per tile, model weights, and measured inference memory per GPU.

The figures in ``deploy/README.md`` come from here. Run on the machine you are sizing::

    python -m clearcube.model.sizing --preset paper --dates 8 --batch 1 4

On CUDA it measures the peak GPU memory of one network call (``torch.cuda.max_memory_allocated``,
fp32, no autograd); on the CPU it reports the estimate only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from clearcube.bands import S1_BANDS, S2_BANDS
from clearcube.model.config import preset as get_preset
from clearcube.model.unet import UNet, count_parameters

FLOAT_BYTES = 4


@dataclass(frozen=True)
class TileMemory:
    """Host memory of one tile's inputs and outputs, in bytes."""

    inputs: int
    """S2 (L dates × 13 bands) + S1 (L dates × 2) float32 pixels + the clear-pixel booleans."""
    outputs: int
    """The composite (13 bands) and its uncertainty (13 bands), float32."""

    @property
    def total(self) -> int:
        """Inputs plus outputs."""
        return self.inputs + self.outputs


def tile_memory(dates: int, tile: int = 256) -> TileMemory:
    """Host bytes of one tile: ``tile² × (L × (13 + 2) × 4 + L + 2 × 13 × 4)``."""
    pixels = tile * tile
    s2, s1 = len(S2_BANDS), len(S1_BANDS)
    inputs = pixels * dates * ((s2 + s1) * FLOAT_BYTES + 1)
    outputs = pixels * 2 * s2 * FLOAT_BYTES
    return TileMemory(inputs=inputs, outputs=outputs)


def model_report(
    preset: str, batches: Sequence[int], tile: int = 256, device: str | None = None
) -> dict[str, Any]:
    """Parameter count, weight bytes and (on CUDA) measured peak memory per network call.

    Args:
        preset: a model preset name (``clearcube.model.config.PRESETS``).
        batches: batch sizes to measure (dates, or samples, evaluated in one call).
        tile: tile side in pixels.
        device: ``"cuda"`` or ``"cpu"``; None picks CUDA when available.
    """
    cfg = get_preset(preset).unet
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = UNet(cfg).to(device).eval()
    params = count_parameters(net)
    report: dict[str, Any] = {
        "preset": preset,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "parameters": params,
        "weights_bytes": params * FLOAT_BYTES,
        "peak_bytes": {},
    }
    if device != "cuda":
        return report
    for batch in batches:
        x = torch.randn(batch, cfg.in_channels, tile, tile, device=device)
        cond = torch.randn(batch, cfg.cond_channels, tile, tile, device=device)
        t = torch.full((batch,), 500, device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            net(x, t, cond)
        torch.cuda.synchronize()
        report["peak_bytes"][batch] = int(torch.cuda.max_memory_allocated())
        del x, cond, t
        torch.cuda.empty_cache()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Print a JSON sizing report (the command-line edge of this module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="model preset (repeatable)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--dates", type=int, default=8, help="L, dates per tile")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--device", choices=["cuda", "cpu"])
    args = parser.parse_args(argv)
    out = {
        "tile": asdict(tile_memory(args.dates, args.tile)) | {"dates": args.dates},
        "models": [
            model_report(p, args.batch, args.tile, args.device)
            for p in (args.preset or ["cpu-tiny", "paper"])
        ],
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
