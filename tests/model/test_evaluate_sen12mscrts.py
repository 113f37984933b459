"""`clearcube evaluate` over a tiny SEN12MS-CR-TS-shaped folder built from the real SEN12MS-CR patch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clearcube.model.evaluation.sen12mscrts import is_sen12mscrts, sen12mscrts_samples
from clearcube.pipeline.cli import main

pytestmark = pytest.mark.integration

DATES = ("2018-03-01", "2018-03-11", "2018-03-21")


@pytest.fixture(scope="module")
def crts(
    test_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray, np.ndarray]:
    """ROIs1868/19 patch 30 on three dates: the real cloudy image, darkened, and flipped."""
    import rasterio

    src = test_data / "sen12mscr-patch"
    with rasterio.open(src / "ROIs1868_summer_s2_cloudy_19_p30.tif") as f:
        s2, s2_profile = f.read(), f.profile
    with rasterio.open(src / "ROIs1868_summer_s1_19_p30.tif") as f:
        s1, s1_profile = f.read(), f.profile
    variants = np.stack([s2, (s2 * 0.5).astype(np.uint16), s2[:, :, ::-1].copy()])
    root = tmp_path_factory.mktemp("crts")
    for t, (date, img) in enumerate(zip(DATES, variants, strict=True)):
        for sensor, array, profile in (("s2", img, s2_profile), ("s1", s1, s1_profile)):
            path = (
                root
                / "ROIs1868"
                / "19"
                / sensor.upper()
                / str(t)
                / f"{sensor}_ROIs1868_19_ImgNo_{t}_{date}_patch_30.tif"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(
                path, "w", **{**profile, "count": array.shape[0], "dtype": array.dtype}
            ) as dst:
                dst.write(array)
    return root, variants, s1


def test_samples_undo_the_model_scaling(crts: tuple[Path, np.ndarray, np.ndarray]) -> None:
    root, variants, s1 = crts
    assert is_sen12mscrts(root) and not is_sen12mscrts(root / "ROIs1868")
    (sample,) = sen12mscrts_samples(root, lengths=(2,), split="all")
    reflectance = np.clip(variants.astype(np.float64), 0, 10000) / 10000
    errors = [np.abs(sample.target - r).max() for r in reflectance]
    target = int(np.argmin(errors))
    assert errors[target] < 1e-6 and not sample.target_in_inputs
    others = [i for i in range(3) if i != target]
    np.testing.assert_allclose(sample.inputs, reflectance[others], atol=1e-6)
    assert sample.sar is not None
    np.testing.assert_allclose(sample.sar[0], np.clip(s1, -25, 0), atol=1e-4)


def test_evaluate_cli_on_the_folder(
    crts: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    root, _, _ = crts
    out = tmp_path / "out"
    assert (
        main(
            ["evaluate", "--data", str(root), "--split", "all", "--lengths", "2", "--out", str(out)]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["samples"] == 1 and summary["counts"]["by_source"] == {
        "sen12mscrts": 1
    }
