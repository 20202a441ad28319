"""The soft mask of the published MiXiN, in one place.

M_s = P_s / (sum_k P_k + MASK_EPS), where P_s is the power (squared magnitude) of source s's
estimate. Used by the separator (P = the networks' estimates squared), the oracle (P = the true
sources' NSGT powers) and the calibration (``calibrate.mask_error``: P = the estimates' powers
times the squared gains).
"""

from __future__ import annotations

import numpy as np

from . import params
from .errors import MixinError


def soft_masks(powers: dict) -> dict:
    """Soft masks from ``powers`` (source -> float32 array >= 0, all of one shape), computed in
    place (the arrays become the masks): float32 in [0, 1], summing to one wherever some power is
    well above MASK_EPS (1e-7) and to less where all are near zero (that part of the mixture is in
    no output, as in the published MiXiN)."""
    den = sum(powers.values())
    den += np.float32(params.MASK_EPS)
    inv = np.reciprocal(den, out=den)
    return {s: np.multiply(p, inv, out=p) for s, p in powers.items()}


def check_anchor(anchor, what: str = "hpss_anchor") -> float:
    """``anchor`` as a float if it is a number (not a bool) from 0 to 1; :class:`MixinError`
    naming ``what`` and the value otherwise."""
    if isinstance(anchor, bool) or not isinstance(anchor, (int, float, np.floating)) \
            or not 0.0 <= anchor <= 1.0:
        raise MixinError(f"{what} must be a number from 0 to 1, got {anchor!r}")
    return float(anchor)


def anchored_masks(masks: dict, hpss_harmonic: np.ndarray, hpss_percussive: np.ndarray,
                   anchor: float) -> dict:
    """Masks whose harmonic/percussive split is anchored to median-filtering HPSS.

    ``masks``: the published soft masks (:func:`soft_masks`; "harmonic", "percussive" and
    optionally "vocal"), float32 [shape=(b, 96, 1948)]; ``hpss_harmonic`` / ``hpss_percussive``:
    :func:`mixin.hpss.hpss` of the chunks' magnitudes, same shape; ``anchor`` in [0, 1]: how much
    of the split is HPSS's. With ``R = M_h + M_p`` (what is not vocal) and HPSS's split
    ``W_h = H^2 / (H^2 + P^2 + 1e-7)``, ``W_p = P^2 / (H^2 + P^2 + 1e-7)``::

        M_h' = (1 - anchor) * M_h + anchor * R * W_h
        M_p' = (1 - anchor) * M_p + anchor * R * W_p

    The vocal mask is the network's; the masks still lie in [0, 1] and add up to what the
    published ones add up to (up to the 1e-7 guard). ``anchor`` 0 returns ``masks`` unchanged (the
    published algorithm, bit for bit); 1 splits the non-vocal part as HPSS does. Computed in place.
    """
    if anchor == 0:
        return masks
    eps = np.float32(params.MASK_EPS)
    h2 = np.square(hpss_harmonic, dtype=np.float32)
    p2 = np.square(hpss_percussive, dtype=np.float32)
    den = h2 + p2
    den += eps
    a, keep = np.float32(anchor), np.float32(1.0 - anchor)
    rest = masks["harmonic"] + masks["percussive"]
    rest *= a
    rest /= den  # a * R / (H^2 + P^2 + eps)
    for s, w2 in (("harmonic", h2), ("percussive", p2)):
        m = masks[s]
        m *= keep
        m += rest * w2
    return masks
