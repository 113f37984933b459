"""The process-based cluster (``dask scheduler`` + ``dask worker`` processes) itself.

The end-to-end ``clearcube run --scheduler`` test builds on the ``dask_processes`` fixture; here
we prove what that test relies on: resource-restricted tasks land on the ``GPU=1`` worker only,
unrestricted work spreads over both workers, the workers run with clearcube's Dask settings, and
every process is gone afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import dask.config
import psutil
import pytest
from dask_processes import start_dask_processes
from distributed import Client, get_worker

# No cluster test may hang the suite (CI budget): fail instead.
pytestmark = pytest.mark.timeout(90)


@pytest.mark.integration
def test_restricted_tasks_land_on_the_gpu_worker_and_the_rest_spreads(tmp_path: Path) -> None:
    def _worker_name(_: object = None, pause: float = 0.05) -> str:
        # Defined here so cloudpickle sends it by value: workers cannot import test modules.
        time.sleep(pause)
        return str(get_worker().name)

    with start_dask_processes(tmp_path) as cluster:
        with Client(cluster.scheduler, timeout=10) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            resources = {w["name"]: w["resources"] for w in workers}
            assert resources == {cluster.gpu_worker: {"GPU": 1}, cluster.cpu_worker: {}}
            assert {w["nthreads"] for w in workers} == {1}

            inference = client.map(_worker_name, range(6), resources={"GPU": 1}, pure=False)
            assert set(client.gather(inference)) == {cluster.gpu_worker}

            spread = client.map(_worker_name, range(8), pause=0.3, pure=False)
            assert set(client.gather(spread)) == {cluster.gpu_worker, cluster.cpu_worker}

            # Every process was started with DASK_CONFIG=deploy/dask/distributed.yaml.
            tcp = client.run(lambda: dask.config.get("distributed.comm.timeouts.tcp"))
            assert set(tcp.values()) == {"120s"}
            assert client.run_on_scheduler(
                lambda: dask.config.get("distributed.scheduler.allowed-failures")
            ) == dask.config.get("distributed.scheduler.allowed-failures", 3)
        pids = cluster.pids
        assert all(psutil.pid_exists(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
