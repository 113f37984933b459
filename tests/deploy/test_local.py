"""clearcube.deploy.config and clearcube.deploy.local against real Dask clusters."""

from __future__ import annotations

import ctypes.util
import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dask.config
import pytest
import yaml
from distributed import Client, get_worker

from clearcube import BadInputError
from clearcube.deploy.config import (
    clearcube_dask_config,
    configmap_manifest,
    dask_config,
    dask_config_text,
    flatten,
)
from clearcube.deploy.local import (
    MIN_WORKER_MEMORY,
    connect,
    default_cpu_workers,
    gpu_slots,
    local_cluster,
    visible_gpus,
)

# No cluster test may hang the suite (CI budget): fail instead.
pytestmark = pytest.mark.timeout(60)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


# --- settings ---------------------------------------------------------------------------------


def test_packaged_settings_are_the_repository_file() -> None:
    assert dask_config_text() == (DEPLOY / "dask" / "distributed.yaml").read_text()
    assert dask_config() == yaml.safe_load((DEPLOY / "dask" / "distributed.yaml").read_text())


def test_memory_fractions_are_ordered_and_failures_retried() -> None:
    memory = dask_config()["distributed"]["worker"]["memory"]
    fractions = [memory[k] for k in ("target", "spill", "pause", "terminate")]
    assert fractions == sorted(fractions) and fractions[0] > 0 and fractions[-1] < 1
    assert dask_config()["distributed"]["scheduler"]["allowed-failures"] >= 1
    assert dask_config()["distributed"]["comm"]["retry"]["count"] >= 1


def test_every_setting_is_a_key_dask_knows() -> None:
    """A typo in distributed.yaml would be silently ignored by Dask: refuse unknown keys."""
    import distributed  # noqa: F401  # loads Dask's distributed defaults

    for key in flatten(dask_config()):
        if key.startswith("distributed.nanny.pre-spawn-environ."):
            continue  # free-form environment variables
        dask.config.get(key)  # KeyError on an unknown key


def test_flatten_gives_dotted_leaves() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": []}) == {"a.b": 1, "a.c.d": "x", "e": []}


def test_settings_apply_inside_the_block_only_and_keep_other_defaults() -> None:
    import distributed  # noqa: F401

    before = dask.config.get("distributed.comm.timeouts.tcp")
    untouched = dask.config.get("distributed.scheduler.default-data-size")
    with clearcube_dask_config() as applied:
        assert dask.config.get("distributed.comm.timeouts.tcp") == "120s"
        assert applied["distributed.worker.memory.pause"] == 0.85
        assert dask.config.get("distributed.scheduler.default-data-size") == untouched
    assert dask.config.get("distributed.comm.timeouts.tcp") == before


def test_configmap_carries_the_file_verbatim() -> None:
    committed = yaml.safe_load((DEPLOY / "kubernetes" / "dask-config.yaml").read_text())
    assert committed == configmap_manifest(), (
        "deploy/kubernetes/dask-config.yaml drifted from deploy/dask/distributed.yaml; run "
        "`python -m clearcube.deploy.config > deploy/kubernetes/dask-config.yaml`"
    )


# --- sizing and bad inputs (no cluster) --------------------------------------------------------


def test_default_cpu_workers_one_per_core_within_memory() -> None:
    assert default_cpu_workers(total_memory=64 * 2**30, cores=8) == 8
    assert default_cpu_workers(total_memory=3 * MIN_WORKER_MEMORY, cores=8) == 3
    assert default_cpu_workers(total_memory=MIN_WORKER_MEMORY // 2, cores=8) == 1


def test_bad_local_cluster_arguments_are_refused_before_starting() -> None:
    with pytest.raises(BadInputError, match="n_workers=0"), local_cluster(n_workers=0):
        pass
    with (
        pytest.raises(BadInputError, match="threads_per_worker"),
        local_cluster(threads_per_worker=0),
    ):
        pass


@pytest.mark.skipif(visible_gpus() > 0, reason="this machine has a CUDA device")
def test_gpu_true_without_cuda_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="no CUDA device"), local_cluster(gpu=True):
        pass


