"""The test region of the pipeline tests (imported by conftest.py and by tests that need it)."""

from __future__ import annotations

from typing import Any

#: A 113 × 114 px box (10 m) inside the demo region where the two fused dates are partly cloudy:
#: about 27 % of the pixels are clear on both dates, 40 % on one, and 33 % on neither (the model
#: fills those), as the demo generator's cloud truth and the stored masks say.
REGION = (10.0533, 45.092, 10.0674, 45.102)
#: Holds exactly two acquisitions, 2024-07-01 and 2024-07-11 (two dates keep the cube small).
PERIOD = ("2024-06-25", "2024-07-15")
#: Run settings shared by every run of the session: 3 × 3 tiles, both dates fused, 2 DDIM steps.
RUN_ARGS: dict[str, Any] = {"steps": 2, "tile": 64, "overlap": 16, "dates": 2}
