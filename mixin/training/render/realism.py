"""How realistic are rendered songs? Statistics of song folders, rendered and real alike.

Where rendered drums have less low end than recorded ones, the percussive network sends real kicks
to the harmonic output. Per song folder (read by :mod:`mixin.songs`: drums, vocals, everything else
harmonic) this measures the :data:`STATISTICS` in which rendered and real songs were found to
differ: the drums' energy shares below 110 Hz and in 110-500 Hz, drums minus harmonic below 110 Hz,
the drums above 6 kHz relative to the stem, the drums' median crest factor over active 7 s windows,
vocals minus the rest in the 1 s windows where the vocals are active (NaN without vocals), and the
harmonic part's energy in 150-600 Hz minus below 150 Hz: how much of its low end has overtones
(a GM bass has, an electronic sine sub bass has almost none, and then looks like a kick).
:func:`report` gathers them per song and per folder set; ``train_util.py --render-report`` prints it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ... import params
from ...errors import MixinError

#: The statistics, in report order, with their units and a short description.
STATISTICS = {
    "drums_below_110": ("%", "drum energy below 110 Hz"),
    "drums_110_500": ("%", "drum energy 110-500 Hz"),
    "drums_minus_harmonic_below_110": ("dB", "drums minus harmonic below 110 Hz"),
    "drums_above_6k": ("dB", "drum energy above 6 kHz, relative to the stem"),
    "drum_crest": ("dB", "drum crest factor over 7 s"),
    "vocals_minus_rest": ("dB", "vocals minus the rest (where vocals are active)"),
    "harmonic_overtones": ("dB", "harmonic 150-600 Hz minus below 150 Hz"),
}

#: Window of the crest factor (seconds).
CREST_WINDOW = 7.0

#: Segment length of the Welch power spectra (samples at 44.1 kHz: 5.4 Hz resolution).
NPERSEG = 8192


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and power spectral density of ``x`` [shape=(n, ch)], channels' powers added."""
    from scipy.signal import welch

    nper = min(NPERSEG, len(x))
    f, p = welch(x.T.astype(np.float64), fs=params.SAMPLE_RATE, nperseg=nper, axis=-1)
    return f, p.sum(axis=0)


def _db(num: float, den: float) -> float:
    return 10.0 * math.log10(num / den) if num > 0 and den > 0 else float("nan")


def _window_rms(x: np.ndarray, win: int) -> np.ndarray:
    """RMS over channels and samples of consecutive ``win``-sample windows (the last partial
    one included)."""
    n = len(x)
    k = -(-n // win)
    e = np.bincount(np.arange(n) // win, weights=np.square(x, dtype=np.float64).sum(axis=1),
                    minlength=k)
    counts = np.minimum(win, n - np.arange(k) * win) * x.shape[1]
    return np.sqrt(e / counts)


def song_stats(sources: dict[str, np.ndarray]) -> dict[str, float]:
    """The :data:`STATISTICS` of one song (NaN where undefined: silent drums, no vocals, ...) from
    ``sources`` "percussive", "harmonic" and "vocal" (optional, silent = absent) -> [shape=(n, ch)]
    at 44.1 kHz, all of one length."""
    sr = params.SAMPLE_RATE
    drums = sources["percussive"]
    harm, vocals = (x if x is not None and np.any(x) else None
                    for x in (sources.get("harmonic"), sources.get("vocal")))
    f, pd = _spectrum(drums)
    total = pd.sum()
    low, mid, high = f < 110, (f >= 110) & (f < 500), f >= 6000
    out = {
        "drums_below_110": float(100.0 * pd[low].sum() / total) if total > 0 else float("nan"),
        "drums_110_500": float(100.0 * pd[mid].sum() / total) if total > 0 else float("nan"),
        "drums_above_6k": _db(pd[high].sum(), total),
    }
    ph = _spectrum(harm)[1] if harm is not None else None
    out["drums_minus_harmonic_below_110"] = _db(pd[low].sum(), ph[low].sum()) if ph is not None else float("nan")
    out["harmonic_overtones"] = (_db(ph[(f >= 150) & (f < 600)].sum(), ph[f < 150].sum())
                                 if ph is not None else float("nan"))

    win = int(CREST_WINDOW * sr)
    crest = []
    for i in range(0, len(drums), win):
        seg = drums[i:i + win]
        rms = math.sqrt(float(np.mean(np.square(seg, dtype=np.float64))))
        if len(seg) >= sr and rms > params.ACTIVE_RMS:
            crest.append(20.0 * math.log10(float(np.max(np.abs(seg))) / rms))
    out["drum_crest"] = float(np.median(crest)) if crest else float("nan")

    out["vocals_minus_rest"] = float("nan")
    if vocals is not None:
        rest = drums + harm if harm is not None else drums
        rv, rr = _window_rms(vocals, sr), _window_rms(rest, sr)
        act = rv > params.ACTIVE_RMS
        if act.any():
            out["vocals_minus_rest"] = _db(float(np.sum(rv[act] ** 2)), float(np.sum(rr[act] ** 2)))
    return out


def summarise(values: Iterable[float]) -> dict[str, float]:
    """Median, minimum, maximum and count of the finite ``values`` (NaN when there are none)."""
    v = np.array([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not v.size:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}


def report(dirs: Sequence[str | os.PathLike], limit: int | None = None) -> dict:
    """Statistics of every song under each of ``dirs`` (folders of song folders, or song folders;
    at most ``limit`` songs each, the first by name): {"statistics", "sets": [{"dir", "songs": {name:
    stats}, "summary": {statistic: :func:`summarise`}} per dir]}."""
    if limit is not None and (int(limit) != limit or limit < 1):
        raise MixinError(f"the song limit must be a positive integer, got {limit!r}")
    from ...songs import find_songs, read_sources

    found = [find_songs([d], need=("percussive",)) for d in dirs]  # every dir checked first
    sets = []
    for d, songs in zip(dirs, found):
        stats = {}
        for song in songs[:limit]:
            sources, sr = read_sources(song)
            if sr != params.SAMPLE_RATE:
                raise MixinError(f"{song.path}: {sr} Hz; song statistics need {params.SAMPLE_RATE} Hz")
            stats[song.name] = song_stats(sources)
        summary = {k: summarise(v[k] for v in stats.values()) for k in STATISTICS}
        sets.append({"dir": str(d), "songs": stats, "summary": summary})
    return {"statistics": {k: {"unit": u, "what": w} for k, (u, w) in STATISTICS.items()},
            "sets": sets}


def format_report(rep: dict) -> str:
    """A plain-text table: one row per statistic, one column per folder set, each cell
    "median (min .. max)"."""
    def cell(s):
        if not s["n"]:
            return "-"
        return f"{s['median']:.1f} ({s['min']:.1f} .. {s['max']:.1f})"

    def head(s):
        n = len(s["songs"])
        return f"{Path(s['dir']).name or s['dir']} ({n} song{'' if n == 1 else 's'})"

    heads = [head(s) for s in rep["sets"]]
    rows = [[f"{w} ({u})"] + [cell(s["summary"][k]) for s in rep["sets"]]
            for k, (u, w) in STATISTICS.items()]
    table = [["statistic"] + heads] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
