"""Quality of a composite: clear pixels preserved (Eq. 26), seams, and the ``clearcube seams`` command.

What the seam checks can and cannot say here. The session's checkpoint is untrained, so the
pixels it fills (no clear observation on either fused date, a third of the region) are noise-like,
and the clear pixels are the mean of their observations whatever the tiling. So with the untrained
network the seam score measures the BLENDING: per-tile offsets left by overlap-add (weights that
do not sum to one, a misplaced taper, a tile written to the wrong slot) make the jumps on the seam
lines stand out. It is computed over the model-filled pixels only, because the clear pixels carry
the landscape, whose field edges happen to cross this small region's four seam lines (the clear
image alone scores ~1.75 on them, with no model involved). The issue's criterion (<= 1.1 on the
demo output with the trained model) is checked when the trained demo checkpoint exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearcube.pipeline.cli import main
from clearcube.pipeline.seams import seam_score
from clearcube.pipeline.tiles import plan_tiles

pytestmark = pytest.mark.integration


def mean_of_clear(s2: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean DN of the clear observations (band, y, x), clear in >= 1 date (y, x))``."""
    count = known.sum(axis=0)
    total = (s2 * known[:, None]).sum(axis=0)
    seen = count > 0
    return np.where(seen, total / np.maximum(count, 1), np.nan), seen


def period_middle(run: Any) -> np.datetime64:
    """The middle of the run's period (its default target), from its own run.json."""
    options = json.loads((run.out_dir / "run.json").read_text())["options"]
    start, end = (np.datetime64(options[k], "s") for k in ("start", "end"))
    return start + (end - start) // 2


def nearest_clear(
    s2: np.ndarray, known: np.ndarray, times: list[np.datetime64], middle: np.datetime64
) -> tuple[np.ndarray, np.ndarray]:
    """``(DN of the clear observation nearest ``middle``, clear in >= 1 date)``."""
    order = sorted(range(len(times)), key=lambda i: abs(times[i] - middle))
    value = np.full(s2.shape[1:], np.nan)
    for i in reversed(order):  # the nearest date written last wins
        value = np.where(known[i][None], s2[i], value)
    return value, known.any(axis=0)


def test_clear_pixels_are_the_nearest_clear_observation(
    reference_run: Any,
    fused_inputs: tuple[np.ndarray, np.ndarray],
    read_cog: Callable[[Path], np.ndarray],
) -> None:
    """Eq. 26 on first-clear masks: where a pixel is clear on some fused date, the composite is
    the observation of the clear date nearest the target (the period's middle), to within the
    COG's quantisation (uint16 DN: one DN either way); both dates are candidates and every tile
    fuses both (dates=2), so no tile can pick otherwise."""
    s2, known = fused_inputs
    times = [np.datetime64(d, "s") for d in reference_run.dates]
    expected, seen = nearest_clear(s2, known, times, period_middle(reference_run))
    cog = read_cog(reference_run.cog_path).astype(np.float64)
    assert cog.shape == expected.shape
    assert seen.mean() > 0.5 and (known.sum(axis=0) == 2).mean() > 0.2  # both dates matter
    diff = np.abs(cog - np.rint(expected))[:, seen]
    assert diff.max() <= 1.0
    assert (cog > 0).all()  # every pixel filled; DN 0 would be nodata


def test_provenance_labels_observed_fused_and_generated_pixels(
    reference_run: Any,
    fused_inputs: tuple[np.ndarray, np.ndarray],
    read_cog: Callable[[Path], np.ndarray],
) -> None:
    """The provenance COG: 1 where the nearest date is clear, 2 where only the other is, 3
    where neither is (derived here from the stored masks, not from the pipeline)."""
    _s2, known = fused_inputs
    times = [np.datetime64(d, "s") for d in reference_run.dates]
    middle = period_middle(reference_run)
    nearest = min(range(2), key=lambda i: abs(times[i] - middle))
    expected = np.where(known[nearest], 1, np.where(known.any(axis=0), 2, 3))
    got = read_cog(reference_run.provenance_path)[0]
    assert set(np.unique(expected)) == {1, 2, 3}
    np.testing.assert_array_equal(got, expected)
    overall = reference_run.provenance["overall"]
    for i, name in enumerate(("observed", "fused", "generated")):
        assert overall[name] == pytest.approx(float(np.mean(expected == i + 1)), abs=1e-4)
    # each tile's share of generated pixels over its whole window, overlaps included
    per_tile = reference_run.provenance["generated_per_tile"]
    plan = plan_tiles(*expected.shape, tile=64, overlap=16)
    assert set(per_tile) == {f"{t.y0},{t.x0}" for t in plan}
    for tile in plan:
        share = float(np.mean(expected[tile.window] == 3))
        assert per_tile[f"{tile.y0},{tile.x0}"] == pytest.approx(share, abs=1e-4)
    assert len({round(v, 4) for v in per_tile.values()}) > 1  # the tiles differ


def test_blending_adds_no_seam_to_model_filled_pixels(
    reference_run: Any,
    fused_inputs: tuple[np.ndarray, np.ndarray],
    read_cog: Callable[[Path], np.ndarray],
) -> None:
    _, seen = mean_of_clear(*fused_inputs)
    reflectance = read_cog(reference_run.cog_path) * 1e-4
    filled = np.where(seen, np.nan, reflectance)
    plan = plan_tiles(*seen.shape, tile=64, overlap=16)
    assert seam_score(filled, plan) <= 1.1


