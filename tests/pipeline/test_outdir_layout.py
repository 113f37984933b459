"""A folder written by an older clearcube is refused up front, untouched, naming why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clearcube.errors import BadInputError


def test_a_folder_without_the_layout_version_is_refused_before_anything_is_written(
    runs: Any, reference_run: Any
) -> None:
    out = runs.seeded(reference_run, "old-layout")
    record = json.loads((out / "run.json").read_text())
    assert record["options"].pop("layout") == 2  # what this clearcube writes
    (out / "run.json").write_text(json.dumps(record))
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(BadInputError, match=r"whose record lacks layout; delete the folder"):
        runs.run(out)
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before  # refused untouched: not even run.json or a lock file
