#!/usr/bin/env python3
"""Slim a training checkpoint for release: keep the EMA weights and the config, drop the optimizer.

python scripts/export-checkpoint.py runs/demo/last.pt model/checkpoints/demo.pt
"""

from __future__ import annotations

import sys

from clearcube.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def main(src: str, dst: str) -> None:
    """Write ``dst`` with the EMA weights of ``src`` as the network and no optimizer state."""
    net, cfg, meta = load_checkpoint(src, use_ema=True)
    extra = dict(read_checkpoint(src).get("extra") or {})
    extra["exported_from"] = {"step": meta["step"], "weights": meta["weights"]}
    save_checkpoint(dst, net, cfg, step=meta["step"], extra=extra)


if __name__ == "__main__":
    main(*sys.argv[1:3])
