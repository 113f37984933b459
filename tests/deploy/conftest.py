"""Fixtures for deployment tests: a process-based Dask cluster and a closed TCP port.

``dask_processes`` is a scheduler, one ``dask worker --resources GPU=1 --nthreads 1`` and one plain
``dask worker --nthreads 1``, each a separate process on 127.0.0.1 (see ``dask_processes.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_processes import DaskProcesses, free_port, start_dask_processes


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A running process-based cluster; every process is stopped after the test."""
    with start_dask_processes(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (a closed port to connect to)."""
    return free_port()
