"""The chunking core (mixin.chunks): cutting, weights, overlap-add, and the separator built on them."""

import numpy as np
import pytest

from mixin import params
from mixin.chunks import cut, hop_size, n_chunks, overlap_add, weights
from mixin.errors import MixinError

N = params.CHUNK_SIZE
OVERLAPS = (0.0, 0.25, 0.5)
LENGTHS = (1, N - 1, N, N + 1, 3 * N + 17)


def _signal(n, channels):
    """float32 noise [shape=(channels, n)], or [shape=(n,)] for channels=None."""
    shape = (n,) if channels is None else (channels, n)
    return np.random.default_rng(n).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("channels", [None, 1, 2])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_cut_then_overlap_add_returns_the_input(overlap, n, channels):
    x = _signal(n, channels)
    hop = hop_size(overlap)
    chunks = cut(x, hop)
    lead = () if channels is None else (channels,)
    assert chunks.shape == (n_chunks(n, hop),) + lead + (N,) and chunks.dtype == np.float32
    y = overlap_add(chunks, n, hop)
    assert y.shape == x.shape and y.dtype == np.float32
    if overlap == 0:
        np.testing.assert_array_equal(y, x)
    else:  # x * rise + x * fall: float32 rounding of the tapers, nothing more
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=0)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_chunks_hold_every_sample_and_the_last_partial_chunk(overlap, n):
    x = np.arange(1, n + 1, dtype=np.float64)  # no zero sample: zeros in a chunk are padding
    hop = hop_size(overlap)
    chunks = cut(x, hop)
    count = len(chunks)
    assert count == max(1, -(-n // hop))
    assert (count - 1) * hop < n <= count * hop  # the last chunk starts inside the signal
    for k, c in enumerate(chunks):
        seg = x[k * hop:k * hop + N]
        np.testing.assert_array_equal(c[:len(seg)], seg)
        assert not c[len(seg):].any()  # zero-padded past the end
    assert chunks[-1][n - 1 - (count - 1) * hop] == n  # the last sample is in the last chunk


def test_channels_are_cut_independently():
    x = _signal(3 * N + 17, 3)
    hop = hop_size(0.25)
    chunks = cut(x, hop)
    for c in range(3):
        np.testing.assert_array_equal(chunks[:, c], cut(x[c], hop))


@pytest.mark.parametrize("overlap", OVERLAPS)
def test_weights_sum_to_one_where_chunks_overlap(overlap):
    hop = hop_size(overlap)
    t = N - hop  # samples shared by consecutive chunks
    first, later = weights(hop)
    assert first.shape == later.shape == (N,) and first.dtype == later.dtype == np.float32
    for w in (first, later):
        assert w.min() >= 0 and w.max() <= 1
        assert np.all(w[t:hop] == 1)  # no taper between the overlaps
        assert np.all(np.diff(w[hop:]) <= 0) and (t == 0 or w[-1] < 1e-3)  # fades out at the end
    assert np.all(first[:t] == 1)  # the first chunk does not fade in
    assert np.all(np.diff(later[:t]) >= 0) and (t == 0 or later[0] < 1e-3)  # later ones fade in
    for prev in (first, later):  # the end of any chunk with the start of the next
        np.testing.assert_allclose(prev[hop:] + later[:t], 1, rtol=0, atol=1.5e-7)
    # as placed by overlap_add: ones everywhere in the signal
    n = 5 * hop + 17
    ones = overlap_add(np.ones((n_chunks(n, hop), N), np.float32), n, hop)
    np.testing.assert_allclose(ones, 1, rtol=0, atol=1.5e-7)


@pytest.mark.parametrize("overlap", [0.1, 0.25, 0.5])
def test_tapers_are_sin2_and_cos2(overlap):
    """The cross-fade is sin^2 rising and cos^2 falling over the whole overlap (at sample centres),
    not a hard switch or a shorter fade."""
    hop = hop_size(overlap)
    t = N - hop
    phase = 0.5 * np.pi * (np.arange(t) + 0.5) / t
    first, later = weights(hop)
    np.testing.assert_allclose(later[:t], np.sin(phase) ** 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(first[hop:], np.cos(phase) ** 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(later[hop:], np.cos(phase) ** 2, rtol=0, atol=1e-6)


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_overlap_add_of_different_chunks_has_no_jump(overlap):
    """Chunks of different content (chunk k is the constant k) join with a sin^2 ramp over the
    overlap: the output's steepest step is pi / (2 * overlap) per sample, not the step of one."""
    hop = hop_size(overlap)
    t = N - hop
    n = 3 * hop + t
    chunks = np.repeat(np.arange(n_chunks(n, hop), dtype=np.float32)[:, None], N, axis=1)
    y = overlap_add(chunks, n, hop)
    rise = np.sin(0.5 * np.pi * (np.arange(t) + 0.5) / t) ** 2
    for k in range(3):
        a = (k + 1) * hop
        np.testing.assert_allclose(y[a:a + t], k + rise, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(y[k * hop + (t if k else 0):a], k)
    assert np.abs(np.diff(y)).max() < 1.01 * np.pi / (2 * t)


def test_hop_size_and_count():
    assert hop_size(0) == N and hop_size(0.5) == N // 2 and hop_size(0.25) == N - round(0.25 * N)
    assert n_chunks(0, N) == 1 and n_chunks(1, N) == 1 and n_chunks(N, N) == 1
    assert n_chunks(N + 1, N) == 2 and n_chunks(3 * N + 17, N) == 4
    for bad in (-0.1, 0.6, float("nan"), "0.25"):
        with pytest.raises(MixinError, match="overlap"):
            hop_size(bad)


def test_bad_arguments():
    x = _signal(100, 2)
    for hop in (0, N // 2 - 1, N + 1, 1000.5):
        with pytest.raises(ValueError, match="hop"):
            cut(x, hop)
        with pytest.raises(ValueError, match="hop"):
            weights(hop)
    with pytest.raises(ValueError, match="shape"):
        cut(np.zeros((2, 2, 10)))
    with pytest.raises(ValueError, match="chunks"):
        overlap_add(np.zeros((2, 2, N)), 100)  # 100 samples make one chunk, not two


@pytest.mark.parametrize("overlap", [0.0, 0.25])
def test_separator_is_the_core_s_overlap_add(tiny_models, overlap):
    """Streaming (one batch here) gives exactly overlap_add of the separated chunks of cut."""
    from mixin.separation.separate import Separator

    sep = Separator(tiny_models, overlap=overlap, batch_size=64)
    x = _signal(3 * N + 17, 2) * np.float32(0.3)
    out = sep.separate(x.T)
    chunks = cut(x, sep.hop)
    res = sep.process_chunks(chunks.reshape(-1, N))
    for s in params.SOURCES:
        expected = overlap_add(res[s].reshape(chunks.shape), x.shape[1], sep.hop)
        np.testing.assert_array_equal(out[s], expected.T)
