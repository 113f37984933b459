"""The SEN12MS-CR-TS reader on a tiny dataset-shaped folder built from the real SEN12MS-CR patch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clearcube.model.data.normalize import s1_to_model, s2_to_model
from clearcube.model.data.sen12mscrts import (
    Sen12mscrtsDataset,
    index_sen12mscrts,
    pick_target_and_inputs,
)

pytestmark = pytest.mark.integration

DATES = ("2018-01-03", "2018-01-15", "2018-02-02")


def _write(path: Path, array: np.ndarray, profile: dict) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", **{**profile, "count": array.shape[0], "dtype": array.dtype}
    ) as dst:
        dst.write(array)


@pytest.fixture(scope="module")
def crts(test_data, tmp_path_factory):
    """ROIs1868/19 with three dates of patch 30 (the real image, darkened, flipped) and a stray file."""
    import rasterio

    src = test_data / "sen12mscr-patch"
    with rasterio.open(src / "ROIs1868_summer_s2_cloudy_19_p30.tif") as f:
        s2, profile = f.read(), f.profile
    with rasterio.open(src / "ROIs1868_summer_s1_19_p30.tif") as f:
        s1, s1_profile = f.read(), f.profile
    variants = [s2, (s2 * 0.55).astype(np.uint16), s2[:, ::-1, :].copy()]
    root = tmp_path_factory.mktemp("crts")
    tile = root / "ROIs1868" / "19"
    for t, (date, img) in enumerate(zip(DATES, variants, strict=True)):
        _write(tile / "S2" / str(t) / f"s2_ROIs1868_19_ImgNo_{t}_{date}_patch_30.tif", img, profile)
        _write(
            tile / "S1" / str(t) / f"s1_ROIs1868_19_ImgNo_{t}_{date}_patch_30.tif",
            s1 + t,
            s1_profile,
        )
    # patch 31 has only an S2 file on date 0: not a usable series
    _write(tile / "S2" / "0" / f"s2_ROIs1868_19_ImgNo_0_{DATES[0]}_patch_31.tif", s2, profile)
    (tile / "S2" / "0" / "notes.txt").write_text("not a tif")
    return root, np.stack(variants), s1


def test_index_follows_the_layout(crts):
    root, _, _ = crts
    (series,) = index_sen12mscrts(root)
    assert series.roi == "ROIs1868/19" and series.patch == 30
    assert series.dates == DATES
    assert [p.parent.name for p in series.s1] == ["0", "1", "2"]
    assert index_sen12mscrts(root, rois=["ROIs1868/20"]) == []


def test_sample_matches_s2cloudless_oracle(crts):
    from s2cloudless import S2PixelCloudDetector

    root, s2, s1 = crts
    ds = Sen12mscrtsDataset(root, seq_len=2)
    assert len(ds) == 1
    sample = ds[0]

    detector = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=True)
    oracle = detector.get_cloud_masks(np.moveaxis(np.clip(s2, 0, 10000) / 10000.0, 1, -1)).astype(
        bool
    )
    fractions = oracle.mean(axis=(1, 2))
    assert fractions.max() > 0.05  # the real patch is cloudy, so the choice is meaningful
    target = int(np.argmin(fractions))
    inputs = [t for t in range(3) if t != target]

    np.testing.assert_array_equal(sample["known"].numpy(), ~oracle[inputs])
    np.testing.assert_allclose(sample["target_s2"].numpy(), s2_to_model(s2[target]))
    np.testing.assert_allclose(sample["inputs_s2"].numpy(), s2_to_model(s2[inputs]))
    np.testing.assert_allclose(sample["inputs_s1"][1].numpy(), s1_to_model(s1 + inputs[1]))
    assert sample["target_s2"].min() >= -1 and sample["target_s2"].max() <= 1
    assert sample["inputs_s1"].shape == (2, 2, 256, 256)


def test_masks_are_cached_beside_the_data(crts):
    root, _, _ = crts
    caches = sorted(root.rglob("*.s2cloudless.npy"))
    if not caches:  # this test may run alone: fill the cache first
        Sen12mscrtsDataset(root, seq_len=2)[0]
        caches = sorted(root.rglob("*.s2cloudless.npy"))
    assert len(caches) == 3
    for cache in caches:  # a cached all-clear mask must be what the reader uses
        np.save(cache, np.zeros((256, 256), dtype=bool))
    sample = Sen12mscrtsDataset(root, seq_len=2)[0]
    assert bool(sample["known"].all())


def test_target_and_input_choice():
    assert pick_target_and_inputs(np.array([0.5, 0.2, 0.9, 0.2, 0.7]), 2) == (1, [0, 2])
    assert pick_target_and_inputs(np.array([0.0, 0.5, 0.9, 0.7]), 3) == (0, [1, 2, 3])
