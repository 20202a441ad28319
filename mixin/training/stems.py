"""The ``--prepare-stems`` stage: cut multitrack stem folders into training segments.

Faithful to the original MiXiN ``train_util.py --prepare-stems`` (same flags, folder names and
files), without its defects; the rules (which folders are songs, how files are classed, lengths,
channels, segments, ``songs.json``, augmentation, the split, what is never overwritten) are in
docs/training.md, "--prepare-stems". Each segment writes a ``v`` folder (mix = harmonic +
percussive + vocal, and the three sources) and a ``nov`` folder (mix = harmonic + percussive),
named in :mod:`mixin.layout`, as float32 WAV of exactly ``round(segment_duration * 44100)``
samples [channels of the stems]. Memory is bounded by one song (three stems for a remix).
"""

from __future__ import annotations

import logging
import operator
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as audio, layout, params
from ..io import files as fileio
from ..errors import MixinError
from ..songs import AUDIO_EXTENSIONS, classify  # the one naming rule (mixin.songs)

log = logging.getLogger("mixin")

#: Largest length difference (samples at 44.1 kHz) accepted between the stems of one song.
LENGTH_TOLERANCE = 4

#: The classes of stem files, in the order of the decision.
ROLES = ("percussive", "vocal", "harmonic")

#: Fractions of songs in validation and test (the rest is training).
SPLIT_FRACTIONS = {"validation": 0.1, "test": 0.1}

#: Random gain range of remixed stems (dB) and fade length at the wrap point of a remix (s).
AUGMENT_GAIN_DB = 6.0
AUGMENT_FADE = 0.010

_MAX_SONGS = 1000
_MAX_SEGMENTS = 10000


def _resample(x, sr):
    """[shape=(n, channels)] at ``sr`` to 44.1 kHz (soxr HQ; length round(n * 44100 / sr))."""
    return x if sr == params.SAMPLE_RATE else audio.resample(x, sr, params.SAMPLE_RATE)


@dataclass
class Song:
    """One song of the preparation: a real song folder, or a remix when ``remix`` is set."""

    index: int
    folder: Path | None
    files: dict = field(default_factory=dict)   # role -> [Path] ('ignore' included)
    length: int = 0                              # samples at 44.1 kHz (after padding)
    channels: int = 0
    remix: dict | None = None                    # role -> {"song", "gain_db", "offset"}
    segments: list = field(default_factory=list)


def _audio_files(folder, names):
    return sorted(folder / f for f in names
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS)


def find_song_folders(stem_dirs: str | os.PathLike | Iterable[str | os.PathLike],
                      exclude: str | os.PathLike | None = None) -> list[tuple[Path, list[Path]]]:
    """Song folders under ``stem_dirs``: [(folder, [audio files])], stem dirs in the given
    order, sorted by path inside each; the folder ``exclude`` (the data dir, when it lies
    inside a stem dir) is not searched. MixinError if a stem dir is missing or holds no audio."""
    exclude = Path(exclude).resolve() if exclude is not None else None
    if isinstance(stem_dirs, (str, os.PathLike)):
        stem_dirs = [stem_dirs]
    stem_dirs = list(stem_dirs or [])
    if not stem_dirs:
        raise MixinError("no stem directory given (--stem-dirs DIR ...)")
    found, seen = [], set()
    for sd in stem_dirs:
        sd = Path(sd)
        if not sd.exists():
            raise MixinError(f"stem directory not found: {sd}")
        if not sd.is_dir():
            raise MixinError(f"stem directory is not a directory: {sd}")
        here = []
        for dirpath, dirnames, filenames in os.walk(sd, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and (exclude is None or (Path(dirpath) / d).resolve() != exclude))
            files = _audio_files(Path(dirpath), filenames)
            if files:
                here.append((Path(dirpath), files))
        if not here:
            raise MixinError(f"no audio files ({', '.join(AUDIO_EXTENSIONS[:3])}, ...) "
                             f"under stem directory {sd}")
        here.sort(key=lambda item: item[0].relative_to(sd).parts)
        for folder, files in here:
            key = folder.resolve()
            if key not in seen:
                seen.add(key)
                found.append((folder, files))
    return found


