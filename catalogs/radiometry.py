"""What each catalog's pixel values mean, and how clearcube brings them to one convention.

**The convention inside clearcube** (every cube, mask, model input and COG):

- Sentinel-2: reflectance × 10000 as uint16 (top of atmosphere for L1C, bottom of atmosphere for
  L2A), on the scale of processing baselines before 04.00, i.e. *without* the +1000 DN offset
  that ESA added from baseline 04.00 (25 January 2022, and every reprocessed Collection-1
  product). 0 is nodata; a reflectance at or below 0 (possible only after the offset) becomes 1,
  the smallest valid value. Values above 10000 (snow, salt pans, bright SWIR) are kept.
- Sentinel-1: backscatter in dB (σ⁰ for GRD, γ⁰ for RTC) as float32, NaN nodata.

**Sentinel-2 offset, per item and band, from the item's own metadata** (first rule that applies):

1. ``earthsearch:boa_offset_applied: true`` → 0: Earth Search has already subtracted it.
2. the asset's ``raster:bands`` ``offset``/``scale`` → ``offset / scale`` DN (``-0.1 / 0.0001`` =
   -1000), unless the item was written by Earth Search's Collection-0 ``sentinel2-to-stac``
   (``processing:software``), whose ``raster:bands`` are one template for every item whatever
   its baseline (Element84/earth-search issues #66 and #71): there rule 3 decides.
3. the processing baseline (``s2:processing_baseline``, else ``_Nxxyy_`` in the product name):
   ≥ 04.00 → -1000, else 0.
4. nothing of the above → refused (:class:`~clearcube.errors.BadInputError`): clearcube does not
   guess whether an item's values carry the offset.

**Sentinel-1 units, per item**: the asset's ``raster:bands`` ``unit`` when it names one, else the
units the catalog profile declares for the collection (:data:`S1Units`). dB passes; linear power
(Planetary Computer ``sentinel-1-rtc``) becomes ``10·log10``; amplitude DN (Earth Search and
Planetary Computer ``sentinel-1-grd``: uncalibrated, in radar geometry) is refused with a
one-line error naming a collection that works.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pystac

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.errors import BadInputError

#: The offset ESA added to Sentinel-2 values from processing baseline 04.00 (-1000 DN to undo).
BASELINE_04_OFFSET = -1000
#: Units a Sentinel-1 collection's values can have.
S1Units = Literal["dB", "linear", "amplitude"]
S1_UNITS: tuple[S1Units, ...] = ("dB", "linear", "amplitude")
#: The collection that gives calibrated SAR, named in errors about uncalibrated ones.
CALIBRATED_S1 = "sentinel-1-rtc on --profile planetary-computer"

_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")
_TEMPLATED_WRITERS = ("sentinel2-to-stac",)  # Earth Search Collection 0 (sentinel-2-l1c/-l2a)


@dataclass(frozen=True)
class PixelConversion:
    """How one asset's raw pixel values become clearcube's convention (applied at read time)."""

    kind: Literal["none", "dn_offset", "linear_to_db"] = "none"
    """``none``; ``dn_offset`` (add :attr:`offset`, keep 0 as nodata, floor at 1);
    ``linear_to_db`` (``10·log10``, values <= 0 become NaN)."""
    offset: int = 0
    """DN added by ``dn_offset`` (-1000 for baseline >= 04.00)."""
    source: str = ""
    """Which metadata decided, for logs and the docs."""

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Convert ``pixels`` in place (and return them)."""
        if self.kind == "dn_offset" and self.offset:
            # 0 is nodata; the dtype's top (65535) marks saturated pixels: both stay as they are
            top = np.iinfo(pixels.dtype).max if pixels.dtype.kind in "iu" else np.inf
            valid = (pixels != 0) & (pixels != top)
            shifted = pixels.astype(np.float64) + self.offset
            np.copyto(pixels, np.clip(shifted, 1, top).astype(pixels.dtype), where=valid)
        elif self.kind == "linear_to_db":
            if pixels.dtype.kind != "f":
                raise TypeError(f"linear_to_db needs float pixels, got {pixels.dtype}")
            with np.errstate(divide="ignore", invalid="ignore"):
                db = 10.0 * np.log10(pixels)
            np.copyto(pixels, np.where(pixels > 0, db, np.nan).astype(pixels.dtype))
        return pixels


