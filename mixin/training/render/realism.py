"""How realistic are rendered songs? Statistics of song folders, rendered and real alike.

The percussive network learns what drums are from its training songs; where rendered drums have
less low end than recorded ones, real kicks go to the harmonic output. This module measures, per
song folder (stems classed by name as for training: "drum" -> drums, "vocal" -> vocals, "mix"
ignored, anything else harmonic), the statistics in which rendered and real songs were found to
differ, so that the renderer's ranges can be checked against real records:

- ``drums_below_110``: share of the drum stem's energy below 110 Hz (kick and sub);
- ``drums_110_500``: share between 110 and 500 Hz (kick body, toms, snare body);
- ``drums_minus_harmonic_below_110``: drum energy minus harmonic energy below 110 Hz, dB
  (how much the kick dominates the bass register);
- ``drums_above_6k``: drum energy above 6 kHz relative to the whole drum stem, dB (cymbal brightness);
- ``drum_crest``: the drums' crest factor (peak over RMS) in 7 s windows where they are active,
  median over windows, dB (how compressed the drum bus is);
- ``vocals_minus_rest``: vocal energy minus everything else's in the 1 s windows where the vocals
  are active, dB (absent for songs without vocals).

:func:`report` gathers them per song and per folder set (median, minimum, maximum);
``train_util.py --render-report DIR [DIR ...]`` prints it.
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
}

#: Window of the crest factor (seconds).
CREST_WINDOW = 7.0

#: Segment length of the Welch power spectra (samples at 44.1 kHz: 5.4 Hz resolution).
NPERSEG = 8192


def song_folders(root: str | os.PathLike) -> list[Path]:
    """Song folders under ``root``: ``root`` itself if it holds audio files, else its subfolders
    that do (hidden ones skipped), sorted by name. Raises :class:`MixinError` if there is none."""
    from ..stems import AUDIO_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise MixinError(f"not a folder of songs: {root}")

    def has_audio(d):
        return any(p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
                   for p in d.iterdir() if p.is_file())

    if has_audio(root):
        return [root]
    songs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                    and has_audio(d)), key=lambda d: d.name)
    if not songs:
        raise MixinError(f"no song folders (folders of stem files) in {root}")
    return songs


def read_sources(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The stems of a song folder summed per class.

    Returns dict "drums", "harmonic", "vocals" -> float32 [shape=(n, channels)] at 44.1 kHz
    ("vocals" only if the song has a vocal stem). Raises :class:`MixinError` for a folder without
    a drum stem, stems at another rate or of other channel counts.
    """
    from ...audio import read_audio
    from ..stems import AUDIO_EXTENSIONS, classify

    names = {"percussive": "drums", "harmonic": "harmonic", "vocal": "vocals"}
    sums: dict[str, np.ndarray] = {}
    for p in sorted(Path(folder).iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        role = classify(p.name)
        if role not in names:
            continue
        x, sr = read_audio(p)
        if sr != params.SAMPLE_RATE:
            raise MixinError(f"{p}: {sr} Hz; song statistics need {params.SAMPLE_RATE} Hz stems")
        key = names[role]
        if key in sums:
            a = sums[key]
            if a.shape[1] != x.shape[1]:
                raise MixinError(f"{p}: {x.shape[1]} channels, other stems {a.shape[1]}")
            n = max(len(a), len(x))
            a = np.pad(a, ((0, n - len(a)), (0, 0)))
            a[:len(x)] += x
            sums[key] = a
        else:
            sums[key] = x
    if "drums" not in sums:
        raise MixinError(f"song folder {folder} has no drum stem (a file whose name holds 'drum')")
    n = max(len(v) for v in sums.values())
    return {k: np.pad(v, ((0, n - len(v)), (0, 0))) for k, v in sums.items()}


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
    """The :data:`STATISTICS` of one song.

    Parameters
    ----------
    sources : dict "drums", "harmonic" (optional), "vocals" (optional) -> array [shape=(n, ch)]
        at 44.1 kHz, all of one length.

    Returns dict statistic -> float (NaN where undefined: silent drums, no vocals, ...).
    """
    sr = params.SAMPLE_RATE
    drums = sources["drums"]
    harm = sources.get("harmonic")
    vocals = sources.get("vocals")
    f, pd = _spectrum(drums)
    total = pd.sum()
    low, mid, high = f < 110, (f >= 110) & (f < 500), f >= 6000
    out = {
        "drums_below_110": float(100.0 * pd[low].sum() / total) if total > 0 else float("nan"),
        "drums_110_500": float(100.0 * pd[mid].sum() / total) if total > 0 else float("nan"),
        "drums_above_6k": _db(pd[high].sum(), total),
    }
    if harm is not None:
        _, ph = _spectrum(harm)
        out["drums_minus_harmonic_below_110"] = _db(pd[low].sum(), ph[low].sum())
    else:
        out["drums_minus_harmonic_below_110"] = float("nan")

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
    """Statistics of every song under each of ``dirs`` (a folder set each) and their summaries.

    Parameters
    ----------
    dirs : folders of song folders (or song folders)
    limit : int, optional
        At most this many songs per folder set (the first by name).

    Returns
    -------
    dict with "sets": a list (one per dir) of {"dir", "songs": {name: stats}, "summary":
    {statistic: :func:`summarise`}}.
    """
    if limit is not None and (int(limit) != limit or limit < 1):
        raise MixinError(f"the song limit must be a positive integer, got {limit!r}")
    folders = [song_folders(d) for d in dirs]  # every dir checked before any is read
    sets = []
    for d, songs in zip(dirs, folders):
        stats = {s.name: song_stats(read_sources(s)) for s in songs[:limit]}
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
