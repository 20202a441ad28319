"""The separator: faithfulness to the original, masks, chunking, lengths, channels and rates."""

import numpy as np
import pytest

from conftest import shared_path
from mixin import params
from mixin.errors import MixinError
from mixin.separation.separate import Separator, hop_size, n_chunks, xtract_mixin

N = params.CHUNK_SIZE


def snr_db(ref, est):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - est).astype(np.float64) ** 2))


@pytest.fixture(scope="module")
def ident(identity_models):
    return {ov: Separator(identity_models, overlap=ov) for ov in (0.0, 0.25, 0.5)}


@pytest.mark.parametrize("mode,kwargs", [("default", {}), ("single-model", {"single_model": True}),
                                         ("instrumental", {"instrumental": True})])
def test_matches_original_outputs(original_models, mode, kwargs):
    """--no-overlap reproduces the original MiXiN to float32 precision (but the original's silent tail)."""
    import soundfile as sf

    x, sr = sf.read(shared_path("reference", "sodium_5s.wav"), dtype="float32")
    mono = x.mean(axis=1, dtype=np.float32)
    out = xtract_mixin(mono, pretrained_model_dir=original_models, overlap=0.0, **kwargs)
    sources = params.SOURCES[:2] if kwargs.get("instrumental") else params.SOURCES
    assert (out[2] is None) == bool(kwargs.get("instrumental"))
    full = (len(mono) // N) * N  # the original never processed the final partial chunk
    for s, y in zip(sources, out):
        ref, _ = sf.read(shared_path("reference", mode, f"sodium_5s_{s}.wav"), dtype="float32")
        assert y.shape == mono.shape
        assert snr_db(ref[:full], y[:full]) > 80, s
        assert np.abs(y[full:]).max() > 0  # our tail is processed, not silent


def test_masks_in_unit_interval_and_sum_to_one(random_models):
    sep = Separator(random_models)
    rng = np.random.default_rng(0)
    frames = (0.3 * rng.standard_normal((2, N))).astype(np.float32)
    m = sep.masks(frames)
    total = sum(m.values())
    for v in m.values():
        assert v.shape == (2, 96, 1948) and v.min() >= 0 and v.max() <= 1
    assert total.max() <= 1 + 1e-6
    big = total > 0  # bins where some network is active
    assert np.median(total[big]) > 0.999


def test_default_outputs_add_up_to_the_input(original_models):
    """The masks sum to one (up to the 1e-7 guard): the three outputs add back up to the song."""
    import soundfile as sf

    x, sr = sf.read(shared_path("reference", "sodium_5s.wav"), dtype="float32")
    out = Separator(original_models).separate(x[: 2 * N + 5000], sr)
    assert snr_db(x[: 2 * N + 5000], sum(out.values())) > 40


@pytest.mark.parametrize("n", [1, 100, N // 2, N - 1, N, N + 1, 2 * N, 3 * N + 17])
def test_every_sample_processed_for_any_length(ident, n):
    """Identity networks make every mask 1/3: each output is a third of the input, everywhere."""
    rng = np.random.default_rng(n)
    x = (0.5 * rng.standard_normal(n)).astype(np.float32)
    for ov, sep in ident.items():
        out = sep.separate(x)
        for s in params.SOURCES:
            assert out[s].shape == x.shape and out[s].dtype == np.float32
            assert np.abs(out[s] - x / 3).max() < 1e-4, (ov, s)


def test_overlap_tapers_sum_to_one_across_boundaries(ident):
    t = np.arange(4 * N) / params.SAMPLE_RATE
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for sep in ident.values():
        y = sep.separate(x)["harmonic"]
        assert snr_db(x / 3, y) > 60


def test_streaming_block_size_does_not_matter(random_models):
    sep = Separator(random_models, overlap=0.25)
    rng = np.random.default_rng(2)
    x = (0.3 * rng.standard_normal((int(3.5 * N), 1))).astype(np.float32)

    def run(step):
        blocks = [x[i:i + step] for i in range(0, len(x), step)]
        parts = list(sep.stream(blocks, 1))
        return np.concatenate([p["vocal"] for p in parts])

    a, b = run(len(x)), run(1234)
    assert a.shape == b.shape == x.shape
    assert np.allclose(a, b, atol=1e-6)


def test_channels_are_separated_independently(tiny_models):
    sep = Separator(tiny_models)
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((N + 500, 3))).astype(np.float32)
    out = sep.separate(x)
    for c in range(3):
        single = sep.separate(x[:, c])
        for s in params.SOURCES:
            assert np.allclose(out[s][:, c], single[s], atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 48000, 96000])
def test_any_sample_rate_in_same_rate_out(ident, sr):
    n = int(0.8 * sr)
    t = np.arange(n) / sr
    x = np.stack([0.4 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)], 1)
    out = ident[0.25].separate(x.astype(np.float32), sr)
    y = out["percussive"]
    assert y.shape == x.shape
    core = slice(n // 10, -n // 10)  # away from the resampler's edges
    assert snr_db(x[core] / 3, y[core]) > 40


def test_one_sample_at_high_rate(ident):
    out = ident[0.25].separate(np.array([0.5], np.float32), 96000)
    assert all(y.shape == (1,) for y in out.values())


def test_silence_gives_silence_without_nan(tiny_models):
    out = Separator(tiny_models).separate(np.zeros((N + 3, 2), np.float32))
    for y in out.values():
        assert np.isfinite(y).all() and np.abs(y).max() == 0


def test_clipping_input_stays_finite(random_models):
    x = np.sign(np.sin(np.arange(N) / 7.0)).astype(np.float32)  # full-scale square wave
    out = Separator(random_models).separate(x)
    assert all(np.isfinite(y).all() for y in out.values())


def test_bad_arguments(tiny_models):
    with pytest.raises(MixinError, match="overlap"):
        hop_size(0.7)
    with pytest.raises(MixinError, match="overlap"):
        Separator(tiny_models, overlap=-0.1)
    with pytest.raises(MixinError, match="batch_size"):
        Separator(tiny_models, batch_size=0)
    sep = Separator(tiny_models)
    with pytest.raises(MixinError, match="NaN|nan|Inf|inf|finite"):
        sep.separate(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(MixinError):
        sep.separate(np.zeros(0))
    with pytest.raises(MixinError, match="sample rate"):
        sep.separate(np.zeros(10), sr=-5)


def test_chunk_count():
    assert n_chunks(1, N) == 1 and n_chunks(N, N) == 1 and n_chunks(N + 1, N) == 2
    h = hop_size(0.25)
    assert h == N - round(0.25 * N) and n_chunks(10 * h, h) == 10


def test_default_model_dir_is_the_checkout_s(monkeypatch, tmp_path):
    """In a checkout: pretrained-models/ beside the package; installed: mixin/pretrained/."""
    from conftest import ROOT

    from mixin import modelsets
    from mixin.separation import separate

    assert separate.default_model_dir() == str(ROOT / "pretrained-models")
    pkg = tmp_path / "site-packages" / "mixin"
    (pkg / "pretrained").mkdir(parents=True)
    (pkg / "pretrained" / "model_harmonic.h5").write_bytes(b"")
    monkeypatch.setattr(modelsets, "_PACKAGE_DIR", str(pkg))
    assert separate.default_model_dir() == str(pkg / "pretrained")


def test_hpss_anchor_from_model_json_moves_the_split_towards_hpss(tiny_models, tmp_path):
    """A set whose model.json anchors its masks to HPSS: the vocal mask and the total stay the
    network's, the harmonic/percussive split is the published one moved towards HPSS's; the
    argument overrides the file, and 0 is the published separator exactly."""
    import json
    import shutil

    from mixin.hpss import hpss
    from mixin.model import MODEL_JSON, hpss_settings, model_spec

    d = tmp_path / "anchored"
    shutil.copytree(tiny_models, d)
    (d / MODEL_JSON).write_text(json.dumps({**model_spec("mixin"), "hpss": hpss_settings(),
                                            "hpss_anchor": 0.5}))
    rng = np.random.default_rng(3)
    frames = (0.3 * rng.standard_normal((2, N))).astype(np.float32)
    plain, anch = Separator(tiny_models), Separator(d)
    assert anch.hpss_anchor == 0.5 and plain.hpss_anchor == 0.0
    m0, m1 = plain.masks(frames), anch.masks(frames)
    assert np.array_equal(m0["vocal"], m1["vocal"])
    np.testing.assert_allclose(m0["harmonic"] + m0["percussive"], m1["harmonic"] + m1["percussive"], atol=1e-4)
    h, p = hpss(np.abs(plain.nsgt.forward(frames)))
    w_h = h ** 2 / (h ** 2 + p ** 2 + np.float32(1e-7))
    want = 0.5 * m0["harmonic"] + 0.5 * (m0["harmonic"] + m0["percussive"]) * w_h
    np.testing.assert_allclose(m1["harmonic"], want, atol=1e-4)  # 1e-4: the 1e-7 guard on quiet bins
    x = (0.1 * rng.standard_normal((N + 999, 2))).astype(np.float32)
    a, b = Separator(d, hpss_anchor=0.0).separate(x), plain.separate(x)
    for s in params.SOURCES:
        assert np.array_equal(a[s], b[s]), s
    with pytest.raises(MixinError, match="hpss_anchor must be a number from 0 to 1, got -0.1"):
        Separator(tiny_models, hpss_anchor=-0.1)
