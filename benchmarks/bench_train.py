"""Training throughput (samples/s) of the demo recipe, and the wall time of ``clearcube fit``.

    python benchmarks/bench_train.py throughput [--threads 1,2] [--steps 30] [--batch 8]
        [--patch 64] [--device cpu]
    python benchmarks/bench_train.py fit --cube CUBE.zarr [--checkpoint model/checkpoints/demo.pt]
        [--steps 400] [--threads 2]

``throughput`` times optimiser steps of the demo recipe (``model/presets/demo-train.yaml``'s
model, Eq. 27 loss, AdamW) on a fixed batch of random data after 3 warm-up steps, for each
thread count side by side in one run, and prints steps/s and samples/s. ``fit`` runs
:func:`clearcube.model.fit` on a cube (e.g. the demo region's, from ``clearcube cube``) and
prints its wall time and the held-out RMSE before and after.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from clearcube.model.train_cli import load_config
from clearcube.model.train_losses import make_loss_fn
from clearcube.model.unet import UNet

CONFIG = Path(__file__).resolve().parents[1] / "model" / "presets" / "demo-train.yaml"


def throughput(threads: list[int], steps: int, batch: int, patch: int, device: str) -> None:
    """Print steps/s and samples/s of the demo recipe per thread count."""
    cfg = load_config(CONFIG).model_config()
    g = torch.Generator().manual_seed(0)
    c, cs, length = len(cfg.s2_bands), len(cfg.s1_bands), 3
    data = {
        "target_s2": torch.rand(batch, c, patch, patch, generator=g) * 0.6 - 0.9,
        "target_s1": torch.rand(batch, cs, patch, patch, generator=g) * 2 - 1,
        "inputs_s2": torch.rand(batch, length, c, patch, patch, generator=g) * 0.6 - 0.9,
        "inputs_s1": torch.rand(batch, length, cs, patch, patch, generator=g) * 2 - 1,
        "known": torch.rand(batch, length, patch, patch, generator=g) > 0.5,
    }
    data = {k: v.to(device) for k, v in data.items()}
    loss_fn = make_loss_fn(cfg, temporal_weight=0.0)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {device}")
    print(f"# demo recipe, batch {batch}, {patch}x{patch} crops, {steps} timed steps")
    print("threads | steps/s | samples/s")
    for n in threads:
        torch.set_num_threads(n)
        net = UNet(cfg.unet).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        gen = torch.Generator(device=device).manual_seed(1)

        def step(net: UNet = net, opt: torch.optim.AdamW = opt, gen: torch.Generator = gen) -> None:
            loss = loss_fn(net, data, gen)["loss"].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(3):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rate = steps / (time.perf_counter() - start)
        print(f"{n} | {rate:.2f} | {rate * batch:.1f}")


def fit_time(cube: str, checkpoint: str, steps: int, threads: int) -> None:
    """Print the wall time and held-out figures of one fit."""
    from clearcube.model import fit

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(cube, checkpoint, Path(tmp) / "fitted.pt", steps=steps)
    print(f"# fit of {checkpoint} on {cube}, {steps} steps, {threads} threads")
    print(f"wall {result.seconds:.1f} s; held-out RMSE {result.rmse_before:.4f} -> "
          f"{result.rmse_after:.4f} over {result.held_out_pixels} px of "
          f"{result.held_out_samples} samples")  # fmt: skip


def main() -> None:
    """Parse the command line and run one benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--threads", default="1,2")
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--patch", type=int, default=64)
    t.add_argument("--device", default="cpu")
    f = sub.add_parser("fit")
    f.add_argument("--cube", required=True)
    f.add_argument("--checkpoint", default="model/checkpoints/demo.pt")
    f.add_argument("--steps", type=int, default=400)
    f.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.what == "throughput":
        threads = [int(v) for v in args.threads.split(",")]
        throughput(threads, args.steps, args.batch, args.patch, args.device)
    else:
        fit_time(args.cube, args.checkpoint, args.steps, args.threads)


if __name__ == "__main__":
    main()
