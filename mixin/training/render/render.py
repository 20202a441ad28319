"""The ``--render-stems`` stage: render multitrack songs as training material (docs/training.md,
"Rendering training songs", describes the songs, the held-out material and the records).

A song folder ``render-{split}-{i:04d}`` holds ``drums``, ``bass``, ``other`` and, in some songs,
``vocals`` (16-bit 44.1 kHz stereo FLAC; the mixture is their sum): a Groove MIDI performance
(:mod:`.grooves`) on a recorded kit (:mod:`.drumkits`), generated parts (:mod:`.backing`), excerpts
of real vocal stems, each through its effects (:mod:`.fx`), then balanced (:func:`render_song`).
Song ``i`` draws everything from ``numpy.random.default_rng([seed, i])``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import operator
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ... import io as audio, params
from ...io import files as fileio
from ...errors import MixinError
from . import backing, drumkits, fluid, fx, grooves

log = logging.getLogger("mixin")

SPLITS = grooves.SPLITS

#: Stems written per song (vocals only in songs that have them).
STEMS = ("drums", "bass", "other", "vocals")

#: File format of the stems.
STEM_EXT = ".flac"
STEM_SUBTYPE = "PCM_16"

#: Song folder names and the tables written beside them.
SONG_DIR = "render-{split}-{index:04d}"
SONG_DIR_RE = re.compile(r"^render-(train|validation|test)-(\d{4,})$")
TMP_PREFIX = ".tmp-render-"
SONGS_JSON = "songs.json"
SONGS_CSV = "songs.csv"
FORMAT = "mixin-render/1"

#: Shortest and longest song (s); most songs.
MIN_DURATION = 4.0
MAX_DURATION = 1800.0
MAX_SONGS = 100000

#: Render profiles. "classic": the renders the shipped models were trained on. "recorded": their
#: statistics moved to span those of real records (measured with ``--render-report``: rendered
#: drums had less low end, more cymbal and a higher crest factor than any real song's, and vocals
#: sat 7 dB louder in the mix): a drum bus with a kick low shelf, a cymbal shelf and bus compression
#: (:func:`mixin.training.render.fx.drum_bus`), and vocals drawn quieter. The recorded profile draws
#: its settings from a stream of its own, so every other choice of a song is the classic one.
#: "wide": the recorded profile, and a share of songs (``sub``) of the opposite case, a loud sub
#: bass under sparse kicks (some real records have their low end in the bass: Potassium's drums
#: are 15 dB under its harmonic part below 110 Hz; recorded renders reached -8 dB), drawn from a
#: third stream of their own (:data:`SUB_BASS`), so the other songs are the recorded profile's.
#: "synth": the wide profile, and in a share of songs (``synth``) the bass line played by a sine
#: sub bass (:func:`mixin.training.render.backing.synth_bass`): the harmonic low end of electronic
#: records has almost nothing above 150 Hz (Potassium's and Rubidium's are 17 dB purer than any
#: GM bass's), drawn from a fourth stream, so the other songs are the wide profile's.
PROFILES = {"classic": {"drum_bus": False, "vocals_db": None, "sub": 0.0, "synth": 0.0},
            "recorded": {"drum_bus": True, "vocals_db": (-16.0, 0.0), "sub": 0.0, "synth": 0.0},
            "wide": {"drum_bus": True, "vocals_db": (-16.0, 0.0), "sub": 0.3, "synth": 0.0},
            "synth": {"drum_bus": True, "vocals_db": (-16.0, 0.0), "sub": 0.3, "synth": 0.4}}
DEFAULT_PROFILE = "classic"

#: A sub-bass song: the share of kicks kept, the bass's low shelf (Hz, dB), and bounds on the
#: balance (dB): bass vs other at least, drums vs bass+other at most a value drawn from these.
SUB_BASS = {"kick_keep": (0.15, 0.6), "shelf_hz": (50.0, 100.0), "shelf_db": (6.0, 14.0),
            "bass_vs_other": (0.0, 8.0), "drums_db": (-15.0, -3.0)}

#: Balance (dB): bass vs other (+-), drums vs bass+other (range), vocals vs the rest (range).
BASS_OTHER_DB = 6.0
DRUMS_DB = (-15.0, 8.0)
VOCALS_DB = (-6.0, 6.0)

#: Level each stem is normalised to before the balance (active RMS, dBFS).
NORMALISE_DB = -20.0

#: Largest peak of the sum of the stems (and of any stem) before quantisation; the peak is drawn
#: in this range.
PEAK_RANGE = (0.5, 0.9)
MAX_STEM_PEAK = 0.98

#: Chance that a song with vocal dirs has vocals; excerpts per song; bars per excerpt.
VOCAL_PROBABILITY = 0.7
VOCAL_EXCERPTS = (1, 2, 3)
VOCAL_BARS = (2, 4, 4, 8)
VOCAL_FX_PROBABILITY = 0.5

#: Chances of silent passages: drums that enter late, a drum break, bars without bass / other.
DRUM_INTRO_PROBABILITY = 0.3
DRUM_BREAK_PROBABILITY = 0.3
PART_BREAK_PROBABILITY = 0.25

#: Ramps of muted passages and of the song's end (s).
RAMP = 0.020

CREDITS = {"drums": f"{grooves.CREDIT} ({grooves.CREDIT_URL})"}


# --- arguments ---

def _check_int(name, value, minimum, maximum=None):
    try:
        v = operator.index(value)
    except TypeError:
        raise MixinError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or v < minimum or (maximum is not None and v > maximum):
        rng = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise MixinError(f"{name} must be an integer {rng}, got {value!r}")
    return v


def find_vocal_files(vocal_dirs: Iterable[str | os.PathLike] | None) -> list[str]:
    """Vocal stems under each dir (recursively; song folders holding ``vocals.*``), sorted.

    MixinError naming a dir that is missing, not a directory or holds no vocal file."""
    from ...songs import is_audio  # noqa: PLC0415
    from ..stems import find_song_folders  # noqa: PLC0415  (the one walk over song folders)

    files = []
    for d in vocal_dirs or ():
        d = Path(d)
        if not d.exists():
            raise MixinError(f"vocal directory not found: {d}")
        if not d.is_dir():
            raise MixinError(f"vocal directory is not a directory: {d}")
        try:
            songs = find_song_folders([d])
        except MixinError:  # no audio at all
            songs = []
        here = [f for _, fs in songs for f in fs if "vocal" in f.name.lower() and is_audio(f)]
        if not here:
            raise MixinError(f"no vocal stem (a file named like vocals.flac) under vocal directory {d}")
        files += sorted(here)
    seen, out = set(), []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            out.append(str(f.resolve()))
    return out


def _check_args(songs, duration, seed, split, profile, jobs, vocal_dirs, render_dir, overwrite):
    """The arguments of :func:`render_stems`, checked and normalised, before any work."""
    songs = _check_int("number of songs", songs, 1, MAX_SONGS)
    try:
        duration = float(duration)
    except (TypeError, ValueError):
        raise MixinError(f"duration must be a number of seconds, got {duration!r}") from None
    if not (math.isfinite(duration) and MIN_DURATION <= duration <= MAX_DURATION):
        raise MixinError(f"duration must be between {MIN_DURATION:g} and {MAX_DURATION:g} seconds, "
                         f"got {duration:g}")
    seed = _check_int("seed", seed, 0)
    if split not in SPLITS:
        raise MixinError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if profile not in PROFILES:
        raise MixinError(f"unknown render profile {profile!r} (choose from {', '.join(PROFILES)})")
    jobs = _check_int("jobs", jobs, 1, 256)
    if isinstance(vocal_dirs, (str, os.PathLike)):
        vocal_dirs = [vocal_dirs]
    vocal_files = find_vocal_files(vocal_dirs)
    for f in vocal_files:  # headers only: a bad vocal stem is named before any work
        audio.probe(f)
    render_dir = Path(render_dir)
    if render_dir.exists() and not render_dir.is_dir():
        raise MixinError(f"render directory is not a directory: {render_dir}")
    if render_dir.is_dir():
        entries = sorted(p.name for p in render_dir.iterdir())
        if entries and not overwrite:
            raise MixinError(f"render directory {render_dir} is not empty ({entries[0]}, {len(entries)} "
                             "entries); use --overwrite to replace the songs rendered there")
    return songs, duration, seed, jobs, vocal_dirs, vocal_files, render_dir


# --- per-process caches ---

_load_index = functools.lru_cache(maxsize=None)(grooves.load_index)


def _grooves(groove_dir, split):
    return _load_index(None if groove_dir is None else str(groove_dir), split)


#: Hop of the vocal activity envelope (s) and the level below the loudest hop that still counts
#: as singing (dB).
VOCAL_HOP = 0.25
VOCAL_ACTIVE_DB = 25.0


@functools.lru_cache(maxsize=None)
def _vocal_activity(path):
    """(sample rate, frames, per-hop RMS in dB) of a vocal stem, computed once per process."""
    info = audio.probe(path)
    hop = max(1, int(round(VOCAL_HOP * info.samplerate)))
    env = []
    for block in audio.iter_blocks(path, hop * 64):
        k = len(block) // hop
        if k:
            b = block[: k * hop].reshape(k, hop, -1)
            env.append(np.sqrt(np.mean(np.square(b, dtype=np.float64), axis=(1, 2))))
    env = np.concatenate(env) if env else np.zeros(0)
    db = 20 * np.log10(np.maximum(env, 1e-10))
    return info.samplerate, info.frames, db


def _read_excerpt(path, start, frames):
    """Frames ``start .. start+frames`` of an audio file at its own rate [shape=(frames, ch)]."""
    try:
        with audio.sound_file(path) as f:
            f.seek(start)
            x = f.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as e:  # libsndfile's are RuntimeErrors
        raise MixinError(f"cannot read vocal stem {path}: {' '.join(str(e).split())}") from None
    if not np.isfinite(x).all():
        raise MixinError(f"vocal stem {path} has NaN or Inf samples")
    return x


# --- one song ---

def _ramp_envelope(n, muted, ramp):
    """Gain envelope [shape=(n,)]: 0 in the muted sample ranges, 1 elsewhere, linear ramps."""
    env = np.ones(n, dtype=np.float32)
    for a, b in muted:
        a, b = max(0, a), min(n, b)
        if b <= a:
            continue
        env[a:b] = 0
        r = min(ramp, a)
        if r:
            env[a - r:a] = np.minimum(env[a - r:a], np.linspace(1, 0, r, endpoint=False, dtype=np.float32))
        r = min(ramp, n - b)
        if r:
            env[b:b + r] = np.minimum(env[b:b + r], np.linspace(0, 1, r, endpoint=False, dtype=np.float32))
    return env


def _silent_bars(rng, n_bars, intro_p, break_p):
    """Bar ranges [(first, stop)] of a silent passage: an intro of 1-4 bars and/or a break of
    1-4 bars after the first quarter of the song."""
    out = []
    if n_bars >= 8 and rng.random() < intro_p:
        out.append((0, int(rng.integers(1, 5))))
    if n_bars >= 8 and rng.random() < break_p:
        length = int(rng.integers(1, 5))
        start = int(rng.integers(max(1, n_bars // 4), max(2, n_bars - length)))
        if not out or start >= out[-1][1]:
            out.append((start, start + length))
    return out


def _level(x, sr):
    """Active RMS in dB, or None for (nearly) silent audio."""
    if not np.any(x):
        return None
    v = float(fx.active_rms_db(x, sr))
    return v if math.isfinite(v) and v > -100 else None


def _make_vocals(rng, vocal_files, n, bar_s, n_bars):
    """Excerpts of a real vocal stem on bar lines: (float32 [shape=(2, n)], info)."""
    sr = params.SAMPLE_RATE
    path = vocal_files[int(rng.integers(len(vocal_files)))]
    fsr, frames, db = _vocal_activity(path)
    active = np.flatnonzero(db > max(db.max(initial=-200) - VOCAL_ACTIVE_DB, -60)) if len(db) else []
    out = np.zeros((2, n), dtype=np.float32)
    excerpts = []
    k = int(rng.choice(VOCAL_EXCERPTS))
    taken = np.zeros(n_bars + 8, dtype=bool)
    for _ in range(k):
        bars = int(min(rng.choice(VOCAL_BARS), max(1, n_bars)))
        first = int(rng.integers(0, max(1, n_bars - bars + 1)))
        if taken[first:first + bars].any():
            continue
        length_s = bars * bar_s
        need = int(math.ceil(length_s * fsr))
        hop = max(1, int(round(VOCAL_HOP * fsr)))
        starts = [int(a) * hop for a in active if int(a) * hop + need <= frames]
        if not starts:
            starts = [0] if frames > 0 else []
        if not starts:
            break
        src = int(starts[int(rng.integers(len(starts)))])
        x = _read_excerpt(path, src, min(need, frames - src))
        if fsr != sr:
            x = audio.resample(x, fsr, sr)
        x = x[:, :2] if x.shape[1] >= 2 else np.repeat(x, 2, axis=1)
        a = int(round(first * bar_s * sr))
        b = min(n, a + len(x))
        if b <= a:
            continue
        seg = x[: b - a].T.copy()
        r = min(int(RAMP * sr), seg.shape[1] // 2)
        if r:
            ramp = np.linspace(0, 1, r, dtype=np.float32)
            seg[:, :r] *= ramp
            seg[:, -r:] *= ramp[::-1]
        out[:, a:b] += seg
        taken[first:first + bars] = True
        excerpts.append({"bar": first, "bars": bars, "source_start_s": round(src / fsr, 3)})
    return out, {"file": path, "excerpts": sorted(excerpts, key=lambda e: e["bar"])}


def _jsonable(x):
    """Numpy scalars and arrays, tuples and paths as JSON values (recursively)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float):
        return round(x, 6) if math.isfinite(x) else None
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def _sub_bass(seed, index, prof):
    """The sub-bass settings of song ``index`` (a dict, see :data:`SUB_BASS`) or None: drawn from
    the stream ``[seed, index, 2]`` when the profile has sub-bass songs."""
    if not prof["sub"]:
        return None
    g = np.random.default_rng([int(seed), int(index), 2])
    if g.random() >= prof["sub"]:
        return None
    out = {k: float(g.uniform(*SUB_BASS[k])) for k in ("kick_keep", "shelf_db", "bass_vs_other", "drums_db")}
    out["shelf_hz"] = fx.log_uniform(g, *SUB_BASS["shelf_hz"])
    out["kick_seed"] = int(g.integers(2 ** 31))
    return out