def _classify_files(files):
    roles = {"percussive": [], "vocal": [], "harmonic": [], "ignore": []}
    for f in files:
        roles[classify(f)].append(f)
    return roles


def _probe_song(song):
    """Check the stems of a real song (readable, equal lengths, compatible channels) from their
    headers; set ``song.length`` and ``song.channels``."""
    lengths, chans = {}, set()
    for role in ROLES:
        for f in song.files[role]:
            info = audio.probe(f)
            lengths[f] = audio.resampled_length(info.frames, info.samplerate, params.SAMPLE_RATE)
            chans.add(info.channels)
    _check_lengths(song.folder, lengths)
    song.length = max(lengths.values())
    song.channels = _check_channels(song.folder, chans)


def _check_lengths(folder, lengths):
    lo, hi = min(lengths.values()), max(lengths.values())
    if hi - lo > LENGTH_TOLERANCE:
        detail = ", ".join(f"{Path(f).name} {n}" for f, n in lengths.items())
        raise MixinError(f"stems of song {folder} differ in length by {hi - lo} samples (more than "
                         f"{LENGTH_TOLERANCE}): {detail} samples at {params.SAMPLE_RATE} Hz")


def _check_channels(where, chans):
    chans = set(chans)
    if len(chans) > 1 and not (len(chans) == 2 and 1 in chans):
        raise MixinError(f"stems of {where} have incompatible channel counts: {sorted(chans)}")
    return max(chans)


def split_songs(n_songs: int, seed: int = 0) -> dict[str, list[int]]:
    """Split song indices 0..n_songs-1 into training, validation and test, by song.

    Deterministic from ``(n_songs, seed)``. Validation and test get round(10 %) of the songs
    each, at least one each when ``n_songs >= 3``; with 2 songs one trains and one validates
    (test is empty); with 1 song it trains. Each list is sorted.

    Returns dict(train=[...], validation=[...], test=[...]).
    """
    n = _check_int("number of songs", n_songs, 1)
    seed = _check_int("seed", seed, 0)
    order = np.random.default_rng(seed).permutation(n).tolist()
    if n == 1:
        n_val = n_test = 0
    elif n == 2:
        n_val, n_test = 1, 0
    else:
        n_val = max(1, int(np.floor(SPLIT_FRACTIONS["validation"] * n + 0.5)))
        n_test = max(1, int(np.floor(SPLIT_FRACTIONS["test"] * n + 0.5)))
    val, test = order[:n_val], order[n_val:n_val + n_test]
    train = order[n_val + n_test:]
    return {"train": sorted(train), "validation": sorted(val), "test": sorted(test)}


def named_split(songs: Sequence[Song], validation_songs: Iterable[str] | None = (),
                test_songs: Iterable[str] | None = ()) -> dict[str, list[int]]:
    """Split real songs by folder name: the named songs validate / test, the rest train.

    ``songs``: list of :class:`Song` (``folder`` set). MixinError naming an unknown or
    doubly used name, or when no song is left to train. Returns dict(train, validation, test).
    """
    by_name = {}
    for s in songs:
        by_name.setdefault(Path(s.folder).name, []).append(s.index)
    val, test = list(validation_songs or ()), list(test_songs or ())
    both = sorted(set(val) & set(test))
    if both:
        raise MixinError(f"song(s) named for both validation and test: {', '.join(both)}")
    unknown = [n for n in val + test if n not in by_name]
    if unknown:
        raise MixinError(f"no song folder named {', '.join(map(repr, unknown))} "
                         f"(songs: {', '.join(sorted(by_name))})")
    split = {"validation": sorted(i for n in set(val) for i in by_name[n]),
             "test": sorted(i for n in set(test) for i in by_name[n])}
    held = set(split["validation"]) | set(split["test"])
    split["train"] = [s.index for s in songs if s.index not in held]
    if not split["train"]:
        raise MixinError("every song is held out for validation or test: none is left to train on")
    return {k: split[k] for k in ("train", "validation", "test")}


