"""The Bark-scale NSGT: reference match, perfect reconstruction, shapes and batching."""

import numpy as np
import pytest

from conftest import shared_path
from mixin import params
from mixin.nsgt import NSGT, bark2hz, bark_frequencies, coef_shape, get_nsgt, hz2bark


@pytest.fixture(scope="module")
def nsgt64():
    return NSGT(dtype=np.float64)


def test_shape_is_derived_from_the_scale():
    assert coef_shape() == (params.N_BANDS, 1948)
    t = NSGT(length=8192, n_bands=24)
    assert t.shape[0] == 24
    assert t.forward(np.zeros(8192)).shape == t.shape


def test_bark_scale():
    f = bark_frequencies()
    assert len(f) == params.N_BANDS
    assert f[0] == 0 and f[-1] == pytest.approx(params.F_MAX)
    b = hz2bark(f)
    assert np.allclose(np.diff(b), b[1] - b[0])  # evenly spaced in Bark
    assert np.allclose(bark2hz(hz2bark(1234.5)), 1234.5)
    with pytest.raises(ValueError):
        bark_frequencies(1)
    with pytest.raises(ValueError):
        bark_frequencies(96, 100, 50)


def test_matches_reference_coefficients(nsgt64):
    import soundfile as sf

    ref = np.load(shared_path("reference", "nsgt_chunk0.npy"))
    x, sr = sf.read(shared_path("reference", "sodium_5s.wav"), dtype="float32")
    mono = x.mean(axis=1, dtype=np.float32)[: params.CHUNK_SIZE]
    c = nsgt64.forward(mono.astype(np.float64))
    assert c.shape == ref.shape
    err = np.abs(c - ref).max() / np.abs(ref).max()
    assert err < 1e-6, err  # the reference was computed from a float32 downmix
    c32 = get_nsgt().forward(mono)
    assert np.abs(c32 - ref).max() / np.abs(ref).max() < 1e-5


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_perfect_reconstruction(dtype, tol):
    t = NSGT(dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, params.CHUNK_SIZE))
    y = t.backward(t.forward(x))
    assert y.shape == x.shape
    assert np.abs(y - x).max() / np.abs(x).max() < tol


def test_batched_equals_single_and_linear(nsgt64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, params.CHUNK_SIZE))
    c = nsgt64.forward(x)
    assert c.shape == (2, 3) + coef_shape()
    assert np.allclose(c[1, 2], nsgt64.forward(x[1, 2]))
    assert np.allclose(nsgt64.forward(2 * x[0, 0] - x[0, 1]), 2 * c[0, 0] - c[0, 1])
    assert np.allclose(nsgt64.backward(c)[1, 2], x[1, 2])


def test_a_sinusoid_lands_in_its_band(nsgt64):
    fs = params.SAMPLE_RATE
    t = np.arange(params.CHUNK_SIZE) / fs
    for f0 in (100.0, 1000.0, 8000.0):
        c = nsgt64.forward(np.sin(2 * np.pi * f0 * t))
        band = np.argmax(np.abs(c).sum(axis=1))
        centres = nsgt64.frequencies
        assert abs(centres[band] - f0) <= max(np.diff(centres)[max(band - 1, 0)], 1.0)


def test_bad_arguments(nsgt64):
    with pytest.raises(ValueError, match="44032"):
        nsgt64.forward(np.zeros(1000))
    with pytest.raises(ValueError, match="coefficients"):
        nsgt64.backward(np.zeros((10, 10), complex))
    with pytest.raises(ValueError):
        NSGT(dtype=np.int16)
    with pytest.raises(ValueError):
        NSGT(length=3)
