"""``clearcube distill --teacher CKPT --config FILE --out STUDENT.pt``: a CM-CR consistency student."""

from __future__ import annotations

import argparse
from pathlib import Path

from clearcube import BadInputError
from clearcube.model.train_cli import read_run_yaml, step_bar, with_overrides


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

    if not args.teacher.is_file():
        raise BadInputError(f"teacher checkpoint {args.teacher} does not exist; pass a .pt file")
    if args.out.suffix != ".pt":
        raise BadInputError(f"--out {args.out} should name a .pt file, e.g. student.pt")
    cfg, settings = split_config(read_run_yaml(args.config))
    cfg = with_overrides(cfg, args, args.run_dir)
    shown = (*(f"val_cm{k}_rmse" for k in settings.validate_calls), "val_clear_mean_rmse")
    with step_bar(cfg.steps, "distill", shown) as progress:
        path = distill(args.teacher, cfg, settings, args.out, progress=progress)
    print(path)
    return 0
