"""Training data for SeqDMs: normalisation, SEN12MS-CR-TS and clearcube Zarr cubes.

Every dataset yields the same sample dict (see :data:`SAMPLE_KEYS`), with tensors already
normalised to [-1, 1] (:mod:`clearcube.model.data.normalize`):

    target_s2  (C, P, P)     float32  the clear target date's Sentinel-2 bands (X̂_0)
    target_s1  (Cs, P, P)    float32  the target date's Sentinel-1 (Â_0)
    inputs_s2  (L, C, P, P)  float32  L cloudy input dates (x_0^1..L)
    inputs_s1  (L, Cs, P, P) float32  their Sentinel-1 (a_0^1..L)
    known      (L, P, P)     bool     True = clear, observed pixel of each input date (m^l)
"""

from __future__ import annotations

from typing import Final

SAMPLE_KEYS: Final = ("target_s2", "target_s1", "inputs_s2", "inputs_s1", "known")
