"""The consistency samplers through the pipeline: options, the run record, K samples."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from region_fixtures import PERIOD, REGION

from clearcube import BadInputError


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained cpu-tiny consistency student (the boundary form over random weights)."""
    import torch

    from clearcube.model import consistency as cm
    from clearcube.model.checkpoint import save_checkpoint
    from clearcube.model.config import ConsistencyConfig, preset
    from clearcube.model.schedule import from_config
    from clearcube.model.unet import UNet

    base = preset("cpu-tiny")
    sigmas = cm.teacher_sigmas(from_config(base.diffusion))
    cc = ConsistencyConfig(
        sigma_data=0.4, sigma_min=float(sigmas[0]), grid=cm.karras_grid(sigmas, 12)
    )
    cfg = dataclasses.replace(base, consistency=cc)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("student") / "student.pt"
    return save_checkpoint(path, UNet(cfg.unet), cfg, step=0)


def test_samplers_are_checked_against_the_checkpoint_before_any_io(
    student: Path, tiny_checkpoint: Path
) -> None:
    from clearcube.pipeline.options import make_options

    with pytest.raises(
        BadInputError, match="consistency student; pass --sampler consistency or pdmsr"
    ):
        make_options(REGION, *PERIOD, checkpoint=student, sampler="ddim")
    with pytest.raises(BadInputError, match="diffusion model; pass --sampler ddim or ddpm"):
        make_options(REGION, *PERIOD, checkpoint=tiny_checkpoint, sampler="pdmsr")
    with pytest.raises(BadInputError, match="one network call"):
        make_options(REGION, *PERIOD, checkpoint=student, sampler="consistency", steps=3)
    with pytest.raises(BadInputError, match="--ladder applies to --sampler pdmsr only"):
        make_options(REGION, *PERIOD, checkpoint=tiny_checkpoint, ladder=(80.0, 1.0))
    with pytest.raises(BadInputError, match="descending"):
        make_options(REGION, *PERIOD, checkpoint=student, sampler="pdmsr", ladder=(1.0, 80.0))
    # defaults: pdmsr makes 2 calls, consistency 1, ddim 50 reverse steps; a ladder sets the count
    assert make_options(REGION, *PERIOD, checkpoint=student, sampler="pdmsr").model.steps == 2
    assert make_options(REGION, *PERIOD, checkpoint=student, sampler="consistency").model.steps == 1
    assert make_options(REGION, *PERIOD, checkpoint=tiny_checkpoint).model.steps == 50
    laddered = make_options(REGION, *PERIOD, checkpoint=student, sampler="pdmsr", ladder=(80, 2))
    assert laddered.model.steps == 2 and laddered.model.ladder == (80.0, 2.0)


def test_the_cli_refuses_a_sampler_the_checkpoint_cannot_run(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clearcube.pipeline.cli import main

    code = main(["run", "--bbox", *map(str, REGION), "--start", PERIOD[0], "--end", PERIOD[1], "--out",
                 str(tmp_path / "o"), "--checkpoint", str(tiny_checkpoint), "--sampler", "pdmsr"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pass --sampler ddim or ddpm" in err[0]
    assert not (tmp_path / "o").exists()  # refused before the folder is claimed


def test_a_pdmsr_composite_with_k_samples_writes_uncertainty(
    student: Path, runs: Any, read_cog: Any
) -> None:
    out = runs.tmp.mktemp("pdmsr") / "out"
    result = runs.run(out, checkpoint=student, sampler="pdmsr", steps=None, ladder=(80.0, 1.0),
                      samples=2)  # fmt: skip
    record = json.loads((out / "run.json").read_text())["options"]
    assert record["sampler"] == "pdmsr" and record["steps"] == 2 and record["ladder"] == [80.0, 1.0]
    assert result.uncertainty_path is not None and result.uncertainty_path.is_file()
    spread = read_cog(result.uncertainty_path).astype(np.float64)
    composite = read_cog(result.cog_path)
    assert np.isfinite(composite).any() and (spread > 0).any()  # two draws differ where generated
