"""A real Dask cluster made of separate processes started with the ``dask`` command line.

:func:`start_dask_processes` (and the ``dask_processes`` fixture in ``conftest.py``) starts, on
127.0.0.1 with a free port:

* one ``dask scheduler``,
* one ``dask worker --resources GPU=1 --nthreads 1`` (named ``gpu-worker``), standing for a GPU
  worker: the pipeline's inference tasks request ``resources={"GPU": 1}`` and may only land here,
* one ``dask worker --nthreads 1`` without resources (named ``cpu-worker``),

all with ``DASK_CONFIG`` pointing at ``deploy/dask/distributed.yaml``, and tears every process
down (terminate, then kill) even when the test fails. The end-to-end test of
``clearcube run --scheduler`` uses it. This is a helper module, not a conftest, so that a test
can also drive the lifecycle itself (``test_processes.py`` checks the teardown).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class DaskProcesses:
    """Addresses and worker names of a process-based test cluster."""

    scheduler: str
    """The scheduler's address, ``tcp://127.0.0.1:PORT``."""
    gpu_worker: str
    """Name of the worker started with ``--resources GPU=1``."""
    cpu_worker: str
    """Name of the worker started without resources."""
    log_dir: Path
    """Folder holding each process's combined stdout/stderr (``scheduler.log`` ...)."""
    pids: tuple[int, ...]
    """Process ids of the scheduler and the two workers."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dask_command() -> list[str]:
    """The ``dask`` command line of the running interpreter's environment."""
    return [sys.executable, "-m", "dask"]


def _wait_for_workers(address: str, names: set[str], procs: list[subprocess.Popen[bytes]]) -> None:
    from distributed import Client

    deadline = time.monotonic() + START_TIMEOUT
    with Client(address, timeout=START_TIMEOUT) as client:
        while time.monotonic() < deadline:
            seen = {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
            if names <= seen:
                return
            dead = [p.args for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"dask processes exited early: {dead}; see their .log files")
            time.sleep(0.2)
    raise TimeoutError(f"workers {sorted(names)} did not join {address} in {START_TIMEOUT}s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate each process we started (workers first), kill what does not stop in 10 s."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def start_dask_processes(log_dir: Path) -> Iterator[DaskProcesses]:
    """Start a scheduler, a ``GPU=1`` worker and a plain worker, each its own ``dask`` process.

    Every process is stopped when the block exits, whatever happened inside it.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_CONFIG=str(DEPLOY / "dask" / "distributed.yaml"))
    env.setdefault("OMP_NUM_THREADS", "1")
    dask = _dask_command()
    # No nanny: one process per worker keeps start-up fast and teardown simple.
    worker = [*dask, "worker", address, "--no-dashboard", "--nthreads", "1", "--no-nanny"]
    worker += ["--host", "127.0.0.1", "--local-directory", str(log_dir / "dask-scratch")]
    scheduler = [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    commands = {
        "scheduler": [*scheduler, "--no-dashboard"],
        "gpu-worker": [*worker, "--name", "gpu-worker", "--resources", "GPU=1"],
        "cpu-worker": [*worker, "--name", "cpu-worker"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            with (log_dir / f"{name}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        command, env=env, cwd=log_dir, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        _wait_for_workers(address, {"gpu-worker", "cpu-worker"}, procs)
        yield DaskProcesses(
            address, "gpu-worker", "cpu-worker", log_dir, tuple(p.pid for p in procs)
        )
    finally:
        _stop(procs)
