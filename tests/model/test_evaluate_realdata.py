"""The real-data evaluation set built from $CLEARCUBE_TEST_DATA (skipped without it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clearcube.model.evaluation.realdata import (
    EOLEARN_DATES,
    build_real_set,
    cloud_opacity,
    overlay_clouds,
)
from clearcube.model.metrics import image_metrics

pytestmark = pytest.mark.integration


def test_overlay_keeps_clear_pixels_and_blends_clouds() -> None:
    clear = np.full((2, 1, 3), 0.1, np.float32)
    layer = np.full((2, 1, 3), 0.5, np.float32)
    clm = np.array([[False, True, True]])
    clp = np.array([[0.9, 0.4, 0.9]], np.float32)
    out = overlay_clouds(clear, clm, clp, layer)
    alpha = np.array([0.0, 0.6, 1.0])  # clip(1.5·CLP, 0.3, 1) on cloud pixels only
    np.testing.assert_allclose(cloud_opacity(clm, clp)[0], alpha, rtol=1e-6)
    np.testing.assert_allclose(out[0, 0], 0.1 * (1 - alpha) + 0.5 * alpha, rtol=1e-6)


@pytest.fixture(scope="module")
def real_set(test_data: Path) -> list:
    return build_real_set(test_data, lengths=(3, 5), patch=256, seed=3)


def test_real_set_shapes_ranges_and_flags(real_set: list) -> None:
    sources = {s.source for s in real_set}
    assert sources == {"sen1floods11", "eolearn"}
    for s in real_set:
        assert s.inputs.shape[1] == 13 and s.length in (3, 5)
        assert float(s.inputs.min()) >= 0.0 and float(s.inputs.max()) <= 1.0
        assert s.cloud.dtype == bool and 0.0 <= s.cloud_coverage <= 1.0
        # pixels not under a cloud are the clear scene itself whenever the target date is an input
        if s.source == "sen1floods11":
            assert s.target_in_inputs and s.sar is not None and s.inputs.shape[-1] == 256
            np.testing.assert_array_equal(s.inputs[0][:, ~s.cloud[0]], s.target[:, ~s.cloud[0]])
        else:
            assert s.sar is None
            assert s.target_in_inputs == (s.meta["target_date"] in s.meta["input_dates"])
    eolearn = [s for s in real_set if s.source == "eolearn"]
    # per clear target: C(5,3) = 10 sequences of L = 3 and one of L = 5 (which holds the target)
    assert len(eolearn) == 3 * (10 + 1)
    assert sum(not s.target_in_inputs for s in eolearn) == 3 * 4
    assert len([s for s in real_set if s.source == "sen1floods11"]) == 4 * 2


def test_real_cloudy_dates_enter_unchanged(real_set: list) -> None:
    s = next(
        s
        for s in real_set
        if s.source == "eolearn" and s.meta["input_dates"].startswith(EOLEARN_DATES[1])
    )
    assert s.cloud[0].all()  # 2015-07-31 is fully cloudy in its own s2cloudless mask


def test_real_set_is_deterministic_and_seed_dependent(test_data: Path, real_set: list) -> None:
    again = build_real_set(test_data, lengths=(3, 5), patch=256, seed=3)
    assert [s.name for s in again] == [s.name for s in real_set]
    assert all(np.array_equal(a.inputs, b.inputs) for a, b in zip(again, real_set, strict=True))
    other = build_real_set(test_data, lengths=(3, 5), patch=256, seed=4)
    assert [s.name for s in other] == [s.name for s in real_set]
    assert not all(np.array_equal(a.cloud, b.cloud) for a, b in zip(other, real_set, strict=True))


def test_the_target_scores_perfectly_and_inputs_do_not(real_set: list) -> None:
    s = next(s for s in real_set if s.source == "eolearn" and not s.target_in_inputs)
    assert image_metrics(s.target, s.target, s.cloud).rmse_all == 0.0
    assert image_metrics(s.inputs[-1], s.target, s.cloud).rmse_all > 0.005  # another date differs