def plan_remixes(songs: Sequence[Song], train: Iterable[int], n_remix: int, seed: int = 0,
                 gain_db: float = AUGMENT_GAIN_DB) -> list[dict[str, dict[str, Any]]]:
    """Choose sources, gains and offsets of ``n_remix`` augmented songs from the training songs.

    ``songs``: the real songs (``length`` set); ``train``: indices of training songs.
    Returns a list of dicts role -> {"song", "gain_db", "offset"}; the percussive, vocal and
    harmonic parts come from different training songs (with two training songs, the harmonic
    part comes from either), each with a gain drawn uniformly in [-gain_db, +gain_db] dB.
    """
    train = sorted(train)
    if n_remix and len(train) < 2:
        raise MixinError(f"augmentation needs at least 2 training songs to remix, have {len(train)} "
                         f"(of {len(songs)} songs; validation and test songs are never used)")
    rng = np.random.default_rng([int(seed), 1])
    plans = []
    for _ in range(n_remix):
        if len(train) >= 3:
            src = rng.choice(train, size=3, replace=False)
        else:
            pv = rng.permutation(train)
            src = [pv[0], pv[1], rng.choice(train)]
        gains = rng.uniform(-gain_db, gain_db, size=3)
        plan = {}
        for role, s, g in zip(ROLES, src, gains):
            s = int(s)
            plan[role] = {"song": s, "gain_db": round(float(g), 3),
                          "offset": int(rng.integers(0, songs[s].length))}
        plans.append(plan)
    return plans


def _fit_channels(x, channels):
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    raise MixinError(f"cannot use {x.shape[1]}-channel audio in a {channels}-channel song")


def _load_role(song, role):
    """Sum of the song's ``role`` files at 44.1 kHz, zero-padded to ``song.length``
    [shape=(song.length, song.channels)], float32."""
    out = np.zeros((song.length, song.channels), dtype=np.float32)
    for f in song.files[role]:
        x, sr = audio.read_audio(f)
        x = _fit_channels(_resample(x, sr), song.channels)
        # decoded lengths can differ from the headers' (compressed formats): check them too
        _check_lengths(song.folder, {f: x.shape[0], "longest stem": song.length})
        n = min(x.shape[0], song.length)
        out[:n] += x[:n]
    return out


def _load_remix(songs, plan, channels):
    """Build a remix [role -> (length, channels)] from ``plan`` (see :func:`plan_remixes`)."""
    length = min(songs[p["song"]].length for p in plan.values())
    fade = max(1, int(AUGMENT_FADE * params.SAMPLE_RATE))
    out = {}
    for role, p in plan.items():
        src = songs[p["song"]]
        x = _fit_channels(_load_role(src, role), channels)
        x = np.roll(x, -p["offset"], axis=0)[:length]
        seam = src.length - p["offset"]  # where the source's end meets its start
        if 0 < seam < length:
            w = np.ones(length, dtype=np.float32)
            lo, hi = max(seam - fade, 0), min(seam + fade, length)
            w[lo:seam] = np.linspace(1, 0, seam - lo, endpoint=False)[: seam - lo]
            w[seam:hi] = np.linspace(0, 1, hi - seam)
            x *= w[:, None]
        out[role] = x * np.float32(10 ** (p["gain_db"] / 20))
    return out


def _check_int(name, value, minimum):
    try:
        v = operator.index(value)
    except TypeError:
        raise MixinError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or v < minimum:
        raise MixinError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return v


def _segment_range(length, seg_samples, offset, limit):
    n_full = length // seg_samples
    stop = n_full if limit is None else min(n_full, limit)
    return list(range(offset, stop))


def _existing_preparation(data_dir):
    if not data_dir.is_dir():
        return []
    found = [p for p in data_dir.iterdir() if p.is_dir() and layout.parse_segment_folder(p.name)]
    if layout.songs_json(data_dir).exists():
        found.insert(0, layout.songs_json(data_dir))
    return found


