"""The diffusion model (SeqTIS sampling from a checkpoint) as an evaluation method.

Data flow per sample: optical inputs on [0, 1] -> [-1, 1] (the paper's §4.4 scaling, i.e. DN
clipped to [0, 10000]); SAR in dB -> [-1, 1] (clipped to [-25, 0]); ``known = ~cloud``; one
SeqTIS reconstruction with a generator seeded from ``seed`` and the sample name; back to [0, 1].
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any

import numpy as np
import torch

from clearcube import BadInputError, ClearcubeError
from clearcube.model.checkpoint import load_checkpoint
from clearcube.model.data.normalize import s1_to_model
from clearcube.model.evaluation.runner import Method
from clearcube.model.evaluation.samples import EvalSample
from clearcube.model.fill import fill_gaps
from clearcube.model.precision import InferenceNetwork, Precision

_NEEDS = (
    "model evaluation needs a checkpoint (--checkpoint PATH) and the SeqTIS sampler "
    "(clearcube.model.samplers.sample_seqtis)"
)


def _sampler_module() -> Any:
    try:
        return importlib.import_module("clearcube.model.samplers")
    except ModuleNotFoundError as exc:
        raise ClearcubeError(
            f"{_NEEDS}; this install has no clearcube.model.samplers yet: "
            "evaluate the baselines only (--methods least-cloudy,mosaicing,median)"
        ) from exc


def model_method(
    checkpoint: str | None,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    device: str = "cpu",
    samples: int = 1,
    ladder: tuple[float, ...] = (),
    precision: Precision = "fp32",
) -> Method:
    """Load ``checkpoint`` once and return a method reconstructing each sample with SeqTIS.

    With ``samples`` K > 1 the fill is the mean of K draws, as the pipeline's composite is.

    Raises:
        BadInputError: no checkpoint given.
        ClearcubeError: the sampler module is not available in this install.
    """
    if not checkpoint:
        raise BadInputError(f"{_NEEDS}; pass --checkpoint PATH or leave 'model' out of --methods")
    _sampler_module()
    loaded, cfg, _ = load_checkpoint(checkpoint, device=device)
    net = InferenceNetwork(loaded, precision).eval()

    def run(sample: EvalSample) -> np.ndarray:
        return fill_sample(
            net, cfg, sample, sampler=sampler, steps=steps, seed=seed, device=device,
            samples=samples, ladder=ladder,
        )  # fmt: skip

    run.__name__ = "model"
    return run


def fill_sample(
    net: Any,
    cfg: Any,
    sample: EvalSample,
    *,
    sampler: str,
    steps: int,
    seed: int,
    device: str,
    samples: int = 1,
    ladder: tuple[float, ...] = (),
) -> np.ndarray:
    """One SeqTIS fill of an evaluation sample, ``(C, H, W)`` on [0, 1] (the mean of K draws).

    Optical [0, 1] → [-1, 1]; SAR dB → [-1, 1] (clipped to [-25, 0]); ``known = ~cloud``; the
    noise seeded from ``seed`` and the sample's name, so every method that fills a sample with
    a model draws the same noise for it.
    """
    generator = torch.Generator(device=device).manual_seed(seed ^ zlib.crc32(sample.name.encode()))
    observed = torch.from_numpy(sample.inputs * 2.0 - 1.0)[None].to(device)  # (1, L, C, H, W)
    known = torch.from_numpy(~sample.cloud)[None, :, None].to(device)  # (1, L, 1, H, W)
    if sample.sar is None:
        # No SAR for this sample (eo-learn has none): the middle of the SAR range, the same
        # fill the pipeline uses where no date has an S1 pair. The model then leans on the
        # clear dates alone.
        length, _, h, w = sample.inputs.shape
        sar_db = np.zeros((length, len(cfg.s1_bands), h, w), dtype=np.float32)
    else:
        sar_db = np.nan_to_num(s1_to_model(sample.sar)).astype(np.float32)
    sar = torch.from_numpy(sar_db)[None].to(device)
    draws = []
    with torch.no_grad():
        for _ in range(samples):  # one generator: draw k continues where draw k-1 stopped
            x0 = fill_gaps(
                net,
                cfg,
                observed=observed,
                known=known,
                sar=sar,
                generator=generator,
                sampler=sampler,  # type: ignore[arg-type]
                steps=steps,
                ladder=ladder,
            )
            draws.append(((x0[0].clamp(-1, 1) + 1.0) / 2.0).double().cpu().numpy())
    filled: np.ndarray = np.mean(draws, axis=0)
    return filled
