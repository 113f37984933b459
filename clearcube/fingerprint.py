"""One way to say "the same inputs": a short hash of a JSON record.

The cube (its sources and grid), the cube store (its layout), the mosaic store (the run's model
settings) and the run record all identify what they hold with :func:`fingerprint` of a plain
record, so two records that serialise alike are the same, whoever computes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(record: Mapping[str, Any]) -> str:
    """``record`` as compact JSON with sorted keys; values JSON lacks (paths, dates) as ``str``."""
    return json.dumps(dict(record), sort_keys=True, default=str, separators=(",", ":"))


def fingerprint(record: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of :func:`canonical_json` of ``record``."""
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()[:16]