def _synth_bass(seed, index, prof):
    """The sub-bass synthesizer's settings of song ``index`` or None: drawn from the stream
    ``[seed, index, 3]`` when the profile has synth-bass songs."""
    if not prof["synth"]:
        return None
    g = np.random.default_rng([int(seed), int(index), 3])
    if g.random() >= prof["synth"]:
        return None
    return backing.draw_synth_bass(g)


def _thin_kicks(notes, sub):
    """``notes`` [shape=(n, 3)] (time, GM note, velocity) with each kick kept with probability
    ``sub['kick_keep']``: sparse kicks."""
    kick = np.isin(notes[:, 1], (35, 36))
    drop = kick & (np.random.default_rng(sub["kick_seed"]).random(len(notes)) >= sub["kick_keep"])
    sub["kicks"] = [int(kick.sum()), int((kick & ~drop).sum())]
    return notes[~drop]


def _drums(rng, aux, prof, split, groove_dir, duration, n, sub=None):
    """The drum stem: a groove with silent passages on a kit, its chain and (profile) drum bus;
    ``sub``: a sub-bass song's settings (its kicks thinned)."""
    sr = params.SAMPLE_RATE
    notes, plan = grooves.arrange(_grooves(groove_dir, split), duration, rng)
    bar_s = plan["bar_seconds"]
    silent = _silent_bars(rng, plan["bars"], DRUM_INTRO_PROBABILITY, DRUM_BREAK_PROBABILITY)
    for a, b in silent:
        notes = notes[(notes[:, 0] < a * bar_s - grooves.EARLY) | (notes[:, 0] >= b * bar_s - grooves.EARLY)]
    if sub is not None:
        notes = _thin_kicks(notes, sub)
    kit = drumkits.choose_kit(drumkits.kit_pool(split), rng, plan["genre"])
    drums, drum_info = drumkits.render_drums(kit, notes, n, rng)
    drums, drum_fx = fx.random_chain(drums, sr, rng, "drums")
    drum_bus = None
    if prof["drum_bus"]:
        drums, drum_bus = fx.drum_bus(drums, sr, aux)
    info = {"plan": plan, "silent": silent, "kit": kit, "info": drum_info, "fx": drum_fx, "bus": drum_bus}
    return np.asarray(drums, dtype=np.float32), info


