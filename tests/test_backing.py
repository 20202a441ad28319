"""FluidSynth rendering (fluid), effects (fx) and generated backing music (backing) of
mixin.training.render."""

import json

import numpy as np
import pytest

from mixin.training.render import fx
from mixin.errors import MixinError

SR = 44100
FLUID_R3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def _need(*soundfonts):
    """Skip (with the reason) unless FluidSynth, pyfluidsynth and the SoundFonts are usable."""
    from mixin.training.render.fluid import check_fluidsynth, check_soundfont

    try:
        check_fluidsynth()
        for f in soundfonts:
            check_soundfont(f)
    except MixinError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def fluid_r3():
    _need(FLUID_R3)
    return FLUID_R3


# ---------------------------------------------------------------------------------------------
# mixin.training.render.fluid


def _onset(x, rel=1e-3):
    env = np.abs(x).max(axis=0)
    return int(np.argmax(env > rel * env.max()))


def test_render_notes_shape_onset_and_determinism(fluid_r3):
    from mixin.training.render.fluid import render_notes

    notes = [(0.25, 0.6, 60, 100), (0.25, 0.6, 64, 90)]
    n = 44100 + 123
    a = render_notes(fluid_r3, notes, n, program=0)
    assert a.shape == (2, n) and a.dtype == np.float32 and np.isfinite(a).all()
    assert abs(_onset(a) - 0.25 * SR) <= 0.004 * SR
    assert np.abs(a[:, : int(0.24 * SR)]).max() == 0.0
    # other renders in between (more voices, another program, drums) do not change the result
    render_notes(fluid_r3, [(0.0, 0.5, p, 127) for p in range(40, 90)], 30000, program=48)
    render_notes(fluid_r3, [(0.1, 0.1, 36, 100)], 20000, drums=True)
    b = render_notes(fluid_r3, notes, n, program=0)
    assert np.array_equal(a, b)


