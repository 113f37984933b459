"""Provenance: which output pixels were observed, fused from other dates, or generated.

Users must see what the model made. Every tile writes three one-hot layers (observed /
fused / generated) into the mosaic store beside its composite; they blend across tile
overlaps with the same partition-of-unity weights, and the provenance COG stores, per pixel,
the class with the largest blended weight:

    0 nodata   1 observed (clear on the date nearest the target)
    2 fused (clear only on another fused date)   3 generated (cloudy on every fused date)
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The classes in layer order; COG value = position + 1 (0 is nodata).
PROVENANCE = ("observed", "fused", "generated")
#: RGB of each COG value for pictures (nodata, observed, fused, generated).
PROVENANCE_COLOURS = np.array(
    [[0, 0, 0], [46, 139, 87], [65, 105, 225], [255, 140, 0]], dtype=np.uint8
)


def provenance_layers(known: np.ndarray) -> np.ndarray:
    """``(3, h, w)`` float32 one-hot of observed / fused / generated for a tile's fused dates.

    Args:
        known: ``(L, h, w)`` bool, True = clear and used, the nearest date first.
    """
    known = np.asarray(known, dtype=bool)
    observed = known[0]
    seen = known.any(axis=0)
    return np.stack([observed, seen & ~observed, ~seen]).astype(np.float32)


def provenance_classes(layers: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``(h, w)`` float32 class 1..3 from blended ``layers (3, h, w)``; NaN where not valid.

    A pixel is valid when its layers carry weight and ``valid`` (e.g. a finite composite) holds.
    The layers are stored as float32 and only compared, so the work stays in float32 (the
    products stage runs this on every 512 px window, for the quicklook and for the provenance
    COG: float64 copies were 12 MB a window).
    """
    layers = np.nan_to_num(np.asarray(layers, dtype=np.float32), nan=0.0)
    classes: np.ndarray = np.argmax(layers, axis=0).astype(np.float32)
    classes += 1
    ok = layers.sum(axis=0) > 0
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    classes[~ok] = np.nan
    return classes


class ProvenanceView:
    """The provenance COG's source: ``(1, y, x)`` classes computed window by window."""

    def __init__(self, layers: Any, composite: Any):
        """``layers`` ``(3, y, x)`` and ``composite`` ``(band, y, x)``, both sliceable arrays."""
        self.layers, self.composite = layers, composite

    @property
    def shape(self) -> tuple[int, ...]:
        """``(1, y, x)``."""
        return (1, *tuple(self.layers.shape)[1:])

    def __getitem__(self, key: Any) -> np.ndarray:
        _, rows, cols = key
        layers = np.asarray(self.layers[:, rows, cols])
        valid = np.isfinite(np.asarray(self.composite[0, rows, cols]))
        return provenance_classes(layers, valid)[None]
