"""SEN12MS-CR-TS patches as evaluation samples, through :mod:`clearcube.model.data.sen12mscrts`.

The dataset reader picks the least cloudy date as the target and the L dates nearest to it as
inputs (so the target is never among the inputs); its [-1, 1] model scaling is undone here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from clearcube.model.evaluation.samples import EvalSample


def is_sen12mscrts(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` looks like a SEN12MS-CR-TS root (``ROIs*/<tile>/S2``)."""
    return any(Path(folder).glob("ROIs*/*/S2"))


def sen12mscrts_samples(
    root: str | os.PathLike[str], *, lengths: Sequence[int] = (3,), split: str = "test"
) -> Iterator[EvalSample]:
    """Yield one sample per patch and length L from the SEN12MS-CR-TS folder ``root``.

    Args:
        root: the folder holding ``ROIs1158``, ``ROIs1868``, ...
        lengths: input sequence lengths.
        split: ``"test"`` (the official test ROIs), ``"train"`` or ``"all"``.
    """
    # Local: these pull torch; every ``clearcube evaluate`` calls is_sen12mscrts, baselines too.
    from clearcube.model.data.normalize import s1_from_model
    from clearcube.model.data.sen12mscrts import Sen12mscrtsDataset

    for length in lengths:
        dataset = Sen12mscrtsDataset(root, split=split, seq_len=length)  # type: ignore[arg-type]
        for i, series in enumerate(dataset.series):
            item = dataset[i]
            yield EvalSample(
                name=f"{series.roi.replace('/', '_')}_p{series.patch}_L{length}",
                inputs=((item["inputs_s2"].numpy() + 1.0) / 2.0).astype(np.float32),
                cloud=~item["known"].numpy().astype(bool),
                target=((item["target_s2"].numpy() + 1.0) / 2.0).astype(np.float32),
                sar=s1_from_model(item["inputs_s1"].numpy()),
                target_in_inputs=False,
                source="sen12mscrts",
                meta={"roi": series.roi, "patch": str(series.patch)},
            )
