"""Run reconstruction methods over evaluation samples and score each result.

A *method* is a function ``EvalSample -> (C, H, W)`` prediction on [0, 1]. The baselines of
:mod:`clearcube.model.baselines` become methods through :func:`baseline_method`; the diffusion
model becomes one through :func:`clearcube.model.evaluation.model_method.model_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clearcube.model.baselines import BASELINES
from clearcube.model.evaluation.samples import EvalSample
from clearcube.model.metrics import ImageMetrics, cloudy_pixels, image_metrics

Method = Callable[[EvalSample], np.ndarray]


@dataclass(frozen=True)
class SampleResult:
    """The metrics of one method on one sample, with what reports group by."""

    sample: str
    """Sample name."""
    method: str
    """Method name."""
    source: str
    """Sample source (dataset)."""
    length: int
    """Number of input dates L."""
    cloud_coverage: float
    """Mean cloudy fraction of the input dates, in [0, 1]."""
    cloudy_fraction: float
    """Fraction of pixels cloudy in every input date."""
    target_in_inputs: bool
    """Whether the target date is one of the inputs."""
    metrics: ImageMetrics
    """The scores."""

    def as_row(self) -> dict[str, object]:
        """A flat dict (CSV row / JSON object)."""
        return {
            "sample": self.sample,
            "method": self.method,
            "source": self.source,
            "length": self.length,
            "cloud_coverage": self.cloud_coverage,
            "cloudy_fraction": self.cloudy_fraction,
            "target_in_inputs": self.target_in_inputs,
            **self.metrics.as_dict(),
        }


def baseline_method(name: str) -> Method:
    """The baseline called ``name`` (``least-cloudy``, ``mosaicing``, ``median``) as a method."""
    fn = BASELINES[name]

    def run(sample: EvalSample) -> np.ndarray:
        filled: np.ndarray = fn(sample.inputs, sample.cloud)
        return filled

    run.__name__ = name
    return run


def evaluate(
    samples: Iterable[EvalSample],
    methods: Mapping[str, Method],
    *,
    keep: Collection[str] = (),
    on_sample: Callable[[EvalSample], None] | None = None,
) -> tuple[list[SampleResult], dict[str, dict[str, np.ndarray]]]:
    """Run every method on every sample and score the predictions.

    Args:
        samples: the evaluation samples (consumed once).
        methods: name -> method.
        keep: names of samples whose predictions are returned (for example figures).
        on_sample: progress callback, called after each sample.

    Returns:
        ``(results, kept)``: one :class:`SampleResult` per sample and method, and
        ``kept[sample][method]`` = the (C, H, W) prediction for each sample in ``keep``.
    """
    results: list[SampleResult] = []
    kept: dict[str, dict[str, np.ndarray]] = {}
    for sample in samples:
        cloudy = float(cloudy_pixels(sample.cloud).mean())
        for name, method in methods.items():
            pred = np.asarray(method(sample))
            results.append(
                SampleResult(
                    sample=sample.name,
                    method=name,
                    source=sample.source,
                    length=sample.length,
                    cloud_coverage=sample.cloud_coverage,
                    cloudy_fraction=cloudy,
                    target_in_inputs=sample.target_in_inputs,
                    metrics=image_metrics(pred, sample.target, sample.cloud),
                )
            )
            if sample.name in keep:
                kept.setdefault(sample.name, {})[name] = pred
        if on_sample is not None:
            on_sample(sample)
    return results, kept


def pick_examples(samples: Sequence[EvalSample], length: int = 3) -> list[str]:
    """Up to four samples of ``length`` dates for the Figure-3 grid, one per case of the paper.

    The cases: the clearest sequence; a partly cloudy one (coverage nearest 50 %); one where all
    dates but one are (nearly) covered; the one with the most pixels cloudy in every date.
    """
    pool = [s for s in samples if s.length == length] or list(samples)
    if not pool:
        return []
    coverage = {s.name: s.cloud_coverage for s in pool}
    per_date = {s.name: np.sort(s.cloud.mean(axis=(1, 2))) for s in pool}
    covered = {s.name: float(cloudy_pixels(s.cloud).mean()) for s in pool}
    picks = [
        min(coverage, key=lambda n: coverage[n]),
        min(coverage, key=lambda n: abs(coverage[n] - 0.5)),
        max(per_date, key=lambda n: float(per_date[n][1:].mean()) - float(per_date[n][0])),
        max(covered, key=lambda n: covered[n]),
    ]
    return list(dict.fromkeys(picks))  # unique, in case order
