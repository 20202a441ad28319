"""Synthetic multitrack stems: song folders in the MUSDB18-HQ layout, for tests, CI and users
without stems of their own (no SoundFonts or samples needed).

Each song is ``song_NNN/{drums,bass,other,vocals}.wav`` (44.1 kHz, 16-bit PCM, stereo with simple
panning by default); tempo, key, mode, progression, patterns, melody, vowels and vibrato come from
the seed. Drums: synthesized kick, snare and hi-hats on a beat grid; bass: chord roots with
harmonics in a per-song rhythm; other: the chords as three harmonic voices plus an arpeggio;
vocals: Rosenberg glottal pulses through formant resonators interpolated between vowels, with
portamento and vibrato, sung in phrases. Vectorised numpy/scipy (a 45 s song in under a second).

Command line::

    python -m mixin.training.render.synth OUTDIR --songs 2 --duration 45 [--seed 0] [--stereo | --mono] [--force]
    python -m mixin.training.render.synth --example-mix example.wav [--duration 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np
from scipy import signal

from ... import io as audio, params
from ...io import files as fileio
from ...errors import MixinError
from .harmony import FOUR_BAR_LOOPS, MODES, degree_notes

log = logging.getLogger("mixin")

#: Stem names, as in MUSDB18-HQ.
STEMS = ("drums", "bass", "other", "vocals")

#: Name of song folder ``i`` inside the output directory.
SONG_DIR = "song_{:03d}"

#: Peak of the mixture (sum of the stems) after normalisation: -1 dBFS, so 16-bit stems and the
#: mixture never clip.
MIX_PEAK = 10 ** (-1 / 20)

#: RMS level of each stem (dBFS, over the whole stem) before the mixture is normalised.
STEM_RMS_DB = {"drums": -17.0, "bass": -20.0, "other": -21.0, "vocals": -19.0}

#: Stereo position of each part, -1 (left) .. +1 (right).
_PAN = {"kick": 0.0, "snare": 0.1, "hat": 0.45, "bass": 0.0, "vocals": 0.0}

#: Vowel formants (Hz) and bandwidths (Hz): a, e, i, o, u (adult voice, approximate).
_VOWELS = np.array([
    [[800, 1150, 2900], [80, 90, 120]],
    [[450, 1900, 2600], [70, 100, 120]],
    [[300, 2300, 3000], [50, 100, 120]],
    [[450, 800, 2830], [70, 80, 100]],
    [[325, 700, 2530], [50, 60, 170]],
], dtype=float)


# --- small signal helpers ---

def _midi_hz(m):
    m = np.asarray(m)
    dt = np.float32 if m.dtype == np.float32 else np.float64
    return dt(440.0) * np.exp2((m.astype(dt) - dt(69.0)) / dt(12.0))


def _pan(x, pos, channels):
    """Constant-power pan of mono ``x`` [shape=(n,)] to [shape=(n, channels)]."""
    x = np.asarray(x, dtype=np.float32)
    if channels == 1:
        return x[:, None]
    theta = (pos + 1.0) * np.pi / 4.0
    out = np.empty((x.size, 2), dtype=np.float32)
    out[:, 0] = x * np.float32(np.cos(theta) * np.sqrt(2.0))
    out[:, 1] = x * np.float32(np.sin(theta) * np.sqrt(2.0))
    return out


def _place(onsets, gains, shot, n):
    """Sum of copies of ``shot`` starting at sample ``onsets`` with ``gains`` [shape=(n,)]."""
    imp = np.zeros(n, dtype=np.float32)
    onsets = np.asarray(onsets, dtype=int)
    keep = (onsets >= 0) & (onsets < n)
    np.add.at(imp, onsets[keep], np.asarray(gains, dtype=np.float32)[keep])
    return signal.oaconvolve(imp, shot.astype(np.float32))[:n]


def _note_tracks(onsets, lengths, values, n):
    """Per-sample note index bookkeeping for a monophonic note list (onsets sorted).

    Returns (value [shape=(n,)] held from each onset, seconds-since-onset tsince, note length
    in samples of the current note, index of the current note or -1 before the first one)."""
    onsets = np.clip(np.asarray(onsets, dtype=np.int64), 0, n)
    counts = np.diff(np.concatenate([[0], onsets, [n]]))
    idx = np.repeat(np.arange(-1, onsets.size), counts)
    safe = np.maximum(idx, 0)
    value = np.asarray(values, dtype=np.float32)[safe]
    since = np.where(idx >= 0, np.arange(n) - onsets[safe], -1)
    return value, since, np.asarray(lengths, dtype=np.int64)[safe], idx


def _envelope(since, length, sr, attack, decay, release):
    """Attack / exponential decay / release envelope from samples-since-onset (0 where no note)."""
    ts = np.maximum(since, 0).astype(np.float32) / np.float32(sr)
    env = np.minimum(ts / np.float32(attack), 1.0) * np.exp(-ts / np.float32(decay))
    rel = np.clip((length - since).astype(np.float32) / np.float32(release * sr), 0.0, 1.0)
    return np.where(since >= 0, env * rel, np.float32(0.0))


def _harmonic_voice(f0, amps, sr):
    """Sum of harmonics ``k * f0`` (k = 1..len(amps)) of a per-sample frequency track, band-limited
    below 0.45 sr. [shape=(n,)]"""
    phase = np.mod(2.0 * np.pi * np.cumsum(f0) / sr, 2.0 * np.pi).astype(np.float32)
    out = np.zeros(f0.shape, dtype=np.float32)
    f_max = np.max(f0, initial=0.0)
    for k, a in enumerate(amps, start=1):
        if k * f_max < 0.45 * sr:
            out += np.float32(a) * np.sin(np.float32(k) * phase)
        else:
            out += np.float32(a) * np.sin(np.float32(k) * phase) * (k * f0 < 0.45 * sr)
    return out


def _voice(onsets, lengths, midi, n, sr, amps, attack, decay, release):
    """A harmonic voice (``amps`` per harmonic) playing monophonic notes, onsets and lengths in
    samples, through an attack / decay / release envelope [shape=(n,)]."""
    f0, since, length, _ = _note_tracks(onsets, lengths, _midi_hz(midi), n)
    return _envelope(since, length, sr, attack, decay, release) * _harmonic_voice(f0, amps, sr)


def _rms_normalise(x, db):
    rms = np.sqrt(np.mean(np.square(x)))
    return x if rms == 0 else x * (10 ** (db / 20) / rms)


# --- the four parts ---

def _drums(rng, n, sr, beat, n_bars, channels):
    bar = 4 * beat
    grid8 = np.arange(n_bars * 8) * beat / 2  # eighth-note times in seconds
    pos8 = np.arange(n_bars * 8) % 8          # position in the bar, in eighths

    kick_t = grid8[(pos8 == 0) | (pos8 == 4)]
    extra = grid8[(pos8 == 3) | (pos8 == 7)]
    kick_t = np.sort(np.concatenate([kick_t, extra[rng.random(extra.size) < rng.uniform(0.1, 0.5)]]))
    snare_t = grid8[(pos8 == 2) | (pos8 == 6)]
    sixteenths = rng.random() < 0.4
    hat_t = np.arange(n_bars * (16 if sixteenths else 8)) * bar / (16 if sixteenths else 8)
    open_hat = rng.random(hat_t.size) < 0.06

    def samples(ts: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(ts) * sr).astype(int)

    t = np.arange(int(0.4 * sr)) / sr
    f_kick = rng.uniform(42, 55) + rng.uniform(90, 140) * np.exp(-t / rng.uniform(0.02, 0.04))
    kick = np.sin(2 * np.pi * np.cumsum(f_kick) / sr) * np.exp(-t / rng.uniform(0.1, 0.18))
    kick[: int(0.002 * sr)] += 0.5 * rng.standard_normal(int(0.002 * sr))

    t = np.arange(int(0.3 * sr)) / sr
    sn_b = signal.butter(2, [1000, 9000], btype="bandpass", fs=sr, output="sos")
    snare = (signal.sosfilt(sn_b, rng.standard_normal(t.size)) * np.exp(-t / rng.uniform(0.06, 0.1))
             + 0.6 * np.sin(2 * np.pi * rng.uniform(170, 220) * t) * np.exp(-t / 0.04))

    hp = signal.butter(4, 7000, btype="highpass", fs=sr, output="sos")
    t = np.arange(int(0.35 * sr)) / sr
    hat_noise = signal.sosfilt(hp, rng.standard_normal(t.size))
    hat_closed = hat_noise * np.exp(-t / 0.018)
    hat_open = hat_noise * np.exp(-t / 0.12)

    def vel(size: int, lo: float) -> np.ndarray:
        return rng.uniform(lo, 1.0, size)

    k = _place(samples(kick_t), vel(kick_t.size, 0.8), kick, n)
    s = _place(samples(snare_t), vel(snare_t.size, 0.7), snare, n) * 0.7
    h = (_place(samples(hat_t[~open_hat]), vel((~open_hat).sum(), 0.4), hat_closed, n)
         + _place(samples(hat_t[open_hat]), vel(open_hat.sum(), 0.6), hat_open, n)) * 0.35
    return _pan(k, _PAN["kick"], channels) + _pan(s, _PAN["snare"], channels) + _pan(h, _PAN["hat"], channels)


def _bass(rng, n, sr, beat, chords_root, channels):
    """chords_root: MIDI root note per bar (octave 2-3)."""
    step = beat / 2 if rng.random() < 0.6 else beat  # eighths or quarters
    per_bar = int(round(4 * beat / step))
    n_notes = len(chords_root) * per_bar
    onsets_s = np.arange(n_notes) * step
    roots = np.repeat(chords_root, per_bar)
    octave = np.where(rng.random(n_notes) < 0.2, 12, 0)
    fifth = np.where(rng.random(n_notes) < 0.1, 7, 0)
    midi = roots + octave + fifth
    onsets = np.round(onsets_s * sr).astype(int)
    lengths = np.full(n_notes, int(step * sr * 0.85))
    decay = rng.uniform(0.3, 0.8)
    amps = 1.0 / np.arange(1, 9) ** rng.uniform(1.0, 1.6)
    return _pan(_voice(onsets, lengths, midi, n, sr, amps, 0.005, decay, 0.02), _PAN["bass"], channels)


def _other(rng, n, sr, beat, chord_notes, channels):
    """chord_notes: (n_bars, 3) MIDI notes of each bar's triad (octave 4)."""
    n_bars = len(chord_notes)
    bar = 4 * beat
    # chord strikes: on every beat, or on beats 1 and 3 with a pushed strike, or sustained pads
    pattern = [np.arange(4) * beat, np.array([0, 2, 3.5]) * beat, np.array([0.0])][rng.integers(3)]
    strikes = (np.arange(n_bars)[:, None] * bar + pattern[None, :]).ravel()
    bar_of = np.repeat(np.arange(n_bars), len(pattern))
    ends = np.append(strikes[1:], n_bars * bar)
    onsets = np.round(strikes * sr).astype(int)
    lengths = np.round((ends - strikes) * sr * 0.95).astype(int)
    out = np.zeros((n, channels))
    amps = 1.0 / np.arange(1, 7) ** rng.uniform(1.2, 2.0)
    decay = rng.uniform(0.4, 2.0)
    for v in range(3):
        voice = _voice(onsets, lengths, chord_notes[bar_of, v], n, sr, amps, 0.01, decay, 0.05)
        out += _pan(voice, (v - 1) * 0.6, channels) / 3
    # arpeggio an octave up, sixteenth notes through the chord tones
    step = beat / 4
    per_bar = 16
    k = np.arange(n_bars * per_bar)
    midi = chord_notes[k // per_bar, k % 3] + 12
    onsets = np.round(k * step * sr).astype(int)
    lengths = np.full(k.size, int(step * sr * 0.9))
    arp = _voice(onsets, lengths, midi, n, sr, [1.0, 0.3, 0.15, 0.05], 0.003, 0.15, 0.01)
    out += _pan(arp, rng.choice([-0.7, 0.7]), channels) * 0.25
    return out


def _vocals(rng, n, sr, beat, scale_midi, chord_notes, channels):
    """A voiced melody in phrases. scale_midi: sorted MIDI notes of the key in the singing range."""
    bar = 4 * beat
    n_bars = len(chord_notes)
    durations = np.array([0.5, 1.0, 1.0, 1.5, 2.0])
    onsets, lengths, pitches = [], [], []
    b = int(rng.integers(0, 2))  # first phrase starts in bar 0 or 1
    while b < n_bars:
        phrase_bars = int(rng.integers(2, 4))
        t, end = b * bar, min(b + phrase_bars, n_bars) * bar
        i = int(np.argmin(np.abs(scale_midi - chord_notes[b, 0] - 12)))
        while t < end - 0.25 * beat:
            d = min(durations[rng.integers(durations.size)] * beat, end - t)
            i = int(np.clip(i + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, scale_midi.size - 1))
            onsets.append(t)
            lengths.append(d * rng.uniform(0.85, 0.97))
            pitches.append(scale_midi[i])
            t += d
        b += phrase_bars + int(rng.integers(1, 3))  # rest of one or two bars
    onsets = np.round(np.array(onsets) * sr).astype(int)
    lengths = np.round(np.array(lengths) * sr).astype(int)
    pitches = np.array(pitches, dtype=float)

    pitch, since, length, idx = _note_tracks(onsets, lengths, pitches, n)
    # portamento: one-pole smoothing of the pitch (in semitones), ~25 ms
    a = np.exp(-1.0 / (0.025 * sr))
    pitch = signal.lfilter([1 - a], [1, -a], pitch, zi=[pitch[0] * a])[0].astype(np.float32)
    ts = np.maximum(since, 0).astype(np.float32) / np.float32(sr)
    depth = rng.uniform(25, 60)  # cents
    rate = rng.uniform(5.0, 6.5)
    vib_on = np.clip((ts - np.float32(0.1)) / np.float32(0.2), 0.0, 1.0)  # fades in after onset
    vib_phase = np.mod(2 * np.pi * rate * np.arange(n) / sr, 2 * np.pi).astype(np.float32)
    cents = (np.float32(depth) * vib_on * np.sin(vib_phase)
             + np.float32(8) * _smooth_noise(rng, n, sr, 4.0).astype(np.float32))
    f0 = _midi_hz(pitch + cents / np.float32(100.0))

    # Rosenberg glottal pulse on the phase fraction, then lip radiation (first difference)
    phi = np.mod(np.cumsum(f0, dtype=np.float64) / sr, 1.0).astype(np.float32)
    tp, tn = np.float32(0.4), np.float32(0.16)
    g = np.where(phi < tp, 0.5 * (1 - np.cos(np.float32(np.pi) * phi / tp)),
                 np.where(phi < tp + tn, np.cos(np.float32(np.pi) * (phi - tp) / (2 * tn)),
                          np.float32(0.0)))
    src = np.diff(g, prepend=np.float32(0.0)) * np.float32(sr / f0.mean())
    env = _envelope(since, length, sr, attack=0.04, decay=30.0, release=0.06)
    noise = signal.sosfilt(signal.butter(2, 1500, btype="highpass", fs=sr, output="sos"),
                           rng.standard_normal(n, dtype=np.float32))
    src = env * (src + np.float32(0.03 * np.abs(src).max()) * noise)

    # vowel per note, weights interpolated over ~30 ms; cascade of three formant resonators
    vowel_of_note = rng.integers(len(_VOWELS), size=len(onsets))
    vowel = np.where(idx >= 0, vowel_of_note[np.maximum(idx, 0)], 0)
    a = np.exp(-1.0 / (0.03 * sr))
    voiced = np.zeros(n, dtype=np.float32)
    for v, (freqs, bws) in enumerate(_VOWELS):
        w = (vowel == v).astype(np.float32)
        if not w.any():
            continue
        w = signal.lfilter([1 - a], [1, -a], w, zi=[w[0] * a])[0]
        sos = np.vstack([_resonator(f, bw, sr) for f, bw in zip(freqs, bws)])
        voiced += w * signal.sosfilt(sos, src)
    # equal loudness per note (formant gains vary a lot with f0 and vowel), +-3 dB of dynamics
    sustain = (env > 0.5).astype(np.float32)
    k = len(onsets) + 1
    power = (np.bincount(idx + 1, weights=voiced * voiced * sustain, minlength=k)
             / np.maximum(np.bincount(idx + 1, weights=sustain, minlength=k), 1.0))
    gain = 10 ** (rng.uniform(-3, 3, size=k) / 20) / np.sqrt(np.maximum(power, 1e-20))
    gain[power <= 1e-20] = 0.0
    voiced *= gain[idx + 1].astype(np.float32)
    return _pan(voiced, _PAN["vocals"], channels)


def _resonator(freq, bw, sr):
    """Second-order resonator (unity gain at DC removed: band-pass shape) as one SOS row."""
    r = np.exp(-np.pi * bw / sr)
    theta = 2 * np.pi * freq / sr
    a = [1.0, -2 * r * np.cos(theta), r * r]
    g = (1 - r) * np.sqrt(1 - 2 * r * np.cos(2 * theta) + r * r)  # ~unity peak gain
    return np.array([g, 0.0, 0.0] + a)


def _smooth_noise(rng, n, sr, cutoff):
    """Unit-RMS low-pass noise (random slow drift) [shape=(n,)]."""
    k = max(int(n * cutoff / sr) + 2, 2)
    x = np.interp(np.arange(n), np.linspace(0, n, k), rng.standard_normal(k))
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


# --- public API ---

def _check_args(duration, sr, channels):
    if not np.isfinite(duration) or duration <= 0:
        raise MixinError(f"duration must be a positive number of seconds, got {duration}")
    if int(sr) != sr or sr < 8000:
        raise MixinError(f"sample rate must be an integer >= 8000 Hz, got {sr}")
    if channels not in (1, 2):
        raise MixinError(f"channels must be 1 or 2, got {channels}")


def make_song(duration: float, sr: int = params.SAMPLE_RATE, seed: int = 0,
              channels: int = 2) -> dict[str, np.ndarray]:
    """Synthesise one song's stems: {'drums', 'bass', 'other', 'vocals'} -> float32 [shape=(n, channels)],
    n = round(duration * sr), scaled together so that their sum peaks at -1 dBFS.

    Everything random (tempo 80-140 BPM, key, mode, progression, patterns, melody, vibrato) is
    drawn from ``numpy.random.default_rng(seed)``; ``channels``: 1 (mono) or 2 (stereo, parts
    panned). Raises :class:`MixinError` for a bad duration, sample rate (< 8000 Hz) or channel count.
    """
    _check_args(duration, sr, channels)
    sr = int(sr)
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    tempo = rng.uniform(80, 140)
    beat = 60.0 / tempo
    n_bars = int(np.ceil(duration / (4 * beat))) + 1
    key = int(rng.integers(12))
    mode = "major" if rng.random() < 0.6 else "minor"
    prog = np.array(FOUR_BAR_LOOPS[rng.integers(len(FOUR_BAR_LOOPS))])
    degrees = prog[np.arange(n_bars) % prog.size]
    # triads from the scale: degree d -> scale steps d, d+2, d+4 (wrapping up an octave)
    steps = degrees[:, None] + np.array([0, 2, 4])[None, :]
    triads = degree_notes(mode, steps)
    chord_notes = 60 + key % 12 - (12 if key >= 6 else 0) + triads  # around middle C
    roots = chord_notes[:, 0] - 24  # bass two octaves down
    oct_notes = np.array(MODES[mode])[None, :] + 12 * np.arange(3, 7)[:, None] + 12 + key
    scale_midi = np.sort(oct_notes.ravel())
    scale_midi = scale_midi[(scale_midi >= 55) & (scale_midi <= 76)]  # G3..E5

    log.debug("synth song seed=%s: %.1f BPM, key %d, %s, progression %s", seed, tempo, key,
              mode, prog.tolist())
    stems = {
        "drums": _drums(rng, n, sr, beat, n_bars, channels),
        "bass": _bass(rng, n, sr, beat, roots, channels),
        "other": _other(rng, n, sr, beat, chord_notes, channels),
        "vocals": _vocals(rng, n, sr, beat, scale_midi, chord_notes, channels),
    }
    # fade the last 50 ms so the song ends without a click
    fade = np.ones(n)
    k = min(n, int(0.05 * sr))
    fade[n - k:] = np.linspace(1, 0, k)
    stems = {name: _rms_normalise(x * fade[:, None], STEM_RMS_DB[name]) for name, x in stems.items()}
    peak = np.abs(sum(stems.values())).max()
    gain = MIX_PEAK / peak if peak > 0 else 1.0
    return {name: (x * gain).astype(np.float32) for name, x in stems.items()}


def write_stem_folders(outdir: str | os.PathLike, n_songs: int, duration: float, seed: int = 0,
                       channels: int = 2, sr: int = params.SAMPLE_RATE, force: bool = False) -> list[Path]:
    """Write ``n_songs`` synthetic songs (:func:`make_song`, seeds derived from ``(seed, i)``) as
    ``outdir/song_NNN/{drums,bass,other,vocals}.wav``, each folder renamed into place when complete;
    returns the folders. Raises :class:`MixinError` for bad arguments, an ``outdir`` that is a file
    or existing song folders without ``force`` (all checked before anything is written)."""
    if int(n_songs) != n_songs or n_songs < 1:
        raise MixinError(f"number of songs must be a positive integer, got {n_songs}")
    _check_args(duration, sr, channels)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise MixinError(f"output path exists and is not a directory: {outdir}")
    dirs = [outdir / SONG_DIR.format(i) for i in range(int(n_songs))]
    existing = [d for d in dirs if d.exists()]
    if existing and not force:
        raise MixinError(f"{existing[0]} already exists ({len(existing)} of {len(dirs)} song folders);"
                         " use --force to replace them")
    outdir.mkdir(parents=True, exist_ok=True)
    for i, d in enumerate(dirs):
        song_seed = int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])  # independent streams
        stems = make_song(duration, sr=sr, seed=song_seed, channels=channels)
        with fileio.atomic_folder(d, replace=True) as tmp:  # existing folders were refused above
            for name, x in stems.items():
                audio.write_audio(tmp / f"{name}.wav", x, int(sr), subtype="PCM_16")
        log.info("wrote %s", d)
    return dirs


