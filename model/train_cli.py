"""``clearcube train --config FILE.yaml``: train or resume a SeqDMs model from a YAML run file."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from clearcube import BadInputError
from clearcube.model.train_config import TrainConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a SeqDMs model (temporal training strategy)",
        description="Train or resume a SeqDMs model from a YAML run file (keys of TrainConfig).",
    )
    p.add_argument("--config", required=True, type=Path, help="YAML file of the run")
    p.add_argument("--out", type=Path, help="output folder (overrides out_dir)")
    p.add_argument("--steps", type=int, help="total steps (overrides steps)")
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' (overrides resume)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides device)")
    p.set_defaults(func=run)


def load_config(path: Path) -> TrainConfig:
    """Read a YAML run file into a TrainConfig; relative data paths are taken from its folder."""
    return TrainConfig.from_dict(read_run_yaml(path))


def read_run_yaml(path: Path) -> dict[str, Any]:
    """A YAML run file as a mapping, its relative ``data.path`` and ``init`` made absolute."""
    if not path.is_file():
        raise BadInputError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise BadInputError(
            f"config file {path} is not valid YAML{where}: {problem}; fix it (see "
            "model/presets/demo-train.yaml)"
        ) from None
    if not isinstance(raw, dict):
        raise BadInputError(f"config file {path} must hold a mapping of TrainConfig keys")
    data = raw.get("data")
    if isinstance(data, dict) and data.get("path") and not Path(data["path"]).is_absolute():
        raw["data"] = {**data, "path": str((path.parent / data["path"]).resolve())}
    init = raw.get("init")
    if isinstance(init, str) and not Path(init).is_absolute():
        raw["init"] = str((path.parent / init).resolve())
    return raw


def run(args: argparse.Namespace) -> int:
    """Run the ``train`` subcommand."""
    from clearcube.model.train import train  # local for CLI start-up: torch

    cfg = with_overrides(load_config(args.config), args, args.out)
    with step_bar(cfg.steps, "train", ("val_fill_rmse", "val_clear_mean_rmse")) as progress:
        path = train(cfg, progress=progress)
    print(path)
    return 0


def with_overrides(cfg: TrainConfig, args: argparse.Namespace, out_dir: Path | None) -> TrainConfig:
    """``cfg`` with the command line's ``out_dir``, ``--steps``, ``--resume``, ``--device``."""
    overrides = {
        "out_dir": str(out_dir) if out_dir else None,
        "steps": args.steps,
        "resume": args.resume,
        "device": args.device,
    }
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


@contextlib.contextmanager
def step_bar(
    total: int, desc: str, shown_keys: tuple[str, ...] = ()
) -> Iterator[Callable[[int, int, Any], None]]:
    """A tqdm bar over optimiser steps; yields the ``progress(step, total, logs)`` to pass on.

    The postfix shows the loss, samples/s and those of ``shown_keys`` a step's logs carry.
    """
    with tqdm(total=total, desc=desc, unit="step") as bar:

        def progress(step: int, total: int, logs: Any) -> None:
            bar.n = step
            shown = {"loss": f"{logs.get('loss', float('nan')):.4f}"}
            if "samples_per_s" in logs:
                shown["samples/s"] = f"{logs['samples_per_s']:.1f}"
            for key in shown_keys:
                if key in logs:
                    shown[key] = f"{logs[key]:.4f}"
            bar.set_postfix(shown, refresh=False)
            bar.refresh()

        yield progress
