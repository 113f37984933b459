"""Date selection: which acquisitions feed SeqTIS for a composite centred on a target date.

SeqTIS fuses any number L of dates (Eqs. 21–26), so the choice is a data question, not a model
one. Two levels:

1. :func:`select_dates` picks the region's *candidates*: the dates nearest in time to the
   target that show ground (at most a cap), always including the target date itself when it
   was acquired. Only these are cloud-masked.
2. :func:`choose_tile_dates` picks, per tile, from the candidates in order of time distance:
   a date joins when it shows a pixel that the dates already chosen do not, up to ``L`` dates.
   So the model generates only the pixels cloudy in every candidate that could be used, and a
   tile that the nearest date sees fully clear fuses that date alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clearcube.errors import BadInputError
from clearcube.pipeline.cube_store import open_cube

log = logging.getLogger(__name__)

#: The most candidate dates a composite masks and lets its tiles choose from (nearest first).
MAX_CANDIDATES = 12


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
    preference: tuple[int, ...] = ()
    """The same positions as ``indices``, nearest the target first (the order tiles pick in)."""
    measured: tuple[float, ...] = ()
    """Clear fraction of each chosen date measured from its cloud mask (clear and valid pixels),
    in the order of ``indices``; empty until the dates are masked."""


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
    preferred = order[: min(length, times.size)]
    chosen = np.sort(preferred)
    return DateSelection(
        target=goal,
        indices=tuple(int(i) for i in chosen),
        dates=tuple(times[chosen]),
        clear_fraction=tuple(float(c) for c in clear[chosen]),
        preference=tuple(int(i) for i in preferred),
    )


def choose_tile_dates(known: np.ndarray, *, max_dates: int) -> tuple[int, ...]:
    """The candidates one tile fuses: a greedy cover of its pixels, nearest candidates first.

    Use :func:`first_clear` on the chosen dates so that each pixel takes the nearest chosen
    date that sees it (a pixel clear in the nearest date keeps exactly that observation).

    Args:
        known: ``(N, h, w)`` bool, True = clear and observed, the tile's N candidates in order of
            preference (nearest the target first).
        max_dates: L, the most dates to fuse.

    Returns:
        Positions into ``known`` of the chosen candidates, in preference order. The first
        candidate is always chosen (its SAR conditions the tile even when it is cloudy); a
        later one only when it shows a pixel none of the earlier choices shows.
    """
    known = np.asarray(known, dtype=bool)
    if known.ndim != 3 or known.shape[0] == 0:
        raise ValueError(f"known must be (N, h, w) with N >= 1, got {known.shape}")
    if max_dates < 1:
        raise BadInputError(f"the number of dates must be at least 1, got {max_dates}")
    chosen = [0]
    covered = known[0].copy()
    for n in range(1, known.shape[0]):
        if len(chosen) == max_dates or covered.all():
            break
        if np.any(known[n] & ~covered):
            chosen.append(n)
            covered |= known[n]
    return tuple(chosen)


def first_clear(known: np.ndarray) -> np.ndarray:
    """``known (L, h, w)`` reduced so each pixel is known in its first clear date only.

    SeqTIS averages the clear dates of a pixel (Eq. 23); fed this mask it instead takes the
    date nearest the target, so the composite keeps the target's own observation where it
    exists and the later dates only fill what it misses (a priority mosaic of real pixels).
    """
    known = np.asarray(known, dtype=bool)
    earlier = np.logical_or.accumulate(known, axis=0)
    out = known.copy()
    out[1:] &= ~earlier[:-1]
    return out


def choose_dates(
    cube_path: Path,
    *,
    start: str,
    end: str,
    target: str | None,
    fuse: int,
    clear: np.ndarray | None = None,
) -> DateSelection:
    """The candidate dates of a stored cube the tiles choose from, nearest the target first.

    At most ``max(fuse, MAX_CANDIDATES)``; each tile fuses up to ``fuse`` of them. Without
    measured ``clear`` fractions the catalog's ``eo:cloud_cover`` ranks the dates, so only the
    candidates need the (slow) cloud detector.

    Args:
        cube_path: the Zarr cube.
        start: first day of the period (the default target is its middle, with ``end``).
        end: last day of the period.
        target: the composite's date, or None for the middle of the period.
        fuse: L, the most dates a tile fuses.
        clear: measured clear fraction per date, when known.

    Raises:
        BadInputError: the cube is empty.
    """
    cube = open_cube(cube_path)
    if cube.sizes["time"] == 0 or cube.sizes["y"] == 0 or cube.sizes["x"] == 0:
        raise BadInputError(f"the cube at {cube_path} is empty; widen the bbox or the dates")
    if clear is None:
        cover = np.asarray(cube["cloud_cover"].values, dtype=float)
        clear = np.where(np.isfinite(cover), 1.0 - cover / 100.0, 0.5)
    when = target or str(middle_date(start, end))
    selection = select_dates(
        cube["time"].values, clear, length=max(fuse, MAX_CANDIDATES), target=when
    )
    log.info(
        "candidate dates (each tile fuses up to %d): %s",
        fuse,
        ", ".join(str(d)[:10] for d in selection.dates),
    )
    return selection