def _write_folder(data_dir, name, files, overwrite):
    """Write {part: array} as the part files of ``data_dir/name`` (:func:`mixin.layout.segment_file`)
    via a temporary folder and a rename."""
    with fileio.atomic_folder(data_dir / name, replace=overwrite) as tmp:
        for part, x in files.items():
            audio.write_audio(layout.segment_file(tmp, part), x, params.SAMPLE_RATE, subtype="FLOAT")


def _write_segments(data_dir, song, parts, seg_samples, overwrite):
    h, p, v = parts["harmonic"], parts["percussive"], parts["vocal"]
    for seg in song.segments:
        sl = slice(seg * seg_samples, (seg + 1) * seg_samples)
        hs, ps, vs = h[sl], p[sl], v[sl]
        hp = hs + ps
        for kind, mix in (("v", hp + vs), ("nov", hp)):
            arrays = {"mix": mix, "harmonic": hs, "percussive": ps, "vocal": vs}
            _write_folder(data_dir, layout.segment_name(song.index, seg, kind),
                          {part: arrays[part] for part in layout.SEGMENT_PARTS[kind]}, overwrite)


def _check_args(a):
    """Check and normalise the arguments of :func:`prepare_stems` (a dict, changed in place)."""
    try:
        a["segment_duration"] = float(a["segment_duration"])
    except (TypeError, ValueError):
        raise MixinError(f"segment duration must be a number of seconds, got {a['segment_duration']!r}") from None
    d = a["segment_duration"]
    a["seg_samples"] = int(round(d * params.SAMPLE_RATE)) if np.isfinite(d) else 0
    if a["seg_samples"] < 1:
        raise MixinError(f"segment duration must be a positive number of seconds, got {d}")
    for key, lo in (("segment_offset", 0), ("segment_limit", 0), ("track_limit", -1), ("augment", 0),
                    ("seed", 0), ("augment_segments", 1)):
        if a[key] is not None:
            a[key] = _check_int(key.replace("_", " "), a[key], lo)
    if a["segment_limit"] is not None and a["segment_limit"] <= a["segment_offset"]:
        raise MixinError(f"segment limit ({a['segment_limit']}) must be greater than the segment "
                         f"offset ({a['segment_offset']}): no segment would be written")
    if a["track_limit"] == 0:
        raise MixinError("track limit must be -1 (all songs) or a positive number, got 0")
    try:
        a["augment_gain_db"] = float(a["augment_gain_db"])
    except (TypeError, ValueError):
        raise MixinError(f"augment gain must be a number of dB, got {a['augment_gain_db']!r}") from None
    if not (np.isfinite(a["augment_gain_db"]) and 0 <= a["augment_gain_db"] <= 40):
        raise MixinError(f"augment gain must be between 0 and 40 dB, got {a['augment_gain_db']}")
    a["data_dir"] = Path(a["data_dir"])
    if a["data_dir"].exists() and not a["data_dir"].is_dir():
        raise MixinError(f"data directory is not a directory: {a['data_dir']}")
    return a


