"""Date selection: which L acquisitions feed SeqTIS for a composite centred on a target date.

SeqTIS fuses any number L of dates (Eqs. 21–26), so the choice is a data question, not a model
one: take the dates closest in time to the target that actually show ground, always including
the target date itself when it was acquired. Selection is global for the region (one set of
dates for every tile), so neighbouring tiles fuse the same observations and blend without seams;
tiles that see no clear pixel in any chosen date are reported and filled from SAR by the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clearcube.errors import BadInputError


@dataclass(frozen=True)
class DateSelection:
    """The dates chosen for one composite."""

    target: np.datetime64
    """The date the composite represents (the middle of the period unless given)."""
    indices: tuple[int, ...]
    """Positions on the cube's ``time`` axis of the chosen dates, in time order."""
    dates: tuple[np.datetime64, ...]
    """The chosen acquisition dates, in time order."""
    clear_fraction: tuple[float, ...]
    """Fraction of clear pixels of the region at each chosen date."""


def middle_date(start: str | np.datetime64, end: str | np.datetime64) -> np.datetime64:
    """The midpoint of ``[start, end]``, to the second."""
    t0, t1 = _seconds(start), _seconds(end)
    return t0 + (t1 - t0) // 2


def _seconds(value: str | np.datetime64) -> np.datetime64:
    """``value`` as a ``datetime64[s]`` scalar."""
    return np.datetime64(np.asarray(value, dtype="datetime64[s]").item(), "s")


def select_dates(
    times: np.ndarray,
    clear_fraction: np.ndarray,
    *,
    length: int = 3,
    target: str | np.datetime64 | None = None,
    min_clear: float = 0.0,
) -> DateSelection:
    """Choose ``length`` dates for SeqTIS, nearest in time to ``target`` among dates showing ground.

    Args:
        times: ``(T,)`` acquisition times of the cube (``datetime64``).
        clear_fraction: ``(T,)`` fraction of clear pixels per date, in ``[0, 1]``.
        length: L, how many dates to fuse; fewer are returned when the cube has fewer usable dates.
        target: the composite's date; default the middle of the cube's time span.
        min_clear: dates with a clear fraction at or below this are used only when nothing else is
            left (a fully cloudy date still carries its SAR, which SeqTIS averages, Eq. 20).

    Raises:
        BadInputError: when the cube has no dates or ``length < 1``.
    """
    times = np.asarray(times).astype("datetime64[s]")
    clear = np.asarray(clear_fraction, dtype=float)
    if length < 1:
        raise BadInputError(f"the number of dates must be at least 1, got {length}; pass --dates 3")
    if times.size == 0:
        raise BadInputError("the cube has no dates; widen the date range or the bbox")
    if times.shape != clear.shape:
        raise ValueError(f"times {times.shape} and clear_fraction {clear.shape} differ in shape")
    goal = middle_date(times.min(), times.max()) if target is None else _seconds(target)
    distance = np.abs((times - goal).astype(np.int64))
    usable = clear > min_clear
    # Usable dates first, then nearest in time, then clearer, then earlier: a total order,
    # so the selection never depends on the order items came back from the catalog.
    order = np.lexsort((times.astype(np.int64), -clear, distance, ~usable))
    chosen = np.sort(order[: min(length, times.size)])
    return DateSelection(
        target=goal,
        indices=tuple(int(i) for i in chosen),
        dates=tuple(times[chosen]),
        clear_fraction=tuple(float(c) for c in clear[chosen]),
    )