def _balance(stems, rng, aux, prof, sr, sub=None):
    """Normalise the stems and draw their balance, in place: (gains dB, balance dB, audible).
    ``sub``: a sub-bass song's settings (its balance, and the bass's low shelf after it)."""
    audible = {name: bool(np.max(np.abs(x), initial=0.0) > 1e-6) for name, x in stems.items()}
    for name in stems:
        if audible[name]:
            stems[name] = np.asarray(fx.normalise(stems[name], sr, target_db=NORMALISE_DB), dtype=np.float32)
    gains = {name: 0.0 for name in stems}
    bass_vs_other = float(rng.uniform(-BASS_OTHER_DB, BASS_OTHER_DB))
    drums_vs = float(rng.uniform(*DRUMS_DB))
    vocals_vs = float(rng.uniform(*VOCALS_DB))
    if prof["vocals_db"] is not None:
        vocals_vs = float(aux.uniform(*prof["vocals_db"]))
    if sub is not None:
        bass_vs_other, drums_vs = max(bass_vs_other, sub["bass_vs_other"]), min(drums_vs, sub["drums_db"])
    gains["bass"], gains["other"] = bass_vs_other / 2, -bass_vs_other / 2
    for name in ("bass", "other"):
        stems[name] *= np.float32(10 ** (gains[name] / 20))
    acc = _level(stems["bass"] + stems["other"], sr)
    if acc is not None and audible["drums"]:
        gains["drums"] = acc + drums_vs - NORMALISE_DB
        stems["drums"] *= np.float32(10 ** (gains["drums"] / 20))
    if sub is not None and audible["bass"]:  # the sub bass on top of the balance
        stems["bass"] = fx.shelf(stems["bass"], sr, "lowshelf", sub["shelf_hz"], sub["shelf_db"])
    if "vocals" in stems and audible["vocals"]:
        rest = _level(stems["drums"] + stems["bass"] + stems["other"], sr)
        if rest is not None:
            gains["vocals"] = rest + vocals_vs - NORMALISE_DB
            stems["vocals"] *= np.float32(10 ** (gains["vocals"] / 20))
    balance = {"bass_vs_other": round(bass_vs_other, 3), "drums_vs_bass_other": round(drums_vs, 3),
               "vocals_vs_rest": round(vocals_vs, 3) if "vocals" in stems else None}
    return gains, balance, audible


