"""SLURM GPU workers through dask-jobqueue, configured by ``deploy/slurm/jobqueue.yaml``.

One SLURM job is one GPU is one Dask worker with one thread and ``--resources GPU=1`` (what the
pipeline's inference tasks request). The scheduler runs in the calling Python process with
clearcube's Dask settings; the job script exports ``DASK_CONFIG`` so the workers use them too.
"""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from clearcube import BadInputError, missing_dependency
from clearcube.deploy.config import clearcube_dask_config, dask_config_path

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster


def slurm_settings(path: str | Path | None = None) -> dict[str, Any]:
    """Return the ``jobqueue.slurm`` mapping of a jobqueue YAML file as SLURMCluster keywords.

    Args:
        path: a dask-jobqueue YAML file; None reads the packaged ``slurm/jobqueue.yaml``.

    Raises:
        BadInputError: the file has no ``jobqueue: slurm:`` mapping.
    """
    if path is None:
        text = resources.files("clearcube.deploy").joinpath("slurm/jobqueue.yaml").read_text()
        where = "clearcube.deploy slurm/jobqueue.yaml"
    else:
        text, where = Path(path).read_text(), str(path)
    loaded = yaml.safe_load(text) or {}
    slurm = loaded.get("jobqueue", {}).get("slurm") if isinstance(loaded, dict) else None
    if not isinstance(slurm, dict):
        raise BadInputError(
            f"{where} has no `jobqueue: slurm:` mapping; see deploy/slurm/jobqueue.yaml"
        )
    settings = {key.replace("-", "_"): value for key, value in slurm.items()}
    if "name" in settings:  # the config's `name` is the job name (#SBATCH -J), as in jobqueue
        settings["job_name"] = settings.pop("name")
    return settings


def slurm_cluster(config: str | Path | None = None, **overrides: Any) -> SLURMCluster:
    """Build a ``dask_jobqueue.SLURMCluster`` for GPU workers from the jobqueue YAML.

    No job is submitted until you call ``cluster.scale(jobs=N)`` or ``cluster.adapt(...)``;
    ``cluster.job_script()`` shows what would be submitted. Close the cluster when done.

    Args:
        config: a jobqueue YAML file; None uses the packaged ``deploy/slurm/jobqueue.yaml``.
        overrides: SLURMCluster keywords replacing the file's values (``queue="a100"``,
            ``account="proj42"``, ``walltime="08:00:00"``, ``scheduler_options={...}``).

    Raises:
        ImportError: dask-jobqueue is not installed (``pip install 'clearcube[deploy]'``).
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise missing_dependency("dask_jobqueue", "deploy") from None
    settings = {**slurm_settings(config), **overrides}
    # Workers are fresh processes on other nodes: point them at the same Dask settings file
    # (the installed package lives on the shared filesystem the jobs also see).
    export = f"export DASK_CONFIG={shlex.quote(str(dask_config_path()))}"
    settings["job_script_prologue"] = [*settings.get("job_script_prologue", []), export]
    settings.setdefault("python", sys.executable)
    with clearcube_dask_config():  # the scheduler starts here, in this process
        return SLURMCluster(**settings)