def test_render_notes_velocity_and_release(fluid_r3):
    from mixin.training.render.fluid import render_notes

    def rms(v):
        x = render_notes(fluid_r3, [(0.05, 0.5, 57, v)], SR, program=0)
        return float(np.sqrt(np.mean(x[:, : SR // 2] ** 2)))

    assert rms(120) > 2.0 * rms(40) > 0
    # a note ending at the window's end is cut there; nothing plays after its release
    x = render_notes(fluid_r3, [(0.0, 0.2, 60, 100)], 3 * SR, program=33)
    assert np.abs(x[:, -SR:]).max() < 1e-4


def test_render_notes_drums_and_edges(fluid_r3):
    from mixin.training.render.fluid import render_notes

    d = render_notes(fluid_r3, [(0.1, 0.1, 36, 110), (0.5, 0.5, 38, 100)], SR, drums=True)
    assert abs(_onset(d) - 0.1 * SR) <= 0.004 * SR
    assert np.abs(d[:, int(0.52 * SR):int(0.6 * SR)]).max() > 1e-3  # the snare, one-shot
    assert np.array_equal(render_notes(fluid_r3, [], 1000), np.zeros((2, 1000), np.float32))
    assert render_notes(fluid_r3, [(5.0, 6.0, 60, 100)], 1000).shape == (2, 1000)  # after the window
    with pytest.raises(MixinError):
        render_notes(fluid_r3, [(0.0, 1.0, 60)], 1000)


def test_missing_soundfont_one_line(tmp_path):
    from mixin.training.render.fluid import check_soundfont, render_notes

    missing = tmp_path / "FluidR3_GM.sf2"
    with pytest.raises(MixinError) as e:
        render_notes(str(missing), [(0, 1, 60, 100)], 100)
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "fluid-soundfont-gm" in msg
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont at all")
    with pytest.raises(MixinError, match="not a SoundFont"):
        check_soundfont(str(bad))


# ---------------------------------------------------------------------------------------------
# mixin.training.render.fx


def _test_signal(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5)) + 0.02 * rng.standard_normal(t.size)
    return np.stack([x, 0.8 * x]).astype(np.float32)


def _random_effects():
    yield "eq", lambda x, rng: fx.eq(x, SR, rng)[0]
    yield "reverb", lambda x, rng: fx.reverb(x, SR, rng)[0]
    yield "compress", lambda x, rng: fx.compress(x, SR, -30.0, 4.0, 5.0, 80.0, makeup_db=3.0)
    for kind in ("tanh", "hard", "asym"):
        yield f"distort_{kind}", lambda x, rng, k=kind: fx.distort(x, 20.0, k)
    yield "delay", lambda x, rng: fx.delay(x, SR, 0.21, 0.5, 0.3, ping_pong=True)
    yield "normalise", lambda x, rng: fx.normalise(x, SR, -18.0)
    for role in fx.ROLES:
        yield f"chain_{role}", lambda x, rng, r=role: fx.random_chain(x, SR, rng, r)[0]


@pytest.mark.parametrize("name,effect", list(_random_effects()), ids=[n for n, _ in _random_effects()])
def test_effects_keep_shape_finite_deterministic(name, effect):
    x = _test_signal()
    x[:, 1000] = np.nan  # bad input samples never turn into NaN output
    a = effect(x, np.random.default_rng(7))
    b = effect(x, np.random.default_rng(7))
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    z = effect(np.zeros((2, 5000), np.float32), np.random.default_rng(7))
    assert z.shape == (2, 5000) and np.isfinite(z).all()


def test_random_chain_info_is_json_and_varies():
    x = _test_signal(1.0)
    infos = [fx.random_chain(x, SR, np.random.default_rng(s), "guitar_drive")[1] for s in range(3)]
    assert all("distortion" in i for i in infos)
    json.dumps(infos)
    assert infos[0] != infos[1]
    with pytest.raises(MixinError):
        fx.random_chain(x, SR, np.random.default_rng(0), "kazoo")


def test_active_rms_and_normalise():
    x = _test_signal()
    assert fx.active_rms_db(np.zeros((2, 1000)), SR) == -np.inf
    padded = np.concatenate([np.zeros((2, SR), np.float32), x, np.zeros((2, 3 * SR), np.float32)], axis=1)
    assert abs(fx.active_rms_db(padded, SR) - fx.active_rms_db(x, SR)) < 0.5  # silence is left out
    y = fx.normalise(padded, SR, -23.0)
    assert abs(fx.active_rms_db(y, SR) - (-23.0)) < 1e-3
    assert np.array_equal(fx.normalise(np.zeros((2, 100)), SR), np.zeros((2, 100)))
    sine = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)[None, :]
    assert abs(fx.active_rms_db(sine, SR) - (-3.01)) < 0.05


def test_compress_reduces_dynamics():
    t = np.arange(3 * SR) / SR
    level = np.where((t > 1.0) & (t < 2.0), 0.8, 0.05)
    x = (level * np.sin(2 * np.pi * 200 * t))[None, :].astype(np.float32)
    y = fx.compress(x, SR, threshold_db=-30.0, ratio=8.0, attack_ms=2.0, release_ms=50.0)

    def diff_db(v):
        loud = np.sqrt(np.mean(v[0, int(1.2 * SR):int(1.9 * SR)] ** 2))
        quiet = np.sqrt(np.mean(v[0, int(2.5 * SR):] ** 2))
        return 20 * np.log10(loud / quiet)

    assert diff_db(x) - diff_db(y) > 15.0
    # the crest factor of a loud burst in a quiet passage goes down (with a look-ahead, the onset too)
    yl = fx.compress(x, SR, threshold_db=-30.0, ratio=8.0, attack_ms=1.0, release_ms=50.0, lookahead_ms=3.0)
    assert fx.crest_factor_db(yl) < fx.crest_factor_db(x) - 1.5
    assert np.abs(yl).max() < 0.5 * np.abs(x).max()


def test_reverb_adds_a_decaying_tail():
    x = np.zeros((2, 2 * SR), np.float32)
    x[:, 1000:1100] = 0.5
    y, info = fx.reverb(x, SR, np.random.default_rng(1), rt60=(0.8, 0.8), wet=(0.3, 0.3))
    assert info["rt60_s"] == pytest.approx(0.8) and info["wet"] == pytest.approx(0.3)
    tail = y[:, int(0.2 * SR):int(0.3 * SR)]
    late = y[:, int(1.2 * SR):int(1.3 * SR)]
    assert np.abs(tail).max() > 10 * np.abs(late).max() > 0
    assert not np.allclose(y[0, 5000:], y[1, 5000:])  # different left and right rooms


def test_pan_constant_power():
    m = np.ones(100, np.float32)
    for p in np.linspace(-1, 1, 9):
        s = fx.pan(m, p)
        assert s.shape == (2, 100) and s.dtype == np.float32
        assert np.allclose(s[0] ** 2 + s[1] ** 2, 1.0, atol=1e-6)
    assert np.allclose(fx.pan(m, -1.0)[1], 0.0, atol=1e-7) and np.allclose(fx.pan(m, 1.0)[0], 0.0, atol=1e-7)
    st = np.stack([m, m])
    assert np.allclose(fx.pan(st, 0.0), st)  # a stereo part: balance, unchanged at the centre


def _db_at(sos, f):
    """Gain in dB of second-order sections ``sos`` at frequency ``f`` (Hz)."""
    from scipy import signal

    return float(20 * np.log10(np.abs(signal.sosfreqz(sos, worN=[f], fs=SR)[1][0])))


def test_eq_filters_have_their_gain_at_their_frequency():
    """The RBJ designs: a peak has its gain at its frequency and 0 dB at 0 Hz and Nyquist; a shelf
    its gain at its end and half of it (in dB) at its frequency; a 12 dB/oct pass -3 dB there."""
    for g in (-9.0, -3.0, 4.5, 9.0):
        for f0 in (150.0, 1000.0, 6000.0):
            peak = fx._biquad("peak", f0, SR, g, 1.3)
            assert _db_at(peak, f0) == pytest.approx(g, abs=1e-6)
            assert abs(_db_at(peak, 1e-3)) < 1e-3 and abs(_db_at(peak, SR / 2)) < 1e-3
            assert abs(_db_at(peak, f0 * 8 if f0 < 2000 else f0 / 8)) < abs(g) / 4  # a peak, not a shelf
        low, high = fx._biquad("lowshelf", 120.0, SR, g), fx._biquad("highshelf", 5000.0, SR, g)
        assert _db_at(low, 1e-3) == pytest.approx(g, abs=1e-3) and abs(_db_at(low, SR / 2)) < 1e-3
        assert _db_at(high, SR / 2) == pytest.approx(g, abs=1e-3) and abs(_db_at(high, 1e-3)) < 1e-3
        assert _db_at(low, 120.0) == pytest.approx(g / 2, abs=1e-6)
        assert _db_at(high, 5000.0) == pytest.approx(g / 2, abs=1e-6)
    assert _db_at(fx._biquad("lowpass", 5000.0, SR), 5000.0) == pytest.approx(-3.0, abs=0.02)
    assert _db_at(fx._biquad("highpass", 300.0, SR), 300.0) == pytest.approx(-3.0, abs=0.02)
    assert _db_at(fx._biquad("lowpass", 5000.0, SR), 15000.0) < -18  # 12 dB/octave


@pytest.mark.parametrize("seed", range(4))
def test_eq_applies_the_bands_it_reports(seed):
    """fx.eq's response (measured on an impulse) is the cascade of the bands in its info: at 0 Hz
    the low shelf's gain, at Nyquist the high shelf's, and at each peak the product of all."""
    x = np.zeros(SR, np.float32)
    x[0] = 1.0
    h, info = fx.eq(x, SR, np.random.default_rng(seed), max_db=9.0)
    response = np.fft.rfft(h.astype(np.float64))  # bins of 1 Hz
    db = 20 * np.log10(np.abs(response))
    bands = {b["kind"]: b for b in info["bands"]}
    assert [b["kind"] for b in info["bands"]][:2] == ["lowshelf", "highshelf"]
    assert 3 <= len(info["bands"]) <= 4 and all(abs(b["gain_db"]) <= 9.0 for b in info["bands"])
    assert db[0] == pytest.approx(bands["lowshelf"]["gain_db"], abs=0.02)
    assert db[-1] == pytest.approx(bands["highshelf"]["gain_db"], abs=0.02)
    for b in info["bands"]:
        f = round(b["freq_hz"])
        want = sum(_db_at(fx._biquad(c["kind"], c["freq_hz"], SR, c["gain_db"], c["q"]), f)
                   for c in info["bands"])
        assert db[f] == pytest.approx(want, abs=0.02)
    flat, _ = fx.eq(x, SR, np.random.default_rng(seed), max_db=0.0)  # no gain: no change
    np.testing.assert_allclose(flat, x, rtol=0, atol=1e-6)


def _peaks(v, n):
    """Positions of the ``n`` largest local maxima of |v|, in time order."""
    a = np.abs(v)
    idx = [i for i in range(1, len(a) - 1) if a[i] >= a[i - 1] and a[i] > a[i + 1] and a[i] > 1e-3]
    return sorted(sorted(idx, key=lambda i: -a[i])[:n])


def test_delay_echoes_at_the_delay_time_with_the_feedback_gain():
    d, n0 = int(round(0.1 * SR)), 500
    x = np.zeros(SR, np.float32)
    x[n0] = 1.0
    y = fx.delay(x, SR, 0.1, 0.5, 1.0)  # wet only: the echoes
    assert np.abs(y[:n0 + d - 5]).max() < 1e-4  # nothing before the first echo
    p = _peaks(y, 4)
    assert 0 <= p[0] - (n0 + d) <= 2  # the first echo after the delay time (the low-pass: a sample or two)
    assert np.diff(p).tolist() == [d, d, d]
    np.testing.assert_allclose(y[p[1:]] / y[p[:-1]], 0.5, rtol=1e-3)  # each echo: feedback x the last
    half = fx.delay(x, SR, 0.1, 0.5, 0.5)  # dry and wet in equal parts
    assert half[n0] == pytest.approx(0.5, abs=1e-3)
    np.testing.assert_allclose(half[n0 + d - 5:], 0.5 * y[n0 + d - 5:], rtol=0, atol=1e-6)


def test_ping_pong_delay_alternates_channels():
    d, n0 = int(round(0.05 * SR)), 300
    x = np.zeros((2, SR // 2), np.float32)
    x[:, n0] = 1.0
    y = fx.delay(x, SR, 0.05, 0.6, 1.0, ping_pong=True)
    left, right = _peaks(y[0], 3), _peaks(y[1], 3)
    assert 0 <= left[0] - (n0 + d) <= 2 and np.diff(left).tolist() == [2 * d, 2 * d]
    assert right[0] - left[0] == d and np.diff(right).tolist() == [2 * d, 2 * d]
    np.testing.assert_allclose(y[1, right[0]] / y[0, left[0]], 0.6, rtol=1e-3)
    np.testing.assert_allclose(y[0, left[1]] / y[0, left[0]], 0.36, rtol=1e-3)


def test_distort_levels_and_kinds():
    x = _test_signal()
    for kind in ("tanh", "hard", "asym"):
        y = fx.distort(x, 30.0, kind)
        assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-3)
        assert not np.allclose(y, x, atol=1e-3)
    with pytest.raises(MixinError):
        fx.distort(x, 10.0, "fuzz")


# ---------------------------------------------------------------------------------------------
# mixin.training.render.backing


@pytest.fixture(scope="module")
def backing():
    from mixin.training.render import backing as bk

    _need(*bk.TRAIN_SOUNDFONTS)
    return bk


@pytest.fixture(scope="module")
def songs(backing):
    """Three short training songs (two with the same seed) and one held-out song. Only FluidR3_GM: loading
    MuseScore_General.sf3 alone takes 5-8 s of CPU."""
    n = 8 * SR
    fonts = (FLUID_R3,)
    out = {
        "a": backing.render_backing(97.0, 3, n, np.random.default_rng(11), soundfonts=fonts),
        "a2": backing.render_backing(97.0, 3, n, np.random.default_rng(11), soundfonts=fonts),
        "b": backing.render_backing(128.0, 4, n, np.random.default_rng(12), soundfonts=fonts),
    }
    try:
        _need(*backing.HELDOUT_SOUNDFONTS)
        out["h"] = backing.render_backing(110.0, 4, n, np.random.default_rng(13), heldout=True)
    except pytest.skip.Exception:
        pass
    return out


def test_backing_shapes_and_determinism(songs):
    for name, (stems, info) in songs.items():
        assert set(stems) == {"bass", "other"}
        for s in stems.values():
            assert s.shape == (2, 8 * SR) and s.dtype == np.float32 and np.isfinite(s).all()
            assert np.abs(s).max() < 4.0
        assert np.abs(stems["other"]).max() > 1e-3 or np.abs(stems["bass"]).max() > 1e-3
        json.dumps(info)
        assert info["key"].split()[1] == info["mode"] and len(info["progression"]) >= 4
        for p in info["parts"]:
            for k in ("role", "family", "program", "soundfont", "pattern", "gain_db", "pan", "fx"):
                assert k in p
    (sa, ia), (sa2, ia2), (sb, ib) = songs["a"], songs["a2"], songs["b"]
    assert ia == ia2 and all(np.array_equal(sa[k], sa2[k]) for k in sa)
    assert ia != ib and not np.array_equal(sa["other"], sb["other"])


def test_backing_train_and_heldout_are_disjoint(backing, songs):
    train = {p for f in backing.INSTRUMENTS.values() for p in f["train"]}
    held = {p for f in backing.INSTRUMENTS.values() for p in f["heldout"]}
    assert not train & held
    assert all(f["heldout"] and f["train"] for f in backing.INSTRUMENTS.values())
    assert not set(backing.TRAIN_SOUNDFONTS) & set(backing.HELDOUT_SOUNDFONTS)
    train_names = {f.rsplit("/", 1)[-1] for f in backing.TRAIN_SOUNDFONTS}
    held_names = {f.rsplit("/", 1)[-1] for f in backing.HELDOUT_SOUNDFONTS}
    for name in ("a", "b"):
        for p in songs[name][1]["parts"]:
            assert p["soundfont"] in train_names
            assert p["program"] in backing.INSTRUMENTS[p["family"]]["train"]
    with pytest.raises(MixinError, match="held-out songs must use"):
        backing.render_backing(120.0, 4, SR, np.random.default_rng(0), heldout=True, soundfonts=(FLUID_R3,))
    with pytest.raises(MixinError, match="training songs must use"):
        backing.render_backing(120.0, 4, SR, np.random.default_rng(0), soundfonts=backing.HELDOUT_SOUNDFONTS)
    if "h" not in songs:
        pytest.skip("held-out SoundFont not installed")
    for p in songs["h"][1]["parts"]:
        assert p["soundfont"] in held_names
        assert p["program"] in backing.INSTRUMENTS[p["family"]]["heldout"]


def test_backing_many_seeds_not_silent(backing):
    """Across seeds: the bass is there most of the time, "other" always, and parts vary."""
    families = set()
    for seed in range(6):
        stems, info = backing.render_backing(140.0, 4, 3 * SR, np.random.default_rng(100 + seed),
                                             soundfonts=(FLUID_R3,))
        assert fx.active_rms_db(stems["other"], SR) > -45.0
        assert (fx.active_rms_db(stems["bass"], SR) > -45.0) == info["has_bass"]
        families |= {p["family"] for p in info["parts"]}
    assert len(families) >= 4


def test_backing_is_bar_aligned(songs):
    """The onsets (spectral flux) fold onto the beat grid of bars that start at sample 0: the strongest
    phase of the beat is the beat itself (a shifted or wrong-tempo grid would smear the fold)."""
    from scipy import signal

    for name, (stems, info) in songs.items():
        x = (stems["bass"] + stems["other"]).mean(axis=0)
        hop = 256
        _, _, z = signal.stft(x, SR, nperseg=1024, noverlap=1024 - hop, boundary=None)
        edges = np.unique(np.geomspace(2, z.shape[0] - 1, 25).astype(int))  # ~24 log-spaced bands
        bands = np.add.reduceat(np.abs(z) ** 2, edges, axis=0)
        flux = np.maximum(0.0, np.diff(np.log10(bands + 1e-9), axis=1)).sum(axis=0)
        times = (np.arange(flux.size) + 1) * hop / SR + 512 / SR - hop / SR / 2
        beat = 60.0 / info["tempo_bpm"]
        bins = np.minimum(((times % beat) / beat * 24).astype(int), 23)
        fold = np.bincount(bins, weights=flux, minlength=24) / np.maximum(np.bincount(bins, minlength=24), 1)
        near = max(fold[0], fold[1], fold[-1])
        assert near >= 1.5 * np.median(fold) and near >= 0.9 * fold.max(), (name, fold.round(1))