def _silence_and_scale(stems, gains, rng, n, bar_s, n_bars, sr):
    """Silent passages of bass / other (ramped), the song's end, and the headroom (the peak of the
    sum at a random level <= 0.9, no stem clipping), in place: (silent bars, peak)."""
    part_silent = {}
    ramp = int(RAMP * sr)
    for name in ("bass", "other"):
        bars = _silent_bars(rng, n_bars, 0.0, PART_BREAK_PROBABILITY)
        if bars:
            part_silent[name] = bars
            env = _ramp_envelope(n, [(int(round(a * bar_s * sr)), int(round(b * bar_s * sr)))
                                     for a, b in bars], ramp)
            stems[name] *= env
    tail = np.linspace(1, 0, min(ramp, n), dtype=np.float32)
    for x in stems.values():
        x[:, n - len(tail):] *= tail
    total = sum(stems.values())
    peak = float(np.max(np.abs(total))) if n else 0.0
    target = float(rng.uniform(*PEAK_RANGE))
    scale = target / peak if peak > 0 else 1.0
    stem_peak = max(float(np.max(np.abs(x))) for x in stems.values()) * scale
    if stem_peak > MAX_STEM_PEAK:
        scale *= MAX_STEM_PEAK / stem_peak
    for name in stems:
        stems[name] *= np.float32(scale)
        gains[name] += 20 * math.log10(max(float(scale), 1e-12)) if scale > 0 else 0.0
    return part_silent, peak * scale