def test_seams_command_prints_every_band_and_the_overall_score(
    reference_run: Any,
    read_cog: Callable[[Path], np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["seams", "--cog", str(reference_run.cog_path), "--tile", "64", "--overlap", "16"]
    assert main([*argv, "--json"]) == 0
    import json

    scores = json.loads(capsys.readouterr().out)
    bands = list(reference_run.stac_item.assets["composite"].extra_fields.get("eo:bands", []))
    assert len(scores) == 14 and list(scores)[-1] == "overall"
    if bands:
        assert list(scores)[:13] == [b["name"] for b in bands]
    image = read_cog(reference_run.cog_path) * 1e-4
    plan = plan_tiles(*image.shape[1:], tile=64, overlap=16)
    native = [1, 2, 3, 7]  # B02, B03, B04, B08: the bands observed at 10 m
    assert scores["overall"] == pytest.approx(seam_score(image[native], plan), abs=1e-4)
    assert scores["B04"] == pytest.approx(seam_score(image[3], plan), abs=1e-4)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 14 and lines[-1].split()[0] == "overall"


def test_seams_command_refuses_a_file_that_is_not_a_raster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a raster\n")
    assert main(["seams", "--cog", str(text)]) == 2
    assert capsys.readouterr().err.startswith("clearcube: error: cannot read")


def test_trained_model_leaves_no_visible_seams(
    runs: Any, fused_inputs: tuple[np.ndarray, np.ndarray], read_cog: Callable[[Path], np.ndarray]
) -> None:
    """The issue's criterion on the model-filled pixels, with the trained demo checkpoint."""
    from clearcube.errors import BadInputError
    from clearcube.model.checkpoint import default_checkpoint_path

    try:
        trained = default_checkpoint_path()
    except BadInputError as exc:
        pytest.skip(f"no trained demo checkpoint yet: {exc}")
    result = runs.run(runs.tmp.mktemp("trained") / "out", checkpoint=trained, steps=10)
    _, seen = mean_of_clear(*fused_inputs)
    filled = np.where(seen, np.nan, read_cog(result.cog_path) * 1e-4)
    assert seam_score(filled, plan_tiles(*seen.shape, tile=64, overlap=16)) <= 1.1


def test_another_target_is_another_mosaic_even_with_the_same_candidates(reference_run: Any) -> None:
    """Tiles pick candidates nearest the target first, so the target changes the output: a
    store made for one target must not be resumed for another (same candidate set or not)."""
    from clearcube.pipeline.dates import choose_dates
    from clearcube.pipeline.mosaic import spec_for_cube
    from clearcube.pipeline.options import make_options
    from clearcube.pipeline.workflow import tile_run_record

    options = json.loads((reference_run.out_dir / "run.json").read_text())["options"]
    opts = make_options(options["bbox"], options["start"], options["end"], dates=2, tile=64,
                        overlap=16, steps=2)  # fmt: skip
    cube = reference_run.out_dir / "cube.zarr"
    period = {"start": opts.start, "end": opts.end, "fuse": opts.dates}
    early = choose_dates(cube, target=options["start"], **period)
    late = choose_dates(cube, target=options["end"], **period)
    assert early.indices == late.indices and early.preference != late.preference

    def spec(selection: Any) -> Any:
        run = tile_run_record(opts, selection)
        return spec_for_cube(cube, tile=64, overlap=16, uncertainty=False, run=run)

    assert spec(early).fingerprint != spec(late).fingerprint


def test_the_l2a_route_runs_end_to_end_with_the_bundled_l2a_checkpoint(
    runs: Any, read_cog: Callable[[Path], np.ndarray]
) -> None:
    """``mask="scl"`` (the route of Planetary Computer and Earth Search L2A) with no checkpoint
    given: the 12-band demo-l2a.pt is picked; observed pixels are the cube's own values."""
    import hashlib

    from clearcube.model.checkpoint import default_checkpoint_path
    from clearcube.pipeline.cube import open_cube

    result = runs.run(runs.tmp.mktemp("l2a") / "out", mask="scl", checkpoint=None)
    bundled = default_checkpoint_path("L2A")
    assert bundled.name == "demo-l2a.pt"
    sha = hashlib.sha256(bundled.read_bytes()).hexdigest()
    assert result.stac_item.properties["clearcube:checkpoint_sha256"] == sha
    cog = read_cog(result.cog_path)
    assert cog.shape[0] == 12  # no B10 in L2A
    cube = open_cube(result.out_dir / "cube.zarr")
    days = [str(t)[:10] for t in cube["time"].values]
    s2 = cube["s2"].isel(time=[days.index(d) for d in result.dates]).values
    provenance = read_cog(result.provenance_path)[0]
    observed = provenance == 1
    assert observed.mean() > 0.2
    matches = np.zeros(observed.shape, dtype=bool)
    for date in s2:
        matches |= np.all(cog == date, axis=0)
    assert matches[observed].all()  # every observed pixel is some date's value, untouched
