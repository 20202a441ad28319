"""Audio effects for rendered training material: loudness, EQ, compression, reverb, distortion, delay, pan.

Everything works on float32 arrays [shape=(channels, n)] (a 1-D array is taken as one channel and
given back 1-D), keeps the length and returns float32 without NaN or Inf (vectorised numpy/scipy).
Random effects take a :class:`numpy.random.Generator` and return ``(y, info)``, ``info`` recording
every setting (JSON-serialisable).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from ...errors import MixinError

log = logging.getLogger("mixin")

#: Blocks of this length (s) measure loudness in :func:`active_rms_db`.
RMS_BLOCK_S = 0.1

#: Blocks this far (dB) below the loudest block are silence for :func:`active_rms_db`.
ACTIVE_RANGE_DB = 60.0

#: The compressor's envelope is computed on blocks of this many samples (0.36 ms at 44.1 kHz).
COMP_HOP = 16

#: What :func:`active_rms_db` returns for digital silence.
SILENCE_DB = -np.inf


def _as2d(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``x`` as float32 [shape=(channels, n)] and whether it was 1-D."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        return a[None, :], True
    if a.ndim != 2:
        raise MixinError(f"audio must be [shape=(channels, n)], got shape {a.shape}")
    return a, False


def _out(y: np.ndarray, was_1d: bool) -> np.ndarray:
    """Finite float32 output in the input's layout."""
    y = np.asarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return y[0] if was_1d else y


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A value drawn log-uniformly from [lo, hi]."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _db(v: float) -> float:
    return float(10.0 ** (v / 20.0))


def _block_power(x: np.ndarray, sr: int, block_s: float = RMS_BLOCK_S) -> np.ndarray:
    """Mean power (over channels and samples) of consecutive blocks [shape=(n_blocks,)]."""
    a, _ = _as2d(x)
    n = a.shape[1]
    if n == 0:
        return np.zeros(0)
    b = max(1, int(round(block_s * sr)))
    p = np.square(a).sum(axis=0) / a.shape[0]
    nb = -(-n // b)
    p = np.pad(p, (0, nb * b - n)).reshape(nb, b).sum(axis=1, dtype=np.float64)
    counts = np.full(nb, b, dtype=np.float64)
    counts[-1] = n - (nb - 1) * b
    return p / counts


def active_rms_db(x: np.ndarray, sr: int) -> float:
    """RMS level (dBFS, full scale sine = -3 dB) of the active parts of ``x`` [shape=(channels, n)].

    The signal is cut into 100 ms blocks; blocks more than 60 dB below the loudest one are silence
    and left out, so a part that plays half the time is as loud as the same part playing throughout.
    Returns ``-inf`` for digital silence (or an empty array)."""
    p = _block_power(x, sr)
    if p.size == 0 or not np.isfinite(p).all() or p.max() <= 1e-20:
        return SILENCE_DB
    active = p >= p.max() * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    return float(10.0 * np.log10(np.mean(p[active])))


def normalise(x: np.ndarray, sr: int, target_db: float = -20.0) -> np.ndarray:
    """``x`` [shape=(channels, n)] scaled so that :func:`active_rms_db` is ``target_db`` (silence stays silence)."""
    a, one = _as2d(x)
    level = active_rms_db(a, sr)
    if not np.isfinite(level):
        return _out(np.zeros_like(a), one)
    return _out(a * np.float32(_db(target_db - level)), one)


# --- EQ (RBJ audio-EQ-cookbook biquads) ---

def _biquad(kind: str, f0: float, sr: int, gain_db: float = 0.0, q: float = 0.707) -> np.ndarray:
    """One RBJ cookbook biquad as a second-order section [shape=(1, 6)]."""
    f0 = float(np.clip(f0, 10.0, 0.45 * sr))
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / sr
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2.0 * q)
    if kind == "peak":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif kind in ("lowshelf", "highshelf"):
        sq = 2.0 * np.sqrt(A) * alpha
        s = 1.0 if kind == "lowshelf" else -1.0
        b = [A * ((A + 1) - s * (A - 1) * cw + sq), s * 2 * A * ((A - 1) - s * (A + 1) * cw),
             A * ((A + 1) - s * (A - 1) * cw - sq)]
        a = [(A + 1) + s * (A - 1) * cw + sq, -s * 2 * ((A - 1) + s * (A + 1) * cw),
             (A + 1) + s * (A - 1) * cw - sq]
    elif kind == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    else:
        raise ValueError(kind)
    b, a = np.asarray(b) / a[0], np.asarray(a) / a[0]
    return np.concatenate([b, a])[None, :]