def render_song(index: int, seed: int, split: str, duration: float, vocal_files: Sequence[str] = (),
                groove_dir: str | os.PathLike | None = None,
                profile: str = DEFAULT_PROFILE) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Render song ``index`` (``duration`` s): ({stem: float32 [shape=(2, n)]}, record). Nothing is written.

    Deterministic from ``(seed, index, split, duration, vocal_files, profile)``; ``profile`` is a
    key of :data:`PROFILES`."""
    sr = params.SAMPLE_RATE
    rng = np.random.default_rng([int(seed), int(index)])
    aux = np.random.default_rng([int(seed), int(index), 1])  # the profile's own draws
    n = int(round(duration * sr))
    sub = _sub_bass(seed, index, PROFILES[profile])
    synth = _synth_bass(seed, index, PROFILES[profile])
    drums, d = _drums(rng, aux, PROFILES[profile], split, groove_dir, duration, n, sub)
    plan = d["plan"]
    bar_s, n_bars = plan["bar_seconds"], plan["bars"]
    # bass and other at the groove's tempo and metre (in beats of the metre's denominator)
    num, den = (int(v) for v in plan["metre"].split("/"))
    parts, backing_info = backing.render_backing(plan["tempo"] * den / 4.0, num, n, rng,
                                                 heldout=split != "train", sr=sr, bass_synth=synth)
    stems = {"drums": drums, "bass": np.asarray(parts["bass"], dtype=np.float32),
             "other": np.asarray(parts["other"], dtype=np.float32)}
    vocal_info = None
    if vocal_files and rng.random() < VOCAL_PROBABILITY:
        v, vocal_info = _make_vocals(rng, list(vocal_files), n, bar_s, n_bars)
        if np.any(v) and rng.random() < VOCAL_FX_PROBABILITY:
            v, vocal_info["fx"] = fx.random_chain(v, sr, rng, "vocal")
        stems["vocals"] = np.asarray(v, dtype=np.float32)
    gains, balance, audible = _balance(stems, rng, aux, PROFILES[profile], sr, sub)
    part_silent, peak = _silence_and_scale(stems, gains, rng, n, bar_s, n_bars, sr)
    record = {
        "folder": SONG_DIR.format(split=split, index=index), "index": int(index), "seed": int(seed),
        "split": split, "duration": n / sr, "samples": n, "stems": sorted(stems, key=STEMS.index),
        "groove": plan["groove"], "groove_files": plan["files"], "groove_sections": plan["sections"],
        "groove_split": plan["split"],
        **{k: plan[k] for k in ("style", "genre", "drummer", "session", "tempo", "metre")},
        "bars": n_bars, "bar_seconds": bar_s, "key": backing_info["key"], "kit": d["kit"].record(),
        "drums": d["info"], "backing": backing_info, "vocals": vocal_info,
        "gains_db": {k: round(v, 3) for k, v in gains.items()}, "balance_db": balance,
        "audible": audible, "peak": round(peak, 4),
        "silent_bars": {"drums": d["silent"], **part_silent},
        "effects": {"drums": d["fx"], "vocals": (vocal_info or {}).get("fx")},
        **({"profile": profile, "drum_bus": d["bus"]} if profile != DEFAULT_PROFILE else {}),
        **({"sub_bass": sub} if PROFILES[profile]["sub"] else {}),
        **({"synth_bass": synth if backing_info["has_bass"] else None} if PROFILES[profile]["synth"] else {}),
    }
    return stems, _jsonable(record)


# --- writing ---

def _render_to_folder(cfg, index):
    """Render song ``index`` and write it as ``render_dir/render-{split}-{index}``: its record."""
    t0 = time.process_time()
    stems, record = render_song(index, cfg["seed"], cfg["split"], cfg["duration"],
                                cfg["vocal_files"], cfg["groove_dir"], cfg.get("profile", DEFAULT_PROFILE))
    final = Path(cfg["render_dir"]) / SONG_DIR.format(split=cfg["split"], index=index)
    with fileio.atomic_folder(final, replace=cfg["overwrite"], tmp_prefix=TMP_PREFIX) as tmp:
        for stem, x in stems.items():
            audio.write_audio(tmp / (stem + STEM_EXT), x.T, params.SAMPLE_RATE, subtype=STEM_SUBTYPE)
    size = sum(f.stat().st_size for f in final.iterdir())
    return record, {"cpu_seconds": time.process_time() - t0, "bytes": size}


def _worker(cfg, index):
    """Process-pool entry: logging like the parent's, then :func:`_render_to_folder`."""
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
        log.setLevel(cfg.get("log_level", logging.INFO))
        log.propagate = False
    return _render_to_folder(cfg, index)


