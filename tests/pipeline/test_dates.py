"""Date selection for SeqTIS: nearest usable dates around the target, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearcube.errors import BadInputError
from clearcube.pipeline.dates import middle_date, select_dates

DAYS = np.array(
    ["2024-05-01", "2024-05-11", "2024-05-21", "2024-05-31", "2024-06-10"], "datetime64[s]"
)


def test_middle_date_is_halfway() -> None:
    assert middle_date("2024-05-01", "2024-05-31") == np.datetime64("2024-05-16T00:00:00")


def test_picks_target_and_its_nearest_neighbours() -> None:
    sel = select_dates(DAYS, np.full(5, 0.5), length=3, target="2024-05-21")
    assert sel.indices == (1, 2, 3)
    assert sel.dates == tuple(DAYS[[1, 2, 3]])


def test_fully_cloudy_dates_are_passed_over_for_usable_ones() -> None:
    clear = np.array([0.9, 0.0, 0.0, 0.8, 0.7])  # the two dates next to the target are fully cloudy
    sel = select_dates(DAYS, clear, length=3, target="2024-05-11")
    assert sel.indices == (0, 3, 4)
    assert sel.clear_fraction == (0.9, 0.8, 0.7)


def test_default_target_is_the_middle_of_the_cube() -> None:
    sel = select_dates(DAYS, np.ones(5), length=1)
    assert sel.target == np.datetime64("2024-05-21")
    assert sel.indices == (2,)


def test_fewer_dates_than_asked_returns_all() -> None:
    assert select_dates(DAYS[:2], np.ones(2), length=5).indices == (0, 1)


@pytest.mark.parametrize(("times", "length"), [(DAYS[:0], 3), (DAYS, 0)])
def test_bad_input(times: np.ndarray, length: int) -> None:
    with pytest.raises(BadInputError):
        select_dates(times, np.ones(times.size), length=length)


@given(st.permutations(range(5)), st.integers(1, 5))
def test_selection_does_not_depend_on_catalog_order(perm: list[int], length: int) -> None:
    clear = np.array([0.3, 0.0, 0.6, 0.6, 0.1])
    a = select_dates(DAYS, clear, length=length, target="2024-05-20")
    p = np.array(perm)
    b = select_dates(DAYS[p], clear[p], length=length, target="2024-05-20")
    assert set(a.dates) == set(b.dates)