def _sosfilt(sos: np.ndarray, a: np.ndarray) -> np.ndarray:
    return signal.sosfilt(sos.astype(np.float32), a.astype(np.float32), axis=-1).astype(np.float32, copy=False)


def shelf(x: np.ndarray, sr: int, kind: str, freq_hz: float, gain_db: float) -> np.ndarray:
    """``x`` [shape=(n,) or (channels, n)] through one shelf (``kind``: "lowshelf" or "highshelf")."""
    a, one = _as2d(x)
    y = _sosfilt(_biquad(kind, freq_hz, sr, gain_db), a) if a.shape[1] else a.copy()
    return _out(y, one)


def eq(x: np.ndarray, sr: int, rng: np.random.Generator, max_db: float = 9.0) -> tuple[np.ndarray, dict]:
    """Random EQ: a low shelf, a high shelf and 1-2 peaking filters, gains uniform in +-``max_db``;
    info: the bands (kind, freq_hz, gain_db, q)."""
    a, one = _as2d(x)
    bands = [{"kind": "lowshelf", "freq_hz": log_uniform(rng, 60, 300), "q": 0.707},
             {"kind": "highshelf", "freq_hz": log_uniform(rng, 2500, 10000), "q": 0.707}]
    for _ in range(int(rng.integers(1, 3))):
        bands.append({"kind": "peak", "freq_hz": log_uniform(rng, 150, 6000),
                      "q": float(rng.uniform(0.5, 2.5))})
    for b in bands:
        b["gain_db"] = float(rng.uniform(-max_db, max_db))
    sos = np.concatenate([_biquad(b["kind"], b["freq_hz"], sr, b["gain_db"], b["q"]) for b in bands])
    y = _sosfilt(sos, a) if a.shape[1] else a.copy()
    return _out(y, one), {"bands": bands}


# --- Dynamics ---

def _one_pole(v: np.ndarray, time_ms: float, sr: float) -> np.ndarray:
    """One-pole low-pass (time constant ``time_ms``) along the last axis, starting from the first value."""
    c = float(np.exp(-1.0 / max(1.0, time_ms * 1e-3 * sr)))
    zi = signal.lfilter_zi([1.0 - c], [1.0, -c]) * v[..., :1]
    return signal.lfilter([1.0 - c], [1.0, -c], v, axis=-1, zi=zi)[0]


