"""The one soft-mask formula (mixin.masks) used by the separator and the oracle."""

import numpy as np

from mixin import params
import pytest

from mixin.masks import anchored_masks, soft_masks


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


def _anchor_inputs(seed=0):
    rng = np.random.default_rng(seed)
    p = {s: rng.random((2, 96, 40)).astype(np.float32) for s in params.SOURCES}
    h, q = (rng.random((2, 96, 40)).astype(np.float32) + np.float32(0.1) for _ in range(2))
    return soft_masks(p), h, q


def test_anchor_zero_is_the_published_masks_bit_for_bit():
    m, h, q = _anchor_inputs()
    ref = {s: v.copy() for s, v in m.items()}
    out = anchored_masks(m, h, q, 0.0)
    for s in params.SOURCES:
        assert np.array_equal(out[s], ref[s])


@pytest.mark.parametrize("anchor", [0.25, 0.5, 1.0])
def test_anchored_masks_stay_masks_and_keep_vocal_and_total(anchor):
    m, h, q = _anchor_inputs(1)
    ref = {s: v.copy() for s, v in m.items()}
    out = anchored_masks(m, h, q, anchor)
    assert all(v.dtype == np.float32 and (v >= 0).all() and (v <= 1 + 1e-6).all() for v in out.values())
    assert np.array_equal(out["vocal"], ref["vocal"])
    np.testing.assert_allclose(out["harmonic"] + out["percussive"], ref["harmonic"] + ref["percussive"],
                               atol=1e-5)
    # the split is the published one moved towards HPSS's by `anchor`
    rest = ref["harmonic"] + ref["percussive"]
    w_h = h ** 2 / (h ** 2 + q ** 2 + np.float32(params.MASK_EPS))
    np.testing.assert_allclose(out["harmonic"], (1 - anchor) * ref["harmonic"] + anchor * rest * w_h,
                               atol=1e-5)


def test_anchor_one_splits_as_hpss_and_works_without_vocal():
    m, h, q = _anchor_inputs(2)
    del m["vocal"]
    rest = m["harmonic"] + m["percussive"]
    out = anchored_masks(m, h, q, 1.0)
    np.testing.assert_allclose(out["harmonic"] / rest, h ** 2 / (h ** 2 + q ** 2), rtol=1e-4)
