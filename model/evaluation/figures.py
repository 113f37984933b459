"""Figures of the evaluation report.

Metric histograms (paper Figure 4) and an example grid (paper Figure 3).

The grid is drawn with Pillow (a core dependency); histograms need matplotlib
(``pip install 'clearcube[eval]'``) and are skipped with a warning without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from clearcube.model.evaluation.runner import SampleResult
from clearcube.model.evaluation.samples import EvalSample

log = logging.getLogger(__name__)

#: Band indices of B04, B03, B02 (true colour) in the 13-band Sentinel-2 order.
TRUE_COLOUR = (3, 2, 1)

#: (metric key, axis label) of the four histogram panels, as in the paper's Figure 4.
HISTOGRAM_PANELS = (
    ("psnr", "PSNR (dB)"),
    ("ssim", "SSIM"),
    ("rmse_cloudy", "NRMSE (cloudy)"),
    ("sam_deg", "SAM (°)"),
)


def true_colour(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 true-colour rendering of a (C, H, W) image, stretched band-wise lo..hi."""
    rgb = (
        np.stack([image[b] for b in TRUE_COLOUR], axis=-1)
        if image.shape[0] > 3
        else np.moveaxis(image[:3], 0, -1)
    )
    scaled = (np.nan_to_num(rgb) - lo) / np.maximum(hi - lo, 1e-6)
    rendered: np.ndarray = (np.clip(scaled, 0.0, 1.0) * 255).round().astype(np.uint8)
    return rendered


def _stretch(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2–98 % percentiles of the target's true-colour bands: one stretch per grid column."""
    rgb = (
        np.stack([target[b] for b in TRUE_COLOUR], axis=-1)
        if target.shape[0] > 3
        else np.moveaxis(target[:3], 0, -1)
    )
    flat = rgb.reshape(-1, 3)
    return np.nanpercentile(flat, 2, axis=0), np.nanpercentile(flat, 98, axis=0)


def example_grid(
    samples: Sequence[EvalSample],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    path: str | os.PathLike[str],
    *,
    cell: int = 128,
) -> Path:
    """Draw Figure 3: one column per sample; rows = input dates, each method's output, target.

    Every column shares one stretch (the 2–98 % range of its target), so brightness compares
    across rows. Cells are resized to ``cell`` px; labels sit in a left margin.
    """
    methods = list(dict.fromkeys(m for p in predictions.values() for m in p))
    length = max(s.length for s in samples)
    rows = [f"input {i + 1}" for i in range(length)] + methods + ["target"]
    margin, pad = 110, 4
    grid = Image.new(
        "RGB", (margin + len(samples) * (cell + pad), len(rows) * (cell + pad) + 20), "white"
    )
    draw = ImageDraw.Draw(grid)
    for r, label in enumerate(rows):
        draw.text((4, 20 + r * (cell + pad) + cell // 2), label, fill="black")
    for c, sample in enumerate(samples):
        lo, hi = _stretch(sample.target)
        x0 = margin + c * (cell + pad)
        draw.text((x0, 4), f"{sample.cloud_coverage:.0%} cloud", fill="black")
        images = list(sample.inputs) + [None] * (length - sample.length)
        images += [predictions.get(sample.name, {}).get(m) for m in methods] + [sample.target]
        for r, image in enumerate(images):
            if image is None:
                continue
            tile = Image.fromarray(true_colour(np.asarray(image), lo, hi)).resize(
                (cell, cell), Image.Resampling.NEAREST
            )
            grid.paste(tile, (x0, 20 + r * (cell + pad)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def histograms(results: Sequence[SampleResult], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw Figure 4 for each method: PSNR, SSIM, NRMSE(cloudy) and SAM, one histogram per L.

    Returns the PNG paths; an empty list (with a warning) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning(
            "matplotlib is not installed; skipping histograms (pip install 'clearcube[eval]')"
        )
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for method in dict.fromkeys(r.method for r in results):
        mine = [r for r in results if r.method == method]
        lengths = sorted({r.length for r in mine})
        fig, axes = plt.subplots(1, len(HISTOGRAM_PANELS), figsize=(16, 3.6))
        for ax, (key, label) in zip(axes, HISTOGRAM_PANELS, strict=True):
            for length in lengths:
                values = np.array([getattr(r.metrics, key) for r in mine if r.length == length])
                values = values[np.isfinite(values)]
                if values.size:
                    ax.hist(values, bins=20, alpha=0.5, label=f"L = {length}")
            ax.set_xlabel(label)
            ax.set_ylabel("samples")
        axes[0].legend()
        fig.suptitle(f"{method}: per-sample metrics")
        fig.tight_layout()
        path = out / f"hist_{method}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
