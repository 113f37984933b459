"""Network calls and wall time per 256x256 tile for each sampler (SeqTIS inference, L dates).

    OMP_NUM_THREADS=2 python benchmarks/bench_sampling.py [--devices cpu,cuda]
        [--cpu-presets cpu-tiny,small] [--cuda-presets cpu-tiny,small,paper] [--length 3]
        [--tile 256] [--max-run-s 60] [--results benchmarks/RESULTS.md]

For every device and model preset (``clearcube.model.config.PRESETS`` with the U-Net of
``clearcube.model.unet``, random weights; a small stand-in conv net, labelled so, when those
modules are missing):

- parameters and multiply-adds of one network call (torch's FLOP counter, MACs = FLOPs / 2);
- the time of one network call (batch 1, after warm-up);
- the sampler's own cost per step (SeqTIS fusion of L dates + coordinate-keyed noise), timed
  with a network that does nothing;
- per sampler (DDPM-1000, respaced DDPM and DDIM at 50/20/10 steps): network calls and wall time
  of a full ``sample_seqtis`` run with the real network, *measured* when the estimate is below
  ``--max-run-s``, otherwise *extrapolated* as steps x (call time + step overhead).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from clearcube.model.noise import CoordinateNoise
from clearcube.model.samplers import sample_seqtis
from clearcube.model.schedule import make_schedule

SAMPLERS: list[tuple[str, str, int | str | None]] = [
    ("DDPM-1000", "ddpm", None),
    ("DDPM-50 (respaced)", "ddpm", 50),
    ("DDPM-20 (respaced)", "ddpm", 20),
    ("DDPM-10 (respaced)", "ddpm", 10),
    ("DDIM-50", "ddim", "ddim50"),
    ("DDIM-20", "ddim", "ddim20"),
    ("DDIM-10", "ddim", "ddim10"),
]


@dataclass
class Row:
    device: str
    preset: str
    params_m: float
    gmacs: float
    sampler: str
    calls: int
    call_s: float
    overhead_s: float
    wall_s: float
    how: str


class _StandIn(nn.Module):
    """Stand-in network (used only when clearcube.model.unet is unavailable)."""

    def __init__(self, c: int, cs: int, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c + cs, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * c, 3, padding=1),
        )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.body(torch.cat([x, cond], 1))


def build(preset: str) -> tuple[nn.Module, int, int, str]:
    """(network, optical channels, SAR channels, label) of a preset."""
    try:
        from clearcube.model.config import PRESETS
        from clearcube.model.unet import UNet
    except ImportError:
        return _StandIn(13, 2), 13, 2, "stand-in conv net"
    cfg = PRESETS[preset].unet
    return UNet(cfg), cfg.in_channels, cfg.cond_channels, preset


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_calls(
    net: Callable[[Tensor, Tensor, Tensor], Tensor], x: Tensor, cond: Tensor, device: str, n: int
) -> float:
    """Median seconds of one call (the median resists other jobs on a shared machine)."""
    t = torch.full((x.shape[0],), 500, dtype=torch.int64, device=device)
    times = []
    with torch.no_grad():
        for _ in range(2):
            net(x, t, cond)
        for _ in range(n):
            _sync(device)
            start = time.perf_counter()
            net(x, t, cond)
            _sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_macs(net: nn.Module, x: Tensor, cond: Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x, torch.zeros(x.shape[0], dtype=torch.int64, device=x.device), cond)
    return counter.get_total_flops() / 2


def run_sampler(
    net: Callable[[Tensor, Tensor, Tensor], Tensor],
    inputs: dict[str, Tensor],
    sampler: str,
    steps: int | str | None,
    device: str,
) -> tuple[int, float]:
    calls = 0

    def counted(x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return net(x, t, cond)

    schedule = make_schedule("linear", 1000)
    _sync(device)
    start = time.perf_counter()
    sample_seqtis(
        counted,
        schedule,
        **inputs,
        generator=CoordinateNoise(0, (0, 0)),
        sampler=sampler,
        steps=steps,
    )  # type: ignore[arg-type]
    _sync(device)
    return calls, time.perf_counter() - start


def bench(device: str, preset: str, args: argparse.Namespace) -> list[Row]:
    net, c, cs, label = build(preset)
    net = net.to(device).eval()
    params = sum(p.numel() for p in net.parameters()) / 1e6
    g = torch.Generator().manual_seed(0)
    b, length, hw = 1, args.length, args.tile
    inputs = {
        "observed": (torch.rand(b, length, c, hw, hw, generator=g) * 2 - 1).to(device),
        "known": (torch.rand(b, length, 1, hw, hw, generator=g) < 0.5).to(device),
        "sar": (torch.rand(b, length, cs, hw, hw, generator=g) * 2 - 1).to(device),
    }
    x = torch.randn(b, c, hw, hw, generator=g).to(device)
    cond = torch.randn(b, cs, hw, hw, generator=g).to(device)
    macs = count_macs(net, x, cond)
    call_s = time_calls(net, x, cond, device, args.calls)

    def null(x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:], device=x.device)

    probe_steps = 10
    _, null_s = run_sampler(null, inputs, "ddpm", probe_steps, device)
    overhead_s = null_s / probe_steps
    rows = []
    for name, sampler, steps in SAMPLERS:
        k = 1000 if steps is None else int(str(steps).removeprefix("ddim"))
        estimate = k * (call_s + overhead_s)
        if estimate <= args.max_run_s:
            calls, wall = run_sampler(net, inputs, sampler, steps, device)
            how = "measured"
        else:
            calls, wall, how = k, estimate, "extrapolated"
        rows.append(
            Row(device, label, params, macs / 1e9, name, calls, call_s, overhead_s, wall, how)
        )
        print(f"{device} {label} {name}: {calls} calls, {wall:.2f} s ({how})", file=sys.stderr)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| device | preset | params M | GMACs/call | sampler | net calls | s/call | sampler s/step | s per tile | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.device} | {r.preset} | {r.params_m:.1f} | {r.gmacs:.1f} | {r.sampler} | {r.calls} | "
            f"{r.call_s:.4f} | {r.overhead_s:.4f} | {r.wall_s:.1f} | {r.how} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--cpu-presets", default="cpu-tiny,small")
    parser.add_argument("--cuda-presets", default="cpu-tiny,small,paper")
    parser.add_argument("--length", type=int, default=3, help="L, dates per tile")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--calls", type=int, default=7, help="timed network calls")
    parser.add_argument(
        "--max-run-s", type=float, default=60.0, help="longer runs are extrapolated"
    )
    parser.add_argument("--results", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    rows: list[Row] = []
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("CUDA not available: skipping the GPU rows", file=sys.stderr)
            continue
        presets = args.cpu_presets if device == "cpu" else args.cuda_presets
        for preset in filter(None, presets.split(",")):
            rows.extend(bench(device, preset, args))
    machine = (
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    if torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name()}"
    text = f"Machine: {machine}; L = {args.length}, tile {args.tile}x{args.tile}, batch 1, fp32.\n\n{table(rows)}\n"
    print(text)
    if args.results:
        with args.results.open("a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
