"""A finished run removes the mosaic store's per-tile scratch (unless kept) and says its disk use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clearcube.pipeline.workflow import folder_bytes


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_scratch_is_removed_after_the_products_and_a_rerun_still_resumes(
    runs: Any, reference_run: Any
) -> None:
    out = runs.seeded(reference_run, "scratch")
    first = runs.run(out)
    assert first.tiles["computed"] == first.tiles["total"] > 0
    store = out / "mosaic.zarr"
    assert store.is_dir() and not (store / "tiles").exists()
    assert (store / "tile_done").exists()  # the completion record stays: resume needs it
    # the reported figure is the folder as it stood before run.json was rewritten
    assert abs(first.disk_bytes - _tree_bytes(out)) < 64 * 1024
    cog = first.cog_path.read_bytes()
    again = runs.run(out)
    assert again.tiles["resumed"] == again.tiles["total"] and again.tiles["computed"] == 0
    assert again.cog_path.read_bytes() == cog


def test_keep_scratch_keeps_the_per_tile_arrays(runs: Any, reference_run: Any) -> None:
    out = runs.seeded(reference_run, "kept")
    result = runs.run(out, keep_scratch=True)
    tiles = out / "mosaic.zarr" / "tiles"
    assert tiles.is_dir() and _tree_bytes(tiles) > 0
    assert result.disk_bytes >= folder_bytes(out / "cube.zarr") + _tree_bytes(tiles)
