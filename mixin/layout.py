"""The on-disk layout of the faithful training path: segment folders, songs.json, HDF5 files.

``--prepare-stems`` (:mod:`mixin.training.stems`) writes, in the data dir::

    {song:03d}{segment:04d}v/     mix.wav (harmonic + percussive + vocal), harmonic.wav,
                                  percussive.wav, vocal.wav
    {song:03d}{segment:04d}nov/   mix.wav (harmonic + percussive), harmonic.wav, percussive.wav
    songs.json                    the song table (written last: marks a complete preparation)

``--create-hdf5`` (:mod:`mixin.training.hdf5`) reads them and writes ``data_{source}.hdf5`` beside
them; ``--calibrate`` (:mod:`mixin.training.calibrate`) reads the ``v`` folders. Every name is built
and parsed here. Song numbers have 3 digits (more are parsed: ``1234`` ``0005`` ``v`` is song 1234).

songs.json (``"format": "mixin-songs/1"``) holds ``split`` ({train, validation, test: [song
indices]}), ``segment_samples`` and the other settings of the preparation, and ``songs``: a list
whose position is the song index, each with ``index``, ``source`` (the stem folder, None for a
remix), ``augmented``, ``split``, ``duration`` (s), ``samples``, ``channels``, ``n_segments``,
``segments`` (indices), ``folders`` (segment folder names) and ``files`` or ``remix``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from .errors import MixinError

#: The song table written beside the segment folders.
SONGS_JSON = "songs.json"

#: Value of songs.json's "format" field.
SONGS_FORMAT = "mixin-songs/1"

#: Segment folder kinds, in the order they are written: with vocals, without.
KINDS = ("v", "nov")

#: The parts of each kind of segment folder (file ``{part}.wav``): the mixture, then the sources.
SEGMENT_PARTS = {"v": ("mix", "harmonic", "percussive", "vocal"),
                 "nov": ("mix", "harmonic", "percussive")}

#: File names of each kind of segment folder.
SEGMENT_FILES = {k: tuple(f"{p}.wav" for p in parts) for k, parts in SEGMENT_PARTS.items()}

#: Dataset file of each source: ``data_{source}.hdf5``; :data:`HDF5_GLOB` matches them all.
HDF5_FILE = "data_{}.hdf5"
HDF5_GLOB = HDF5_FILE.format("*")

_SEGMENT_RE = re.compile(r"^(\d{3,})(\d{4})(v|nov)$")


class SegmentName(NamedTuple):
    """A parsed segment folder name."""

    song: int
    segment: int
    kind: str  # "v" or "nov"


def segment_name(song: int, segment: int, kind: str) -> str:
    """The folder name of segment ``segment`` (0..9999) of song ``song`` (>= 0) of ``kind``
    ("v" or "nov"), e.g. ``segment_name(1, 2, "v") == "0010002v"``. ValueError otherwise."""
    if kind not in KINDS or not 0 <= segment <= 9999 or song < 0:
        raise ValueError(f"no segment folder name for song {song!r}, segment {segment!r}, "
                         f"kind {kind!r}")
    return f"{song:03d}{segment:04d}{kind}"


def segment_folder(data_dir: str | os.PathLike, song: int, segment: int, kind: str) -> Path:
    """``data_dir / segment_name(song, segment, kind)``."""
    return Path(data_dir) / segment_name(song, segment, kind)


def parse_segment_folder(name: str | os.PathLike) -> SegmentName | None:
    """(song, segment, kind) of a segment folder name (or path: its last part), or None if the
    name is not one. Inverse of :func:`segment_name`."""
    m = _SEGMENT_RE.match(os.path.basename(os.fspath(name)))
    return SegmentName(int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


def segment_file(folder: str | os.PathLike, part: str) -> Path:
    """The WAV of ``part`` ("mix", "harmonic", "percussive", "vocal") in a segment folder."""
    return Path(folder) / f"{part}.wav"


def songs_json(data_dir: str | os.PathLike) -> Path:
    """Path of the song table in ``data_dir``."""
    return Path(data_dir) / SONGS_JSON


def hdf5_path(data_dir: str | os.PathLike, source: str) -> Path:
    """Path of the dataset file of ``source`` in ``data_dir``: ``data_dir/data_{source}.hdf5``."""
    return Path(data_dir) / HDF5_FILE.format(source)


def read_songs(data_dir: str | os.PathLike = "data") -> dict[str, Any]:
    """The song table ``data_dir/songs.json`` (see the module documentation) as a dict.

    Raises :class:`MixinError` if it is missing (run ``--prepare-stems``), unreadable, or lacks
    ``songs`` or ``split``."""
    path = songs_json(data_dir)
    if not path.is_file():
        raise MixinError(f"no prepared stems in {data_dir} ({SONGS_JSON} missing): "
                         "run --prepare-stems first")
    try:
        doc = json.loads(path.read_text())
        doc["songs"], doc["split"]  # noqa: B018  (presence check)
    except (OSError, ValueError, KeyError, TypeError) as e:
        msg = " ".join(str(e).split())[:300] or type(e).__name__
        raise MixinError(f"cannot read {path}: {msg}") from None
    return doc
