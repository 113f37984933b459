"""``clearcube distill --teacher CKPT --config FILE --out STUDENT.pt``: a CM-CR consistency student."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from tqdm import tqdm

from clearcube import BadInputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``distill`` subcommand."""
    p = subparsers.add_parser(
        "distill",
        help="distil a diffusion checkpoint into a few-call consistency student (CM-CR)",
        description=(
            "Consistency distillation of a SeqDMs teacher (model/consistency.py). The YAML has "
            "the keys of a training run (data, steps, batch_size, lr, ema_rate, out_dir, ...) "
            "and a distill: section (grid_points, sigma_max, rho, sigma_data, distance, "
            "ladder_low); see model/presets/demo-distill.yaml. Checkpoints go to out_dir "
            "(resume with --resume auto); the student's EMA weights to --out."
        ),
    )
    p.add_argument("--teacher", required=True, type=Path, help="the diffusion checkpoint")
    p.add_argument("--config", required=True, type=Path, help="YAML file of the run")
    p.add_argument("--out", required=True, type=Path, help="the student checkpoint to write")
    p.add_argument("--run-dir", type=Path, help="folder of the resumable checkpoints (out_dir)")
    p.add_argument("--steps", type=int, help="total steps (overrides steps)")
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' (overrides resume)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides device)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``distill`` subcommand."""
    from clearcube.model.distill import distill, split_config  # local for CLI start-up: torch
    from clearcube.model.train_cli import read_run_yaml

    if not args.teacher.is_file():
        raise BadInputError(f"teacher checkpoint {args.teacher} does not exist; pass a .pt file")
    if args.out.suffix != ".pt":
        raise BadInputError(f"--out {args.out} should name a .pt file, e.g. student.pt")
    cfg, settings = split_config(read_run_yaml(args.config))
    overrides = {
        "out_dir": str(args.run_dir) if args.run_dir else None,
        "steps": args.steps,
        "resume": args.resume,
        "device": args.device,
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    with tqdm(total=cfg.steps, desc="distill", unit="step") as bar:

        def progress(step: int, total: int, logs: Any) -> None:
            bar.n = step
            shown = {"loss": f"{logs.get('loss', float('nan')):.5f}"}
            for key, value in logs.items():
                if key.startswith("val_cm") or key == "val_clear_mean_rmse":
                    shown[key] = f"{value:.4f}"
            bar.set_postfix(shown, refresh=False)
            bar.refresh()

        path = distill(args.teacher, cfg, settings, args.out, progress=progress)
    print(path)
    return 0
