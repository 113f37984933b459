"""Metrics against values derived independently: closed forms, identities and direct loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clearcube.model.metrics import (
    average_metrics,
    cloudy_pixels,
    image_metrics,
    psnr,
    rmse,
    sam,
    ssim,
)

RNG = np.random.default_rng(7)


def _image(c: int = 3, h: int = 16, w: int = 16) -> np.ndarray:
    return RNG.uniform(0.05, 0.9, size=(c, h, w))


def test_identical_images_are_perfect() -> None:
    x = _image()
    m = image_metrics(x, x.copy())
    assert m.rmse_all == 0.0
    assert m.psnr == math.inf
    assert m.ssim == pytest.approx(1.0, abs=1e-12)
    assert m.sam_deg == pytest.approx(0.0, abs=1e-5)  # arccos near 1 loses ~sqrt(eps)


@pytest.mark.parametrize("d", [0.01, -0.05, 0.2])
def test_constant_offset_gives_rmse_d_and_closed_form_psnr(d: float) -> None:
    x = _image()
    assert rmse(x + d, x) == pytest.approx(abs(d), rel=1e-12)
    assert psnr(x + d, x) == pytest.approx(-20 * math.log10(abs(d)), rel=1e-10)


def test_rmse_on_a_hand_made_two_pixel_image() -> None:
    target = np.zeros((2, 1, 2))
    pred = np.array([[[0.3, 0.0]], [[0.4, 0.0]]])  # pixel 0 errs by (0.3, 0.4), pixel 1 exact
    assert rmse(pred, target) == pytest.approx(math.sqrt((0.09 + 0.16) / 4))
    assert rmse(pred, target, where=np.array([[True, False]])) == pytest.approx(math.sqrt(0.25 / 2))
    assert math.isnan(rmse(pred, target, where=np.zeros((1, 2), bool)))


def test_sam_is_zero_for_scaled_spectra_and_90_for_orthogonal() -> None:
    x = _image()
    assert sam(2.5 * x, x) == pytest.approx(0.0, abs=1e-5)
    a = np.zeros((4, 2, 2))
    b = np.zeros((4, 2, 2))
    a[0], b[1] = 0.7, 0.3
    assert sam(a, b) == pytest.approx(90.0)
    assert sam(a, b, unit="rad") == pytest.approx(math.pi / 2)


def test_sam_known_angle_and_zero_pixels_left_out() -> None:
    a = np.zeros((2, 1, 2))
    b = np.zeros((2, 1, 2))
    a[:, 0, 0] = (1.0, 0.0)
    b[:, 0, 0] = (1.0, 1.0)  # 45 degrees
    # pixel 1 is all zero in `a`: no angle, left out of the mean
    b[:, 0, 1] = (0.2, 0.1)
    assert sam(a, b) == pytest.approx(45.0)
    assert math.isnan(sam(np.zeros((2, 2, 2)), np.ones((2, 2, 2))))


def test_nan_pixels_are_excluded_from_every_metric() -> None:
    x = _image(h=12, w=12)
    y = x + 0.1
    y_nan = y.copy()
    y_nan[1, 3, 4] = np.nan
    m = image_metrics(y_nan, x)
    assert m.rmse_all == pytest.approx(0.1, rel=1e-12)
    assert math.isfinite(m.ssim) and math.isfinite(m.sam_deg)
    # the NaN pixel itself does not count: the result equals the metric over the other pixels
    keep = np.ones((12, 12), bool)
    keep[3, 4] = False
    assert m.rmse_clear == pytest.approx(rmse(y, x, where=keep))


def _gauss2d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - size // 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_loop(x: np.ndarray, y: np.ndarray, *, pad: bool) -> float:
    """Direct double loop over windows: the reference SSIM of one band."""
    g, half = _gauss2d(), 5
    if pad:
        x, y = np.pad(x, half), np.pad(y, half)
    values = []
    for i in range(half, x.shape[0] - half):
        for j in range(half, x.shape[1] - half):
            px, py = (
                x[i - half : i + half + 1, j - half : j + half + 1],
                y[i - half : i + half + 1, j - half : j + half + 1],
            )
            mx, my = (g * px).sum(), (g * py).sum()
            vx, vy = (g * (px - mx) ** 2).sum(), (g * (py - my) ** 2).sum()
            cxy = (g * (px - mx) * (py - my)).sum()
            c1, c2 = 0.01**2, 0.03**2
            values.append(
                (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


@pytest.mark.parametrize("padding", ["zero", "valid"])
def test_ssim_matches_a_direct_window_loop(padding: str) -> None:
    x = RNG.uniform(0, 1, size=(2, 17, 15))
    y = np.clip(x + RNG.normal(0, 0.1, size=x.shape), 0, 1)
    expected = np.mean([_ssim_loop(x[c], y[c], pad=padding == "zero") for c in range(2)])
    assert ssim(y, x, padding=padding) == pytest.approx(expected, rel=1e-10)  # type: ignore[arg-type]


def test_ssim_agrees_with_scikit_image_when_installed() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    x = RNG.uniform(0, 1, size=(1, 32, 32))
    y = np.clip(x + RNG.normal(0, 0.05, size=x.shape), 0, 1)
    expected = metrics.structural_similarity(
        y[0], x[0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
    )
    assert ssim(y, x, padding="valid") == pytest.approx(expected, rel=1e-6)


def test_ssim_of_constant_images_closed_form() -> None:
    # constant images a, b: zero variances, SSIM = (2ab + C1) / (a² + b² + C1) in every window
    a, b = 0.3, 0.5
    expected = (2 * a * b + 0.01**2) / (a * a + b * b + 0.01**2)
    assert ssim(np.full((1, 20, 20), b), np.full((1, 20, 20), a), padding="valid") == (
        pytest.approx(expected)
    )


def test_cloudy_and_clear_split_on_a_hand_made_mask() -> None:
    target = np.zeros((1, 2, 2))
    pred = np.array([[[0.1, 0.2], [0.3, 0.4]]])
    cloud = np.array(
        [
            [[True, True], [False, True]],
            [[True, False], [False, True]],
        ]
    )  # cloudy in both dates: (0,0) and (1,1)
    assert cloudy_pixels(cloud).tolist() == [[True, False], [False, True]]
    m = image_metrics(pred, target, cloud)
    assert m.rmse_cloudy == pytest.approx(math.sqrt((0.01 + 0.16) / 2))
    assert m.rmse_clear == pytest.approx(math.sqrt((0.04 + 0.09) / 2))
    assert m.rmse_all == pytest.approx(math.sqrt((0.01 + 0.04 + 0.09 + 0.16) / 4))


def test_torch_tensors_are_accepted() -> None:
    x = _image()
    assert rmse(torch.from_numpy(x + 0.05), torch.from_numpy(x)) == pytest.approx(0.05)


def test_average_skips_nan_and_counts_exact_reconstructions() -> None:
    x = _image()
    rows = [image_metrics(x, x), image_metrics(x + 0.1, x), image_metrics(x + 0.01, x)]
    avg = average_metrics(rows)
    assert avg["n"] == 3 and avg["n_exact"] == 1
    assert avg["psnr"] == pytest.approx((20.0 + 40.0) / 2)
    assert math.isnan(avg["rmse_cloudy"])  # no cloud mask given: no cloudy pixels anywhere
    assert avg["rmse_all"] == pytest.approx((0.0 + 0.1 + 0.01) / 3)


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="C, H, W"):
        rmse(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))


def test_float_round_off_counts_as_exact_but_a_real_error_does_not() -> None:
    """Below EXACT_RMSE (1e-6) PSNR is +inf; from 1e-5 on it is the closed form 20·log10(1/e)."""
    from clearcube.model.metrics import EXACT_RMSE, psnr_from_rmse

    assert psnr_from_rmse(EXACT_RMSE / 10) == math.inf
    assert psnr_from_rmse(1e-5) == pytest.approx(100.0, rel=1e-12)
