"""Checkpoints: safe to load (``torch.load(weights_only=True)``), self-describing, refused on mismatch.

A clearcube checkpoint is a dict of tensors and plain Python types only:

    format        "clearcube-checkpoint"
    version       CHECKPOINT_VERSION (int)
    clearcube     the package version that wrote it
    config        ModelConfig.to_dict()  (STYLE.md rule 14: the model config lives in the checkpoint)
    s2_bands      list of band names of the optical channels, in order
    s1_bands      list of SAR polarisations, in order
    state_dict    the network weights
    ema           EMA weights (same keys) or None
    optimizer     optimizer.state_dict() or None
    step          training step
    extra         plain dict (training config, RNG state tensors, validation metrics...)

Files are written to a temporary name in the same directory and renamed, so a crash never
leaves a truncated checkpoint under the final name.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from clearcube import BadInputError, CheckpointMismatchError, __version__
from clearcube.model.config import ModelConfig
from clearcube.model.unet import UNet

CHECKPOINT_FORMAT: Final = "clearcube-checkpoint"
CHECKPOINT_VERSION: Final = 1
_DEMO_CHECKPOINT: Final = Path(__file__).parent / "checkpoints" / "demo.pt"
#: The consistency student distilled from demo.pt (model/presets/demo-distill.yaml).
_DEMO_STUDENT: Final = _DEMO_CHECKPOINT.with_name("demo-cm.pt")
#: Bundled checkpoint and the preset that trains it, per Sentinel-2 level.
_DEMO_CHECKPOINTS: Final = {
    "L1C": (_DEMO_CHECKPOINT, "demo-train.yaml"),
    "L2A": (_DEMO_CHECKPOINT.with_name("demo-l2a.pt"), "demo-l2a-train.yaml"),
}


def save_checkpoint(
    path: str | os.PathLike[str],
    net: nn.Module,
    cfg: ModelConfig,
    *,
    step: int,
    ema: nn.Module | Mapping[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file + rename) and return its path.

    Args:
        path: destination file (parent directories are created).
        net: the trained network.
        cfg: its model configuration (stored as a plain dict).
        step: training step reached.
        ema: EMA weights, as a module or a state dict.
        optimizer: optimizer whose state is stored for resuming.
        extra: more plain-typed data (tensors, str, int, float, bool, None, lists, dicts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ema_state = ema.state_dict() if isinstance(ema, nn.Module) else ema
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "clearcube": __version__,
        "config": cfg.to_dict(),
        "s2_bands": list(cfg.s2_bands),
        "s1_bands": list(cfg.s1_bands),
        "state_dict": _cpu(net.state_dict()),
        "ema": None if ema_state is None else _cpu(dict(ema_state)),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "step": int(step),
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Load a checkpoint's raw payload with ``weights_only=True`` and check it is clearcube's.

    ``mmap=True`` maps the tensors instead of reading them (for a look at the config).

    Raises:
        BadInputError: the file does not exist.
        CheckpointMismatchError: the file is not a clearcube checkpoint (or a newer version).
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"checkpoint {path} does not exist; pass the path of a .pt file")
    try:
        payload = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle errors, zip errors: all mean "not a loadable checkpoint"
        raise CheckpointMismatchError(
            f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}); "
            "pass a checkpoint written by clearcube train"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(
            f"{path} is not a clearcube checkpoint; pass one written by clearcube train"
        )
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointMismatchError(
            f"checkpoint {path} has format version {payload['version']}, newer than this "
            f"clearcube ({CHECKPOINT_VERSION}); upgrade clearcube"
        )
    return payload


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expect_s2_bands: Sequence[str] | None = None,
    expect_s1_bands: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    use_ema: bool = True,
) -> tuple[UNet, ModelConfig, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint, refusing one that does not fit the data.

    Args:
        path: the checkpoint file.
        expect_s2_bands: the cube's Sentinel-2 bands in order; None skips the check.
        expect_s1_bands: the cube's Sentinel-1 polarisations in order; None skips the check.
        device: where to put the network.
        use_ema: load the EMA weights when the checkpoint has them (best for sampling).

    Returns:
        ``(net, cfg, meta)``: the network in eval mode, its config, and
        ``{"step", "extra", "clearcube", "sha256", "path", "weights": "ema"|"raw"}``.

    Raises:
        CheckpointMismatchError: not a clearcube checkpoint, or trained on other bands.
    """
    payload = read_checkpoint(path, device="cpu")
    cfg = ModelConfig.from_dict(payload["config"])
    _check_bands(path, cfg, expect_s2_bands, expect_s1_bands)
    net = UNet(cfg.unet)
    weights = "ema" if use_ema and payload.get("ema") is not None else "raw"
    state = payload["ema"] if weights == "ema" else payload["state_dict"]
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointMismatchError(
            f"checkpoint {path}: weights do not fit its own config ({exc.args[0].splitlines()[0]}); "
            "the file is corrupt or was edited: retrain or re-download it"
        ) from exc
    net.to(device).eval()
    meta = {
        "step": payload["step"],
        "extra": payload.get("extra", {}),
        "clearcube": payload.get("clearcube"),
        "sha256": checkpoint_sha256(path),
        "path": str(path),
        "weights": weights,
    }
    return net, cfg, meta


