"""Image-quality metrics for cloud removal, per image, on reflectance scaled to [0, 1].

The conventions follow the SEN12MS-CR-TS / UnCRtainTS evaluation code so that clearcube's
numbers sit next to the published tables (SeqDMs paper §4.2, Eqs. 29–32):

* **RMSE** over every band of the pixels considered: ``sqrt(mean((pred - target)²))``. The paper's
  Eq. 29 calls it NRMSE; on data already scaled to [0, 1] the two are the same number, and
  reports keep the paper's column name ``NRMSE``. It is evaluated over all pixels, over *cloudy*
  pixels (cloud in every input date: nothing was visible) and over *clear* pixels (visible in at
  least one input date). A split with no pixel gives NaN, which averages skip.
* **PSNR** = 20·log10(1 / RMSE(all)) (Eq. 30, data range 1). An exact reconstruction gives +inf.
* **SSIM** (Eq. 31) per band with an 11×11 Gaussian window (σ = 1.5, normalised to sum 1),
  C1 = (0.01·1)², C2 = (0.03·1)² (data range 1), then the mean over bands. Like the
  ``pytorch_ssim`` code that UnCRtainTS uses, local statistics come from a *zero-padded* "same"
  filter and the SSIM map is averaged over every pixel (``padding="zero"``, the default).
  ``padding="valid"`` instead averages only windows that lie wholly inside the image (the
  Wang et al. / scikit-image convention); both agree away from the borders.
* **SAM**: the angle between the spectra of each pixel, ``arccos(<x, y> / (|x|·|y|))`` with the
  cosine clipped to [-1, 1], averaged over pixels; reported in degrees (UnCRtainTS) and radians.
  The paper's Eq. 32 writes one angle for the whole image; we follow the per-pixel code instead.
  A pixel whose spectrum is all zeros in either image has no angle and is left out of the mean.

NaNs: a pixel is *valid* when every band is finite in both images; invalid pixels are left out
of every metric. For SSIM they are set to 0 in both images before filtering and the SSIM map is
averaged over valid pixels only.

Arrays are ``(C, H, W)`` numpy arrays or torch tensors (converted on the CPU; maths in float64).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy.ndimage import correlate1d

#: Metric names in report order (keys of :meth:`ImageMetrics.as_dict`).
METRIC_NAMES: tuple[str, ...] = (
    "rmse_all",
    "rmse_cloudy",
    "rmse_clear",
    "psnr",
    "ssim",
    "sam_deg",
    "sam_rad",
)

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def as_numpy(array: Any) -> np.ndarray:
    """Return ``array`` (numpy array or torch tensor, any device) as a float64 numpy array."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def _check_pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_numpy(pred), as_numpy(target)
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError(
            f"metrics need two (C, H, W) images of one shape; got {x.shape} and {y.shape}"
        )
    return x, y


def valid_pixels(pred: Any, target: Any) -> np.ndarray:
    """(H, W) bool, True where every band of both ``(C, H, W)`` images is finite."""
    x, y = _check_pair(pred, target)
    valid: np.ndarray = np.all(np.isfinite(x) & np.isfinite(y), axis=0)
    return valid


def cloudy_pixels(cloud: Any) -> np.ndarray:
    """(H, W) bool, True where a pixel is cloudy in every input date.

    Args:
        cloud: (L, H, W) bool, True = cloud in that input date.
    """
    c = np.asarray(as_numpy(cloud) != 0)
    if c.ndim != 3:
        raise ValueError(f"cloud must be (L, H, W); got shape {c.shape}")
    cloudy: np.ndarray = np.all(c, axis=0)
    return cloudy


def rmse(pred: Any, target: Any, *, where: Any = None) -> float:
    """Root-mean-square error over all bands of the pixels in ``where`` (default: all).

    Args:
        pred: (C, H, W) image on [0, 1].
        target: (C, H, W) image on [0, 1].
        where: optional (H, W) bool, True = include the pixel. Invalid (NaN) pixels never count.

    Returns:
        The RMSE, or NaN when no pixel is included.
    """
    x, y = _check_pair(pred, target)
    keep = valid_pixels(x, y)
    if where is not None:
        keep &= np.asarray(where, dtype=bool)
    if not keep.any():
        return math.nan
    diff = x[:, keep] - y[:, keep]
    return float(np.sqrt(np.mean(diff * diff)))


