"""Bad search input is rejected before any request, with one line saying what to fix."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime

import pytest

from clearcube.catalogs import EARTH_SEARCH, resolve_profile, search, validate_bbox, validate_dates
from clearcube.errors import BadInputError

GOOD = dict(bbox=(10.0, 45.0, 10.1, 45.1), start="2024-05-01", end="2024-05-31")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        (dict(bbox=(10.1, 45.0, 10.0, 45.1)), "inverted or empty"),
        (dict(bbox=(10.0, 45.1, 10.1, 45.0)), "inverted or empty"),
        (dict(bbox=(10.0, 45.0, 10.0, 45.1)), "inverted or empty"),
        (dict(bbox=(-190.0, 45.0, 10.0, 45.1)), "out of range"),
        (dict(bbox=(10.0, 45.0, 10.1, 95.0)), "out of range"),
        (dict(bbox=(10.0, 45.0, 10.1)), "not four"),
        (dict(bbox=(10.0, 45.0, 10.1, float("nan"))), "not four finite"),
        (dict(bbox=("a", 1, 2, 3)), "not four numbers"),
        (dict(start="2024-06-01", end="2024-05-01"), r"is after end .*; swap"),
        (dict(start="2024-13-01"), "not a date"),
        (dict(end="yesterday"), "not a date"),
        (dict(max_cloud=150), "not a percentage"),
        (dict(limit=0), "at least 1"),
        (dict(profile="sentinel-hub"), "unknown catalog profile"),
        (dict(level="L3"), "unknown level"),
        (dict(stac_url="https://example.com/stac"), "--collections"),
        (dict(stac_url="ftp://example.com", collections=["a"]), "not an http"),
        (dict(stac_url="https://example.com", collections=["a", "b", "c"]), "one or two names"),
    ],
)
def test_bad_input_is_rejected_with_one_line(changes: dict[str, object], pattern: str) -> None:
    with pytest.raises(BadInputError, match=pattern) as info:
        search(**{**GOOD, **changes})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_end_date_is_inclusive_to_its_last_instant() -> None:
    t0, t1 = validate_dates("2024-05-01", date(2024, 5, 31))
    assert t0 == datetime(2024, 5, 1, tzinfo=UTC)
    assert t1 == datetime(2024, 5, 31, 23, 59, 59, 999999, tzinfo=UTC)
    # explicit instants are kept as they are (converted to UTC)
    _, t1 = validate_dates("2024-05-01", "2024-05-31T12:00:00+02:00")
    assert t1 == datetime(2024, 5, 31, 10, tzinfo=UTC)
    assert (
        validate_dates("2024-05-01", "2024-05-01")[0]
        < validate_dates("2024-05-01", "2024-05-01")[1]
    )


def test_valid_bbox_round_trips() -> None:
    assert validate_bbox([-180, -90, 180, 90]) == (-180.0, -90.0, 180.0, 90.0)


def test_profiles_resolve_collections_per_level() -> None:
    assert resolve_profile("earth-search", level="L1C").s2_collection("L1C") == "sentinel-2-l1c"
    custom = resolve_profile(stac_url="http://127.0.0.1:1/", collections=["my-s2"], level="L2A")
    assert (custom.name, custom.url, custom.s2_l2a, custom.s1) == (
        "custom",
        "http://127.0.0.1:1",
        "my-s2",
        None,
    )
    es = resolve_profile("earth-search", stac_url=EARTH_SEARCH.url)
    # Earth Search's only S1 collection is uncalibrated amplitude: no SAR unless asked for.
    assert es.name == "earth-search" and es.s1 is None
    named = resolve_profile("earth-search", collections=["sentinel-2-l1c", "sentinel-1-grd"])
    assert named.s1 == "sentinel-1-grd" and named.s1_units["sentinel-1-grd"] == "amplitude"


def test_planetary_computer_has_no_l1c() -> None:
    with pytest.raises(
        BadInputError,
        match=r"no Sentinel-2 L1C collection; use the L2A route \(run/demo: --mask scl",
    ):
        resolve_profile("planetary-computer", level="L1C")


@pytest.mark.parametrize(
    ("collections", "pattern"),
    [(["sentinel-2-l1c"], "Sentinel-2 collection"), (["sentinel-2-l2a", "s1"], "sentinel-1-rtc")],
)
def test_planetary_computer_unknown_collection(collections: list[str], pattern: str) -> None:
    with pytest.raises(BadInputError, match=pattern):
        resolve_profile("planetary-computer", collections=collections, level="L2A")


@pytest.mark.skipif(
    importlib.util.find_spec("planetary_computer") is not None,
    reason="planetary_computer is installed; the missing-extra message cannot be shown",
)
def test_planetary_computer_without_extra_names_install_command() -> None:
    with pytest.raises(ImportError, match=r"pip install 'clearcube\[planetary\]'"):
        resolve_profile("planetary-computer", level="L2A")
