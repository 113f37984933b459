"""Local Dask clusters and the one way the pipeline obtains a ``Client``.

The pipeline submits one inference task per tile with ``resources={"GPU": 1}`` (DESIGN.md: GPU
pinning). A ``"GPU"`` resource therefore means **one model slot**: a worker advertising
``GPU=1`` loads the model once and runs one tile at a time.

* With GPUs, :func:`local_cluster` starts ``dask_cuda.LocalCUDACluster``: one worker process
  per visible GPU, each pinned to its device and advertising ``GPU=1``.
* Without GPUs it starts a ``LocalCluster`` of worker *processes* (torch and GDAL are happier in
  processes than in threads), one thread each, and every worker also advertises ``GPU=1`` —
  here the slot is a CPU core running the model, not a graphics card. This keeps one code path
  in the pipeline: it never has to know whether the cluster has real GPUs.

:func:`connect` turns what the user gave (a ``Client``, a scheduler address, or nothing) into a
``Client`` for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Final

from distributed import Client, LocalCluster
from distributed.system import MEMORY_LIMIT  # respects cgroup limits in containers

from clearcube import BadInputError, missing_dependency
from clearcube.deploy.config import clearcube_dask_config

log = logging.getLogger(__name__)

#: The resource name inference tasks request (``resources={GPU_RESOURCE: 1}``).
GPU_RESOURCE: Final = "GPU"
#: Host memory a CPU worker needs at least (model weights, a few tiles in flight, GDAL cache).
MIN_WORKER_MEMORY: Final = 2 * 2**30


def visible_gpus() -> int:
    """Return how many CUDA devices this process can see (0 without CUDA or without torch)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def default_cpu_workers(total_memory: int | None = None, cores: int | None = None) -> int:
    """Workers for a CPU cluster: one per core, but at least :data:`MIN_WORKER_MEMORY` each."""
    memory = MEMORY_LIMIT if total_memory is None else total_memory
    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(1, min(cores, memory // MIN_WORKER_MEMORY))


@contextlib.contextmanager
def local_cluster(
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    gpu: bool | None = None,
    memory_limit: str | int | None = "auto",
    dashboard_address: str | None = "127.0.0.1:8787",
) -> Iterator[Client]:
    """Start a local Dask cluster with clearcube's settings and yield a ``Client`` to it.

    Every worker advertises ``resources={"GPU": 1}`` (one model slot, see the module doc).
    The cluster and client are closed when the block exits.

    Args:
        n_workers: worker processes; default one per GPU, or on CPU one per core limited so each
            gets at least 2 GiB of host memory.
        threads_per_worker: threads per worker process; keep 1 for inference workers.
        gpu: True for ``LocalCUDACluster`` (needs ``clearcube[gpu]``), False for a CPU
            ``LocalCluster``; None picks GPUs when CUDA devices are visible.
        memory_limit: host memory per worker (``"auto"`` splits the machine's memory evenly).
        dashboard_address: where to serve the dashboard, loopback only unless you give another
            host (``":8787"`` serves every interface); None for none (and a random loopback
            port for the scheduler's health routes).

    Raises:
        BadInputError: ``gpu=True`` but no CUDA device is visible, or ``n_workers < 1``.
        ImportError: ``gpu=True`` (or auto with GPUs) and dask-cuda is not installed.
    """
    if n_workers is not None and n_workers < 1:
        raise BadInputError(f"n_workers={n_workers}; a local cluster needs at least 1 worker")
    if threads_per_worker < 1:
        raise BadInputError(f"threads_per_worker={threads_per_worker}; use 1 or more")
    gpus = visible_gpus() if gpu is None or gpu else 0
    if gpu and not gpus:
        raise BadInputError(
            "gpu=True but no CUDA device is visible; check nvidia-smi and CUDA_VISIBLE_DEVICES, "
            "or pass gpu=False for a CPU cluster"
        )

    with (
        clearcube_dask_config(),
        _start_cluster(
            gpus=gpus,
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            dashboard_address=dashboard_address,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def _start_cluster(
    *,
    gpus: int,
    n_workers: int | None,
    threads_per_worker: int,
    memory_limit: str | int | None,
    dashboard_address: str | None,
) -> Iterator[Any]:
    common: dict[str, Any] = {
        "threads_per_worker": threads_per_worker,
        "memory_limit": memory_limit,
        "dashboard_address": dashboard_address,
        "resources": {GPU_RESOURCE: 1},
    }
    if dashboard_address is None:
        # The scheduler serves its health routes even without a dashboard, on 8787 unless told
        # otherwise: a random port keeps parallel clusters from colliding.
        common["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0"}
    if gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise missing_dependency("dask_cuda", "gpu") from None
        workers = gpus if n_workers is None else min(n_workers, gpus)
        log.info("local GPU cluster: %d workers, one per GPU, each advertising GPU=1", workers)
        # LocalCUDACluster gives worker i the i-th device of CUDA_VISIBLE_DEVICES (or of all).
        cluster = LocalCUDACluster(n_workers=workers, host="127.0.0.1", **common)
    else:
        workers = default_cpu_workers() if n_workers is None else n_workers
        log.info(
            "local CPU cluster: %d worker processes x %d thread; each advertises GPU=1, meaning "
            "one model slot on the CPU, not a graphics card",
            workers,
            threads_per_worker,
        )
        cluster = LocalCluster(n_workers=workers, processes=True, host="127.0.0.1", **common)
    with cluster:
        yield cluster


@contextlib.contextmanager
def connect(
    client: Client | str | None, *, timeout: float = 10.0, **local_kwargs: Any
) -> Iterator[Client]:
    """Yield a ``Client`` for what the user gave; close only what this function opened.

    Args:
        client: a ``distributed.Client`` (passed through, left open), a scheduler address such
            as ``"tcp://10.0.0.5:8786"`` (connected, closed on exit), or None (a
            :func:`local_cluster` started and shut down on exit).
        timeout: seconds to wait for a scheduler at an address to answer.
        local_kwargs: passed to :func:`local_cluster` when ``client`` is None.

    Raises:
        BadInputError: no Dask scheduler answers at the address within ``timeout`` seconds, or
            ``client`` is neither a Client, a string nor None.
    """
    if isinstance(client, Client):
        yield client
        return
    if client is None:
        with local_cluster(**local_kwargs) as local:
            yield local
        return
    if not isinstance(client, str):
        raise BadInputError(
            f"client must be a dask Client, a scheduler address or None, not {type(client).__name__}"
        )
    if local_kwargs:
        raise BadInputError(
            f"local cluster options {sorted(local_kwargs)} make no sense with a scheduler address"
        )
    try:
        remote = Client(client, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BadInputError(
            f"no Dask scheduler answers at {client} within {timeout:g}s; check the address or "
            "start one with `dask scheduler`"
        ) from exc
    with remote:
        yield remote


def gpu_slots(client: Client) -> int:
    """Return how many inference tasks the cluster can run at once (its workers' GPU resources).

    The pipeline can check this before submitting tiles: 0 means every inference task would wait
    for a GPU worker (until ``no-workers-timeout`` in ``distributed.yaml``).
    """
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return int(sum(w.get("resources", {}).get(GPU_RESOURCE, 0) for w in workers))


def require_gpu_slots(client: Client) -> int:
    """:func:`gpu_slots`, refusing a cluster with no ``GPU`` slot at all (no tile could run).

    Raises:
        BadInputError: no worker advertises a GPU slot; says how to start one.
    """
    slots = gpu_slots(client)
    if slots == 0:
        raise BadInputError(
            "no worker of the Dask cluster advertises a GPU slot, so no tile could run; start "
            "workers with `dask worker ADDRESS --resources GPU=1` (see deploy/README.md)"
        )
    return slots
