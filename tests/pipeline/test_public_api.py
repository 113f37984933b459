"""The public Python API is what README.md, DESIGN.md and docs/API.md say it is."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import clearcube.pipeline as pipeline
from clearcube.pipeline.options import CompositeOptions
from clearcube.pipeline.workflow import CompositeResult


def test_composite_is_the_function_whatever_was_imported_before() -> None:
    # every submodule loaded first: none of them may shadow the exported function
    for name in ("workflow", "options", "outdir", "products", "inference", "mosaic", "cube"):
        importlib.import_module(f"clearcube.pipeline.{name}")
    from clearcube.pipeline import composite

    assert inspect.isfunction(composite) and composite.__name__ == "composite"
    params = inspect.signature(composite).parameters
    assert list(params)[:4] == ["bbox", "start", "end", "out_dir"]
    assert pipeline.CompositeResult is CompositeResult
    assert pipeline.CompositeOptions is CompositeOptions
    assert set(pipeline.__all__) == {"composite", "CompositeResult", "CompositeOptions"}
    assert "uncertainty_path" in CompositeResult.__dataclass_fields__


def test_a_fresh_interpreter_gets_the_function_too() -> None:
    code = (
        "import clearcube.pipeline.workflow\n"
        "from clearcube.pipeline import composite\n"
        "print(type(composite).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "function"
