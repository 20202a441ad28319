"""BSSv4 evaluation of MiXiN against baselines on songs given as stems (MUSDB18-HQ layout).

A song is a folder of stems: ``drums``, ``vocals`` and at least one other stem (``bass``, ``other``,
...), as WAV/FLAC/any format libsndfile reads. Targets:

- harmonic   = the sum of every stem that is not drums or vocals,
- percussive = drums,
- vocal      = vocals.

The mixture is the sum of the stems (a ``mixture`` file, if present, is ignored: the sum matches the
references exactly, whatever gain or coding the mixture file went through).

Scores are SigSep's BSS Eval v4 (museval: images, time-invariant distortion filters of 512 taps,
1 s windows and hops), the metric MiXiN and SiSEC 2018 report. Per song and target the score of
a metric is the median over windows, ignoring NaN windows (museval gives NaN for every target of a
window in which any reference or any estimate is silent); the overall score is the median of the
song medians, ignoring songs without a valid window.

Systems (see :func:`make_systems`): MiXiN model directories (default overlap and/or the original's
hard chunks), the HPSS + REPET-SIM baseline and the oracle NSGT soft mask
(:mod:`mixin.evaluation.baselines`).
"""

from __future__ import annotations

import concurrent.futures
import csv
import functools
import importlib.util
import io
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import params
from ..io import atomic_open, write_json, write_text
from ..errors import MixinError
from ..metrics import auto_offset  # noqa: F401  (the excerpt rule; also imported from here)
from ..songs import Song

if TYPE_CHECKING:
    from ..separation.separate import Separator

log = logging.getLogger("mixin")

TARGETS = params.SOURCES  # ("harmonic", "percussive", "vocal")
METRICS = ("SDR", "SIR", "ISR", "SAR")

#: Output files written by :func:`write_results` (in the output directory).
OUTPUT_FILES = ("scores.json", "songs.csv", "medians.csv", "medians.md", "boxplot.png")

#: Level of the deterministic dither added to an estimate that has exactly silent windows
#: (-160 dBFS RMS): museval would otherwise drop every target in those windows (or refuse a
#: wholly silent estimate), rewarding a system for outputting silence.
DITHER_RMS = 1e-8


def find_songs(roots: Iterable[str | os.PathLike],
               names: Iterable[str] | None = None) -> list[Song]:
    """Song folders to evaluate (:func:`mixin.songs.find_songs`): each must have drums, vocals and a
    harmonic stem (bass, other, ...); with ``names`` only the named folders are checked."""
    from ..songs import find_songs as find

    return find(roots, names, need=("percussive", "vocal", "harmonic"))


def load_song(song: Song, offset: float | str = 0.0, duration: float | None = None,
              mono: bool = False) -> tuple[dict[str, np.ndarray], int, float]:
    """Read a song's stems; return the target references of an excerpt (dict target -> float32
    [shape=(n, ch)]), the rate and the excerpt's start in seconds.

    ``offset``: the start in seconds, or "auto": the excerpt where all targets are most active
    (:func:`auto_offset`; 0 when ``duration``, the length in seconds, is None: to the end).
    ``mono`` downmixes every stem (the channel mean, as the original MiXiN loads audio).
    :class:`MixinError` for unreadable stems, stems of different rates or channel counts, a rate
    other than 44.1 kHz, or an offset past the end.
    """
    from ..songs import read_sources

    refs, sr = read_sources(song, mono=mono)
    if sr != params.SAMPLE_RATE:
        raise MixinError(f"{song.name}: stems are at {sr} Hz; the evaluation needs "
                         f"{params.SAMPLE_RATE} Hz (MUSDB18-HQ's rate)")
    n = len(refs["harmonic"])
    if offset == "auto":
        start = auto_offset(refs, sr, duration) * sr if duration is not None else 0
    else:
        start = int(round(float(offset) * sr))
    if start >= n:
        raise MixinError(f"{song.name}: offset {start / sr:g} s is past the end of the song "
                         f"({n / sr:.1f} s)")
    stop = n if duration is None else min(n, start + int(round(duration * sr)))
    refs = {k: np.ascontiguousarray(v[start:stop]) for k, v in refs.items()}
    return refs, sr, start / sr


