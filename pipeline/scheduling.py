"""Bounded task submission on a Dask cluster: one task per small batch of tiles, on GPU workers.

DESIGN.md: inference runs as one ``client.submit`` per tile (or small batch) with
``resources={"GPU": 1}``, because ``dask.annotate`` is lost under graph fusion (dask #7036) and
``map_overlap`` spawns ~100 tasks per block. Submitting 100,000 futures at once would still build a
100,000-task graph on the scheduler, so :func:`run_bounded` keeps at most ``max_in_flight`` tasks
submitted and tops the window up as results arrive. Results are handed to ``on_result`` in the
client process in completion order; anything order-sensitive must be made order-free by the
caller (clearcube writes each tile to its own slot and blends per output chunk in tile order).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dask.base import tokenize
from distributed import Client, as_completed

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class RunStats:
    """What :func:`run_bounded` did."""

    submitted: int = 0
    """Tasks submitted to the cluster."""
    completed: int = 0
    """Tasks whose results were handed to ``on_result``."""
    max_in_flight: int = 0
    """The largest number of tasks that were submitted and not yet finished at once."""
    seconds: float = 0.0
    """Wall time from the first submission to the last result."""
    workers: dict[str, int] = field(default_factory=dict)
    """Tasks per worker address, when the task reports where it ran (``result.worker``)."""


def run_bounded(
    client: Client,
    fn: Callable[[J], R],
    jobs: Iterable[J],
    *,
    on_result: Callable[[J, R], None],
    max_in_flight: int,
    resources: Mapping[str, float] | None = None,
    retries: int = 2,
    key_prefix: str = "clearcube-tile",
) -> RunStats:
    """Run ``fn`` over ``jobs`` on ``client`` with at most ``max_in_flight`` tasks submitted.

    Args:
        client: a ``distributed.Client``.
        fn: the task, a picklable top-level function of one job.
        jobs: the work items, consumed lazily (a generator of 100,000 tiles is fine).
        on_result: called in this process with each job and its result, as results arrive.
        max_in_flight: the submission window; a few per worker slot keeps GPUs fed.
        resources: abstract worker resources each task needs, e.g. ``{"GPU": 1}``.
        retries: how often the scheduler reruns a task whose worker died or that raised.
        key_prefix: Dask key prefix; keys are deterministic (``tokenize`` of the job), so a
            resubmitted job reuses a result the cluster still holds.

    Raises:
        Whatever a task raised after its retries, with the remaining tasks cancelled.
    """
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
    stats = RunStats()
    pending = iter(jobs)
    by_future: dict[Any, J] = {}

    def submit(batch: Iterable[J]) -> list[Any]:
        futures = []
        for job in batch:
            future = client.submit(
                fn,
                job,
                key=f"{key_prefix}-{tokenize(job)}",
                resources=dict(resources) if resources else None,
                retries=retries,
                pure=False,
            )
            by_future[future] = job
            futures.append(future)
        stats.submitted += len(futures)
        return futures

    start = time.perf_counter()
    window = as_completed(submit(itertools.islice(pending, max_in_flight)), with_results=False)
    stats.max_in_flight = len(by_future)
    try:
        for future in window:
            job = by_future.pop(future)
            result = future.result()
            future.release()
            on_result(job, result)
            stats.completed += 1
            first = result[0] if isinstance(result, list) and result else result
            where = getattr(first, "worker", None)
            if where:
                stats.workers[where] = stats.workers.get(where, 0) + 1
            for new in submit(itertools.islice(pending, 1)):
                window.add(new)
            stats.max_in_flight = max(stats.max_in_flight, len(by_future))
    except BaseException:
        client.cancel(list(by_future))
        raise
    stats.seconds = time.perf_counter() - start
    return stats


#: The most tiles one task carries: amortises the scheduler's ~3-15 ms per task.
MAX_TILES_PER_TASK = 16
#: Tasks kept per worker slot at least, so the last tasks of a small region still spread out.
MIN_TASKS_PER_SLOT = 8


def tiles_per_task(pending: int, slots: int, *, most: int = MAX_TILES_PER_TASK) -> int:
    """How many tiles to put in one task: up to ``most``, keeping >= 8 tasks per worker slot.

    Large regions get ``most`` tiles per task (the per-task cost of the scheduler is then
    under 1 % of a 20 ms tile); small ones fewer, so no slot idles while another finishes
    a long last task (25 tiles on 2 slots: 2 per task).
    """
    if pending < 1:
        return 1
    return max(1, min(most, pending // max(slots * MIN_TASKS_PER_SLOT, 1)))


def batched(items: Iterable[J], size: int) -> Iterator[tuple[J, ...]]:
    """``items`` in consecutive tuples of ``size`` (the last one shorter), lazily."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    it = iter(items)
    while chunk := tuple(itertools.islice(it, size)):
        yield chunk
