"""The one soft-mask formula (mixin.masks) used by the separator and the oracle."""

import numpy as np

from mixin import params
from mixin.masks import soft_masks


def test_masks_in_unit_interval_and_sum_to_one_where_active():
    rng = np.random.default_rng(0)
    p = {s: rng.random((4, 96, 50)).astype(np.float32) for s in params.SOURCES}
    p["vocal"][0] = 0.0  # a silent source gets a zero mask
    ref = {s: v.copy() for s, v in p.items()}
    m = soft_masks(p)
    total = sum(m.values())
    assert all(v.dtype == np.float32 and (v >= 0).all() and (v <= 1).all() for v in m.values())
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    assert not m["vocal"][0].any()
    den = sum(ref.values()) + np.float32(params.MASK_EPS)
    for s in params.SOURCES:
        np.testing.assert_allclose(m[s], ref[s] / den, rtol=1e-6)


def test_guard_keeps_silence_finite_and_below_one():
    """Where every power is ~0 the published 1e-7 guard makes the masks sum to less than one."""
    p = {s: np.full((2, 3), 1e-9, np.float32) for s in params.SOURCES}
    m = soft_masks(p)
    total = sum(m.values())
    assert np.isfinite(total).all() and (total < 0.05).all()
