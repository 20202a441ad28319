"""The validation panel: a model judged against median-filtering HPSS on many held-out songs.

Two real songs cannot tell training settings apart (their scores move by 1-3 dB with the initial
weights alone), and a model that fits them may still lose to HPSS on music it has never heard. The
panel scores a separator on every song of a set of held-out song folders — real songs and rendered
songs of the renderer's validation split — and compares it with the classic method on the same
excerpt:

    selection = median over every (song, target) of (model's window SDR - HPSS's window SDR)

(targets a song does not have, such as vocals in an instrumental song, are left out). A model is
rewarded for beating HPSS everywhere, not for fitting two songs. HPSS here is the evaluation's
baseline (:class:`mixin.evaluation.evaluate.HPSSSystem`: librosa's median-filtering HPSS, vocals by
REPET-SIM); its scores depend only on the songs and are computed once per panel (and cached).

The window SDR is :func:`mixin.metrics.window_sdr` (the ``--train-mix`` validation metric): the
median over active 1 s windows. The excerpt of each song is the ``duration`` s where its sources
are most active (:func:`mixin.metrics.auto_offset`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import params
from ..io import write_json
from ..errors import MixinError
from ..metrics import auto_offset, window_sdr

if TYPE_CHECKING:
    from ..separation.separate import Separator

log = logging.getLogger("mixin")

#: Bump when the baseline's computation changes (invalidates cached baseline scores).
CACHE_VERSION = 1


@dataclass
class PanelSong:
    """One excerpt of the panel: ``refs`` target -> float32 [shape=(n, ch)], ``mixture`` their sum,
    ``baseline`` target -> HPSS's window SDR (NaN for a target the song does not have)."""

    name: str
    kind: str                      # "real" or "rendered"
    path: str
    start: float
    mixture: np.ndarray
    refs: dict
    baseline: dict = field(default_factory=dict)


def _excerpt(song, duration: float) -> tuple[dict[str, np.ndarray], float]:
    from ..songs import read_sources

    refs, sr = read_sources(song)
    if sr != params.SAMPLE_RATE:
        raise MixinError(f"{song.name}: stems at {sr} Hz; the panel needs {params.SAMPLE_RATE} Hz")
    start = auto_offset(refs, sr, duration)
    a, b = start * sr, start * sr + int(round(duration * sr))
    return {s: np.ascontiguousarray(r[a:b]) for s, r in refs.items()}, float(start)


def _baseline_scores(mixture: np.ndarray, refs: dict[str, np.ndarray]) -> dict[str, float]:
    from .evaluate import HPSSSystem

    est = HPSSSystem().separate(mixture, params.SAMPLE_RATE, refs)
    return {s: window_sdr(refs[s], est[s]) for s in params.SOURCES}


def load_panel(real: Sequence[str | os.PathLike] = (), real_names: Iterable[str] | None = None,
               rendered: Sequence[str | os.PathLike] = (), duration: float = 20.0,
               cache: str | os.PathLike | None = None) -> list[PanelSong]:
    """Read the panel's songs and their HPSS scores.

    Parameters
    ----------
    real : folders of real song folders (e.g. ``../shared/stems``); ``real_names`` picks songs
    rendered : folders of rendered held-out songs (``--render-stems --split validation``)
    duration : seconds scored per song
    cache : JSON file of the HPSS scores (read if it matches, written otherwise)

    Raises :class:`MixinError` for no songs, unreadable stems or a bad duration.
    """
    from ..songs import find_songs

    if not (isinstance(duration, (int, float)) and 1.0 <= duration <= 600.0):
        raise MixinError(f"panel duration must be 1 to 600 seconds, got {duration!r}")
    listed = []
    if real:
        listed += [(s, "real") for s in find_songs(real, real_names, need=("percussive",))]
    if rendered:
        listed += [(s, "rendered") for s in find_songs(rendered, need=("percussive",))]
    if not listed:
        raise MixinError("the panel has no songs (give real and/or rendered song folders)")
    cached = _read_cache(cache, duration)
    panel, changed = [], False
    for song, kind in listed:
        refs, start = _excerpt(song, duration)
        mixture = np.sum([refs[s] for s in params.SOURCES], axis=0, dtype=np.float32)
        key = f"{kind}:{song.name}:{start:g}"
        if key not in cached:
            cached[key] = _baseline_scores(mixture, refs)
            changed = True
        panel.append(PanelSong(song.name, kind, song.path, start, mixture, refs, dict(cached[key])))
    if cache is not None and changed:
        write_json(cache, {"version": CACHE_VERSION, "duration": duration,
                                  "baseline": {k: _json_safe(v) for k, v in cached.items()}})
    return panel


def _json_safe(scores: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if not np.isfinite(v) else round(float(v), 4)) for k, v in scores.items()}


def _read_cache(path, duration) -> dict[str, dict[str, float]]:
    if path is None or not Path(path).is_file():
        return {}
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if rec.get("version") != CACHE_VERSION or rec.get("duration") != duration:
        return {}
    return {k: {s: float("nan") if v is None else float(v) for s, v in sc.items()}
            for k, sc in rec.get("baseline", {}).items()}


def score(separator: Separator, panel: Sequence[PanelSong]) -> dict[str, Any]:
    """Separate every panel song and score it against HPSS.

    Returns
    -------
    dict with
    - "songs": {name: {"kind", target: model SDR, "hpss_" + target: HPSS SDR}},
    - "selection": median over (song, target) of model minus HPSS (dB; the panel's score),
    - "real" / "rendered" / "all": {target: median model SDR over those songs, "vs_hpss": median
      difference over their (song, target) pairs}.
    """
    songs: dict[str, dict[str, Any]] = {}
    for song in panel:
        est = separator.separate(song.mixture, params.SAMPLE_RATE)
        row: dict[str, Any] = {"kind": song.kind}
        for s in separator.sources:
            row[s] = window_sdr(song.refs[s], est[s])
            row["hpss_" + s] = song.baseline.get(s, float("nan"))
        songs[song.name] = row
    out: dict[str, Any] = {"songs": songs}
    for group in ("real", "rendered", "all"):
        rows = [r for r in songs.values() if group == "all" or r["kind"] == group]
        if not rows:
            continue
        out[group] = summarise(rows, separator.sources)
    out["selection"] = out["all"]["vs_hpss"]
    return out


def summarise(rows: Iterable[dict[str, Any]], sources: Sequence[str] = params.SOURCES) -> dict[str, float]:
    """Median model SDR per target and the median model-minus-HPSS difference over every
    (song, target) pair where both are finite (NaN when there is none)."""
    rows = list(rows)
    out = {}
    for s in sources:
        v = [r[s] for r in rows if np.isfinite(r[s])]
        out[s] = float(np.median(v)) if v else float("nan")
    diffs = [r[s] - r["hpss_" + s] for r in rows for s in sources
             if np.isfinite(r[s]) and np.isfinite(r["hpss_" + s])]
    out["vs_hpss"] = float(np.median(diffs)) if diffs else float("nan")
    return out
