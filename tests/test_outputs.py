"""What the separator outputs, checked against formulas with fixed-gain models (no ../shared).

Each model here is a 1x1 convolution: network s outputs ``g_s * |C|`` with a gain of its own, so
the soft masks are known exactly (``M_s = g_s^2 |C|^2 / (sum_k g_k^2 |C|^2 + 1e-7)``, i.e.
``g_s^2 / sum g^2`` wherever the mixture is not silent) and every source's output is a different
scaled copy of the input. A source written under another source's name, a mask built from |E|
instead of E^2 or a chunk boundary without its cross-fade shows up as a number that is wrong.
"""

import numpy as np
import pytest
import soundfile as sf

from mixin import params
from mixin.chunks import cut, hop_size, overlap_add

N = params.CHUNK_SIZE
#: Gain of each source's network: far enough apart that any two sources' outputs differ.
GAINS = {"harmonic": 0.5, "percussive": 1.0, "vocal": 2.0}


@pytest.fixture(scope="module")
def gain_models(tmp_path_factory):
    """model_*.h5 files of networks that output ``GAINS[s] * |C|`` [shape=(96, 1948, 1)]."""
    import keras

    from mixin.model import input_shape, save_cdae

    d = tmp_path_factory.mktemp("gain-models")
    for s, g in GAINS.items():
        m = keras.Sequential([keras.Input(shape=input_shape()),
                              keras.layers.Conv2D(1, 1, activation="relu")])
        m.set_weights([np.full((1, 1, 1, 1), g, np.float32), np.zeros(1, np.float32)])
        save_cdae(m, d / params.MODEL_FILES[s])
    return d


def _share(s, sources=params.SOURCES):
    """The mask of source s where the mixture is well above the 1e-7 guard: g_s^2 / sum g^2."""
    return GAINS[s] ** 2 / sum(GAINS[k] ** 2 for k in sources)


def _noise(n, channels, seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal((n, channels))).astype(np.float32)


def test_masks_are_the_squared_estimates_over_their_sum(gain_models):
    """Separator.masks = E_s^2 / (sum E^2 + 1e-7) with E_s = g_s |C|, computed here in float64."""
    from mixin.nsgt import get_nsgt
    from mixin.separation.separate import Separator

    sep = Separator(gain_models)
    frames = _noise(N, 2, seed=1).T.copy()
    frames[1, : N // 2] *= 1e-4  # a quiet half: the guard matters there
    masks = sep.masks(frames)
    c2 = np.abs(get_nsgt().forward(frames)).astype(np.float64) ** 2
    den = sum(g * g for g in GAINS.values()) * c2 + params.MASK_EPS
    for s, g in GAINS.items():
        assert masks[s].shape == (2,) + get_nsgt().shape and masks[s].dtype == np.float32
        np.testing.assert_allclose(masks[s], g * g * c2 / den, rtol=2e-5, atol=1e-7)
    # where the mixture is loud the guard is negligible: g_s^2 / sum g^2 (|E| would give g_s / sum g)
    loud = c2[0] > 1e-2
    assert loud.mean() > 0.5
    for s in GAINS:
        np.testing.assert_allclose(masks[s][0][loud], _share(s), rtol=1e-5)


def test_separated_chunks_are_the_masked_mixture(gain_models):
    """process_chunks: output s = NSGT^-1(M_s C) = g_s^2 / sum g^2 times the chunk (away from silence)."""
    from mixin.separation.separate import Separator

    sep = Separator(gain_models)
    frames = _noise(N, 3, seed=2).T.copy()
    out = sep.process_chunks(frames)
    total = sum(out.values())
    np.testing.assert_allclose(total, frames, rtol=0, atol=2e-5)
    for s in GAINS:
        np.testing.assert_allclose(out[s], _share(s) * frames, rtol=0, atol=2e-5)


@pytest.mark.parametrize("sr,channels,instrumental", [(44100, 2, False), (32000, 1, False),
                                                      (44100, 1, True)])
def test_written_files_are_the_separators_sources(gain_models, tmp_path, sr, channels, instrumental):
    """xtract-mixin writes NAME_s.wav = Separator.separate(x)[s] for each source s, which is
    g_s^2 / sum g^2 times the input: no source is written under another's name."""
    from mixin.separation.separate import Separator
    from xtract_mixin import main

    n = int(1.6 * sr)  # two chunks, the second partial
    x = _noise(n, channels, seed=sr + channels)
    sf.write(tmp_path / "song.wav", x, sr, subtype="FLOAT")
    args = [str(tmp_path / "song.wav"), "--outdir", str(tmp_path / "out"),
            "--pretrained-model-dir", str(gain_models), "-q"]
    assert main(args + (["--instrumental"] if instrumental else [])) == 0
    sep = Separator(gain_models, instrumental=instrumental)
    expected = sep.separate(x[:, 0] if channels == 1 else x, sr)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"song_{s}.wav" for s in sep.sources)
    files = {}
    for s in sep.sources:
        y, r = sf.read(tmp_path / "out" / f"song_{s}.wav", dtype="float32", always_2d=True)
        assert r == sr and y.shape == x.shape
        np.testing.assert_allclose(y[:, 0] if channels == 1 else y, expected[s], rtol=0, atol=1e-6)
        files[s] = y
    # the formula, independent of the separator: source s is g_s^2 / sum g^2 of the whole (the
    # input at 44.1 kHz; at other rates, the input resampled there and back)
    total = sum(files.values())
    if sr == params.SAMPLE_RATE:
        np.testing.assert_allclose(total, x, rtol=0, atol=2e-5)
    for s, y in files.items():
        np.testing.assert_allclose(y, _share(s, sep.sources) * total, rtol=0, atol=2e-5)


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_streamed_chunks_cross_fade_without_a_jump(gain_models, overlap):
    """With a chunk-dependent processing (chunk k outputs the constant k) the streamed output is
    overlap_add of the chunks' outputs: k in chunk k's own part, and a smooth sin^2 ramp from k to
    k + 1 where chunks k and k + 1 overlap, never a step."""
    from mixin.separation.separate import Separator

    sep = Separator(gain_models, overlap=overlap, batch_size=2)
    hop = hop_size(overlap)
    assert sep.hop == hop
    n = 4 * hop + 1234  # five chunks, the last partial
    # chunk k starts at k * hop with the value k: each chunk's first sample is its index
    x = (np.arange(n) // hop).astype(np.float32)[:, None]

    def per_chunk(frames, jit=False):
        return {s: np.repeat(frames[:, :1], N, axis=1) for s in sep.sources}

    sep.process_chunks = per_chunk
    y = sep.separate(x)["vocal"][:, 0]
    chunks = cut(x[:, 0], hop)
    expected = overlap_add(np.repeat(chunks[:, :1], N, axis=1), n, hop)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)
    t = N - hop  # samples over which chunk k fades out and chunk k + 1 fades in
    for k in range(len(chunks) - 1):
        a = (k + 1) * hop  # chunk k + 1 starts
        if a + t > n:
            break
        ramp = y[a:a + t]
        assert ramp[0] == pytest.approx(k, abs=1e-3) and ramp[-1] == pytest.approx(k + 1, abs=1e-3)
        rise = np.sin(0.5 * np.pi * (np.arange(t) + 0.5) / t) ** 2
        np.testing.assert_allclose(ramp, k + rise, rtol=0, atol=1e-5)
    # no jump anywhere: a step between chunks would be 1, the steepest point of the ramp is pi / 2t
    assert np.abs(np.diff(y)).max() < 1.01 * np.pi / (2 * t)
