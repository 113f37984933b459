"""Choose a consistency student's default PDMSR ladder on the *validation* landscapes.

    python scripts/tune-ladder.py STUDENT.pt [--lows 0.3,0.5,1,2,4] [--calls 2,3,4] [--write]

Fills the patches of the validation seeds (101, 102: the ones training validates on; the
held-out evaluation seeds 201-203 are not touched) with PDMSR at each number of calls and each
``ladder_low`` (the default ladder's lowest σ), prints RMSE(cloudy) / SSIM per setting, and with
``--write`` stores the best ``ladder_low`` (lowest mean RMSE(cloudy) over the call counts) in the
student's config, rewriting the checkpoint atomically.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from clearcube.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clearcube.model.evaluation.model_method import fill_sample
from clearcube.model.evaluation.simulated import simulated_samples
from clearcube.model.metrics import image_metrics

VALIDATION_SEEDS = (101, 102)


def main() -> None:
    """Run the sweep."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("student")
    p.add_argument("--lows", default="0.3,0.5,1,2,4")
    p.add_argument("--calls", default="2,3,4")
    p.add_argument("--patches", type=int, default=36)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    net, cfg, _ = load_checkpoint(args.student)
    assert cfg.consistency is not None, "not a consistency student"
    samples = [s for s in simulated_samples(VALIDATION_SEEDS) if s.sar is not None]
    samples = samples[:: max(len(samples) // args.patches, 1)][: args.patches]
    scores: dict[float, list[float]] = {}

    def score(c, sampler: str, calls: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        rmse, ssim = [], []
        for s in samples:
            with torch.inference_mode():
                pred = fill_sample(net, c, s, sampler=sampler, steps=calls, seed=0, device="cpu")
            m = image_metrics(pred, s.target, s.cloud)
            rmse.append(m.rmse_cloudy)
            ssim.append(m.ssim)
        return float(np.nanmean(rmse)), float(np.mean(ssim))

    one = score(cfg, "consistency", 1)
    print(f"{len(samples)} validation patches; 1 call: RMSE(cloudy) {one[0]:.4f} SSIM {one[1]:.4f}")
    for low in (float(v) for v in args.lows.split(",")):
        c = dataclasses.replace(
            cfg, consistency=dataclasses.replace(cfg.consistency, ladder_low=low)
        )
        for calls in (int(v) for v in args.calls.split(",")):
            r, s = score(c, "pdmsr", calls)
            scores.setdefault(low, []).append(r)
            print(
                f"ladder_low {low:g}, {calls} calls: RMSE(cloudy) {r:.4f} SSIM {s:.4f}", flush=True
            )
    best = min(scores, key=lambda k: float(np.mean(scores[k])))
    print(f"best ladder_low {best:g} (mean RMSE(cloudy) {np.mean(scores[best]):.4f})")
    if args.write:
        payload = read_checkpoint(args.student)
        tuned = dataclasses.replace(
            cfg, consistency=dataclasses.replace(cfg.consistency, ladder_low=best)
        )
        extra = dict(payload.get("extra") or {})
        extra["ladder_sweep"] = {f"{k:g}": v for k, v in scores.items()}
        save_checkpoint(args.student, net, tuned, step=int(payload["step"]), extra=extra)
        print(f"wrote ladder_low {best:g} into {args.student}")


if __name__ == "__main__":
    main()