def _find_songs(a):
    """The usable real songs (numbered, probed, their segments chosen) and the skipped folders."""
    songs, skipped, too_short = [], [], []
    for folder, files in find_song_folders(a["stem_dirs"], exclude=a["data_dir"]):
        roles = _classify_files(files)
        missing = [what for what, role in (("drum", "percussive"), ("vocal", "vocal")) if not roles[role]]
        if missing:
            log.warning("skipping song folder %s: no %s file (files: %s)", folder,
                        " or ".join(missing), ", ".join(f.name for f in files))
            skipped.append(str(folder))
            continue
        song = Song(index=len(songs), folder=folder, files=roles)
        _probe_song(song)
        song.segments = _segment_range(song.length, a["seg_samples"], a["segment_offset"], a["segment_limit"])
        if not song.segments:
            # skipped before numbering, so that song numbers and the split stay contiguous
            log.warning("skipping song folder %s: %.1f s is too short for segment %d of %g s",
                        folder, song.length / params.SAMPLE_RATE, a["segment_offset"], a["segment_duration"])
            skipped.append(str(folder))
            too_short.append(str(folder))
            continue
        if song.segments[-1] >= _MAX_SEGMENTS:
            raise MixinError(f"song {folder} would have more than {_MAX_SEGMENTS} segments; "
                             "use a longer --segment-duration or a --segment-limit")
        if not roles["harmonic"]:
            log.warning("song folder %s has no harmonic stem: its harmonic part is silent", folder)
        songs.append(song)
        if a["track_limit"] > 0 and len(songs) == a["track_limit"]:
            break
    if not songs:
        sd = a["stem_dirs"]
        where = ", ".join(str(d) for d in ([sd] if isinstance(sd, (str, os.PathLike)) else sd))
        if too_short:
            raise MixinError(f"no segment to write: every usable song under {where} is shorter than "
                             f"{a['segment_offset'] + 1} segment(s) of {a['segment_duration']:g} s "
                             f"(segment offset {a['segment_offset']})")
        raise MixinError(f"no usable song (a folder with a drum and a vocal file) under {where}")
    if len(songs) + a["augment"] > _MAX_SONGS:
        raise MixinError(f"{len(songs)} songs + {a['augment']} remixes exceed the {_MAX_SONGS} songs that "
                         "segment folder names can number")
    return songs, skipped


def _split_and_remixes(songs, a):
    """The split (named or random) and the remixes appended to ``songs`` (training songs)."""
    if a["validation_songs"] or a["test_songs"]:
        split = named_split(songs, a["validation_songs"], a["test_songs"])
    else:
        split = split_songs(len(songs), a["seed"])
    plans = plan_remixes(songs, split["train"], a["augment"], a["seed"], a["augment_gain_db"])
    for plan in plans:
        idx = len(songs)
        channels = _check_channels(f"remix {idx}", [songs[p["song"]].channels for p in plan.values()])
        length = min(songs[p["song"]].length for p in plan.values())
        segments = _segment_range(length, a["seg_samples"], a["segment_offset"], a["segment_limit"])
        songs.append(Song(index=idx, folder=None, remix=plan, channels=channels, length=length,
                          segments=segments[:a["augment_segments"]]))
    split = {k: list(v) for k, v in split.items()}
    split["train"] += [s.index for s in songs if s.remix is not None]
    return split, len(plans)


def _write_songs(songs, a):
    """Write every song's segment folders, one song at a time; remove the earlier preparation's
    folders not written again. Returns the samples of real audio read."""
    data_dir, overwrite = a["data_dir"], a["overwrite"]
    existing = _existing_preparation(data_dir)
    if existing and not overwrite:
        raise MixinError(f"{data_dir} already holds prepared data ({existing[0].name}, {len(existing)} "
                         "entries); use --overwrite to replace it")
    data_dir.mkdir(parents=True, exist_ok=True)
    if overwrite and layout.songs_json(data_dir).exists():
        layout.songs_json(data_dir).unlink()  # written again last: marks a complete preparation
    if any(data_dir.glob(layout.HDF5_GLOB)):
        log.warning("%s holds HDF5 files built from earlier segments: rebuild them with --create-hdf5",
                    data_dir)
    input_samples = 0
    for song in songs:
        if song.remix is None:
            parts = {role: _load_role(song, role) for role in ROLES}
            input_samples += song.length
            what = str(song.folder)
        else:
            parts = _load_remix(songs, song.remix, song.channels)
            what = "remix of " + ", ".join(f"{r} {p['song']}" for r, p in song.remix.items())
        _write_segments(data_dir, song, parts, a["seg_samples"], overwrite)
        del parts
        log.info("song %03d (%s): %d segments", song.index, what, len(song.segments))
    written = {f for s in songs for f in _folders(s)}
    stale = [p for p in _existing_preparation(data_dir) if p.is_dir() and p.name not in written]
    for p in stale:
        shutil.rmtree(p)
    if stale:
        log.info("removed %d segment folders of the previous preparation", len(stale))
    return input_samples


