"""Evaluation of cloud removal: samples and readers, running methods, reports and figures.

samples      EvalSample and the .npz folder format of evaluation sets
realdata     the real-data set (real clear S2 under real cloud masks, real SAR)
sen12mscrts  SEN12MS-CR-TS test patches as EvalSamples
runner       methods (baselines) -> per-sample metrics
model_method the diffusion model as a method
report       Table 1–3 style Markdown / CSV / JSON
figures      Figure 3 (example grid) and Figure 4 (histograms)
"""

from __future__ import annotations

from clearcube.model.evaluation.runner import SampleResult, baseline_method, evaluate, pick_examples
from clearcube.model.evaluation.samples import EvalSample, load_samples, save_samples

__all__ = [
    "EvalSample",
    "SampleResult",
    "baseline_method",
    "evaluate",
    "load_samples",
    "pick_examples",
    "save_samples",
]