def make_example_mix(path: str | os.PathLike, duration: float = 10.0, seed: int = 0, channels: int = 2,
                     sr: int = params.SAMPLE_RATE, force: bool = False) -> Path:
    """Write one synthetic mixture (sum of the stems of ``make_song``, peak -1 dBFS) as a 16-bit
    WAV file, e.g. to try ``xtract_mixin.py`` on. Refuses to replace an existing file unless
    ``force`` (:class:`MixinError`, as for a missing folder or bad arguments). Returns the path."""
    path = Path(path)
    if path.exists() and not force:
        raise MixinError(f"{path} already exists; use --force to replace it")
    if path.exists() and path.is_dir():
        raise MixinError(f"{path} is a directory")
    if not path.parent.is_dir():
        raise MixinError(f"directory not found: {path.parent}")
    stems = make_song(duration, sr=sr, seed=seed, channels=channels)
    mix = sum(stems.values())
    mix *= MIX_PEAK / max(np.abs(mix).max(), 1e-12)
    audio.write_audio(path, mix, int(sr), subtype="PCM_16")
    log.info("wrote %s", path)
    return path


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mixin.training.render.synth``."""
    p = argparse.ArgumentParser(
        prog="python -m mixin.training.render.synth",
        description="Write synthetic multitrack stems (MUSDB18-HQ layout: OUTDIR/song_000/"
                    "{drums,bass,other,vocals}.wav) or one synthetic mixture (--example-mix).")
    p.add_argument("outdir", nargs="?", help="output directory for the song folders")
    p.add_argument("--songs", type=int, default=2, help="number of songs (default: %(default)s)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per song (default: 45; 10 with --example-mix)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ch = p.add_mutually_exclusive_group()
    ch.add_argument("--stereo", dest="channels", action="store_const", const=2,
                    help="stereo stems with panning (the default)")
    ch.add_argument("--mono", dest="channels", action="store_const", const=1, help="mono stems")
    p.set_defaults(channels=2)
    p.add_argument("--sample-rate", type=int, default=params.SAMPLE_RATE,
                   help="sample rate in Hz (default: %(default)s)")
    p.add_argument("--example-mix", metavar="FILE",
                   help="instead of stem folders, write one mixture WAV file")
    p.add_argument("--force", action="store_true", help="replace existing song folders / file")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command: 0 on success, 1 after a one-line ``error: ...`` on stderr (argparse exits with 2
    for bad flags)."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.example_mix is not None:
            if args.outdir is not None:
                raise MixinError("give either OUTDIR or --example-mix FILE, not both")
            path = make_example_mix(args.example_mix, duration=args.duration or 10.0, seed=args.seed,
                                    channels=args.channels, sr=args.sample_rate, force=args.force)
            print(path)
        else:
            if args.outdir is None:
                raise MixinError("give an output directory (or --example-mix FILE)")
            dirs = write_stem_folders(args.outdir, args.songs, args.duration or 45.0, seed=args.seed,
                                      channels=args.channels, sr=args.sample_rate, force=args.force)
            for d in dirs:
                print(d)
    except MixinError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