def _fx_summary(fx_info):
    """Stages of an effects chain with their main setting, e.g. "eq3 comp4.1:1 rev0.9s"."""
    if not fx_info:
        return ""
    out = [f"eq{len(fx_info['eq']['bands'])}"] if "eq" in fx_info else []
    if "distortion" in fx_info:
        out.append(f"dist{fx_info['distortion']['drive_db']:.0f}dB")
    if "compressor" in fx_info:
        out.append(f"comp{fx_info['compressor']['ratio']:.1f}:1")
    if "delay" in fx_info:
        out.append(f"delay{fx_info['delay']['time_s']:.2f}s")
    rev = fx_info.get("reverb")
    if rev and rev["applied"]:
        out.append(f"rev{rev['rt60_s']:.1f}s/{rev['wet']:.2f}")
    return " ".join(out)


def _csv_row(r):
    """One line of songs.csv (its columns, in order) from a song's record."""
    g, b, parts = r["gains_db"], r["balance_db"], r["backing"]["parts"]
    effects = [f"drums: {_fx_summary(r['effects']['drums'])}"]
    if r["effects"]["vocals"]:
        effects.append(f"vocals: {_fx_summary(r['effects']['vocals'])}")
    effects += [f"{p['stem']}/{p['role']}: {_fx_summary(p['fx'])}" for p in parts if p["fx"]]
    effects.append(f"room: {r['backing']['reverb']['rt60_s']:.1f}s")
    return {
        "folder": r["folder"], "index": r["index"], "split": r["split"], "duration": r["duration"],
        "stems": ";".join(r["stems"]), "tempo": r["tempo"], "metre": r["metre"],
        "key": "" if r["key"] is None else r["key"], "style": r["style"], "drummer": r["drummer"],
        "session": r["session"], "groove": r["groove"], "groove_files": ";".join(r["groove_files"]),
        "kit": r["kit"]["name"], "kit_family": r["kit"]["family"], "kit_licence": r["kit"]["licence"],
        "drum_instruments": "; ".join(f"{k}={v}" for k, v in (r["drums"].get("instruments") or {}).items()),
        "instruments": "; ".join(f"{p['stem']}/{p['role']} {p['family']} {p['program']}@{p['soundfont']}"
                                 for p in parts),
        "vocal_source": (r["vocals"] or {}).get("file", ""),
        "gain_drums_db": g.get("drums"), "gain_bass_db": g.get("bass"), "gain_other_db": g.get("other"),
        "gain_vocals_db": g.get("vocals", ""),
        "drums_vs_bass_other_db": b["drums_vs_bass_other"], "bass_vs_other_db": b["bass_vs_other"],
        "vocals_vs_rest_db": "" if b["vocals_vs_rest"] is None else b["vocals_vs_rest"],
        "effects": "; ".join(effects),
    }


