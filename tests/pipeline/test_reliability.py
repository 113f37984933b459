"""Reliability of ``composite`` on a real cluster: killed workers, interrupted runs, other shapes.

Every run here makes the same composite as the session's undisturbed ``reference_run`` and must
give the same COG pixel for pixel: the sampler's noise is keyed by global pixel coordinates and
each tile is written to its own slot, so neither a retried task, a resumed run, nor another
worker count or submission order may change a single value. A third of the region has no clear
observation, so the model's output is part of what is compared.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

pytestmark = pytest.mark.integration

TOTAL_TILES = 9


def test_reference_run_has_model_filled_pixels_in_most_tiles(
    reference_run: Any, fused_inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    """Guard for the tests below: the compared output really depends on the model."""
    from clearcube.pipeline.tiles import plan_tiles

    assert reference_run.tiles == {
        "total": TOTAL_TILES, "computed": TOTAL_TILES, "resumed": 0, "without_clear": 0,
    }  # fmt: skip
    _, known = fused_inputs
    unknown = np.asarray(~known.any(axis=0))
    assert 0.2 < unknown.mean() < 0.6
    plan = plan_tiles(*unknown.shape, tile=64, overlap=16)
    assert sum(bool(unknown[tile.window].any()) for tile in plan) >= 5


def test_worker_killed_mid_run_gives_the_same_cog(
    runs: Any, reference_run: Any, read_cog: Callable[[Path], np.ndarray]
) -> None:
    client = runs.client
    client.wait_for_workers(2, timeout=120)
    pids: dict[str, int] = client.run(os.getpid)
    killed: dict[str, Any] = {}

    def kill_a_busy_worker(stage: str, done: int, total: int) -> None:
        if stage != "inference" or done < 1 or killed:
            return
        busy = sorted(addr for addr, keys in client.processing().items() if keys)
        assert busy, "no worker holds a tile after the first one finished"
        victim = busy[0]
        killed.update(address=victim, done=done, holding=len(client.processing()[victim]))
        os.kill(pids[victim], signal.SIGKILL)

    out = runs.seeded(reference_run, "killed")
    result = runs.run(out, progress=kill_a_busy_worker)

    assert killed, "the run finished before a worker could be killed"
    assert killed["done"] < TOTAL_TILES and killed["holding"] >= 1
    assert result.tiles["computed"] == TOTAL_TILES
    np.testing.assert_array_equal(read_cog(result.cog_path), read_cog(reference_run.cog_path))
    # The nanny restarted the killed worker under a new address; the cluster is whole again.
    client.wait_for_workers(2, timeout=120)
    assert killed["address"] not in client.scheduler_info(n_workers=-1)["workers"]


class Interrupted(Exception):
    """Raised from the progress callback to stop a run, like Ctrl-C would."""


def test_interrupted_run_resumes_without_recomputing_finished_tiles(
    runs: Any, reference_run: Any, read_cog: Callable[[Path], np.ndarray]
) -> None:
    k = 4

    def stop_after_k(stage: str, done: int, total: int) -> None:
        if stage == "inference" and done == k:
            raise Interrupted

    out = runs.seeded(reference_run, "interrupted")
    # One task in flight: when the k-th result arrives no other tile is running or finished.
    with pytest.raises(Interrupted):
        runs.run(out, progress=stop_after_k, max_in_flight=1)
    recorded = np.asarray(zarr.open_array(out / "mosaic.zarr" / "tile_done", mode="r")[:])
    assert int(recorded.sum()) == k
    assert not (out / "composite.tif").exists()

    result = runs.run(out)

    assert result.tiles["total"] == TOTAL_TILES
    assert result.tiles["resumed"] == k
    assert result.tiles["computed"] == TOTAL_TILES - k
    np.testing.assert_array_equal(read_cog(result.cog_path), read_cog(reference_run.cog_path))


@pytest.mark.parametrize("max_in_flight", [1, 64])
def test_task_order_and_window_do_not_change_the_cog(
    runs: Any, reference_run: Any, read_cog: Callable[[Path], np.ndarray], max_in_flight: int
) -> None:
    runs.client.wait_for_workers(2, timeout=120)
    out = runs.seeded(reference_run, f"window{max_in_flight}")
    result = runs.run(out, max_in_flight=max_in_flight)
    assert result.tiles["computed"] == TOTAL_TILES
    np.testing.assert_array_equal(read_cog(result.cog_path), read_cog(reference_run.cog_path))


def test_tiles_per_task_do_not_change_the_cog(
    runs: Any, reference_run: Any, read_cog: Callable[[Path], np.ndarray]
) -> None:
    """The reference ran one tile per task (9 tiles, 2 slots); batches of 4 give the same bytes."""
    out = runs.seeded(reference_run, "per-task-4")
    result = runs.run(out, tiles_per_task=4)
    assert result.tiles["computed"] == TOTAL_TILES
    np.testing.assert_array_equal(read_cog(result.cog_path), read_cog(reference_run.cog_path))


def test_network_batches_do_not_change_the_cog(
    runs: Any, reference_run: Any, read_cog: Callable[[Path], np.ndarray]
) -> None:
    """The reference ran each tile alone through the network; 3 tile-samples per call (tasks of
    4 tiles, so batches of 3 and 1, and of mixed samples) give the same bytes."""
    out = runs.seeded(reference_run, "batch-3")
    result = runs.run(out, tiles_per_task=4, batch=3)
    assert result.tiles["computed"] == TOTAL_TILES
    np.testing.assert_array_equal(read_cog(result.cog_path), read_cog(reference_run.cog_path))


def test_one_worker_gives_the_same_cog_as_two(
    runs: Any, reference_run: Any, read_cog: Callable[[Path], np.ndarray]
) -> None:
    from clearcube.deploy.local import local_cluster

    out = runs.seeded(reference_run, "one-worker")
    with local_cluster(n_workers=1, gpu=False, dashboard_address=None) as single:
        assert len(single.scheduler_info(n_workers=-1)["workers"]) == 1
        result = runs.run(out, client=single)
    assert result.tiles["computed"] == TOTAL_TILES
    np.testing.assert_array_equal(read_cog(result.cog_path), read_cog(reference_run.cog_path))


_HOLD = """
import sys, time
from pathlib import Path
from clearcube.pipeline.outdir import output_lock
with output_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(300)
"""


def test_one_run_per_output_folder_and_a_dead_holder_frees_it(runs: Any) -> None:
    """Another process owns the folder: the run is refused naming it, nothing is written; once
    that process is killed (SIGKILL: no cleanup), the same run goes through."""
    import subprocess
    import sys

    from clearcube.errors import BadInputError

    out = runs.tmp.mktemp("locked") / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            BadInputError, match=rf"in use by a running clearcube \(pid {holder.pid} "
        ):
            runs.run(out)
        assert sorted(p.name for p in out.iterdir()) == [".clearcube.lock"]
    finally:
        holder.kill()
        holder.wait()
    result = runs.run(out)
    assert result.cog_path.is_file() and (out / "run.json").is_file()