def test_connect_refuses_other_types_and_local_options_with_an_address() -> None:
    with pytest.raises(BadInputError, match="not int"), connect(8786):  # type: ignore[arg-type]
        pass
    with pytest.raises(BadInputError, match="n_workers"), connect("tcp://127.0.0.1:1", n_workers=2):
        pass


# --- real clusters -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_client() -> Iterator[Client]:
    """connect(None): a 2-process CPU LocalCluster with one thread per worker."""
    start = time.monotonic()
    with connect(None, n_workers=2, gpu=False, dashboard_address=None) as client:
        client.wait_for_workers(2, timeout=20)
        client.startup_s = time.monotonic() - start  # type: ignore[attr-defined]
        yield client
    assert client.status == "closed"


def _where() -> tuple[str, int]:
    return get_worker().address, os.getpid()


@pytest.mark.integration
def test_local_cluster_is_processes_with_one_thread_and_a_gpu_slot(local_client: Client) -> None:
    workers = local_client.scheduler_info(n_workers=-1)["workers"]
    assert len(workers) == 2
    assert {w["nthreads"] for w in workers.values()} == {1}
    assert [w["resources"] for w in workers.values()] == [{"GPU": 1}, {"GPU": 1}]
    assert gpu_slots(local_client) == 2
    pids = set(local_client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids  # separate processes, not threads
    assert local_client.startup_s < 20  # type: ignore[attr-defined]


@pytest.mark.integration
def test_worker_processes_run_with_clearcube_settings(local_client: Client) -> None:
    def setting() -> tuple[str, float]:
        return (
            dask.config.get("distributed.comm.timeouts.tcp"),
            dask.config.get("distributed.worker.memory.pause"),
        )

    assert set(local_client.run(setting).values()) == {("120s", 0.85)}

    def malloc() -> tuple[str | None, ...]:
        env = os.environ
        return (
            env.get("MALLOC_TRIM_THRESHOLD_"),
            env.get("MALLOC_MMAP_THRESHOLD_"),
            env.get("MALLOC_ARENA_MAX"),
            env.get("OMP_NUM_THREADS"),
        )

    # compute settings reach every worker process (not distributed's 64 KiB trim)
    assert set(local_client.run(malloc).values()) == {("1073741824", "33554432", "2", "1")}


@pytest.mark.integration
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc malloc only (Linux)",
)
def test_worker_malloc_arenas_are_bounded(local_client: Client) -> None:
    """However many threads a worker runs (event loop, task, GDAL, blosc), glibc keeps <= 2 arenas.

    Without a bound glibc gives each new thread its own arena (up to 8 per core), and each keeps
    its freed memory: the workers' peak grew with the region (benchmarks/RESULTS.md, session 14).
    """

    import arenas
    import cloudpickle

    cloudpickle.register_pickle_by_value(arenas)  # the workers cannot import the tests' modules
    try:
        counts = set(local_client.run(arenas.arenas_after_threads).values())
    finally:
        cloudpickle.unregister_pickle_by_value(arenas)
    assert counts <= {1, 2}


@pytest.mark.integration
def test_resource_restricted_tasks_run_only_where_the_resource_fits(local_client: Client) -> None:
    futures = local_client.map(lambda i: (i, *_where()), range(4), resources={"GPU": 1}, pure=False)
    results = local_client.gather(futures)
    assert sorted(r[0] for r in results) == [0, 1, 2, 3]
    workers = set(local_client.scheduler_info(n_workers=-1)["workers"])
    assert {r[1] for r in results} <= workers
    # No worker has two GPU slots: a task asking for two can never start.
    too_big = local_client.submit(_where, resources={"GPU": 2}, pure=False)
    time.sleep(1.0)
    assert too_big.status == "pending"
    too_big.cancel()


