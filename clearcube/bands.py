"""Canonical Sentinel band names, the digital-number scale, and how catalogs name the assets.

clearcube always speaks the canonical ESA band names (``B01`` ... ``B12``, ``B8A``; ``VV``/``VH``);
a catalog profile maps them to its own asset keys. Earth Search v1 uses common names
("blue", "nir08", ...), Planetary Computer uses the ESA names, and the embedded demo catalog
follows Earth Search so that the same mapping is exercised offline.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: The 13 Sentinel-2 L1C bands in the product's order (B8A after B08, B10 kept).
S2_BANDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip

#: Sentinel-2 digital numbers per unit reflectance: clearcube's uint16 DN are reflectance × 10000
#: on the pre-04.00 scale (catalogs/radiometry.py removes newer baselines' offset).
DN_PER_REFLECTANCE: Final = 10000.0

#: Native ground sampling distance in metres per Sentinel-2 band.
S2_RESOLUTION: Final = MappingProxyType(
    {
        "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
        "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
    }
)  # fmt: skip

#: Bands an L2A product lacks (B10, cirrus, is dropped by Sen2Cor). s2cloudless needs it.
L2A_MISSING: Final[frozenset[str]] = frozenset({"B10"})

#: Sentinel-1 GRD polarisations clearcube uses, in order.
S1_BANDS: Final[tuple[str, ...]] = ("VV", "VH")

#: Earth Search v1 (and the embedded demo catalog): canonical name -> asset key.
EARTH_SEARCH_ASSETS: Final = MappingProxyType(
    {
        "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red",
        "B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B08": "nir",
        "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16", "B12": "swir22",
        "SCL": "scl", "VV": "vv", "VH": "vh",
    }
)  # fmt: skip

#: Microsoft Planetary Computer: canonical name -> asset key.
PLANETARY_COMPUTER_ASSETS: Final = MappingProxyType(
    {**{b: b for b in S2_BANDS}, "SCL": "SCL", "VV": "vv", "VH": "vh"}
)

#: Sentinel-2 L2A scene classification (SCL) classes that clearcube treats as cloud or shadow.
SCL_CLOUD_CLASSES: Final[frozenset[int]] = frozenset({3, 8, 9, 10})  # shadow, medium, high, cirrus
