"""The soft mask of the published MiXiN, in one place.

M_s = P_s / (sum_k P_k + MASK_EPS), where P_s is the power (squared magnitude) of source s's
estimate. Used by the separator (P = the networks' estimates squared), the oracle (P = the true
sources' NSGT powers) and the calibration (``calibrate.mask_error``: P = the estimates' powers
times the squared gains).
"""

from __future__ import annotations

import numpy as np

from . import params


def soft_masks(powers: dict) -> dict:
    """Soft masks from ``powers`` (source -> float32 array >= 0, all of one shape), computed in
    place (the arrays become the masks): float32 in [0, 1], summing to one wherever some power is
    well above MASK_EPS (1e-7) and to less where all are near zero (that part of the mixture is in
    no output, as in the published MiXiN)."""
    den = sum(powers.values())
    den += np.float32(params.MASK_EPS)
    inv = np.reciprocal(den, out=den)
    return {s: np.multiply(p, inv, out=p) for s, p in powers.items()}
