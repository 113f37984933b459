"""Catalog profiles: where to search and what the Sentinel collections and assets are called there.

A profile is plain configuration (a frozen dataclass). The named profiles are the embedded demo
catalog, Earth Search v1 and Microsoft Planetary Computer; :func:`resolve_profile` also builds a
custom profile for any STAC API URL from the user's collection names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

import pystac

from clearcube.bands import EARTH_SEARCH_ASSETS, PLANETARY_COMPUTER_ASSETS
from clearcube.catalogs.radiometry import S1Units
from clearcube.errors import BadInputError, missing_dependency

Level = Literal["L1C", "L2A"]
LEVELS: tuple[Level, ...] = ("L1C", "L2A")

#: A function that returns a usable copy of an item (e.g. with signed asset hrefs).
Signer = Callable[[pystac.Item], pystac.Item]


@dataclass(frozen=True)
class CatalogProfile:
    """One STAC API and the names it uses for Sentinel data."""

    name: str
    """Profile name (``"embedded"``, ``"earth-search"``, ``"planetary-computer"``, ``"custom"``)."""
    url: str | None
    """STAC API root URL; ``None`` for the embedded catalog, which is served on demand."""
    s2_l1c: str | None
    """Collection of Sentinel-2 L1C (top of atmosphere) items; ``None`` if the API has none."""
    s2_l2a: str | None
    """Collection of Sentinel-2 L2A (surface reflectance) items; ``None`` if the API has none."""
    s1: str | None
    """Collection of Sentinel-1 items (GRD, or RTC); ``None`` if the API has none."""
    assets: Mapping[str, str] = field(default_factory=lambda: EARTH_SEARCH_ASSETS, hash=False)
    """Canonical band name (``B02``, ``VV``, ``SCL``) -> the API's asset key."""
    signer: Signer | None = None
    """Makes asset hrefs readable (Planetary Computer SAS tokens); ``None`` when not needed."""
    s1_units: Mapping[str, S1Units] = field(default_factory=dict, hash=False)
    """Sentinel-1 collection -> the units of its values, for items whose assets do not say
    (:func:`clearcube.catalogs.radiometry.s1_conversion`)."""

    def s2_collection(self, level: Level) -> str:
        """Return the Sentinel-2 collection for a processing level.

        Raises:
            BadInputError: when this API has no collection for ``level``.
        """
        collection = self.s2_l1c if level == "L1C" else self.s2_l2a
        if collection is None:
            route = (
                "the L2A route (run/demo: --mask scl; search/cube: --level L2A)"
                if level == "L1C"
                else "the L1C route (run/demo: --mask s2cloudless; search/cube: --level L1C)"
            )
            raise BadInputError(
                f"profile {self.name!r} has no Sentinel-2 {level} collection; use {route} "
                "or another profile"
            )
        return collection


EMBEDDED = CatalogProfile(
    name="embedded",
    url=None,
    s2_l1c="sentinel-2-l1c",
    s2_l2a="sentinel-2-l2a",
    s1="sentinel-1-grd",
    s1_units={"sentinel-1-grd": "dB"},  # the demo writes calibrated, terrain-flat σ0 in dB
)

#: Earth Search's only Sentinel-1 collection (``sentinel-1-grd``) is uncalibrated amplitude in
#: radar geometry, so the profile searches no SAR by default; naming it is refused at load.
EARTH_SEARCH = CatalogProfile(
    name="earth-search",
    url="https://earth-search.aws.element84.com/v1",
    s2_l1c="sentinel-2-l1c",
    s2_l2a="sentinel-2-l2a",
    s1=None,
    s1_units={"sentinel-1-grd": "amplitude"},
)

#: Planetary Computer's ``sentinel-1-rtc`` is linear γ0 (terrain corrected): clearcube takes
#: ``10·log10``. Its ``sentinel-1-grd`` is amplitude like Earth Search's.
PLANETARY_COMPUTER = CatalogProfile(
    name="planetary-computer",
    url="https://planetarycomputer.microsoft.com/api/stac/v1",
    s2_l1c=None,
    s2_l2a="sentinel-2-l2a",
    s1="sentinel-1-rtc",
    assets=PLANETARY_COMPUTER_ASSETS,
    s1_units={"sentinel-1-grd": "amplitude", "sentinel-1-rtc": "linear"},
)

#: The named profiles, by name.
PROFILES: Mapping[str, CatalogProfile] = MappingProxyType(
    {p.name: p for p in (EMBEDDED, EARTH_SEARCH, PLANETARY_COMPUTER)}
)