@functools.lru_cache(maxsize=1)
def museval_metrics() -> ModuleType:
    """museval's BSS Eval v4 module (``museval.metrics``).

    ``import museval`` imports musdb and stempeg, which refuse to load without ffmpeg on the PATH
    although the metrics need only numpy and scipy: if that import fails, the module file is
    loaded on its own from the installed package (so ``pip install --no-deps museval`` is enough).
    """
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        raise MixinError("the evaluation needs museval: pip install museval")
    try:
        import museval.metrics as m  # noqa: PLC0415
        return m
    except Exception:  # noqa: BLE001  stempeg's RuntimeError (no ffmpeg), or musdb absent
        log.debug("import museval failed; loading museval/metrics.py on its own")
    path = os.path.join(list(spec.submodule_search_locations)[0], "metrics.py")
    mspec = importlib.util.spec_from_file_location("_mixin_museval_metrics", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


def silent_windows(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """museval's silence test per window of ``x`` [shape=(n, ch)]: the channel sum is exactly zero
    throughout; bool [shape=(n_windows,)] with museval's framing."""
    s = x.sum(axis=1)
    n_win = max(1, (len(s) - win) // hop + 1) if len(s) >= win else 1
    return np.array([not np.any(s[t * hop:t * hop + win]) for t in range(n_win)], dtype=bool)


def dither(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """``x`` plus deterministic noise of RMS :data:`DITHER_RMS` (same shape, float32)."""
    rng = np.random.default_rng(seed)
    return (x + rng.standard_normal(x.shape) * DITHER_RMS).astype(np.float32)


def bss_eval_v4(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray | None],
                win: int, hop: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """BSS Eval v4 of ``estimates`` (dict target -> [shape=(n, ch)], or None: not estimated)
    against ``references`` (dict target -> [shape=(n, ch)]) per window of ``win`` samples (hop
    ``hop``, default ``win``): dict target -> metric -> float64 [shape=(n_windows,)], NaN where
    museval gives no score, and throughout for an n/a target or a reference silent throughout."""
    hop = win if hop is None else hop
    targets = list(references)
    n, ch = references[targets[0]].shape
    n_win = max(1, (n - win) // hop + 1) if n >= win else 1
    nan = np.full(n_win, np.nan)
    frames = {t: {m: nan.copy() for m in METRICS} for t in targets}
    scored = [t for t in targets if np.any(references[t].sum(axis=1))]
    for t in targets:
        if t not in scored:
            log.warning("reference %s is silent throughout: not scored", t)
    if not scored:
        return frames
    refs, ests = [], []
    for i, t in enumerate(scored):
        ref = np.asarray(references[t], dtype=np.float64)
        est = estimates.get(t)
        if est is None:  # placeholder: each estimate is scored on its own, so this is harmless
            est = np.sum([references[k] for k in targets], axis=0)
        est = np.asarray(est, dtype=np.float32)
        if est.shape != ref.shape:
            raise MixinError(f"estimate {t} has shape {est.shape}, reference {ref.shape}")
        if np.any(silent_windows(est, win, hop)):
            est = dither(est, seed=i)
        refs.append(ref)
        ests.append(est.astype(np.float64))
    m = museval_metrics()
    sdr, isr, sir, sar, _ = m.bss_eval(np.stack(refs), np.stack(ests), window=win, hop=hop,
                                       compute_permutation=False, framewise_filters=False,
                                       bsseval_sources_version=False)
    for i, t in enumerate(scored):
        if estimates.get(t) is None:
            continue
        for name, arr in zip(("SDR", "ISR", "SIR", "SAR"), (sdr, isr, sir, sar)):
            frames[t][name] = np.asarray(arr[i], dtype=np.float64)
    return frames


def median_over_windows(values: Iterable[float] | np.ndarray) -> float:
    """Median of a song's window scores, ignoring NaN windows (NaN if none is valid)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else float("nan")


#: Median of song medians, ignoring NaN songs (NaN if none is valid).
median_over_songs = median_over_windows


def song_medians(frames: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """dict target -> metric -> per-window array  =>  dict target -> metric -> median."""
    return {t: {m: median_over_windows(v) for m, v in d.items()} for t, d in frames.items()}


class System:
    """A separation system: ``separate(mixture, sr, references)`` -> dict target -> array|None."""

    name = "system"
    kind = "system"

    def describe(self) -> dict[str, Any]:
        """What the results record about the system (JSON-serialisable)."""
        return {"name": self.name, "kind": self.kind}

    def separate(self, mixture: np.ndarray, sr: int,  # pragma: no cover - interface
                 references: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
        """Estimates [shape=mixture.shape] per target of ``mixture`` [shape=(n, ch)] at ``sr`` Hz
        (None: not estimated); only the oracle looks at ``references``."""
        raise NotImplementedError


_SEPARATORS = {}


class ModelSystem(System):
    """MiXiN with the models of ``model_dir``; ``overlap`` None = the separator's default;
    ``backend`` as for :class:`~mixin.separation.separate.Separator`."""

    kind = "mixin"

    def __init__(self, name: str, model_dir: str | os.PathLike, overlap: float | None = None,
                 backend: str = "auto") -> None:
        self.name, self.model_dir, self.overlap = name, str(model_dir), overlap
        self.backend = backend

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "model_dir": self.model_dir,
                "overlap": params.DEFAULT_OVERLAP if self.overlap is None else self.overlap,
                "backend": self.backend}

    def separator(self) -> Separator:
        """The separator of these models (one per process and setting: models load once)."""
        key = (self.model_dir, self.overlap, self.backend)
        if key not in _SEPARATORS:  # one per process: models load once per worker
            from ..separation.separate import Separator

            kw = {} if self.overlap is None else {"overlap": self.overlap}
            _SEPARATORS[key] = Separator(model_dir=self.model_dir, backend=self.backend, **kw)
        return _SEPARATORS[key]

    def separate(self, mixture: np.ndarray, sr: int,
                 references: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
        out = self.separator().separate(mixture, sr)
        return {t: out.get(t) for t in TARGETS}


class HPSSSystem(System):
    """librosa's median-filtering HPSS (harmonic, percussive) + REPET-SIM (vocal)."""

    name = "HPSS/REPET-SIM"
    kind = "hpss"

    def __init__(self, vocal: bool = True) -> None:
        self.vocal = vocal

    def separate(self, mixture: np.ndarray, sr: int,
                 references: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
        from . import baselines

        h, p = baselines.hpss(mixture, sr)
        v = baselines.repet_sim(mixture, sr) if self.vocal else None
        return {"harmonic": h, "percussive": p, "vocal": v}


class OracleSystem(System):
    """The oracle NSGT soft mask built from the true targets (upper bound of MiXiN's masking)."""

    name = "oracle"
    kind = "oracle"

    def separate(self, mixture: np.ndarray, sr: int,
                 references: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
        from . import baselines

        return baselines.oracle(references)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``DIR``, ``LABEL=DIR`` or the name of an installed model set (``mixin``, see
    :mod:`mixin.modelsets`) -> (label, dir). The label defaults to the folder's or set's name."""
    from ..modelsets import holds_set, installed_sets

    label, sep, path = spec.partition("=")
    if not sep:
        label, path = "", spec
    if not path:
        raise MixinError(f"--model-dir {spec!r}: no directory given")
    sets = installed_sets()
    if path in sets and not holds_set(path):
        return label or path, sets[path]
    label = label or Path(path.rstrip("/\\")).name or path
    return label, path


def check_model_dir(path: str | os.PathLike, backend: str = "auto") -> str:
    """A model directory must hold the three networks that ``backend`` runs; returns the backend
    ("onnx" or "tf"); raises MixinError naming what is missing (:func:`mixin.backends.choose`)."""
    from ..backends import choose

    return choose(backend, path)


def make_systems(model_dirs: Iterable[str] = (), variants: str = "both", hpss: bool = True,
                 oracle: bool = True, backend: str = "auto") -> list[System]:
    """The systems to compare: for each of ``model_dirs`` ("DIR" or "LABEL=DIR"), MiXiN with the
    default overlap (named LABEL) and/or the original's hard chunks ("LABEL no-overlap") as
    ``variants`` ("both", "default" or "no-overlap") says, its networks run by ``backend``; the
    HPSS/REPET-SIM baseline (needs librosa) and the oracle soft mask with ``hpss``, ``oracle``.
    :class:`MixinError` for a bad ``variants``, a model directory without the three networks, a
    missing librosa, two systems of one name, or no system at all.
    """
    if variants not in ("both", "default", "no-overlap"):
        raise MixinError(f"variants must be both, default or no-overlap, got {variants!r}")
    systems, names = [], set()
    for spec in model_dirs:
        label, path = parse_model_spec(spec)
        kind = check_model_dir(path, backend)
        if variants in ("both", "default"):
            systems.append(ModelSystem(label, path, None, kind))
        if variants in ("both", "no-overlap"):
            systems.append(ModelSystem(f"{label} no-overlap", path, 0.0, kind))
    if hpss:
        if importlib.util.find_spec("librosa") is None:
            raise MixinError("the HPSS/REPET-SIM baseline needs librosa: pip install librosa "
                             "(or leave the baseline out with --no-hpss)")
        systems.append(HPSSSystem())
    if oracle:
        systems.append(OracleSystem())
    for s in systems:
        if s.name in names:
            raise MixinError(f"two systems named {s.name!r}: give labels, --model-dir LABEL=DIR")
        names.add(s.name)
    if not systems:
        raise MixinError("nothing to evaluate: no model directory and no baseline")
    return systems


def evaluate_song(song: Song, systems: Sequence[System], offset: float | str = "auto",
                  duration: float | None = None, mono: bool = False) -> dict[str, Any]:
    """Separate one song's mixture with every system and score it: dict with "name", "offset_s",
    "duration_s", "channels" and "systems": name -> {"frames": target -> metric -> list,
    "medians": target -> metric -> float, "separate_s", "score_s"}."""
    refs, sr, start = load_song(song, offset, duration, mono)
    mixture = np.sum(list(refs.values()), axis=0, dtype=np.float32)
    n, ch = mixture.shape
    result = {"name": song.name, "offset_s": start, "duration_s": n / sr, "channels": ch,
              "systems": {}}
    for system in systems:
        t0 = time.perf_counter()
        est = system.separate(mixture, sr, refs)
        t1 = time.perf_counter()
        for t, e in est.items():
            if e is not None and np.shape(e) != mixture.shape:
                raise MixinError(f"{system.name} returned {t} of shape {np.shape(e)} for a "
                                 f"mixture of shape {mixture.shape}")
        frames = bss_eval_v4(refs, {t: est.get(t) for t in TARGETS}, win=sr, hop=sr)
        t2 = time.perf_counter()
        result["systems"][system.name] = {
            "frames": {t: {m: v.tolist() for m, v in d.items()} for t, d in frames.items()},
            "medians": song_medians(frames),
            "separate_s": t1 - t0, "score_s": t2 - t1}
        sdr = " ".join(f"{t[0].upper()} {result['systems'][system.name]['medians'][t]['SDR']:.2f}"
                       for t in TARGETS)
        log.info("%s / %s: SDR %s (separated in %.1f s, scored in %.1f s)", song.name,
                 system.name, sdr, t1 - t0, t2 - t1)
    return result


def _worker_init(level):
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger("mixin").setLevel(level)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run(songs: Sequence[Song], systems: Sequence[System], offset: float | str = "auto",
        duration: float | None = None, mono: bool = False, jobs: int = 1,
        progress: bool = True) -> dict[str, Any]:
    """Evaluate every system on every song, songs in parallel in ``jobs`` processes: dict with
    "config", "songs" (:func:`evaluate_song` results, in song order), "medians" (system -> target
    -> metric -> median over songs), "vs_hpss" (:func:`vs_hpss`), "time_s"."""
    if int(jobs) != jobs or jobs < 1:
        raise MixinError(f"jobs must be a positive integer, got {jobs!r}")
    if duration is not None and not duration > 0:
        raise MixinError(f"duration must be positive, got {duration!r}")
    if offset != "auto" and not float(offset) >= 0:
        raise MixinError(f"offset must be >= 0 seconds or 'auto', got {offset!r}")
    museval_metrics()  # fail now, not after the first separation, if museval is missing
    t0 = time.perf_counter()
    results = [None] * len(songs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(songs), unit="song", desc="evaluating")
    try:
        if jobs == 1 or len(songs) == 1:
            for i, song in enumerate(songs):
                results[i] = evaluate_song(song, systems, offset, duration, mono)
                if bar:
                    bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork after TensorFlow threads start
            with concurrent.futures.ProcessPoolExecutor(
                    max_workers=min(jobs, len(songs)), mp_context=ctx, initializer=_worker_init,
                    initargs=(log.getEffectiveLevel(),)) as pool:
                futures = {pool.submit(evaluate_song, s, systems, offset, duration, mono): i
                           for i, s in enumerate(songs)}
                for f in concurrent.futures.as_completed(futures):
                    results[futures[f]] = f.result()
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()
    names = [s.name for s in systems]
    medians = {
        name: {t: {m: median_over_songs([r["systems"][name]["medians"][t][m] for r in results])
                   for m in METRICS} for t in TARGETS}
        for name in names}
    from .. import __version__

    out = {"version": __version__,
           "config": {"offset": offset, "duration": duration, "mono": bool(mono),
                      "window_s": 1.0, "hop_s": 1.0, "metric": "BSS Eval v4 (museval)",
                      "systems": [s.describe() for s in systems]},
           "songs": results, "medians": medians}
    out["vs_hpss"] = vs_hpss(out)
    out["time_s"] = time.perf_counter() - t0
    return out


def _json_safe(v):
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else v
    return int(v) if isinstance(v, np.integer) else v


def _fmt(v, width=7):
    return f"{'n/a':>{width}}" if v is None or math.isnan(v) else f"{v:{width}.2f}"


def system_names(results: dict[str, Any]) -> list[str]:
    """The names of the systems of :func:`run`'s results, in their order."""
    return [s["name"] for s in results["config"]["systems"]]


def vs_hpss(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each system's SDR minus HPSS's on the same song: per target the median over songs, and
    ``"all"``, the median over every (song, target) — the validation panel's score (the form in
    which MiXiN's model sets are compared, docs/models.md). {} when HPSS is not among the systems.
    Songs or targets where either SDR is undefined (a silent target) are left out."""
    kinds = {s["name"]: s.get("kind") for s in results["config"]["systems"]}
    hpss = [n for n, k in kinds.items() if k == "hpss"]
    if not hpss:
        return {}
    out = {}
    for n in (n for n in kinds if n != hpss[0]):
        diffs = {t: [] for t in TARGETS}
        for r in results["songs"]:
            for t in TARGETS:
                d = r["systems"][n]["medians"][t]["SDR"] - r["systems"][hpss[0]]["medians"][t]["SDR"]
                if not math.isnan(d):
                    diffs[t].append(d)
        row = {t: float(np.median(v)) if v else math.nan for t, v in diffs.items()}
        every = [d for v in diffs.values() for d in v]
        row["all"] = float(np.median(every)) if every else math.nan
        out[n] = row
    return out


def format_table(results: dict[str, Any], metrics: Sequence[str] = METRICS) -> str:
    """Plain-text table of the medians: one row per system; columns SDR-H SDR-P SDR-V SIR-H ..."""
    names = system_names(results)
    w = max(8, max(len(n) for n in names))
    cols = [(t, m) for m in metrics for t in TARGETS]
    head = f"{'system':{w}} " + " ".join(f"{m + '-' + t[0].upper():>7}" for t, m in cols)
    lines = [f"median BSSv4 (dB) over {len(results['songs'])} song(s); H = harmonic, "
             f"P = percussive, V = vocal", head]
    for n in names:
        med = results["medians"][n]
        lines.append(f"{n:{w}} " + " ".join(_fmt(med[t][m]) for t, m in cols))
    diff = results["vs_hpss"] if "vs_hpss" in results else vs_hpss(results)
    if diff:
        lines += ["SDR minus HPSS's on the same song (dB): median over songs per target; all = median "
                  "over every song and target", f"{'system':{w}} " + " ".join(
                      f"{c:>7}" for c in ("H", "P", "V", "all"))]
        for n, row in diff.items():
            lines.append(f"{n:{w}} " + " ".join(_fmt(row[c]) for c in (*TARGETS, "all")))
    return "\n".join(lines)


def format_markdown(results: dict[str, Any]) -> str:
    """Markdown: median SDR per system and target, each system's SDR minus HPSS's
    (:func:`vs_hpss`, when HPSS was scored), then SDR/SIR/ISR/SAR per system and target."""
    names = system_names(results)
    lines = ["| system | " + " | ".join(f"{t} SDR" for t in TARGETS) + " |",
             "|---|" + "---:|" * len(TARGETS)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(_fmt(results["medians"][n][t]["SDR"], 0).strip()
                                             for t in TARGETS) + " |")
    diff = results["vs_hpss"] if "vs_hpss" in results else vs_hpss(results)
    if diff:
        lines += ["", "SDR minus HPSS's on the same song: median over songs per target; *all*: median "
                  "over every song and target.", "",
                  "| system | " + " | ".join(f"{t} vs HPSS" for t in TARGETS) + " | all |",
                  "|---|" + "---:|" * (len(TARGETS) + 1)]
        for n, row in diff.items():
            lines.append(f"| {n} | " + " | ".join(_fmt(row[c], 0).strip() for c in (*TARGETS, "all"))
                         + " |")
    lines += ["", "| system | target | SDR | SIR | ISR | SAR |", "|---|---|---:|---:|---:|---:|"]
    for n in names:
        for t in TARGETS:
            med = results["medians"][n][t]
            lines.append(f"| {n} | {t} | " + " | ".join(_fmt(med[m], 0).strip() for m in METRICS)
                         + " |")
    return "\n".join(lines) + "\n"


def check_outdir(outdir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse to overwrite earlier results unless asked; make sure the folder can be written.

    Nothing is created: a missing folder must be creatable (its nearest existing parent a
    writable folder); :func:`write_results` creates it. Raises :class:`MixinError`.
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise MixinError(f"output path is not a folder: {outdir}")
    existing = [f for f in OUTPUT_FILES if (outdir / f).exists()]
    if existing and not overwrite:
        raise MixinError(f"{outdir} already holds results ({', '.join(existing)}); "
                         f"use --overwrite or another --outdir")
    parent = outdir.absolute()
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        raise MixinError(f"cannot create output folder {outdir}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MixinError(f"output folder is not writable: {parent}")


def write_results(results: dict[str, Any], outdir: str | os.PathLike,
                  overwrite: bool = False) -> list[Path]:
    """Write scores.json, songs.csv, medians.csv, medians.md and boxplot.png, each atomically
    (:mod:`mixin.io`); return their paths. :class:`MixinError` as :func:`check_outdir`."""
    check_outdir(outdir, overwrite)
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MixinError(f"cannot create output folder {outdir}: {e.strerror}") from None
    write_json(outdir / "scores.json", _json_safe(results))

    names, songs = system_names(results), results["songs"]
    _write_csv(outdir / "songs.csv", ["system", "song", "target", *METRICS, "offset_s", "duration_s",
                                      "separate_s"],
               ([n, r["name"], t, *(_csv_num(r["systems"][n]["medians"][t][m]) for m in METRICS),
                 f"{r['offset_s']:g}", f"{r['duration_s']:.3f}", f"{r['systems'][n]['separate_s']:.3f}"]
                for r in songs for n in names for t in TARGETS))
    _write_csv(outdir / "medians.csv", ["system", "target", *METRICS, "n_songs"],
               ([n, t, *(_csv_num(results["medians"][n][t][m]) for m in METRICS),
                 sum(not math.isnan(r["systems"][n]["medians"][t]["SDR"]) for r in songs)]
                for n in names for t in TARGETS))
    write_text(outdir / "medians.md", format_markdown(results))
    plot_boxes(results, outdir / "boxplot.png")
    return [outdir / f for f in OUTPUT_FILES]


def _csv_num(v):
    return "" if math.isnan(v) else f"{v:.4f}"


def _write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text(path, buf.getvalue())


def plot_boxes(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Box plot of SDR per 1 s window (all songs pooled), one panel per target, systems side by
    side; a diamond marks the table's value (median over songs of the per-song medians)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = system_names(results)
    fig, axes = plt.subplots(1, len(TARGETS), figsize=(4 + 1.3 * len(names) * len(TARGETS) / 2, 4.5),
                             sharey=True)
    for ax, t in zip(np.atleast_1d(axes), TARGETS):
        data, pos, meds = [], [], []
        for i, n in enumerate(names):
            v = np.concatenate([np.asarray(r["systems"][n]["frames"][t]["SDR"], float)
                                for r in results["songs"]]) if results["songs"] else np.array([])
            v = v[np.isfinite(v)]
            if v.size:
                data.append(v)
                pos.append(i)
            meds.append(results["medians"][n][t]["SDR"])
        if data:
            ax.boxplot(data, positions=pos, widths=0.6, showfliers=False)
        for i, m in enumerate(meds):
            if math.isfinite(m):
                ax.plot(i, m, "D", color="tab:red", markersize=5)
            elif math.isnan(m):
                ax.text(i, 0.5, "n/a", ha="center", transform=ax.get_xaxis_transform())
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_xlim(-0.7, len(names) - 0.3)
        ax.set_title(t)
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("SDR (dB), 1 s windows")
    cfg = results["config"]
    excerpt = "whole songs" if cfg["duration"] is None else f"{cfg['duration']:g} s excerpts"
    fig.suptitle(f"BSSv4 SDR, {len(results['songs'])} song(s), {excerpt}, "
                 f"{'mono' if cfg['mono'] else 'stereo'} (diamond: median of song medians)",
                 fontsize=9)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