def prepare_stems(stem_dirs: str | os.PathLike | Iterable[str | os.PathLike],
                  data_dir: str | os.PathLike = "data", segment_duration: float = 30.0,
                  segment_offset: int = 0, track_limit: int = -1, segment_limit: int | None = None,
                  augment: int = 0, seed: int = 0, overwrite: bool = False,
                  augment_gain_db: float = AUGMENT_GAIN_DB, augment_segments: int | None = None,
                  validation_songs: Iterable[str] | None = None,
                  test_songs: Iterable[str] | None = None) -> dict[str, Any]:
    """Cut the songs under ``stem_dirs`` into segment folders in ``data_dir`` and write
    ``data_dir/songs.json`` (the flags of ``--prepare-stems``; rules in docs/training.md).
    ``segment_limit``: segments are written up to (excluding) this index; ``track_limit``: -1 =
    all songs; ``augment``: remixed training songs to add. Raises :class:`MixinError` for bad
    arguments, unusable stems, or a previous preparation without ``overwrite``.

    Returns a dict: 'data_dir', 'songs' (real songs used), 'augmented', 'skipped' (folders),
    'segments', 'folders', 'files', 'split', 'seconds' (wall time), 'input_seconds' (real audio
    read), 'segment_seconds', 'segments_per_second', 'seconds_per_audio_minute'.
    """
    t0 = time.perf_counter()
    a = _check_args(dict(locals()))
    songs, skipped = _find_songs(a)
    split, n_remixes = _split_and_remixes(songs, a)
    n_segments = sum(len(s.segments) for s in songs)
    input_samples = _write_songs(songs, a)
    _write_songs_json(a, songs, split)
    elapsed = time.perf_counter() - t0
    input_seconds = input_samples / params.SAMPLE_RATE
    summary = {
        "data_dir": str(a["data_dir"]), "songs": len(songs) - n_remixes, "augmented": n_remixes,
        "skipped": skipped, "segments": n_segments, "folders": 2 * n_segments, "files": 7 * n_segments,
        "split": split, "seconds": elapsed, "input_seconds": input_seconds,
        "segment_seconds": n_segments * a["seg_samples"] / params.SAMPLE_RATE,
        "segments_per_second": n_segments / elapsed if elapsed > 0 else float("inf"),
        "seconds_per_audio_minute": elapsed / (input_seconds / 60) if input_seconds else float("nan"),
    }
    log.info("prepared %d segments (%d folders) from %d songs + %d remixes in %.1f s "
             "(%.2f segments/s, %.2f s per minute of audio)", n_segments, 2 * n_segments,
             summary["songs"], summary["augmented"], elapsed, summary["segments_per_second"],
             summary["seconds_per_audio_minute"])
    return summary


def _write_songs_json(a, songs, split):
    split_of = {i: name for name, idx in split.items() for i in idx}
    table = []
    for s in songs:
        entry = dict(index=s.index, source=None if s.folder is None else str(Path(s.folder).resolve()),
                     augmented=s.remix is not None, split=split_of[s.index],
                     duration=s.length / params.SAMPLE_RATE, samples=s.length, channels=s.channels,
                     n_segments=len(s.segments), segments=s.segments, folders=_folders(s))
        if s.remix is None:
            entry["files"] = {role: [f.name for f in fs] for role, fs in s.files.items()}
        else:
            entry["remix"] = s.remix
        table.append(entry)
    doc = dict(format=layout.SONGS_FORMAT, sample_rate=params.SAMPLE_RATE,
               segment_duration=a["segment_duration"], segment_samples=a["seg_samples"],
               **{k: a[k] for k in ("segment_offset", "segment_limit", "augment", "augment_gain_db",
                                    "augment_segments", "seed")}, split=split, songs=table)
    fileio.write_json(layout.songs_json(a["data_dir"]), doc)


def _folders(song):
    """The segment folder names of ``song``, as listed in songs.json (v, nov per segment)."""
    return [layout.segment_name(song.index, g, k) for g in song.segments for k in layout.KINDS]