@pytest.mark.integration
def test_gpu_slot_serialises_tasks_even_with_spare_threads() -> None:
    """With 2 threads per worker, GPU=1 still lets only one inference task run at a time."""

    def hold(_: int) -> tuple[float, float]:
        start = time.monotonic()
        time.sleep(0.3)
        return start, time.monotonic()

    with local_cluster(
        n_workers=1, threads_per_worker=2, gpu=False, dashboard_address=None
    ) as client:
        spans = sorted(client.gather(client.map(hold, range(3), resources={"GPU": 1})))
        free = sorted(client.gather(client.map(hold, range(10, 12))))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # never overlapping
    assert free[0][1] > free[1][0]  # unrestricted tasks do use both threads


@pytest.mark.integration
def test_connect_passes_a_client_through_and_leaves_it_open(local_client: Client) -> None:
    with connect(local_client) as same:
        assert same is local_client
    assert local_client.status == "running"


@pytest.mark.integration
def test_connect_to_an_address_opens_and_closes_its_own_client(local_client: Client) -> None:
    address = local_client.scheduler_info()["address"]
    with connect(address, timeout=10) as remote:
        assert remote is not local_client
        assert remote.submit(lambda: 41 + 1).result(timeout=10) == 42
    assert remote.status == "closed"
    assert local_client.status == "running"


@pytest.mark.integration
def test_connect_refuses_a_closed_port_quickly(free_tcp_port: int) -> None:
    address = f"tcp://127.0.0.1:{free_tcp_port}"
    start = time.monotonic()
    message = rf"no Dask scheduler answers at {address} within 2s"
    with pytest.raises(BadInputError, match=message), connect(address, timeout=2):
        pass
    assert time.monotonic() - start < 6


def _device_of_worker() -> tuple[str, int]:
    import torch

    return os.environ.get("CUDA_VISIBLE_DEVICES", ""), torch.cuda.device_count()


@pytest.mark.gpu
@pytest.mark.integration
@pytest.mark.skipif(visible_gpus() == 0, reason="needs a CUDA device")
def test_gpu_local_cluster_is_one_single_threaded_worker_per_gpu() -> None:
    pytest.importorskip("dask_cuda")
    gpus = visible_gpus()
    with local_cluster(dashboard_address=None) as client:  # gpu=None: auto-detects CUDA
        assert type(client.cluster).__name__ == "LocalCUDACluster"
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [(w["nthreads"], w["resources"]) for w in workers] == [(1, {"GPU": 1})] * gpus
        seen = set(client.run(_device_of_worker).values())
    # Each worker process sees its own device first (dask-cuda rotates CUDA_VISIBLE_DEVICES).
    assert len({visible.split(",")[0] for visible, _ in seen}) == gpus
    assert all(count == gpus for _, count in seen)


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    import psutil

    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


@pytest.mark.integration
def test_every_socket_of_a_default_local_cluster_and_the_catalog_binds_loopback(
    free_tcp_port: int,
) -> None:
    """The default local cluster (dashboard included) and the embedded STAC API listen on
    127.0.0.1 only: nothing of clearcube is reachable from the network unless asked for."""
    import psutil

    from clearcube.catalogs.demo import ensure_demo_catalog
    from clearcube.catalogs.server import serve_catalog
    from clearcube.deploy.local import local_cluster

    me = psutil.Process()
    with local_cluster(
        n_workers=1, gpu=False, dashboard_address=f"127.0.0.1:{free_tcp_port}"
    ) as client:
        client.wait_for_workers(1, timeout=20)
        assert client.dashboard_link and "127.0.0.1" in client.dashboard_link
        pids = {me.pid, *(p.pid for p in me.children(recursive=True))}
        sockets = _listening(pids)
        assert any(port == free_tcp_port for _, port in sockets)  # the dashboard is among them
        assert sockets and all(ip == "127.0.0.1" for ip, _ in sockets), sockets
    with serve_catalog(ensure_demo_catalog(size=256)):
        pids = {me.pid, *(p.pid for p in me.children(recursive=True))}
        sockets = _listening(pids)
        assert sockets and all(ip == "127.0.0.1" for ip, _ in sockets), sockets


def test_the_default_dashboard_address_is_loopback() -> None:
    import inspect

    from clearcube.deploy.local import local_cluster

    default = inspect.signature(local_cluster.__wrapped__).parameters["dashboard_address"].default
    assert default.startswith("127.0.0.1:")
