"""Frozen configuration of a training run (read from YAML by ``clearcube train --config``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clearcube import BadInputError
from clearcube.model.config import ModelConfig, dataclass_from_dict, preset


@dataclass(frozen=True)
class DataConfig:
    """Where training and validation samples come from."""

    kind: Literal["zarr", "sen12mscrts", "simulated"] = "zarr"
    """A clearcube Zarr cube, a SEN12MS-CR-TS root folder, or cubes simulated by the demo-region
    generator (``seeds``; no files needed)."""
    path: str = ""
    """The cube (Zarr store) or the SEN12MS-CR-TS root. Relative paths are taken from the
    directory of the YAML file when loaded by the CLI."""
    seq_len: int = 3
    """L, cloudy input dates per sample (the paper trains with 3)."""
    patch_size: int = 64
    """Crop size P of cube samples (SEN12MS-CR-TS patches are used whole, 256)."""
    clear_threshold: float = 0.05
    """Largest cloud fraction of a target date (cube data)."""
    synthetic_prob: float = 0.5
    """Share of cube samples made of a clear date under other dates' clouds."""
    samples_per_date: int = 64
    """Random crops per clear date in one pass (cube data)."""
    sar_dropout: float = 0.0
    """Share of cube training samples shown without SAR (all SAR at 0, as the pipeline feeds
    regions without Sentinel-1), so the network also fills optical-only inputs."""
    val_fraction: float = 0.2
    """Cube data: the last fraction of the x extent is held out for validation (0 disables)."""
    seeds: tuple[int, ...] = (1, 2, 3, 4)
    """Simulated data: generator seeds of the training landscapes (0, the demo region, is refused)."""
    val_seeds: tuple[int, ...] = (101,)
    """Simulated data: seeds of the validation landscapes."""
    size: int = 384
    """Simulated data: side of each simulated cube in pixels (a multiple of 6)."""
    level: Literal["L1C", "L2A"] = "L1C"
    """Simulated data: top-of-atmosphere L1C (13 bands) or surface-reflectance L2A (12 bands);
    the model's ``s2_bands`` must be the level's bands."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run: model, data, optimiser, precision, checkpoints and validation."""

    data: DataConfig = field(default_factory=DataConfig)
    """The training data."""
    preset: str = "cpu-tiny"
    """Named model preset (``clearcube.model.config.PRESETS``), used when ``model`` is None."""
    model: ModelConfig | None = None
    """A full model config; overrides ``preset``."""
    steps: int = 1000
    """Optimiser steps to reach (a resumed run continues up to this number)."""
    batch_size: int = 4
    """Samples per step."""
    lr: float = 1e-4
    """AdamW learning rate (the paper: 1e-4)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    ema_rate: float = 0.9999
    """EMA decay of the weights kept for sampling (warmed up as min(rate, (1+n)/(10+n)))."""
    grad_clip: float = 1.0
    """Largest global gradient norm (0 disables clipping)."""
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    """Autocast precision on CUDA (fp16 adds a GradScaler); CPU always trains in fp32."""
    temporal_weight: float = 1.0
    """Weight of the cloudy-sequence loss (Eq. 28) added to the clean-pair loss (Eq. 27)."""
    temporal_target: Literal["paper", "consistent"] = "paper"
    """What Eq. 28 regresses: the clean pair's noise as the paper writes it ("paper"), or the
    clean target in x̂_0 space from the actual fused input ("consistent"; see
    :func:`clearcube.model.seqtis.temporal_training_losses`)."""
    checkpoint_every: int = 500
    """Write ``last.pt`` every this many steps (and at the end)."""
    validate_every: int = 500
    """Validate every this many steps (0 disables)."""
    val_batches: int = 4
    """Batches per validation."""
    log_every: int = 50
    """Log loss and steps/s every this many steps."""
    out_dir: str = "runs/train"
    """Folder for ``last.pt`` and ``train.log``."""
    resume: str | None = None
    """Checkpoint to resume from (weights, EMA, optimiser, step, RNG); "auto" resumes from
    ``out_dir/last.pt`` when it exists."""
    init: str | None = None
    """Checkpoint whose weights (EMA when present) start a new run: fine-tuning. Its U-Net
    must have this run's shape; its diffusion settings and scaling may differ (they are this
    run's to choose). Ignored when the run resumes."""
    seed: int = 0
    """Seed of data order, crops and diffusion noise."""
    device: str = "auto"
    """"auto" (CUDA when present), "cpu", "cuda", "cuda:1"..."""
    num_workers: int = 0
    """DataLoader worker processes."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise BadInputError("train: steps and batch_size must be >= 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise BadInputError(
                f"train: precision {self.precision!r} unknown; use fp32, bf16 or fp16"
            )
        if self.temporal_target not in ("paper", "consistent"):
            raise BadInputError(
                f"train: temporal_target {self.temporal_target!r} unknown; use paper or consistent"
            )
        if not 0.0 <= self.ema_rate < 1.0:
            raise BadInputError("train: ema_rate must be in [0, 1)")
        if not 0.0 <= self.data.sar_dropout <= 1.0:
            raise BadInputError(
                f"train: data.sar_dropout must be in [0, 1], got {self.data.sar_dropout}"
            )
        self.model_config()  # unknown preset names fail here, before any data is read

    def model_config(self) -> ModelConfig:
        """The model to train: ``model`` if given, else the named preset."""
        return self.model if self.model is not None else preset(self.preset)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (stored in checkpoints' ``extra``)."""
        out = dataclasses.asdict(self)
        out["model"] = None if self.model is None else self.model.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (parsed YAML); unknown keys raise :class:`BadInputError`."""
        data = dict(data)
        if "data" in data:
            data["data"] = dataclass_from_dict(DataConfig, data["data"], "train.data")
        if data.get("model") is not None:
            data["model"] = ModelConfig.from_dict(data["model"])
        return dataclass_from_dict(cls, data, "train")
