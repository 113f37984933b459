"""Fill quality and speed of CPU inference in fp32 vs bf16 (channels-last), on held-out patches.

    OMP_NUM_THREADS=1 python benchmarks/bench_precision.py [--checkpoint model/checkpoints/demo.pt]
        [--sampler ddim --steps 20] [--patches 54] [--results benchmarks/RESULTS.md]

The held-out simulated set of the model card (seeds 201-203, 128 px, L = 3, with SAR), every
patch filled with the same noise (``fill_sample``, seeded by the patch's name) by the network
as stored (fp32, default layout), in channels-last fp32 and in channels-last bf16
(``clearcube.model.precision.InferenceNetwork``), in one run. Reported: RMSE(cloudy), SSIM, SAM
per image averaged, the largest per-patch change of RMSE(cloudy) against fp32, and the wall
time per patch. bf16 is the pipeline's CPU default only if its fill stays within the fp32
fill's quality here.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clearcube.model.checkpoint import load_checkpoint
from clearcube.model.evaluation.model_method import fill_sample
from clearcube.model.evaluation.simulated import simulated_samples
from clearcube.model.metrics import image_metrics
from clearcube.model.precision import InferenceNetwork


def main(argv: list[str] | None = None) -> int:
    """Run the three variants and print (and optionally record) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="model/checkpoints/demo.pt")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--patches", type=int, default=54)
    p.add_argument("--results", type=Path)
    args = p.parse_args(argv)
    samples = [s for s in simulated_samples() if s.sar is not None][: args.patches]
    variants = {}
    for label, precision, wrap in (
        ("fp32 (as stored)", "fp32", False),
        ("fp32 channels-last", "fp32", True),
        ("bf16 channels-last", "bf16", True),
    ):
        net, cfg, _ = load_checkpoint(args.checkpoint)
        if wrap and precision == "fp32":  # InferenceNetwork keeps fp32 as stored
            net = net.to(memory_format=torch.channels_last)
        variants[label] = (InferenceNetwork(net, precision) if wrap else net, cfg)
    rows, per_patch = [], {}
    for label, (net, cfg) in variants.items():
        rmse, ssim, sam, secs = [], [], [], []
        for s in samples:
            t0 = time.perf_counter()
            with torch.inference_mode():
                pred = fill_sample(net, cfg, s, sampler=args.sampler, steps=args.steps, seed=0, device="cpu")  # fmt: skip
            secs.append(time.perf_counter() - t0)
            m = image_metrics(pred, s.target, s.cloud)
            rmse.append(m.rmse_cloudy)
            ssim.append(m.ssim)
            sam.append(m.sam_deg)
        per_patch[label] = np.array(rmse)
        worst = np.nanmax(np.abs(per_patch[label] - per_patch["fp32 (as stored)"]))
        rows.append(
            f"| {label} | {np.nanmean(rmse):.4f} | {np.mean(ssim):.4f} | {np.nanmean(sam):.3f} | "
            f"{worst:.4f} | {np.mean(secs):.2f} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "## CPU inference precision: fp32 vs bf16 channels-last (bench_precision.py)",
            "",
            f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/bench_precision.py "
            f"--checkpoint {args.checkpoint} --sampler {args.sampler} --steps {args.steps} "
            f"--patches {args.patches}`  ",
            f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), Python "
            f"{sys.version.split()[0]}, torch {torch.__version__}.",
            "",
            f"{len(samples)} held-out simulated patches (seeds 201-203, 128 px, L = 3, with SAR):",
            "",
            "| network | RMSE(cloudy) | SSIM | SAM ° | max per-patch RMSE change vs fp32 | s / patch |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(text)
    if args.results:
        with args.results.open("a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
