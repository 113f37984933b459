"""deploy/slurm: the real SLURM job script rendered by dask-jobqueue (no SLURM needed)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask_jobqueue")

from clearcube import BadInputError
from clearcube.deploy.config import dask_config_path
from clearcube.deploy.jobqueue import slurm_cluster, slurm_settings

LOCAL = {"scheduler_options": {"host": "127.0.0.1", "dashboard_address": ":0"}}


@pytest.fixture(scope="module")
def job_script() -> Iterator[str]:
    """The job script of the packaged configuration, from a real SLURMCluster (not scaled)."""
    cluster = slurm_cluster(**LOCAL)
    try:
        yield cluster.job_script()
    finally:
        cluster.close()


def _directives(script: str) -> list[str]:
    return [
        line.removeprefix("#SBATCH").strip()
        for line in script.splitlines()
        if line.startswith("#SBATCH")
    ]


def _worker_args(script: str) -> list[str]:
    (line,) = [x for x in script.splitlines() if "distributed.cli.dask_worker" in x]
    return shlex.split(line)


def _option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.mark.integration
def test_job_asks_slurm_for_one_gpu_on_the_gpu_partition(job_script: str) -> None:
    directives = _directives(job_script)
    assert "--gres=gpu:1" in directives
    assert "-p gpu" in directives
    assert "--cpus-per-task=8" in directives
    assert any(re.fullmatch(r"--mem=\d+G", d) for d in directives)
    assert "-t 04:00:00" in directives
    assert "-J clearcube-gpu" in directives


@pytest.mark.integration
def test_worker_is_one_thread_advertising_one_gpu_slot(job_script: str) -> None:
    args = _worker_args(job_script)
    assert _option(args, "--nthreads") == "1"
    assert _option(args, "--resources") == "GPU=1"
    assert _option(args, "--local-directory") == "$TMPDIR"
    assert args.count("--nworkers") == 0 or _option(args, "--nworkers") == "1"
    assert args[1:3] == ["-m", "distributed.cli.dask_worker"]
    assert args[3].startswith("tcp://127.0.0.1:")  # the scheduler in this process


@pytest.mark.integration
def test_workers_read_the_shared_dask_settings(job_script: str) -> None:
    assert f"export DASK_CONFIG={dask_config_path()}" in job_script
    assert dask_config_path().is_file()


@pytest.mark.integration
def test_overrides_replace_file_values() -> None:
    cluster = slurm_cluster(queue="a100", account="proj42", walltime="00:10:00", **LOCAL)
    try:
        directives = _directives(cluster.job_script())
    finally:
        cluster.close()
    assert {"-p a100", "-A proj42", "-t 00:10:00", "--gres=gpu:1"} <= set(directives)


def test_settings_translate_yaml_keys_to_keywords() -> None:
    settings: dict[str, Any] = slurm_settings()
    assert settings["job_extra_directives"] == ["--gres=gpu:1"]
    assert settings["worker_extra_args"] == ["--resources", "GPU=1"]
    assert settings["cores"] == settings["processes"] == 1


def test_a_file_without_slurm_settings_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "jobqueue.yaml"
    path.write_text("jobqueue:\n  pbs: {}\n")
    with pytest.raises(BadInputError, match="no `jobqueue: slurm:`"):
        slurm_settings(path)