#: Sentinel-1 collections Planetary Computer offers (``--collections sentinel-2-l2a S1``).
PLANETARY_COMPUTER_S1 = ("sentinel-1-grd", "sentinel-1-rtc")


def planetary_computer_signer() -> Signer:
    """Return Planetary Computer's item signer (SAS tokens on asset hrefs).

    Raises:
        ImportError: with the install command, when ``planetary_computer`` is absent.
    """
    try:
        import planetary_computer
    except ImportError as exc:
        raise missing_dependency("planetary_computer", "planetary") from exc

    def sign(item: pystac.Item) -> pystac.Item:
        signed: pystac.Item = planetary_computer.sign(item)
        return signed

    return sign


def resolve_profile(
    profile: str | CatalogProfile = "embedded",
    *,
    stac_url: str | None = None,
    collections: Sequence[str] | None = None,
    level: Level = "L1C",
) -> CatalogProfile:
    """Return the profile to search with.

    Args:
        profile: a named profile or a :class:`CatalogProfile`. Ignored for the URL when
            ``stac_url`` is given (its asset map and signer are kept).
        stac_url: a custom STAC API root URL (``http(s)://``).
        collections: ``[S2]`` or ``[S2, S1]`` collection names, overriding the profile's for
            ``level``. Required with a ``stac_url`` that is not a named profile's.
        level: the Sentinel-2 processing level the S2 collection name stands for.

    Raises:
        BadInputError: unknown profile or level, a malformed URL or collection list, or a
            collection the profile does not know (Planetary Computer's S1 must be one it has).
        ImportError: Planetary Computer without the ``planetary_computer`` package.
    """
    if level not in LEVELS:
        raise BadInputError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    if isinstance(profile, CatalogProfile):
        base = profile
    elif profile in PROFILES:
        base = PROFILES[profile]
    else:
        raise BadInputError(
            f"unknown catalog profile {profile!r}; use one of {', '.join(PROFILES)} "
            "or give --stac-url with --collections"
        )
    if stac_url is not None:
        stac_url = stac_url.rstrip("/")
        if not stac_url.startswith(("http://", "https://")):
            raise BadInputError(
                f"--stac-url {stac_url!r} is not an http(s) URL; give the STAC API root, "
                "e.g. https://earth-search.aws.element84.com/v1"
            )
        if collections is None and stac_url != (base.url or "").rstrip("/"):
            raise BadInputError(
                f"give the collection names served at {stac_url} with --collections S2 [S1]"
            )
        base = replace(base, name="custom" if base.url != stac_url else base.name, url=stac_url)
        if base.name == "custom":  # another API: the named profile's S1 units do not apply
            base = replace(base, s1_units={})
    if collections is None:
        base.s2_collection(level)  # fail now when the profile lacks this level
        return _with_signer(base)
    names = [str(c).strip() for c in collections]
    if not 1 <= len(names) <= 2 or not all(names):
        raise BadInputError(
            f"--collections takes one or two names (Sentinel-2, then Sentinel-1), got {names!r}"
        )
    if base.name == PLANETARY_COMPUTER.name:
        PLANETARY_COMPUTER.s2_collection(level)  # it has no L1C
        if names[0] != PLANETARY_COMPUTER.s2_l2a:
            raise BadInputError(
                f"unknown Planetary Computer Sentinel-2 collection {names[0]!r}; "
                f"use {PLANETARY_COMPUTER.s2_l2a} (with --level L2A)"
            )
        if len(names) == 2 and names[1] not in PLANETARY_COMPUTER_S1:
            raise BadInputError(
                f"unknown Planetary Computer Sentinel-1 collection {names[1]!r}; "
                f"use one of {', '.join(PLANETARY_COMPUTER_S1)}"
            )
    # A custom API has no Sentinel-1 collection unless one is named.
    s1 = names[1] if len(names) == 2 else (None if base.name == "custom" else base.s1)
    if level == "L1C":
        return _with_signer(replace(base, s2_l1c=names[0], s1=s1))
    return _with_signer(replace(base, s2_l2a=names[0], s1=s1))


def _with_signer(profile: CatalogProfile) -> CatalogProfile:
    """Attach Planetary Computer's signer (last, so bad input is reported before ImportError)."""
    if profile.name == PLANETARY_COMPUTER.name and profile.signer is None:
        return replace(profile, signer=planetary_computer_signer())
    return profile
