#!/usr/bin/env python3
"""Print the standardising ``model.scaling`` of a training run's data, as YAML to paste.

    python scripts/scaling-from-data.py model/presets/demo-train.yaml [N_SAMPLES]

Draws N (default 256) training samples of the run file's data and prints shift = per-band mean,
scale = 2 x per-band std of their clear targets, on the paper's [-1, 1] scale
(``clearcube.model.scaling.fit_scaling``). The values then live in the run file, so a run is
reproducible from it alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from clearcube.model.scaling import fit_scaling
from clearcube.model.train import build_datasets
from clearcube.model.train_cli import load_config


def main(config: str, n: str = "256") -> None:
    """Print the scaling block for ``config``."""
    cfg = load_config(Path(config))
    train_set, _ = build_datasets(cfg, cfg.model_config())
    step = max(1, len(train_set) // int(n))  # type: ignore[arg-type]
    targets = torch.stack([train_set[i]["target_s2"] for i in range(0, len(train_set), step)])  # type: ignore[arg-type]
    scaling = fit_scaling(targets)
    print("  scaling:")
    print(f"    s2_shift: [{', '.join(f'{v:.6f}' for v in scaling.s2_shift)}]")
    print(f"    s2_scale: [{', '.join(f'{v:.6f}' for v in scaling.s2_scale)}]")


if __name__ == "__main__":
    main(*sys.argv[1:3])
