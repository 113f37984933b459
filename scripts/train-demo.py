#!/usr/bin/env python3
"""Train the bundled demo checkpoint and export it (what produced model/checkpoints/demo.pt).

    python scripts/train-demo.py [RUN_DIR] [OUT_CHECKPOINT]

Runs ``model/presets/demo-train.yaml`` (on CUDA when there is one; bf16 autocast), logs losses
and validation, then writes the slim release checkpoint (EMA weights, no optimizer state).
Equivalent to ``clearcube train --config model/presets/demo-train.yaml --out RUN_DIR`` followed
by ``scripts/export-checkpoint.py RUN_DIR/last.pt OUT_CHECKPOINT``, without importing the
pipeline's geospatial stack (so it runs on a bare GPU machine with torch, xarray and scipy).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from pathlib import Path

from clearcube.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clearcube.model.train import train
from clearcube.model.train_cli import load_config

CONFIG = Path(__file__).resolve().parents[1] / "model" / "presets" / "demo-train.yaml"


def main(run_dir: str = "runs/demo", out: str = "model/checkpoints/demo.pt") -> None:
    """Train, then export the EMA weights to ``out``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = dataclasses.replace(load_config(CONFIG), out_dir=run_dir, resume="auto")
    start = time.perf_counter()
    last = train(cfg)
    logging.info("training took %.0f s", time.perf_counter() - start)
    net, model_cfg, meta = load_checkpoint(last, use_ema=True)
    extra = dict(read_checkpoint(last).get("extra") or {})
    extra["train_seconds"] = round(time.perf_counter() - start, 1)
    save_checkpoint(out, net, model_cfg, step=meta["step"], extra=extra)
    logging.info("wrote %s (step %d)", out, meta["step"])


if __name__ == "__main__":
    main(*sys.argv[1:3])
