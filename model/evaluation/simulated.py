"""Held-out evaluation samples from demo-generator landscapes the demo checkpoint never saw.

The demo checkpoint trains on generator seeds 1-8 (``model/presets/demo-train.yaml``); these
samples come from seeds 201 onward. For each clear date (the target) the L input dates are the
other dates nearest in time, with their own simulated clouds, exactly as the pipeline's date
selection fuses them; the target date is never among the inputs.

    python -m clearcube.model.evaluation.simulated OUT_DIR [--level L2A] [--no-sar]   # .npz
    clearcube evaluate --data OUT_DIR --methods least-cloudy,mosaicing,median,clear-mean,geomedian,model \
        --checkpoint model/checkpoints/demo.pt --lengths 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.model.data.simulated import simulated_cubes
from clearcube.model.evaluation.samples import EvalSample, save_samples

#: Landscapes for evaluation: disjoint from the training seeds (1-8) and validation (101, 102).
EVAL_SEEDS = (201, 202, 203)


def simulated_samples(
    seeds: Sequence[int] = EVAL_SEEDS,
    *,
    size: int = 384,
    patch: int = 128,
    lengths: Sequence[int] = (3,),
    clear_threshold: float = 0.05,
    level: str = "L1C",
) -> Iterator[EvalSample]:
    """Samples (non-overlapping ``patch`` crops) of every clear date of every seed's cube.

    ``level`` ``"L2A"`` gives the demo catalog's surface reflectance (12 bands, no B10).
    """
    cubes = simulated_cubes(seeds, size=size, level=level)
    for seed, cube in zip(seeds, cubes, strict=True):
        cloud = cube["cloud"].values
        times = cube["time"].values
        s2 = cube["s2"].values
        s1 = cube["s1"].values
        for target in np.flatnonzero(cloud.mean(axis=(1, 2)) <= clear_threshold):
            others = [i for i in range(times.size) if i != target]
            order = sorted(others, key=lambda i: (abs(int(times[i] - times[target])), i))
            for length in lengths:
                chosen = sorted(order[:length])
                for y in range(0, size - patch + 1, patch):
                    for x in range(0, size - patch + 1, patch):
                        win = (slice(y, y + patch), slice(x, x + patch))
                        yield EvalSample(
                            name=f"sim{seed}_t{target}_L{length}_y{y}_x{x}",
                            inputs=s2[chosen][:, :, win[0], win[1]].astype(np.float32)
                            / DN_PER_REFLECTANCE,
                            cloud=cloud[chosen][:, win[0], win[1]],
                            target=s2[target][:, win[0], win[1]].astype(np.float32)
                            / DN_PER_REFLECTANCE,
                            sar=s1[chosen][:, :, win[0], win[1]],
                            source=f"simulated-seed{seed}-{level}",
                            meta={
                                "target_date": str(times[target])[:10],
                                "input_dates": ",".join(str(times[i])[:10] for i in chosen),
                            },
                        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clearcube.model.evaluation.simulated OUT_DIR [--level L2A] [--no-sar]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the .npz samples")
    parser.add_argument("--level", choices=("L1C", "L2A"), default="L1C")
    parser.add_argument("--no-sar", action="store_true", help="drop the SAR: the optical-only case")
    args = parser.parse_args(argv)
    samples = simulated_samples(level=args.level)
    if args.no_sar:
        samples = (dataclasses.replace(s, sar=None) for s in samples)
    paths = save_samples(samples, args.out)
    print(f"wrote {len(paths)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
