"""Fixtures of the composite and reliability tests: a tiny checkpoint, a real cluster, one run.

Everything runs the real pipeline (embedded demo catalog, s2cloudless, SeqTIS with an untrained
``cpu-tiny`` network, Zarr stores, COGs) on a real ``distributed`` cluster of worker *processes*
on 127.0.0.1. The region is small (113 × 114 px, 9 tiles of 64 px with overlap 16) and
the sampler takes 2 steps, so one run takes seconds once the cube exists. The session builds the
cube once, in :func:`reference_run`; other runs start from a copy of its ``cube.zarr`` (with the
cloud masks already in it) and recompute every tile.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    from distributed import Client

from region_fixtures import PERIOD, REGION, RUN_ARGS


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained ``cpu-tiny`` checkpoint (weights from ``torch.manual_seed(0)``)."""
    import torch

    from clearcube.model.checkpoint import save_checkpoint
    from clearcube.model.config import preset
    from clearcube.model.unet import UNet

    cfg = preset("cpu-tiny")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.pt"
    return save_checkpoint(path, UNet(cfg.unet), cfg, step=0)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A ``Client`` to 2 single-thread worker processes on 127.0.0.1, each advertising GPU=1.

    Built by :func:`clearcube.deploy.local.local_cluster`, so the scheduler runs with clearcube's
    Dask settings (``allowed-failures``, nanny restarts) exactly as a user's local run does.
    """
    from clearcube.deploy.local import local_cluster

    with local_cluster(n_workers=2, gpu=False, dashboard_address=None) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


@dataclass(frozen=True)
class RegionRuns:
    """Runs of :data:`REGION` with the session's checkpoint and cluster (the tests' helper)."""

    checkpoint: Path
    """The tiny untrained checkpoint."""
    client: Client
    """The session cluster's ``Client``."""
    tmp: pytest.TempPathFactory
    """Where new output folders go."""

    region: tuple[float, float, float, float] = REGION
    """:data:`REGION` (for tests that build their own arguments, e.g. CLI argv)."""
    period: tuple[str, str] = PERIOD
    """:data:`PERIOD`."""

    @property
    def args(self) -> dict[str, Any]:
        """A copy of :data:`RUN_ARGS`."""
        return dict(RUN_ARGS)

    def run(self, out: Path, **kwargs: Any) -> Any:
        """``composite`` of :data:`REGION` into ``out`` (kwargs override :data:`RUN_ARGS`)."""
        from clearcube.pipeline import composite

        kwargs.setdefault("client", self.client)
        kwargs.setdefault("checkpoint", self.checkpoint)
        return composite(REGION, *PERIOD, out, **{**RUN_ARGS, **kwargs})

    def seeded(self, reference: Any, name: str) -> Path:
        """A new output folder holding only the reference's ``run.json`` and cube.

        ``claim_output_dir`` accepts it (same options), the cube and its stored masks resume as
        finished, and there is no mosaic store yet, so every tile is computed again.
        """
        dest = self.tmp.mktemp(name) / "out"
        dest.mkdir()
        shutil.copy2(reference.out_dir / "run.json", dest / "run.json")
        shutil.copytree(reference.out_dir / "cube.zarr", dest / "cube.zarr")
        return dest


@pytest.fixture(scope="session")
def runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, cluster: Any
) -> RegionRuns:
    """The session's :class:`RegionRuns`."""
    return RegionRuns(tiny_checkpoint, cluster, tmp_path_factory)


@pytest.fixture(scope="session")
def reference_run(runs: RegionRuns) -> Any:
    """The undisturbed run every other run is compared with (it also builds the cube)."""
    return runs.run(runs.tmp.mktemp("reference") / "out")


@pytest.fixture(scope="session")
def read_cog() -> Callable[[Path], np.ndarray]:
    """``read_cog(path) -> (band, y, x)``: every band of a COG as stored (no scaling)."""

    def read(path: Path) -> np.ndarray:
        import rasterio

        with rasterio.open(path) as src:
            return np.asarray(src.read())

    return read


@pytest.fixture(scope="session")
def fused_inputs(reference_run: Any) -> tuple[np.ndarray, np.ndarray]:
    """The reference run's fused dates read back from its cube, independently of the pipeline.

    Returns:
        ``s2 (L, band, y, x)`` float64 DN and ``known (L, y, x)`` (True = clear: not flagged as
        cloud by the stored mask, and no band is nodata 0).
    """
    from clearcube.pipeline.cube import open_cube

    cube = open_cube(reference_run.out_dir / "cube.zarr")
    days = [str(t)[:10] for t in cube["time"].values]
    chosen = [days.index(d) for d in reference_run.dates]
    s2 = cube["s2"].isel(time=chosen).values.astype(np.float64)
    cloud = cube["cloud"].isel(time=chosen).values.astype(bool)
    return s2, ~cloud & np.all(s2 > 0, axis=1)
