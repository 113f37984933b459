"""clearcube.pipeline: cloud-free composites from Sentinel-1/2 time series.

    from clearcube.pipeline import composite
    result = composite(bbox=(w, s, e, n), start="2024-05-01", end="2024-07-31", out_dir="out/")

The public API (docs/API.md) is :func:`composite`, its :class:`CompositeResult` and the
:class:`CompositeOptions` it validates; the stage modules (``cube``, ``masking``, ``dates``,
``inference``, ``mosaic``, ``products``, ...) are importable on their own. The names load on
first use, so ``import clearcube.pipeline`` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearcube.pipeline.options import CompositeOptions
    from clearcube.pipeline.workflow import CompositeResult, composite

#: Public name -> the module that defines it.
_EXPORTS = {
    "composite": "clearcube.pipeline.workflow",
    "CompositeResult": "clearcube.pipeline.workflow",
    "CompositeOptions": "clearcube.pipeline.options",
}

__all__ = ["CompositeOptions", "CompositeResult", "composite"]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clearcube.pipeline' has no attribute {name!r}")
