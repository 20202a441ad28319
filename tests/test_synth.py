"""Tests of the synthetic stem generator (mixin.training.render.synth)."""

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from mixin.errors import MixinError
from mixin.training.render.synth import (MIX_PEAK, STEMS, main, make_example_mix, make_song,
                                         write_stem_folders)

SR = 44100


@pytest.fixture(scope="module")
def song():
    return make_song(12.0, seed=3)


def _frame_rms(x, sr, frame):
    n = int(frame * sr)
    k = len(x) // n
    return np.sqrt(np.mean(x[: k * n].reshape(k, n) ** 2, axis=1))


def _f0_track(x, sr, frame=2048, hop=256, fmin=70.0, fmax=1000.0):
    """Autocorrelation pitch track: (f0 [Hz, nan where unvoiced], frame times)."""
    n_frames = 1 + (len(x) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n_frames)[:, None]
    fr = x[idx] * np.hanning(frame)
    spec = np.fft.rfft(fr, 2 * frame)
    acf = np.fft.irfft(np.abs(spec) ** 2)[:, :frame]
    win_acf = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(frame), 2 * frame)) ** 2)[:frame]
    acf = acf / np.maximum(acf[:, :1], 1e-12) / (win_acf / win_acf[0])[None, :]
    lo, hi = int(sr / fmax), int(sr / fmin)
    seg = acf[:, lo:hi]
    best = seg.max(axis=1)
    # first lag reaching 90 % of the best peak avoids octave errors
    lag = np.argmax(seg >= 0.9 * best[:, None], axis=1)
    # refine to the local maximum, then parabolic interpolation
    for _ in range(8):
        nxt = np.minimum(lag + 1, seg.shape[1] - 1)
        lag = np.where(seg[np.arange(n_frames), nxt] > seg[np.arange(n_frames), lag], nxt, lag)
    l1 = np.clip(lag, 1, seg.shape[1] - 2)
    a, b, c = (seg[np.arange(n_frames), l1 + d] for d in (-1, 0, 1))
    delta = 0.5 * (a - c) / np.where(a - 2 * b + c == 0, -1e-12, a - 2 * b + c)
    f0 = sr / (lo + l1 + np.clip(delta, -1, 1))
    energy = np.sqrt(np.mean(fr ** 2, axis=1))
    voiced = (best > 0.7) & (energy > 0.02 * energy.max())
    return np.where(voiced, f0, np.nan), (np.arange(n_frames) * hop + frame / 2) / sr


def _vibrato(x, sr):
    """(rate Hz, depth in cents RMS) of the pitch modulation inside voiced notes."""
    f0, t = _f0_track(x, sr)
    hop_t = t[1] - t[0]
    cents = 1200 * np.log2(f0 / 440.0)
    # runs of voiced frames with a steady note (jumps > 80 cents end a run)
    runs, start = [], None
    for i in range(len(cents) + 1):
        ok = i < len(cents) and np.isfinite(cents[i]) and (
            start is None or abs(cents[i] - cents[i - 1]) < 80)
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i))
            start = i if i < len(cents) and np.isfinite(cents[i]) else None
    psd_sum, devs = None, []
    nfft = 1024
    for a, b in runs:
        a += int(0.3 / hop_t)  # vibrato fades in after the onset
        if b - a < int(0.35 / hop_t):
            continue
        seg = signal.detrend(cents[a:b])
        devs.append(seg)
        f, p = signal.periodogram(seg, fs=1 / hop_t, nfft=nfft, window="hann")
        psd_sum = p if psd_sum is None else psd_sum + p
    if psd_sum is None:
        return 0.0, 0.0
    band = (f > 1.5) & (f < 15)
    rate = f[band][np.argmax(psd_sum[band])]
    return rate, float(np.sqrt(np.mean(np.concatenate(devs) ** 2)))


def test_shapes_dtype_levels(song):
    n = 12 * SR
    assert set(song) == set(STEMS)
    for name, x in song.items():
        assert x.shape == (n, 2), name
        assert x.dtype == np.float32
        assert np.isfinite(x).all()
        assert np.sqrt(np.mean(x ** 2)) > 1e-3, f"{name} is silent"
    mix = sum(song.values())
    assert np.abs(mix).max() == pytest.approx(MIX_PEAK, rel=1e-4)


def test_deterministic_and_seed_dependent():
    a = make_song(3.0, seed=7)
    b = make_song(3.0, seed=7)
    c = make_song(3.0, seed=8)
    for name in STEMS:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name], c[name]), name


