"""``clearcube fit --cube CUBE.zarr --checkpoint BASE --out FITTED.pt``: fit a model to a region."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from clearcube import BadInputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fit`` subcommand."""
    p = subparsers.add_parser(
        "fit",
        help="fine-tune a checkpoint on your own cube (self-supervised, held-out check)",
        description=(
            "Fine-tune a checkpoint on a clearcube cube: its clear dates are targets, real cloud "
            "masks of other dates are the gaps, the SAR of the same dates the condition. The "
            "east --held-out fraction of the region is never trained on; the held-out RMSE of "
            "the generated pixels is printed before and after."
        ),
    )
    p.add_argument("--cube", required=True, type=Path, help="Zarr cube from `clearcube cube`")
    p.add_argument("--checkpoint", type=Path, help="base checkpoint (default: the bundled demo)")
    p.add_argument("--out", required=True, type=Path, help="fitted checkpoint file to write")
    p.add_argument("--steps", type=int, default=400, help="fine-tuning steps (default 400)")
    p.add_argument("--batch-size", type=int, default=8, help="samples per step (default 8)")
    p.add_argument("--patch-size", type=int, default=64, help="training crop in px (default 64)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    p.add_argument(
        "--held-out", type=float, default=0.15, help="share of columns never trained on (0.15)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of crops, order and noise")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``fit`` subcommand."""
    # Local for CLI start-up: torch, xarray and zarr.
    from clearcube.model.checkpoint import default_checkpoint_path
    from clearcube.model.fitting import fit

    if not args.cube.exists():
        raise BadInputError(f"--cube {args.cube} does not exist; build one with `clearcube cube`")
    if args.out.exists() and args.out.is_dir():
        raise BadInputError(f"--out {args.out} is a folder; give the checkpoint file to write")
    if args.steps < 1 or args.batch_size < 1:
        raise BadInputError("--steps and --batch-size must be >= 1")
    checkpoint = args.checkpoint or default_checkpoint_path()
    bars: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            unit = "step" if phase == "train" else "sample"
            bar = bars[phase] = tqdm(total=total, desc=f"fit {phase}", unit=unit)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    result = fit(
        args.cube, checkpoint, args.out, steps=args.steps, batch_size=args.batch_size,
        patch_size=args.patch_size, lr=args.lr, held_out=args.held_out, seed=args.seed,
        device=args.device, progress=progress,
    )  # fmt: skip
    if args.json:
        print(json.dumps({**vars(result), "path": str(result.path)}, indent=2))
    else:
        change = (result.rmse_after - result.rmse_before) / result.rmse_before * 100
        print(
            f"held-out RMSE (reflectance, {result.held_out_pixels} generated pixels of "
            f"{result.held_out_samples} samples): {result.rmse_before:.4f} -> "
            f"{result.rmse_after:.4f} ({change:+.1f} %)"
        )
        print(f"fitted checkpoint: {result.path} ({result.seconds:.0f} s)")
    return 0