def checkpoint_config(path: str | os.PathLike[str]) -> ModelConfig:
    """The model config stored in a checkpoint, without building its network.

    Raises:
        BadInputError: the file does not exist.
        CheckpointMismatchError: not a clearcube checkpoint.
    """
    # mmap: the tensors stay on disk; only the small config dict is read
    return ModelConfig.from_dict(read_checkpoint(path, mmap=True)["config"])


def check_checkpoint_bands(
    path: str | os.PathLike[str],
    *,
    s2_bands: Sequence[str] | None = None,
    s1_bands: Sequence[str] | None = None,
) -> ModelConfig:
    """Refuse a checkpoint trained on other bands (from its config alone); return that config.

    Raises:
        CheckpointMismatchError: not a clearcube checkpoint, or trained on other bands.
    """
    cfg = checkpoint_config(path)
    _check_bands(path, cfg, s2_bands, s1_bands)
    return cfg


def _check_bands(
    path: str | os.PathLike[str],
    cfg: ModelConfig,
    s2_bands: Sequence[str] | None,
    s1_bands: Sequence[str] | None,
) -> None:
    for kind, have, expect in (
        ("bands", cfg.s2_bands, s2_bands),
        ("SAR polarisations", cfg.s1_bands, s1_bands),
    ):
        if expect is not None and tuple(expect) != tuple(have):
            bundled = {13: "demo.pt (L1C, --mask s2cloudless)", 12: "demo-l2a.pt (L2A, --mask scl)"}
            hint = bundled.get(len(tuple(expect)), "") if kind == "bands" else ""
            raise CheckpointMismatchError(
                f"checkpoint {path} was trained on {kind} {list(have)}; the cube has "
                f"{list(expect)}; pass --checkpoint with one trained on these {kind}"
                + (f" (bundled: model/checkpoints/{hint})" if hint else "")
            )


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a checkpoint file: its identity (run records, COG tags, STYLE.md rule 14).

    Computed once per file version: the digest is cached under the file's real path, size and
    modification time, so the orchestrator, the products and the workers share one hash.
    """
    real = os.path.realpath(path)
    stat = os.stat(real)
    return _sha256(real, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(real: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(real, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_checkpoint_path(level: str = "L1C", *, student: bool = False) -> Path:
    """Path of the bundled demo checkpoint of a Sentinel-2 level; raises if it is absent.

    ``L1C``: ``demo.pt`` (13 top-of-atmosphere bands); ``L2A``: ``demo-l2a.pt`` (12 surface
    reflectance bands, no B10), for the SCL route of Planetary Computer and Earth Search L2A.
    ``student=True``: the consistency student distilled from ``demo.pt`` (``demo-cm.pt``, L1C
    only), for the samplers ``consistency`` and ``pdmsr``.

    Raises:
        BadInputError: the level's checkpoint is absent.
    """
    if student:
        if level != "L1C":
            raise BadInputError(
                f"no consistency student is bundled for {level}; distill one with `clearcube "
                "distill --teacher model/checkpoints/demo-l2a.pt --config "
                "model/presets/demo-distill.yaml --out student.pt` and pass --checkpoint"
            )
        if not _DEMO_STUDENT.is_file():
            raise BadInputError(
                f"the bundled consistency student {_DEMO_STUDENT} is missing; distill it with "
                "`clearcube distill --teacher model/checkpoints/demo.pt --config "
                "model/presets/demo-distill.yaml --out model/checkpoints/demo-cm.pt`"
            )
        return _DEMO_STUDENT
    path, preset = _DEMO_CHECKPOINTS.get(level, _DEMO_CHECKPOINTS["L1C"])
    if not path.is_file():
        raise BadInputError(
            f"the bundled demo checkpoint {path} is missing; train it with "
            f"`clearcube train --config model/presets/{preset}` or pass --checkpoint PATH"
        )
    return path


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu") for k, v in state.items()}