def write_tables(render_dir: str | os.PathLike, records: list[dict[str, Any]],
                 doc_fields: Mapping[str, Any]) -> None:
    """Write ``songs.json`` and ``songs.csv`` (atomically) for ``records`` (sorted by index)."""
    render_dir = Path(render_dir)
    fileio.write_json(render_dir / SONGS_JSON, {"format": FORMAT, **doc_fields, "songs": records}, indent=1)
    buf, rows = io.StringIO(), [_csv_row(r) for r in records]
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    fileio.write_text(render_dir / SONGS_CSV, buf.getvalue())


def read_songs(render_dir: str | os.PathLike) -> dict[str, Any]:
    """The table ``render_dir/songs.json`` written by :func:`render_stems` (a dict); MixinError
    when it is missing or unreadable."""
    path = Path(render_dir) / SONGS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MixinError(f"no rendered songs in {render_dir} ({SONGS_JSON} missing)") from None
    except (OSError, ValueError) as e:
        raise MixinError(f"cannot read {path}: {' '.join(str(e).split())}") from None


# --- the stage ---

def check_resources(split: str, groove_dir: str | os.PathLike | None = None) -> None:
    """Everything a render of ``split`` needs, checked before any work (one-line MixinError):
    FluidSynth, the Groove MIDI Dataset (beats of the split), usable drum kits, the backing's
    SoundFonts."""
    fluid.check_fluidsynth()
    if not any(g.beat_type == "beat" for g in _grooves(groove_dir, split)):
        raise MixinError(f"the Groove MIDI Dataset has no beat of the {split} split "
                         f"(info.csv in {groove_dir or 'the default folder'})")
    drumkits.kit_pool(split)  # MixinError when no kit of the split is usable
    fonts = backing.HELDOUT_SOUNDFONTS if split != "train" else backing.TRAIN_SOUNDFONTS
    missing = []
    for p in fonts:
        try:
            fluid.check_soundfont(p)
        except MixinError as e:
            missing.append(str(e))
    if fonts and len(missing) == len(fonts):
        raise MixinError(missing[0])
    for m in missing:
        log.warning("%s", m)


def _existing(render_dir):
    """What the renderer made in ``render_dir``: song folders, tables, leftover temp folders."""
    if not render_dir.is_dir():
        return []
    return sorted(p for p in render_dir.iterdir()
                  if (p.is_dir() and (SONG_DIR_RE.match(p.name) or p.name.startswith(TMP_PREFIX)))
                  or p.name in (SONGS_JSON, SONGS_CSV))


def _progress(total, enabled):
    if enabled and log.isEnabledFor(logging.INFO) and sys.stderr.isatty():
        try:
            from tqdm import tqdm  # noqa: PLC0415

            return tqdm(total=total, unit="song", desc="render-stems", leave=False)
        except ImportError:
            pass
    return None