#: RMSE below this counts as an exact reconstruction (PSNR +inf): a millionth of the data range,
#: 100× under Sentinel-2's quantum of 1e-4, so only float round-off of exactly kept values
#: (e.g. SeqTIS's fused clear pixels in float32) falls under it.
EXACT_RMSE = 1e-6


def psnr_from_rmse(error: float) -> float:
    """PSNR in dB for data range 1 (Eq. 30): ``20·log10(1 / error)``; +inf when exact."""
    if math.isnan(error):
        return math.nan
    if error < EXACT_RMSE:
        return math.inf
    return 20.0 * math.log10(1.0 / error)


def psnr(pred: Any, target: Any) -> float:
    """Peak signal-to-noise ratio (dB) of two (C, H, W) images on [0, 1]."""
    return psnr_from_rmse(rmse(pred, target))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """1-D Gaussian weights of odd length ``size`` centred on the middle tap, summing to 1."""
    offsets = np.arange(size, dtype=np.float64) - (size // 2)
    weights = np.exp(-(offsets**2) / (2.0 * sigma**2))
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _filter(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Separable zero-padded 'same' filtering of an (H, W) image."""
    out = correlate1d(image, weights, axis=0, mode="constant", cval=0.0)
    filtered: np.ndarray = correlate1d(out, weights, axis=1, mode="constant", cval=0.0)
    return filtered


def ssim_map(
    pred: np.ndarray, target: np.ndarray, *, window: int = 11, sigma: float = 1.5
) -> np.ndarray:
    """SSIM map of one band (Eq. 31) from zero-padded Gaussian local statistics.

    Args:
        pred: (H, W) single-band image on [0, 1] without NaNs.
        target: (H, W) single-band image on [0, 1] without NaNs.
        window: odd window side in pixels.
        sigma: standard deviation of the Gaussian window in pixels.

    Returns:
        (H, W) local SSIM values.
    """
    w = gaussian_window(window, sigma)
    mu_x, mu_y = _filter(pred, w), _filter(target, w)
    var_x = _filter(pred * pred, w) - mu_x * mu_x
    var_y = _filter(target * target, w) - mu_y * mu_y
    cov = _filter(pred * target, w) - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + SSIM_C1) * (2.0 * cov + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
    local_ssim: np.ndarray = numerator / denominator
    return local_ssim


def ssim(
    pred: Any,
    target: Any,
    *,
    window: int = 11,
    sigma: float = 1.5,
    padding: Literal["zero", "valid"] = "zero",
) -> float:
    """Structural similarity of two (C, H, W) images on [0, 1]: per band, then the band mean.

    Args:
        pred: (C, H, W) image.
        target: (C, H, W) image.
        window: odd window side in pixels.
        sigma: standard deviation of the Gaussian window in pixels.
        padding: ``"zero"`` averages the zero-padded SSIM map over all pixels (UnCRtainTS);
            ``"valid"`` averages only windows wholly inside the image.

    Returns:
        The mean SSIM, or NaN when no valid pixel remains.
    """
    x, y = _check_pair(pred, target)
    valid = valid_pixels(x, y)
    keep = valid.copy()
    if padding == "valid":
        half = window // 2
        inner = np.zeros_like(keep)
        inner[half : keep.shape[0] - half, half : keep.shape[1] - half] = True
        keep &= inner
    elif padding != "zero":
        raise ValueError(f"padding must be 'zero' or 'valid'; got {padding!r}")
    if not keep.any():
        return math.nan
    x, y = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    per_band = [
        ssim_map(x[c], y[c], window=window, sigma=sigma)[keep].mean() for c in range(x.shape[0])
    ]
    return float(np.mean(per_band))


def sam(pred: Any, target: Any, *, unit: Literal["deg", "rad"] = "deg") -> float:
    """Spectral angle mapper: the mean over pixels of the angle between the two spectra.

    Pixels with an all-zero spectrum in either image (no defined angle) and invalid (NaN)
    pixels are left out. Returns NaN when no pixel remains.
    """
    x, y = _check_pair(pred, target)
    keep = valid_pixels(x, y)
    xs, ys = x[:, keep], y[:, keep]
    norms = np.sqrt(np.sum(xs * xs, axis=0)) * np.sqrt(np.sum(ys * ys, axis=0))
    defined = norms > 0
    if not defined.any():
        return math.nan
    cosine = np.sum(xs * ys, axis=0)[defined] / norms[defined]
    angles = np.arccos(np.clip(cosine, -1.0, 1.0))
    mean = float(np.mean(angles))
    if unit == "deg":
        return math.degrees(mean)
    if unit == "rad":
        return mean
    raise ValueError(f"unit must be 'deg' or 'rad'; got {unit!r}")


@dataclass(frozen=True)
class ImageMetrics:
    """Every metric of one reconstructed image against its cloud-free target."""

    rmse_all: float
    """RMSE over all valid pixels (the paper's NRMSE(All))."""
    rmse_cloudy: float
    """RMSE over pixels cloudy in every input date; NaN when there are none."""
    rmse_clear: float
    """RMSE over pixels visible in at least one input date; NaN when there are none."""
    psnr: float
    """20·log10(1 / rmse_all), dB; +inf for an exact reconstruction."""
    ssim: float
    """Mean over bands of the Gaussian-window SSIM."""
    sam_deg: float
    """Mean spectral angle in degrees."""
    sam_rad: float
    """Mean spectral angle in radians."""

    def as_dict(self) -> dict[str, float]:
        """The metrics as a plain dict in :data:`METRIC_NAMES` order."""
        return asdict(self)


def image_metrics(pred: Any, target: Any, cloud: Any = None) -> ImageMetrics:
    """Compute every metric of one (C, H, W) prediction against its (C, H, W) target.

    Args:
        pred: image on [0, 1].
        target: image on [0, 1].
        cloud: optional (L, H, W) bool of the input dates, True = cloud. Without it every pixel
            counts as clear and ``rmse_cloudy`` is NaN.
    """
    x, y = _check_pair(pred, target)
    if cloud is None:
        cloudy = np.zeros(x.shape[1:], dtype=bool)
    else:
        cloudy = cloudy_pixels(cloud)
        if cloudy.shape != x.shape[1:]:
            raise ValueError(f"cloud is {cloudy.shape} per date but images are {x.shape[1:]}")
    error = rmse(x, y)
    angle = sam(x, y, unit="rad")
    return ImageMetrics(
        rmse_all=error,
        rmse_cloudy=rmse(x, y, where=cloudy),
        rmse_clear=rmse(x, y, where=~cloudy),
        psnr=psnr_from_rmse(error),
        ssim=ssim(x, y),
        sam_deg=math.degrees(angle),
        sam_rad=angle,
    )


def average_metrics(rows: Iterable[Mapping[str, float] | ImageMetrics]) -> dict[str, float]:
    """Average per-image metrics over images, each metric over its finite values only.

    NaNs (an empty cloudy/clear split) and infinite PSNRs (exact reconstructions) are skipped,
    as the UnCRtainTS running mean skips NaNs; ``n`` counts the images and ``n_exact`` those
    whose PSNR was infinite, so a report can say how many were left out of the PSNR mean.
    """
    dicts = [r.as_dict() if isinstance(r, ImageMetrics) else dict(r) for r in rows]
    out: dict[str, float] = {"n": float(len(dicts))}
    for name in (f.name for f in fields(ImageMetrics)):
        values = np.array([d[name] for d in dicts], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[name] = float(finite.mean()) if finite.size else math.nan
    out["n_exact"] = float(sum(1 for d in dicts if d["psnr"] == math.inf))
    return out
