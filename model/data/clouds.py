"""s2cloudless cloud masks with the paper's settings (threshold 0.4, average over 4, dilation 2)."""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np

from clearcube import BadInputError
from clearcube.bands import DN_PER_REFLECTANCE, S2_BANDS

S2CLOUDLESS_SETTINGS: Final[dict[str, float]] = {
    "threshold": 0.4,
    "average_over": 4,
    "dilation_size": 2,
}
"""The detector settings of SEN12MS-CR-TS and the SeqDMs paper."""


@functools.cache
def _detector() -> Any:
    # Local: s2cloudless takes ~0.6 s to import (LightGBM, sentinelhub); stored masks skip it.
    from s2cloudless import S2PixelCloudDetector

    s = S2CLOUDLESS_SETTINGS
    return S2PixelCloudDetector(
        threshold=s["threshold"],
        average_over=int(s["average_over"]),
        dilation_size=int(s["dilation_size"]),
        all_bands=True,
    )


def s2cloudless_cloud(dn: np.ndarray, bands: tuple[str, ...] = S2_BANDS) -> np.ndarray:
    """Cloud masks of Sentinel-2 L1C digital numbers.

    Args:
        dn: (T, C, H, W) or (C, H, W) L1C DN (reflectance x 10000), bands in ``bands`` order.
        bands: band names of ``dn``'s channel axis; all 13 L1C bands are needed (B10 included).

    Returns:
        bool (T, H, W) or (H, W): True = cloud.
    """
    if tuple(bands) != S2_BANDS:
        missing = sorted(set(S2_BANDS) - set(bands))
        if missing:
            raise BadInputError(
                f"s2cloudless needs all 13 L1C bands; missing {missing}; load L1C with every band"
            )
        dn = np.take(dn, [bands.index(b) for b in S2_BANDS], axis=-3)
    single = dn.ndim == 3
    stack = dn[None] if single else dn
    refl = np.moveaxis(
        np.clip(stack.astype(np.float32), 0, DN_PER_REFLECTANCE) / DN_PER_REFLECTANCE, 1, -1
    )
    cloud = _detector().get_cloud_masks(refl).astype(bool)
    mask: np.ndarray = cloud[0] if single else cloud
    return mask