def test_mono_and_panning(song):
    mono = make_song(2.0, seed=1, channels=1)
    assert all(x.shape == (2 * SR, 1) for x in mono.values())
    # drums (hi-hats right) and chords (voices spread) are panned; bass and vocals centred
    for name in ("drums", "other"):
        x = song[name]
        assert np.abs(x[:, 0] - x[:, 1]).max() > 0.05 * np.abs(x).max(), name
    for name in ("bass", "vocals"):
        np.testing.assert_allclose(song[name][:, 0], song[name][:, 1], atol=1e-6)


def test_drums_have_transients_and_kick_pitch_drop(song):
    d = song["drums"].mean(axis=1)
    # high band (snare/hats): sharp onsets, > 15 dB rise from one 5 ms frame to the next
    hi = signal.sosfilt(signal.butter(4, 5000, "highpass", fs=SR, output="sos"), d)
    env = _frame_rms(hi, SR, 0.005)
    rises = np.flatnonzero(env[1:] > 5.6 * (env[:-1] + 1e-9))
    onsets = rises[np.insert(np.diff(rises) > 4, 0, True)]  # one per hit
    assert len(onsets) >= 12 * 80 / 60, len(onsets)  # at least one per beat at the slowest tempo
    # the kick on the first downbeat (t = 0): frequency falls during the first ~100 ms
    lo = signal.sosfiltfilt(signal.butter(4, 300, "lowpass", fs=SR, output="sos"), d[: int(0.3 * SR)])
    inst = np.diff(np.unwrap(np.angle(signal.hilbert(lo)))) * SR / (2 * np.pi)
    early = np.median(inst[int(0.005 * SR): int(0.02 * SR)])
    late = np.median(inst[int(0.12 * SR): int(0.2 * SR)])
    assert early > 1.4 * late, (early, late)
    assert 30 < late < 80


def _peaks(x, sr, t0, dur, n_peaks):
    seg = x[int(t0 * sr): int((t0 + dur) * sr)]
    nfft = 1 << 18
    mag = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), nfft))
    f = np.fft.rfftfreq(nfft, 1 / sr)
    idx, _ = signal.find_peaks(mag, distance=int(10 / (f[1] - f[0])))
    idx = idx[np.argsort(mag[idx])[::-1][:n_peaks]]
    return f[idx], mag[idx], mag


def test_bass_has_harmonic_spectrum(song):
    b = song["bass"][:, 0]
    freqs, mags, spec = _peaks(b, SR, 0.01, 0.2, 6)
    f1 = freqs[freqs < 250].min()
    assert 25 < f1 < 250
    floor = np.median(spec)
    for k in (1, 2, 3):  # partials at integer multiples, well above the floor
        near = np.abs(freqs - k * f1) < 0.02 * k * f1
        assert near.any(), (k, f1, freqs)
        assert mags[near].max() > 100 * floor
    semis = 12 * np.log2(f1 / 440)
    assert abs(semis - round(semis)) < 0.15  # an equal-tempered note


def test_chords_are_tempered_harmonic_tones(song):
    o = song["other"].mean(axis=1)
    freqs, mags, _ = _peaks(o, SR, 0.02, 1.0, 12)
    freqs = freqs[mags > 0.1 * mags.max()]  # weaker ones can be side lobes of the strikes
    assert len(freqs) >= 6
    semis = 12 * np.log2(freqs / 440)
    # harmonics 1-6 of tempered notes lie within 14 cents of tempered pitches
    assert np.all(np.abs(semis - np.round(semis)) < 0.25), np.round(semis, 2)
    # control: noise fails the same check
    rng = np.random.default_rng(0)
    nf, _, _ = _peaks(rng.standard_normal(SR * 2), SR, 0.0, 1.0, 12)
    ns = 12 * np.log2(nf / 440)
    assert not np.all(np.abs(ns - np.round(ns)) < 0.25)


def test_vocals_have_vibrato_formants_and_rests(song):
    v = song["vocals"][:, 0].astype(float)
    rate, depth = _vibrato(v, SR)
    assert 4.5 < rate < 7.5, rate
    assert 10 < depth < 60, depth
    # control: a steady harmonic tone has no vibrato
    t = np.arange(3 * SR) / SR
    steady = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8))
    assert _vibrato(steady, SR)[1] < 3
    # phrases with rests: a good part of the line is silent, most is sung
    env = _frame_rms(v, SR, 0.05)
    silent = np.mean(env < 1e-4 * env.max())
    assert 0.1 < silent < 0.7, silent
    # formants: energy concentrated below 4 kHz but with a broad spread above the fundamental
    f, p = signal.welch(v, SR, nperseg=4096)
    assert p[(f > 200) & (f < 4000)].sum() > 0.9 * p.sum()
    assert p[(f > 1000) & (f < 4000)].sum() > 0.02 * p.sum()


