"""Synthesised electronic basses for the renderer: what General MIDI SoundFonts lack.

Pop, hip-hop and electronic music put much of their low end in synthesised basses: a sine sub under
the kick, the long pitch-dropping "808", filtered saw and square basses, detuned "reese" basses,
often ducked on every beat by the kick (side-chain "pumping"). The GM bass programs are plucked,
bowed or short synth patches, so a network trained only on them learns that sustained energy below
100 Hz with a sharp onset is a kick drum. These basses, played from the same note lists as the GM
bass (:func:`mixin.training.render.backing.render_backing`), teach it otherwise.

Every kind is additive synthesis of band-limited harmonics (no aliasing), vectorised per note:

- ``sine_sub``: a sine with a little second harmonic; ``triangle_sub``: odd harmonics falling 1/k^2.
- ``808``: a sine whose pitch falls from up to two octaves above to the note in 10-40 ms, a long
  exponential decay, soft-clipped.
- ``saw_filter`` / ``square_filter``: saw (all harmonics 1/k) or square (odd, 1/k) through a
  resonant-free low-pass whose cut-off falls from a peak to a sustain value (a pluck or a held note).
- ``reese``: two saws detuned by 8-20 cents, low-passed.

Training renders use :data:`KINDS` ``["train"]``, held-out renders ``["heldout"]``: the held-out
waveforms are never trained on.
"""

from __future__ import annotations

import numpy as np

from ...errors import MixinError

#: Bass kinds for training and for held-out (validation/test) renders (disjoint).
KINDS: dict[str, list[str]] = {
    "train": ["sine_sub", "808", "saw_filter"],
    "heldout": ["triangle_sub", "square_filter", "reese"],
}

#: Highest harmonic frequency synthesised (Hz): basses are low-passed well below it.
MAX_HARMONIC_HZ = 8000.0

#: At most this many harmonics per voice (the cost is harmonics x samples).
MAX_HARMONICS = 40

#: Release (s) after a note's end.
RELEASE_S = 0.04