NO_CONVERSION = PixelConversion()


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """The item's processing baseline as ``(major, minor)``, or ``None`` when it does not say."""
    props = item.properties
    text = str(props.get("s2:processing_baseline") or "")
    parts = re.findall(r"\d+", text)
    if len(parts) >= 2:
        return int(parts[0]), int(parts[1])
    for name in (props.get("s2:product_uri"), props.get("sentinel:product_id"), item.id):
        match = _BASELINE_IN_NAME.search(str(name or ""))
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def s2_conversion(item: pystac.Item, asset_key: str) -> PixelConversion:
    """The DN offset that brings ``item``'s asset ``asset_key`` to clearcube's convention.

    Raises:
        BadInputError: the item's metadata cannot establish the offset, or states a scale other
            than 1/10000.
    """
    props = item.properties
    if props.get("earthsearch:boa_offset_applied") is True:
        return PixelConversion("dn_offset", 0, "earthsearch:boa_offset_applied")
    band = _raster_band(item, asset_key)
    software = props.get("processing:software")
    templated = isinstance(software, Mapping) and any(w in software for w in _TEMPLATED_WRITERS)
    if band is not None and band.get("offset") is not None and not templated:
        scale = float(band.get("scale") or 1.0 / DN_PER_REFLECTANCE)
        if not math.isclose(scale * DN_PER_REFLECTANCE, 1.0, rel_tol=1e-6):
            raise BadInputError(
                f"asset {asset_key!r} of Sentinel-2 item {item.id!r} has raster:bands scale "
                f"{scale:g}, not 0.0001: its values are not reflectance x 10000; use a "
                "collection of Sentinel-2 DN (Earth Search, Planetary Computer)"
            )
        return PixelConversion("dn_offset", round(float(band["offset"]) / scale), "raster:bands")
    baseline = processing_baseline(item)
    if baseline is not None:
        offset = BASELINE_04_OFFSET if baseline >= (4, 0) else 0
        named = f"processing baseline {baseline[0]:02d}.{baseline[1]:02d}"
        return PixelConversion("dn_offset", offset, named)
    raise BadInputError(
        f"Sentinel-2 item {item.id!r} states no processing baseline (s2:processing_baseline, "
        "raster:bands offset or _Nxxyy_ in its product name), so clearcube cannot tell whether "
        "its values carry the +1000 offset of baseline 04.00; use a catalog whose items record "
        "it (Earth Search, Planetary Computer)"
    )


def s1_conversion(
    item: pystac.Item, asset_key: str, declared: Mapping[str, S1Units] | None = None
) -> PixelConversion:
    """How ``item``'s SAR asset becomes dB: its ``raster:bands`` unit, else ``declared[collection]``.

    Raises:
        BadInputError: amplitude (uncalibrated) values, or units that neither the item nor the
            catalog profile states.
    """
    band = _raster_band(item, asset_key) or {}
    unit = str(band.get("unit") or "").strip().lower()
    collection = item.collection_id or ""
    units: str | None = {"db": "dB", "decibel": "dB", "decibels": "dB"}.get(unit)
    if units is None and unit in ("linear", "power", "1"):
        units = "linear"
    if units is None:
        units = (declared or {}).get(collection)
    if units == "dB":
        return NO_CONVERSION
    if units == "linear":
        return PixelConversion("linear_to_db", source=f"{collection or 'item'}: linear power")
    if units == "amplitude":
        raise BadInputError(
            f"Sentinel-1 collection {collection!r} holds uncalibrated amplitude DN in radar "
            f"geometry, which clearcube cannot turn into backscatter; use {CALIBRATED_S1}, "
            "or run without SAR (--no-s1)"
        )
    raise BadInputError(
        f"Sentinel-1 item {item.id!r} of collection {collection!r} states no units (raster:bands "
        "unit) and its catalog profile declares none; use a collection whose values clearcube "
        f"knows ({CALIBRATED_S1}, or one whose assets say unit dB)"
    )


def _raster_band(item: pystac.Item, asset_key: str) -> Mapping[str, Any] | None:
    asset = item.assets.get(asset_key)
    bands = asset.extra_fields.get("raster:bands") if asset is not None else None
    if isinstance(bands, list) and bands and isinstance(bands[0], Mapping):
        return bands[0]
    return None