def render_stems(render_dir: str | os.PathLike, songs: int, duration: float = 60.0, seed: int = 0,
                 split: str = "train",
                 vocal_dirs: str | os.PathLike | Sequence[str | os.PathLike] | None = (),
                 jobs: int = 1, overwrite: bool = False, progress: bool = True,
                 groove_dir: str | os.PathLike | None = None,
                 profile: str = DEFAULT_PROFILE) -> dict[str, Any]:
    """Render ``songs`` (>= 1) songs of ``duration`` s (>= :data:`MIN_DURATION`) into ``render_dir``
    (created if missing; refused when not empty, unless ``overwrite``, which replaces the renderer's
    own song folders and tables). Song ``i`` uses ``numpy.random.default_rng([seed, i])``.

    ``split``: "train", "validation" or "test" (the Groove MIDI split; training or held-out kits and
    SoundFonts); ``vocal_dirs``: folders searched recursively for ``vocals.*`` stems; ``jobs``:
    songs rendered in parallel "spawn" processes (a calling script needs ``if __name__ ==
    "__main__":``); ``progress``: a progress bar on a terminal at INFO level; ``groove_dir``: the
    dataset (default ``../shared/groove-midi``); ``profile``: a key of :data:`PROFILES`.

    Returns {'render_dir', 'songs', 'split', 'seconds' (wall), 'cpu_seconds', 'audio_seconds',
    'songs_per_minute', 'realtime', 'bytes', 'bytes_per_audio_minute', 'folders'}. Raises
    :class:`MixinError` (one line) for a bad argument, a non-empty ``render_dir`` without
    ``overwrite`` or a missing resource (:func:`check_resources`).
    """
    t0 = time.perf_counter()
    songs, duration, seed, jobs, vocal_dirs, vocal_files, render_dir = _check_args(
        songs, duration, seed, split, profile, jobs, vocal_dirs, render_dir, overwrite)
    check_resources(split, groove_dir)
    render_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in _existing(render_dir):
            if p.name in (SONGS_JSON, SONGS_CSV):
                p.unlink()  # written again at the end: marks a complete render
            elif p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
    cfg = {"render_dir": str(render_dir), "seed": seed, "split": split, "duration": duration,
           "vocal_files": vocal_files, "groove_dir": None if groove_dir is None else str(groove_dir),
           "overwrite": overwrite, "log_level": log.level, "profile": profile}
    records, stats = _render_all(cfg, songs, jobs, _progress(songs, progress))
    written = {r["folder"] for r in records}
    stale = [p for p in _existing(render_dir) if p.is_dir() and p.name not in written]
    for p in stale:
        shutil.rmtree(p)
    if stale:
        log.info("removed %d song folders of the previous render", len(stale))
    kits = {r["kit"]["name"]: r["kit"] for r in records}
    write_tables(render_dir, records, {
        "sample_rate": params.SAMPLE_RATE, "seed": seed, "split": split, "duration": duration,
        "profile": profile, "stem_format": f"FLAC {STEM_SUBTYPE}",
        "vocal_dirs": [str(Path(d).resolve()) for d in vocal_dirs or ()],
        "credits": {**CREDITS, "kits": {name: f"{k['package']}: {k['licence']}" for name, k in sorted(kits.items())}},
        "kit_pool": [k.record() for k in drumkits.kit_pool(split)],
    })
    elapsed = time.perf_counter() - t0
    audio_s = songs * duration
    size = sum(s["bytes"] for s in stats)
    summary = {
        "render_dir": str(render_dir), "songs": songs, "split": split, "seconds": elapsed,
        "cpu_seconds": sum(s["cpu_seconds"] for s in stats), "audio_seconds": audio_s,
        "songs_per_minute": 60 * songs / elapsed if elapsed > 0 else float("inf"),
        "realtime": audio_s / elapsed if elapsed > 0 else float("inf"),
        "bytes": size, "bytes_per_audio_minute": size / (audio_s / 60),
        "folders": [r["folder"] for r in records],
    }
    log.info("rendered %d %s songs of %g s in %s in %.1f s (%.1f songs/min, %.0fx real time, "
             "%.1f MB per minute of song)", songs, split, duration, render_dir, elapsed,
             summary["songs_per_minute"], summary["realtime"], summary["bytes_per_audio_minute"] / 1e6)
    return summary


def _render_all(cfg, songs, jobs, bar):
    """Render every song (in ``jobs`` "spawn" processes when > 1): (records, stats) by index."""
    import multiprocessing as mp  # noqa: PLC0415
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait  # noqa: PLC0415

    records, stats = [None] * songs, [None] * songs

    def done(i, result):
        records[i], stats[i] = result
        log.debug("rendered %s", records[i]["folder"])
        if bar is not None:
            bar.update(1)

    try:
        if jobs == 1 or songs == 1:
            for i in range(songs):
                done(i, _render_to_folder(cfg, i))
            return records, stats
        ctx = mp.get_context("spawn")  # no inherited FluidSynth state or threads
        with ProcessPoolExecutor(max_workers=min(jobs, songs), mp_context=ctx) as ex:
            futures = {ex.submit(_worker, cfg, i): i for i in range(songs)}
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in finished:
                        done(futures[f], f.result())  # re-raises a worker's error
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        return records, stats
    finally:
        if bar is not None:
            bar.close()
        for p in Path(cfg["render_dir"]).glob(TMP_PREFIX + "*"):  # a worker that died mid-song
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