def _hz(pitch: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def _settings(kind: str, rng: np.random.Generator) -> dict:
    """Per-song settings of a bass kind (JSON-serialisable)."""
    s: dict = {"kind": kind, "attack_ms": float(rng.uniform(1.0, 12.0))}
    if kind in ("sine_sub", "triangle_sub"):
        s["h2"] = float(rng.uniform(0.0, 0.25))
    elif kind == "808":
        s.update(drop_octaves=float(rng.uniform(0.5, 2.0)), drop_ms=float(rng.uniform(10.0, 40.0)),
                 decay_s=float(rng.uniform(0.3, 1.6)), drive=float(rng.uniform(1.0, 4.0)))
    else:  # filtered
        s.update(peak_hz=float(np.exp(rng.uniform(np.log(400.0), np.log(3000.0)))),
                 sustain_hz=float(np.exp(rng.uniform(np.log(90.0), np.log(500.0)))),
                 env_ms=float(np.exp(rng.uniform(np.log(30.0), np.log(400.0)))),
                 slope=float(rng.uniform(2.0, 4.0)))
        if kind == "reese":
            s["detune_cents"] = float(rng.uniform(8.0, 20.0))
    return s


def _note(s: dict, f0: float, n: int, n_on: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note of ``n`` samples (``n_on`` before the release), unit-ish peak [shape=(n,)]."""
    t = np.arange(n) / sr
    kind = s["kind"]
    attack = np.minimum(1.0, t / (s["attack_ms"] * 1e-3))
    rel = np.clip((n - np.arange(n)) / max(1, n - n_on), 0.0, 1.0) if n > n_on else np.ones(n)
    env = attack * np.minimum(1.0, rel)
    if kind == "808":
        f = f0 * 2.0 ** (s["drop_octaves"] * np.exp(-t / (s["drop_ms"] * 1e-3)))
        phase = 2 * np.pi * np.cumsum(f) / sr
        y = np.tanh(s["drive"] * np.sin(phase)) / np.tanh(s["drive"])
        return (y * env * np.exp(-t / s["decay_s"])).astype(np.float32)
    phase0 = rng.uniform(0, 2 * np.pi)
    if kind in ("sine_sub", "triangle_sub"):
        if kind == "sine_sub":
            ks, amps = np.array([1, 2]), np.array([1.0, s["h2"]])
        else:
            ks = np.arange(1, 16, 2)
            amps = 1.0 / ks.astype(float) ** 2 * (-1.0) ** ((ks - 1) // 2)
            amps[1] += s["h2"]  # a touch of the third
        keep = ks * f0 < MAX_HARMONIC_HZ
        ph = 2 * np.pi * f0 * t[None, :] * ks[keep, None] + phase0
        return (env * (amps[keep, None] * np.sin(ph)).sum(0)).astype(np.float32)
    # filtered saw / square / reese: harmonic k weighted by a low-pass at a falling cut-off
    odd = kind == "square_filter"
    fc = s["sustain_hz"] + (s["peak_hz"] - s["sustain_hz"]) * np.exp(-t / (s["env_ms"] * 1e-3))
    voices = [1.0] if kind != "reese" else [2.0 ** (-s["detune_cents"] / 2400), 2.0 ** (s["detune_cents"] / 2400)]
    y = np.zeros(n)
    for v in voices:
        fv = f0 * v
        n_h = int(max(1, min(MAX_HARMONICS, MAX_HARMONIC_HZ // fv)))
        ks = np.arange(1, n_h + 1)
        if odd:
            ks = ks[ks % 2 == 1]
        # one-pole-like magnitude response of order `slope`, sampled every 64 samples and held
        step = 64
        fc_s = fc[::step]
        w = 1.0 / np.sqrt(1.0 + (ks[:, None] * fv / fc_s[None, :]) ** (2 * s["slope"]))
        w = np.repeat(w, step, axis=1)[:, :n]
        ph = 2 * np.pi * fv * t[None, :] * ks[:, None] + rng.uniform(0, 2 * np.pi)
        y += ((w / ks[:, None]) * np.sin(ph)).sum(0)
    return (env * y / len(voices)).astype(np.float32)


def render_bass(notes: np.ndarray, n_samples: int, kind: str, rng: np.random.Generator,
                sr: int = 44100) -> tuple[np.ndarray, dict]:
    """Render bass notes with a synthesised bass.

    :param notes: rows ``(start_s, end_s, midi_pitch, velocity)`` [shape=(n_notes, 4)], velocity 1..127
        (the level follows velocity squared, as GM patches roughly do).
    :param n_samples: output length (notes and their releases are cut at its end).
    :param kind: one of ``KINDS["train"] + KINDS["heldout"]``.
    :param rng: the kind's settings and the note phases are drawn from it.
    :returns: (float32 [shape=(2, n_samples)] centred stereo, settings dict).
    :raises MixinError: unknown kind or bad arguments.
    """
    if kind not in KINDS["train"] + KINDS["heldout"]:
        raise MixinError(f"render_bass: unknown bass kind {kind!r}")
    n_samples = int(n_samples)
    if n_samples < 0:
        raise MixinError(f"render_bass: n_samples must be >= 0, got {n_samples}")
    s = _settings(kind, rng)
    out = np.zeros(n_samples, np.float32)
    arr = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    for start, end, pitch, vel in arr:
        i0 = int(round(max(0.0, start) * sr))
        if i0 >= n_samples or vel <= 0:
            continue
        n_on = max(1, int(round((end - max(0.0, start)) * sr)))
        n = min(n_samples - i0, n_on + int(RELEASE_S * sr))
        out[i0:i0 + n] += (vel / 127.0) ** 2 * _note(s, float(_hz(pitch)), n, min(n_on, n), sr, rng)
    return np.stack([out, out]), s


def duck(x: np.ndarray, sr: int, beat_s: float, depth_db: float, release_ms: float,
         offset_s: float = 0.0) -> np.ndarray:
    """Side-chain "pumping": the gain drops by ``depth_db`` on every beat and recovers exponentially.

    :param x: [shape=(n_channels, n_samples)] or (n_samples,).
    :param beat_s: beat period (s); beats at ``offset_s + k * beat_s``.
    :returns: the ducked signal, same shape and dtype.
    """
    if beat_s <= 0 or release_ms <= 0:
        raise MixinError(f"duck: beat_s and release_ms must be > 0, got {beat_s}, {release_ms}")
    n = x.shape[-1]
    t = np.arange(n) / sr
    since = np.mod(t - offset_s, beat_s)
    g = 1.0 - (1.0 - 10.0 ** (-abs(depth_db) / 20.0)) * np.exp(-since / (release_ms * 1e-3))
    return (x * g.astype(x.dtype)).astype(x.dtype, copy=False)
