"""Median-filtering HPSS in the NSGT's bins (the HPSS-informed models' extra inputs)."""

import numpy as np
import pytest

from mixin.errors import MixinError
from mixin.hpss import hpss


def reference(mag, time_pool, time_median, band_pool, band_median):
    """Plain loops: pool columns by their mean, running medians with edge repetition, repeat back."""
    bands, cols = mag.shape

    def pool(p):
        k = -(-cols // p)
        padded = np.concatenate([mag, np.repeat(mag[:, -1:], k * p - cols, axis=1)], axis=1)
        return np.array([[padded[b, j * p:(j + 1) * p].mean() for j in range(k)] for b in range(bands)])

    def med(a, n, axis):
        h = n // 2
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                if axis == 1:
                    idx = np.clip(np.arange(j - h, j + h + 1), 0, a.shape[1] - 1)
                    out[i, j] = np.median(a[i, idx])
                else:
                    idx = np.clip(np.arange(i - h, i + h + 1), 0, a.shape[0] - 1)
                    out[i, j] = np.median(a[idx, j])
        return out

    harm = np.repeat(med(pool(time_pool), time_median, 1), time_pool, axis=1)[:, :cols]
    perc = np.repeat(med(pool(band_pool), band_median, 0), band_pool, axis=1)[:, :cols]
    return harm, perc


def test_equals_a_reference_median_filter_on_a_small_array():
    rng = np.random.default_rng(0)
    mag = np.abs(rng.standard_normal((11, 53))).astype(np.float32)
    h, p = hpss(mag, time_pool=4, time_median=5, band_pool=2, band_median=3)
    rh, rp = reference(mag.astype(np.float64), 4, 5, 2, 3)
    np.testing.assert_allclose(h, rh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p, rp, rtol=1e-5, atol=1e-6)
    # batches are filtered chunk by chunk
    hb, pb = hpss(np.stack([mag, 2 * mag]), time_pool=4, time_median=5, band_pool=2, band_median=3)
    np.testing.assert_allclose(hb[1], 2 * h, rtol=1e-5)
    np.testing.assert_allclose(pb[0], p, rtol=1e-6)


def test_a_steady_partial_is_harmonic_and_a_click_is_percussive():
    mag = np.full((96, 1948), 0.01, np.float32)
    mag[40, :] = 1.0           # a steady partial in one band
    mag[:, 1000:1004] = 1.0    # a broadband click of ~2 ms
    h, p = hpss(mag)
    assert h.shape == p.shape == mag.shape and h.dtype == np.float32
    assert h[40, 200] == pytest.approx(1.0) and p[40, 200] == pytest.approx(0.01)
    assert p[10, 1000] > 0.4 and h[10, 1000] < 0.05   # the click (pooled over 4 ms) is percussive
    assert h[10, 200] == pytest.approx(0.01) and p[10, 200] == pytest.approx(0.01)


@pytest.mark.parametrize("kw, match", [({"time_median": 4}, "odd"), ({"band_pool": 0}, "positive"),
                                       ({"time_pool": 1.5}, "positive")])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(MixinError, match=match):
        hpss(np.ones((4, 8), np.float32), **kw)
    with pytest.raises(MixinError, match="2 dimensions"):
        hpss(np.ones(8, np.float32))


def test_onset_is_the_upper_bands_percussive_share_in_every_band():
    from mixin.hpss import onset
    from mixin.nsgt import bark_frequencies

    rng = np.random.default_rng(4)
    mag = rng.random((2, 96, 40)).astype(np.float32) + np.float32(0.1)
    perc = mag * rng.random((2, 96, 40)).astype(np.float32)
    o = onset(mag, perc)
    up = bark_frequencies(96) >= 1000.0
    want = perc[:, up].sum(axis=1) / mag[:, up].sum(axis=1)
    assert o.shape == mag.shape and o.dtype == np.float32 and (o >= 0).all() and (o <= 1).all()
    for b in (0, 50, 95):  # the same value in every band
        np.testing.assert_allclose(o[:, b], want, rtol=1e-5)
    # level-free: the same mix 20 dB louder gives the same channel
    np.testing.assert_allclose(onset(10 * mag, 10 * perc), o, rtol=1e-5)
    # what happens below 1 kHz does not count
    low = perc.copy()
    low[:, ~up] = 0
    np.testing.assert_allclose(onset(mag, low), o, rtol=1e-6)
    with pytest.raises(MixinError, match="no band is at or above 30000"):
        onset(mag, perc, min_hz=30000)
