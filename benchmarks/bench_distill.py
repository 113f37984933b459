"""Teacher vs consistency student on the same held-out patches: calls, wall time, quality.

    OMP_NUM_THREADS=1 python benchmarks/bench_distill.py [--teacher model/checkpoints/demo.pt]
        [--student model/checkpoints/demo-cm.pt] [--ddpm-patches 3] [--patches 54]
        [--results benchmarks/RESULTS.md]

The patches are the held-out simulated set of the model card (generator seeds 201-203, never
seen in training or distillation; 128 px, L = 3, with SAR). Every method fills every patch with
the noise of ``model.evaluation.model_method.fill_sample`` (seeded by the patch's name), scored
per image and averaged as ``clearcube evaluate`` does (RMSE over the pixels cloudy in every
input, on reflectance; SSIM; SAM in degrees). DDPM-1000 costs 1000 calls a patch, so it runs on
the first ``--ddpm-patches`` patches only, and a first table gives every method on that subset;
the second table has every method but DDPM-1000 on all patches. Wall time is per patch on this
process's threads (``OMP_NUM_THREADS``). The goal of issue 14: ≥ 100× fewer calls than DDPM-1000
at ≤ 5 % worse RMSE(cloudy) than the teacher's best.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from clearcube.model.baselines import clear_mean_fill
from clearcube.model.checkpoint import load_checkpoint
from clearcube.model.evaluation.model_method import fill_sample
from clearcube.model.evaluation.samples import EvalSample
from clearcube.model.evaluation.simulated import simulated_samples
from clearcube.model.metrics import image_metrics

#: (label, which checkpoint, sampler, steps = network calls)
METHODS: list[tuple[str, str, str, int | None]] = [
    ("teacher DDPM-1000", "teacher", "ddpm", None),
    ("teacher DDIM-50", "teacher", "ddim", 50),
    ("teacher DDIM-20", "teacher", "ddim", 20),
    ("teacher DDIM-10", "teacher", "ddim", 10),
    ("student consistency (1 call)", "student", "consistency", 1),
    ("student PDMSR-2", "student", "pdmsr", 2),
    ("student PDMSR-4", "student", "pdmsr", 4),
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print (and optionally record) the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="model/checkpoints/demo.pt")
    p.add_argument("--student", default="model/checkpoints/demo-cm.pt")
    p.add_argument("--ddpm-patches", type=int, default=3)
    p.add_argument("--patches", type=int, default=54, help="patches of the full table (54)")
    p.add_argument("--results", type=Path, help="append the section to this markdown file")
    args = p.parse_args(argv)

    nets = {
        "teacher": load_checkpoint(args.teacher)[:2],
        "student": load_checkpoint(args.student)[:2],
    }
    samples = [s for s in simulated_samples() if s.sar is not None][: args.patches]
    rows_small: list[str] = []
    rows_all: list[str] = []
    small = samples[: args.ddpm_patches]
    for label, which, sampler, steps in METHODS:
        net, cfg = nets[which]

        def method(s: EvalSample, net=net, cfg=cfg, sampler=sampler, steps=steps) -> np.ndarray:  # type: ignore[no-untyped-def]
            return fill_sample(net, cfg, s, sampler=sampler, steps=steps or 1000, seed=0, device="cpu")  # fmt: skip

        calls = steps or 1000
        rows_small.append(_row(label, calls, method, small))
        if sampler != "ddpm":
            rows_all.append(_row(label, calls, method, samples))
        print(rows_small[-1], flush=True)

    def clear_mean(s: EvalSample) -> np.ndarray:
        return clear_mean_fill(s.inputs, s.cloud)

    rows_small.append(_row("clear-mean (baseline)", 0, clear_mean, small))
    rows_all.append(_row("clear-mean (baseline)", 0, clear_mean, samples))
    head = "| method | network calls | s / patch | RMSE(cloudy) | SSIM | SAM ° |\n|---|---|---|---|---|---|"
    text = "\n".join(
        [
            "## Consistency student vs its teacher (bench_distill.py)",
            "",
            f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/bench_distill.py "
            f"--teacher {args.teacher} --student {args.student} --ddpm-patches {args.ddpm_patches} "
            f"--patches {args.patches}`  ",
            f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), Python "
            f"{sys.version.split()[0]}, torch {torch.__version__}; CPU, no GPU.",
            "",
            f"Held-out simulated patches (seeds 201-203, 128 px, L = 3, with SAR). First "
            f"{len(small)} patches, every method:",
            "",
            head,
            *rows_small,
            "",
            f"All {len(samples)} patches (DDPM-1000 left out: 1000 calls a patch):",
            "",
            head,
            *rows_all,
            "",
        ]
    )
    print(text)
    if args.results:
        with args.results.open("a") as fh:
            fh.write("\n" + text)
    return 0


def _row(
    label: str, calls: int, method: Callable[[EvalSample], np.ndarray], samples: list[EvalSample]
) -> str:
    rmse, ssim, sam, seconds = [], [], [], []
    for s in samples:
        start = time.perf_counter()
        with torch.inference_mode():
            pred = method(s)
        seconds.append(time.perf_counter() - start)
        m = image_metrics(pred, s.target, s.cloud)
        if np.isfinite(m.rmse_cloudy):
            rmse.append(m.rmse_cloudy)
        ssim.append(m.ssim)
        sam.append(m.sam_deg)
    return (
        f"| {label} | {calls} | {np.mean(seconds):.2f} | {np.mean(rmse):.4f} | "
        f"{np.mean(ssim):.4f} | {np.nanmean(sam):.2f} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