def compress(x: np.ndarray, sr: int, threshold_db: float, ratio: float, attack_ms: float, release_ms: float,
             makeup_db: float = 0.0, knee_db: float = 6.0, lookahead_ms: float = 0.0) -> np.ndarray:
    """Feed-forward compressor with a stereo-linked envelope follower.

    The detector is the signal's power smoothed over ~``attack_ms`` (dB); the gain reduction (soft
    knee) is smoothed twice, with the attack and with the release time constant, and the larger of the
    two is applied: it follows a rising reduction at the attack speed and recovers at the release
    speed (linear filters only, so it runs at hundreds of times real time). ``lookahead_ms`` applies
    the gain that much earlier (offline, no latency): about ``2 * attack_ms`` catches the transients that
    would otherwise pass before the reduction builds up."""
    a, one = _as2d(x)
    if a.shape[1] == 0:
        return _out(a.copy(), one)
    if ratio < 1.0:
        raise MixinError(f"compress: ratio must be >= 1, got {ratio}")
    # the envelope runs at sr / COMP_HOP (block power), the gain is interpolated back to every sample
    n, hop = a.shape[1], COMP_HOP
    nb = -(-n // hop)
    power = np.max(np.square(a), axis=0).astype(np.float64)
    power = np.pad(power, (0, nb * hop - n)).reshape(nb, hop).mean(axis=1)
    srd = sr / hop
    level = 10.0 * np.log10(np.maximum(_one_pole(power, max(0.5, attack_ms), srd), 1e-12))
    over = level - threshold_db
    slope = 1.0 - 1.0 / ratio
    k = max(knee_db, 1e-6)
    gr = np.where(over <= -k / 2, 0.0,
                  np.where(over >= k / 2, slope * over, slope * (over + k / 2) ** 2 / (2 * k)))
    gr = np.maximum(_one_pole(gr, attack_ms, srd), _one_pole(gr, release_ms, srd))
    gain_b = 10.0 ** ((makeup_db - gr) / 20.0)
    shift = min(int(round(lookahead_ms * 1e-3 * srd)), nb - 1)
    if shift > 0:
        gain_b = np.concatenate([gain_b[shift:], np.full(shift, gain_b[-1])])
    gain = np.interp(np.arange(n, dtype=np.float64), np.arange(nb) * hop + (hop - 1) / 2.0, gain_b)
    return _out(a * gain.astype(np.float32), one)


def crest_factor_db(x: np.ndarray) -> float:
    """Peak-to-RMS ratio (dB) of ``x`` (``0`` for silence)."""
    a = np.asarray(x, dtype=np.float64)
    rms = np.sqrt(np.mean(a * a)) if a.size else 0.0
    if rms <= 0:
        return 0.0
    return float(20.0 * np.log10(np.max(np.abs(a)) / rms))


def drum_bus(x: np.ndarray, sr: int, rng: np.random.Generator, low_db: tuple[float, float] = (4.0, 16.0),
             high_db: tuple[float, float] = (-12.0, 0.0), comp_probability: float = 0.7) -> tuple[np.ndarray, dict]:
    """A recorded record's drum bus (all drawn before any processing): a low shelf (70-140 Hz, gain
    in ``low_db``: the kick's low end), a high shelf (4-8 kHz, gain in ``high_db``: the cymbals) and,
    with probability ``comp_probability``, a fast bus compressor (threshold 4-14 dB under the active
    level, ratio 3-8, attack 0.5-5 ms with look-ahead, release 40-200 ms)."""
    a, one = _as2d(x)
    info: dict[str, Any] = {
        "low_shelf": {"freq_hz": log_uniform(rng, 70.0, 140.0), "gain_db": float(rng.uniform(*low_db))},
        "high_shelf": {"freq_hz": log_uniform(rng, 4000.0, 8000.0), "gain_db": float(rng.uniform(*high_db))}}
    use_comp = bool(rng.random() < comp_probability)
    comp = {"threshold_rel_db": float(rng.uniform(-14.0, -4.0)), "ratio": float(rng.uniform(3.0, 8.0)),
            "attack_ms": log_uniform(rng, 0.5, 5.0), "release_ms": log_uniform(rng, 40.0, 200.0)}
    if not a.shape[1]:
        return _out(a.copy(), one), info
    sos = np.concatenate([_biquad("lowshelf", info["low_shelf"]["freq_hz"], sr, info["low_shelf"]["gain_db"]),
                          _biquad("highshelf", info["high_shelf"]["freq_hz"], sr, info["high_shelf"]["gain_db"])])
    y = _sosfilt(sos, a)
    if use_comp:
        y = _compress_relative(y, sr, comp, info, lookahead_ms=2.0 * comp["attack_ms"])
    return _out(y, one), info


def _compress_relative(y, sr, comp, info, lookahead_ms=0.0):
    """:func:`compress` with settings ``comp``, the threshold relative to ``y``'s active level
    (then recorded in ``comp``, and ``comp`` in ``info``); silence is left as it is."""
    level = active_rms_db(y, sr)
    if not np.isfinite(level):
        return y
    comp["threshold_db"] = float(level + comp["threshold_rel_db"])
    info["compressor"] = comp
    return compress(y, sr, comp["threshold_db"], comp["ratio"], comp["attack_ms"], comp["release_ms"],
                    lookahead_ms=lookahead_ms)


# --- Distortion ---

def distort(x: np.ndarray, drive_db: float, kind: str = "tanh", sr: int = 44100,
            tone_hz: float = 6000.0) -> np.ndarray:
    """Waveshaping distortion: the input (scaled to a robust peak of 1) is driven by ``drive_db``, shaped
    (``"tanh"`` soft clip, ``"hard"`` clip, ``"asym"`` biased tanh with the DC removed), low-passed at
    ``tone_hz`` and brought back to the input's RMS level."""
    a, one = _as2d(x)
    if kind not in ("tanh", "hard", "asym"):
        raise MixinError(f"distort: kind must be tanh, hard or asym, got {kind!r}")
    if a.shape[1] == 0:
        return _out(a.copy(), one)
    peak = float(np.quantile(np.abs(a[:, ::4]), 0.999))  # a robust peak (every 4th sample is enough)
    if peak <= 1e-9:
        return _out(a.copy(), one)
    v = a * np.float32(_db(drive_db) / peak)
    if kind == "tanh":
        y = np.tanh(v)
    elif kind == "hard":
        y = np.clip(v, -1.0, 1.0)
    else:
        bias = np.float32(0.3)
        y = np.tanh(v + bias) - np.tanh(bias)
    sos = [_biquad("lowpass", tone_hz, sr, q=0.6)] * 2 + ([_biquad("highpass", 20.0, sr)] if kind == "asym" else [])
    y = _sosfilt(np.concatenate(sos), y)
    rin = np.sqrt(np.mean(np.square(a), dtype=np.float64))
    rout = np.sqrt(np.mean(np.square(y), dtype=np.float64))
    if rout > 1e-12:
        y *= np.float32(rin / rout)
    return _out(y, one)


# --- Space: reverb, delay, pan ---

def reverb_ir(sr: int, rng: np.random.Generator, rt60: float, predelay_ms: float = 10.0,
              damping: float = 0.5, channels: int = 2) -> np.ndarray:
    """A synthetic room impulse response [shape=(channels, m)], unit energy per channel.

    Independent noise per channel (so the reverberation is decorrelated between left and right), split
    into three bands decaying with their own RT60 (``rt60`` in the middle, the highs faster by
    ``damping``), a few early reflections and a ``predelay_ms`` gap before it all."""
    rt60 = float(max(rt60, 0.05))
    length = int(min(1.2 * rt60, 4.0) * sr) + 1
    t = np.arange(length) / sr
    pre = int(predelay_ms * 1e-3 * sr)
    noise = rng.standard_normal((channels, length))
    low = signal.sosfilt(_biquad("lowpass", 500.0, sr), noise, axis=-1)
    high = signal.sosfilt(_biquad("highpass", 4000.0, sr), noise, axis=-1)
    mid = noise - low - high
    env = lambda r: np.exp(-6.9078 * t / r)  # noqa: E731  (-60 dB at t = r)
    h = low * env(rt60 * 1.15) + mid * env(rt60) + high * env(rt60 * (1.0 - 0.8 * damping))
    # fade in over the first 5-15 ms (a diffuse tail builds up), plus sparse early reflections
    h *= np.minimum(1.0, t / (rng.uniform(0.005, 0.015)))
    n_er = int(rng.integers(4, 9))
    for c in range(channels):
        pos = rng.integers(int(0.002 * sr), max(int(0.002 * sr) + 1, int(min(0.06, 0.5 * rt60) * sr)), n_er)
        h[c, pos] += rng.uniform(-1, 1, n_er) * np.sqrt(np.sum(h[c] ** 2) / 40.0)
    h = np.concatenate([np.zeros((channels, pre)), h], axis=1)
    h /= np.sqrt(np.sum(h * h, axis=1, keepdims=True)) + 1e-12
    return h


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` [shape=(channels, n)] convolved with ``h`` [shape=(channels or 1, m)] (FFT, float32), cut to ``n``.

    ``x`` may also be [shape=(k * channels_of_h, n)]: several signals through the same responses
    (channel ``i`` uses ``h[i % len(h)]``), each response transformed once."""
    a, one = _as2d(x)
    n = a.shape[1]
    h = np.asarray(h, dtype=np.float32)
    if h.ndim == 1:
        h = h[None, :]
    if n == 0 or h.shape[1] == 0:
        return _out(np.zeros_like(a), one)
    n_fft = sp_fft.next_fast_len(n + h.shape[1] - 1, real=True)
    H = sp_fft.rfft(h, n_fft, axis=-1)
    idx = np.arange(a.shape[0]) % h.shape[0]
    y = np.empty_like(a)
    for i in range(a.shape[0]):  # one channel at a time keeps the memory small
        y[i] = sp_fft.irfft(sp_fft.rfft(a[i], n_fft) * H[idx[i]], n_fft)[:n]
    return _out(y, one)


def reverb(x: np.ndarray, sr: int, rng: np.random.Generator, rt60: tuple[float, float] = (0.2, 2.0),
           wet: tuple[float, float] = (0.05, 0.35)) -> tuple[np.ndarray, dict]:
    """Synthetic stereo room: ``(1 - wet) * x + wet * room(x) * rms(x) / rms(room(x))`` with a random
    :func:`reverb_ir` (``rt60`` and ``wet``: ranges drawn log-uniformly and uniformly); info: rt60_s,
    wet, predelay_ms, damping."""
    a, one = _as2d(x)
    info = {"rt60_s": log_uniform(rng, *rt60), "wet": float(rng.uniform(*wet)),
            "predelay_ms": float(rng.uniform(2.0, 40.0)), "damping": float(rng.uniform(0.2, 0.9))}
    h = reverb_ir(sr, rng, info["rt60_s"], info["predelay_ms"], info["damping"], channels=max(2, a.shape[0]))
    return _out(mix_wet(a, convolve(a, h), info["wet"]), one), info


def mix_wet(dry: np.ndarray, wet_signal: np.ndarray, wet: float) -> np.ndarray:
    """``(1 - wet) * dry + wet * wet_signal`` with the wet signal brought to the dry signal's RMS."""
    d = np.asarray(dry, dtype=np.float32)
    w = np.asarray(wet_signal, dtype=np.float32)
    rd = np.sqrt(np.mean(np.square(d, dtype=np.float64))) if d.size else 0.0
    rw = np.sqrt(np.mean(np.square(w, dtype=np.float64))) if w.size else 0.0
    scale = rd / rw if rw > 1e-12 else 0.0
    return ((1.0 - wet) * d + np.float32(wet * scale) * w).astype(np.float32)


def _comb(v: np.ndarray, d: int, g: float) -> np.ndarray:
    """``y[n] = v[n] + g * y[n - d]`` along the last axis (vectorised: a first-order recursion over
    blocks of ``d`` samples)."""
    n = v.shape[-1]
    nb = -(-n // d)
    pad = np.zeros(v.shape[:-1] + (nb * d - n,))
    blocks = np.concatenate([v, pad], axis=-1).reshape(v.shape[:-1] + (nb, d))
    # filter along the block index, made the last (contiguous) axis: much faster in lfilter
    y = signal.lfilter([1.0], [1.0, -g], np.ascontiguousarray(np.swapaxes(blocks, -1, -2)), axis=-1)
    return np.swapaxes(y, -1, -2).reshape(v.shape[:-1] + (nb * d,))[..., :n]


def _shift(v: np.ndarray, d: int) -> np.ndarray:
    """``v`` delayed by ``d`` samples along the last axis (same length)."""
    out = np.zeros_like(v)
    if d < v.shape[-1]:
        out[..., d:] = v[..., : v.shape[-1] - d]
    return out


def delay(x: np.ndarray, sr: int, time_s: float, feedback: float, wet: float,
          ping_pong: bool = False) -> np.ndarray:
    """Feedback echo (a recursive comb filter, low-passed at 5 kHz): ``(1 - wet) * x + wet * echoes``.

    With ``ping_pong`` (stereo input) the echoes alternate between the channels."""
    a, one = _as2d(x)
    n = a.shape[1]
    d = max(1, int(round(time_s * sr)))
    if n == 0 or d >= n:
        return _out(a.copy(), one)
    fb = float(np.clip(feedback, 0.0, 0.95))
    src = _sosfilt(_biquad("lowpass", 5000.0, sr), a).astype(np.float64)
    if ping_pong and a.shape[0] == 2:
        # echo k (k = 1, 2, ...) at k*d with gain fb**(k-1): odd echoes left, even echoes right
        c = _comb(src.mean(axis=0), 2 * d, fb * fb)
        echoes = np.stack([_shift(c, d), fb * _shift(c, 2 * d)])
    else:
        echoes = _shift(_comb(src, d, fb), d)
    return _out((1.0 - wet) * a + wet * echoes, one)


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of ``mono`` [shape=(n,)] or [shape=(1, n)] to float32 [shape=(2, n)]:
    ``left = cos(theta) * x``, ``right = sin(theta) * x``, ``theta = (position + 1) * pi / 4``,
    ``position`` -1 (left) .. 1 (right). A stereo part [shape=(2, n)] gets a balance control (each
    channel times ``sqrt(2)`` its gain: the centre leaves it unchanged)."""
    a = np.asarray(mono, dtype=np.float32)
    p = float(np.clip(position, -1.0, 1.0))
    th = (p + 1.0) * np.pi / 4.0
    gl, gr = np.cos(th), np.sin(th)
    if a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1):
        m = a.reshape(-1)
        y = np.empty((2, m.size), np.float32)
        np.multiply(m, np.float32(gl), out=y[0])
        np.multiply(m, np.float32(gr), out=y[1])
        return _out(y, False)
    if a.ndim == 2 and a.shape[0] == 2:
        s = np.sqrt(2.0)
        y = np.empty_like(a)
        np.multiply(a[0], np.float32(s * gl), out=y[0])
        np.multiply(a[1], np.float32(s * gr), out=y[1])
        return _out(y, False)
    raise MixinError(f"pan: need mono [shape=(n,)] or stereo [shape=(2, n)] audio, got shape {a.shape}")


# --- Per-part random chains ---

#: Per role: probability of distortion, of compression, of delay; compressor ratio range; reverb
#: wet range; RT60 range (s); EQ range (dB).
_ROLE_SETTINGS: dict[str, dict[str, Any]] = {
    "bass":         dict(dist=0.2, comp=0.85, delay=0.0, ratio=(2.5, 6.0), wet=(0.0, 0.08), rt60=(0.2, 0.8), eq=6.0),
    "keys":         dict(dist=0.05, comp=0.5, delay=0.1, ratio=(1.5, 4.0), wet=(0.08, 0.3), rt60=(0.4, 2.0), eq=7.0),
    "guitar_clean": dict(dist=0.05, comp=0.6, delay=0.2, ratio=(2.0, 5.0), wet=(0.05, 0.3), rt60=(0.3, 1.8), eq=7.0),
    "guitar_drive": dict(dist=1.0, comp=0.5, delay=0.15, ratio=(2.0, 4.0), wet=(0.03, 0.2), rt60=(0.3, 1.5), eq=6.0),
    "pad":          dict(dist=0.0, comp=0.3, delay=0.1, ratio=(1.5, 3.0), wet=(0.15, 0.45), rt60=(1.0, 3.0), eq=6.0),
    "lead":         dict(dist=0.3, comp=0.6, delay=0.4, ratio=(2.0, 5.0), wet=(0.08, 0.35), rt60=(0.5, 2.5), eq=7.0),
    "drums":        dict(dist=0.1, comp=0.8, delay=0.0, ratio=(2.0, 6.0), wet=(0.02, 0.18), rt60=(0.2, 1.2), eq=6.0),
    "vocal":        dict(dist=0.05, comp=0.9, delay=0.3, ratio=(2.0, 6.0), wet=(0.08, 0.35), rt60=(0.5, 2.5), eq=6.0),
}


#: Roles :func:`random_chain` knows.
ROLES = tuple(_ROLE_SETTINGS)


def random_chain(x: np.ndarray, sr: int, rng: np.random.Generator, role: str,
                 reverb_on: bool = True) -> tuple[np.ndarray, dict]:
    """A random effects chain for one part of ``role`` (:data:`ROLES`; chances and ranges in
    :data:`_ROLE_SETTINGS`): EQ -> distortion -> compressor (threshold relative to the part's level)
    -> delay -> reverb. With ``reverb_on=False`` the reverb is drawn but not applied (for a shared
    bus; ``info["reverb"]["applied"]`` is False). ``info``: role and each stage's settings."""
    if role not in _ROLE_SETTINGS:
        raise MixinError(f"random_chain: unknown role {role!r} (known: {', '.join(ROLES)})")
    st = _ROLE_SETTINGS[role]
    a, one = _as2d(x)
    info: dict[str, Any] = {"role": role}
    # draw everything first, in a fixed order, so the settings do not depend on the audio
    y, info["eq"] = eq(a, sr, rng, max_db=st["eq"])
    use_dist = rng.random() < st["dist"]
    dist = {"kind": str(rng.choice(["tanh", "hard", "asym"])),
            "drive_db": float(rng.uniform(18.0, 36.0) if role == "guitar_drive" else rng.uniform(4.0, 18.0)),
            "tone_hz": float(rng.uniform(3000.0, 7000.0) if role == "guitar_drive" else rng.uniform(5000.0, 12000.0))}
    use_comp = rng.random() < st["comp"]
    comp = {"threshold_rel_db": float(rng.uniform(-12.0, 0.0)), "ratio": float(rng.uniform(*st["ratio"])),
            "attack_ms": log_uniform(rng, 1.0, 30.0), "release_ms": log_uniform(rng, 40.0, 400.0)}
    use_delay = rng.random() < st["delay"]
    dly = {"time_s": float(rng.uniform(0.12, 0.6)), "feedback": float(rng.uniform(0.15, 0.55)),
           "wet": float(rng.uniform(0.08, 0.3)), "ping_pong": bool(rng.random() < 0.5)}
    rev_seed = int(rng.integers(2**31))

    if use_dist:
        y = distort(y, dist["drive_db"], dist["kind"], sr=sr, tone_hz=dist["tone_hz"])
        info["distortion"] = dist
    if use_comp:
        y = _compress_relative(y, sr, comp, info)
    if use_delay:
        y = delay(y, sr, dly["time_s"], dly["feedback"], dly["wet"], dly["ping_pong"])
        info["delay"] = dly
    rev_rng = np.random.default_rng(rev_seed)
    if reverb_on:
        y, rinfo = reverb(y, sr, rev_rng, rt60=st["rt60"], wet=st["wet"])
        rinfo["applied"] = True
    else:
        rinfo = {"rt60_s": log_uniform(rev_rng, *st["rt60"]),
                 "wet": float(rev_rng.uniform(*st["wet"])), "applied": False}
    info["reverb"] = rinfo
    return _out(y, one), info