def test_bad_arguments():
    for kwargs in ({"duration": 0}, {"duration": float("nan")}, {"duration": 1, "channels": 3},
                   {"duration": 1, "sr": 100}):
        with pytest.raises(MixinError):
            make_song(**kwargs)
    with pytest.raises(MixinError):
        write_stem_folders("unused", 0, 1.0)


def test_write_stem_folders_layout_and_no_overwrite(tmp_path):
    out = tmp_path / "stems"
    dirs = write_stem_folders(out, 2, 2.0, seed=4)
    assert [d.name for d in dirs] == ["song_000", "song_001"]
    assert sorted(p.name for p in out.iterdir()) == ["song_000", "song_001"]  # no temp left over
    data = {}
    for d in dirs:
        assert sorted(p.name for p in d.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
        for s in STEMS:
            info = sf.info(d / f"{s}.wav")
            assert (info.samplerate, info.channels, info.frames) == (SR, 2, 2 * SR)
            assert info.subtype == "PCM_16"
        data[d.name] = sf.read(d / "vocals.wav")[0]
    assert not np.allclose(data["song_000"], data["song_001"])
    before = (dirs[0] / "drums.wav").read_bytes()
    with pytest.raises(MixinError, match="already exists"):
        write_stem_folders(out, 2, 1.0, seed=5)
    assert (dirs[0] / "drums.wav").read_bytes() == before
    # deterministic: same seed, same files
    again = write_stem_folders(tmp_path / "again", 1, 2.0, seed=4)
    assert (again[0] / "drums.wav").read_bytes() == before
    write_stem_folders(out, 1, 1.0, seed=5, force=True)
    assert sf.info(dirs[0] / "drums.wav").frames == SR


def test_cli_and_example_mix(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([str(out), "--songs", "1", "--duration", "1.5", "--mono", "--seed", "2"]) == 0
    assert sf.info(out / "song_000" / "bass.wav").channels == 1
    assert main([str(out), "--songs", "1", "--duration", "1.5"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert main([]) == 1

    mix_path = tmp_path / "example.wav"
    assert main(["--example-mix", str(mix_path), "--duration", "2", "--seed", "9"]) == 0
    x, sr = sf.read(mix_path)
    assert sr == SR and x.shape == (2 * SR, 2)
    assert np.abs(x).max() == pytest.approx(MIX_PEAK, abs=1e-3)
    expected = sum(make_song(2.0, seed=9).values())
    np.testing.assert_allclose(x, expected * (MIX_PEAK / np.abs(expected).max()), atol=1e-4)
    with pytest.raises(MixinError, match="already exists"):
        make_example_mix(mix_path, duration=1)
    assert main(["--example-mix", str(mix_path), "--duration", "1", "--force"]) == 0
    assert sf.info(mix_path).frames == SR


def test_example_mix_is_unchanged_by_the_shared_music_tables(tmp_path):
    """synth and backing share mixin.training.render.harmony: the synthetic songs stayed bit for bit
    what they were before (hash of the 16-bit samples recorded with the code before the change)."""
    import hashlib

    from mixin.training.render import backing, harmony

    make_example_mix(tmp_path / "mix.wav", duration=6.0, seed=5)
    x, _ = sf.read(tmp_path / "mix.wav", dtype="int16")
    assert hashlib.sha256(x.tobytes()).hexdigest() == \
        "bde5ed117e1ab643b19f8bc8a491b4908d2224cf625c1878bdac81f4df8f4c51"
    # one table: the degrees' notes wrap at the octave; the renderer spells chords from them
    assert harmony.degree_notes("minor", [0, 2, 4, 7, 9]).tolist() == [0, 3, 7, 12, 15]
    assert backing._chord("major", 0, 4, "7")["symbol"] == "G7"
    assert backing._chord("dorian", 2, 0, "triad")["tones"] == [2, 5, 9]  # D F A
    assert backing.MODES is harmony.MODES and backing.PROGRESSIONS is harmony.PROGRESSIONS
