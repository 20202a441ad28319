"""Song folders: the one reader of multitrack stems, and its one naming rule.

A song is a folder of stem files, as MUSDB18-HQ lays them out (``drums``, ``bass``, ``other``,
``vocals``, and a ``mixture`` that MiXiN never reads: the mixture is always the sum of the stems).
Each file's source comes from its name, by the published MiXiN's rule, which names MUSDB18-HQ's
stems correctly and also reads a band's own stem names ("Drums L.wav", "lead vocal.flac"):

- a name holding "drum" is percussive; else one holding "vocal" is vocal;
- else one holding "mix" is the mixture (ignored);
- anything else is harmonic (bass, other, guitars, keys ... summed).

Training (stems, the on-the-fly mixer, validation songs), evaluation and the realism report all
read songs through this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import params
from .errors import MixinError

#: File name extensions read as audio (lower case).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                    ".w64", ".caf")

#: A song's sources, as :data:`mixin.params.SOURCES`; "ignore" marks a mixture file.
IGNORE = "ignore"

#: How messages name each source's stems (MUSDB18-HQ's names).
STEM_NAMES = {"percussive": "drums", "vocal": "vocals", "harmonic": "harmonic (bass, other, ...)"}


def classify(filename: str | os.PathLike) -> str:
    """Source of a stem file from its name: 'percussive', 'vocal', 'ignore' (a mixture) or
    'harmonic' — the original's rule ("drum", then "vocal", then "mix", else harmonic)."""
    name = Path(filename).name.lower()
    if "drum" in name:
        return "percussive"
    if "vocal" in name:
        return "vocal"
    if "mix" in name:
        return IGNORE
    return "harmonic"


def is_audio(path: Path) -> bool:
    """A visible file with an audio extension."""
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


@dataclass(frozen=True)
class Song:
    """A song folder: ``files`` maps each source present to its stem files (sorted paths)."""

    name: str
    path: str
    files: dict = field(hash=False, compare=False)

    def has(self, source: str) -> bool:
        return bool(self.files.get(source))


def song_files(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Stem files of ``folder`` by source (:func:`classify`; mixtures left out), sorted; every
    source of :data:`mixin.params.SOURCES` is a key (an empty list when absent)."""
    files: dict[str, list[str]] = {s: [] for s in params.SOURCES}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and is_audio(p):
            role = classify(p.name)
            if role != IGNORE:
                files[role].append(str(p))
    return files


def _folders(root: Path) -> list[Path]:
    """``root`` if it holds stems, else its song folders up to two levels down (a MUSDB18-HQ root
    with train/ and test/), sorted."""
    def has_stems(d):
        return any(p.is_file() and is_audio(p) and classify(p.name) != IGNORE for p in d.iterdir())

    if has_stems(root):
        return [root]
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if has_stems(sub):
            found.append(sub)
        else:
            found += [d for d in sorted(sub.iterdir())
                      if d.is_dir() and not d.name.startswith(".") and has_stems(d)]
    return found


def find_songs(roots: Iterable[str | os.PathLike], names: Iterable[str] | None = None,
               need: Iterable[str] = ()) -> list[Song]:
    """Find song folders.

    Parameters
    ----------
    roots : paths, each a song folder, a folder of song folders, or a folder of such folders
    names : folder names to keep (every one must be found); default: all
    need : sources every kept song must have (e.g. ("percussive", "vocal") for evaluation)

    Returns
    -------
    list of :class:`Song`, sorted by name. Raises :class:`MixinError` (one line): a missing root, a
    root without songs, an unknown name (the available ones listed), two kept folders of one name,
    or a kept song without a needed source.
    """
    found: dict[str, list[Path]] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise MixinError(f"stems folder not found: {root}" if not root.exists()
                             else f"not a folder of stems: {root}")
        folders = _folders(root)
        if not folders:
            raise MixinError(f"no songs found in {root} (expected folders of stems: drums, "
                             "vocals, bass/other as WAV or FLAC)")
        for f in folders:
            same = found.setdefault(f.name, [])
            if all(g.resolve() != f.resolve() for g in same):
                same.append(f)
    names = list(names) if names else None
    if names:
        unknown = [n for n in names if n not in found]
        if unknown:
            raise MixinError(f"song(s) not found: {', '.join(unknown)} "
                             f"(available: {', '.join(sorted(found))})")
    songs = []
    for name in sorted(set(names) if names else found):
        if len(found[name]) > 1:
            raise MixinError(f"two songs named {name!r}: {found[name][0]}, {found[name][1]}")
        folder = found[name][0]
        song = Song(name=name, path=str(folder), files=song_files(folder))
        missing = [STEM_NAMES[s] for s in need if not song.has(s)]
        if missing:
            have = ", ".join(Path(p).name for fs in song.files.values() for p in fs) or "none"
            raise MixinError(f"song folder {folder} has no {' or '.join(missing)} stem (found: {have})")
        songs.append(song)
    if not songs:
        raise MixinError("no songs found")
    return songs


def read_sources(song: Song, mono: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """The song's sources, each the sum of its stems.

    Returns ``({source: float32 [shape=(n, channels)]}, sample rate)`` for every source of
    :data:`mixin.params.SOURCES` (silent where the song has none), padded to the longest stem;
    with ``mono`` the channel mean. Raises :class:`MixinError` for unreadable stems or stems of
    different rates or channel counts.
    """
    from .io import read_audio

    sums: dict[str, np.ndarray] = {}
    sr = channels = None
    for source, paths in song.files.items():
        for p in paths:
            x, r = read_audio(p)
            if sr is None:
                sr, channels = r, x.shape[1]
            elif r != sr:
                raise MixinError(f"{song.name}: stem {Path(p).name} is at {r} Hz, others at {sr} Hz")
            elif x.shape[1] != channels:
                raise MixinError(f"{song.name}: stem {Path(p).name} has {x.shape[1]} channels, "
                                 f"others {channels}")
            if source in sums:
                a = sums[source]
                n = max(len(a), len(x))
                a = np.pad(a, ((0, n - len(a)), (0, 0)))
                a[:len(x)] += x
                sums[source] = a
            else:
                sums[source] = x
    if sr is None:
        raise MixinError(f"no stems in song folder {song.path}")
    n = max(len(v) for v in sums.values())
    out = {s: np.pad(sums[s], ((0, n - len(sums[s])), (0, 0))) if s in sums
           else np.zeros((n, channels), np.float32) for s in params.SOURCES}
    if mono:
        out = {s: v.mean(axis=1, keepdims=True, dtype=np.float32) for s, v in out.items()}
    return out, sr
