"""Bounded submission on a real Dask cluster: every job once, window respected, GPU pinning."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from distributed import Client, Scheduler, SpecCluster, Worker, get_worker

from clearcube.pipeline.scheduling import run_bounded

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Done:
    value: int
    worker: str


def square(job: int) -> Done:
    return Done(job * job, get_worker().address)


def fail_on_seven(job: int) -> Done:
    if job == 7:
        raise RuntimeError("job 7 is broken")
    return square(job)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two single-thread in-process workers; only the first advertises a GPU slot."""
    workers = {
        "gpu": {
            "cls": Worker,
            "options": {"nthreads": 1, "resources": {"GPU": 1}, "host": "127.0.0.1"},
        },
        "cpu": {"cls": Worker, "options": {"nthreads": 1, "host": "127.0.0.1"}},
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    with SpecCluster(workers=workers, scheduler=scheduler) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def test_every_job_runs_once_within_the_window(client: Client) -> None:
    seen: dict[int, int] = {}
    jobs = range(200)
    stats = run_bounded(
        client, square, iter(jobs), on_result=lambda j, r: seen.__setitem__(j, r.value),
        max_in_flight=8,
    )  # fmt: skip
    assert seen == {j: j * j for j in jobs}
    assert stats.submitted == stats.completed == 200
    assert stats.max_in_flight <= 8


def test_gpu_resource_pins_every_task_to_the_gpu_worker(client: Client) -> None:
    gpu_workers = {
        addr for addr, w in client.scheduler_info()["workers"].items() if w["resources"].get("GPU")
    }
    stats = run_bounded(
        client, square, range(30), on_result=lambda j, r: None,
        max_in_flight=4, resources={"GPU": 1},
    )  # fmt: skip
    assert set(stats.workers) == gpu_workers
    assert sum(stats.workers.values()) == 30


def test_a_failing_task_raises_after_retries(client: Client) -> None:
    with pytest.raises(RuntimeError, match="job 7 is broken"):
        run_bounded(
            client, fail_on_seven, range(20), on_result=lambda j, r: None,
            max_in_flight=4, retries=1,
        )  # fmt: skip


def test_window_must_be_positive(client: Client) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        run_bounded(client, square, [1], on_result=lambda j, r: None, max_in_flight=0)
