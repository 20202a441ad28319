"""Writing audio: output containers and sample formats, and :class:`AtomicWriter`."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets

import numpy as np
import soundfile as sf

from ..errors import MixinError
from .files import Part, one_line
from .read import SF_ERRORS, as_2d, as_block, positive_int, sf_reason

log = logging.getLogger("mixin")

#: Output sample formats offered to the user (CLI choices) -> libsndfile subtype names.
SUBTYPES = {"float32": "FLOAT", "pcm16": "PCM_16", "pcm24": "PCM_24"}

#: Containers MiXiN writes separated outputs in (lossless), by file extension.
OUTPUT_CONTAINERS = {"wav": "WAV", "wave": "WAV", "flac": "FLAC", "aif": "AIFF", "aiff": "AIFF",
                     "w64": "W64", "rf64": "RF64", "caf": "CAF"}
#: Any container :class:`AtomicWriter` writes, by extension (else a libsndfile format name).
_EXT_FORMATS = {**OUTPUT_CONTAINERS, "ogg": "OGG", "oga": "OGG", "opus": "OGG", "mp3": "MP3",
                "aifc": "AIFF", "au": "AU", "snd": "AU"}
#: Default codec for extensions whose container holds several (".opus" is Opus in OGG).
_EXT_DEFAULT_SUBTYPE = {"opus": "OPUS"}
#: Default sample format by container: 32-bit float, except FLAC (integers only): 24-bit.
OUTPUT_DEFAULT_SUBTYPE = {"FLAC": "PCM_24"}

#: A plain RIFF/WAVE file holds at most 4 GiB (32-bit sizes), the header chunks included.
_WAV_MAX_DATA_BYTES = 0xFFFFFFFF - 4096
_BYTES_PER_SAMPLE = {"FLOAT": 4, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "DOUBLE": 8, "PCM_U8": 1,
                     "PCM_S8": 1, "ULAW": 1, "ALAW": 1}


def _ext(p):
    return os.path.splitext(p)[1].lower().lstrip(".")


def _resolve_subtype(p, fmt, subtype):
    """libsndfile name of ``subtype`` (a :data:`SUBTYPES` key or libsndfile name; None: the default)
    if container ``fmt`` holds it, else :class:`MixinError`."""
    if subtype is None:
        subtype = _EXT_DEFAULT_SUBTYPE.get(_ext(p)) or sf.default_subtype(fmt)
    name = SUBTYPES.get(subtype, subtype)
    if not isinstance(name, str) or not sf.check_format(fmt, name.upper()):
        ok = [k for k, v in SUBTYPES.items() if sf.check_format(fmt, v)] or sorted(sf.available_subtypes(fmt))
        label = f"{subtype} ({name})" if name != subtype else f"{subtype}"
        raise MixinError(f"{p}: sample format {label} is not supported by {fmt} files; "
                         f"use one of: {', '.join(ok)}")
    return name.upper()


def output_subtype(path: str | os.PathLike, sample_format: str | None = None) -> str:
    """The libsndfile subtype to write the separated output ``path`` (its extension picks one of
    :data:`OUTPUT_CONTAINERS`) with ``sample_format``, a :data:`SUBTYPES` key or None for the
    container's default (float32; pcm24 for FLAC). :class:`MixinError`, one line: another
    extension, or a sample format the container cannot hold (float32 in FLAC)."""
    p = os.fspath(path)
    ext = _ext(p)
    fmt = OUTPUT_CONTAINERS.get(ext)
    if fmt is None or fmt not in sf.available_formats():
        kinds = ", ".join("." + e for e in OUTPUT_CONTAINERS if e not in ("wave", "aif"))
        what = f".{ext} files" if ext else "a file without an extension"
        raise MixinError(f"{p}: cannot write {what}; outputs are lossless {kinds}")
    if sample_format is None:
        return OUTPUT_DEFAULT_SUBTYPE.get(fmt, "FLOAT")
    if sample_format not in SUBTYPES:
        raise MixinError(f"unknown sample format {sample_format!r}; use one of {', '.join(SUBTYPES)}")
    return _resolve_subtype(p, fmt, sample_format)


def clip_unit(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``x`` clipped to [-1, 1] for PCM (which would wrap around) and the count of samples clipped."""
    over = int(np.count_nonzero(np.abs(x) > 1.0))
    return (np.clip(x, -1.0, 1.0) if over else x), over


def raw_pcm(x: np.ndarray, rate: int, subtype: str) -> bytes:
    """Headerless samples of ``x`` [shape=(n, channels)] in libsndfile ``subtype`` (clip PCM first)."""
    bio = io.BytesIO()
    sf.write(bio, x, rate, subtype=subtype, format="RAW")
    return bio.getvalue()


class AtomicWriter(contextlib.AbstractContextManager):
    """Write an audio file atomically through a :class:`mixin.io.files.Part` (:meth:`close`, or
    :meth:`abort` on any exception; an existing ``path`` is replaced)::

        with AtomicWriter("out.wav", 44100, 2, subtype="PCM_16") as w:
            w.write(block)          # [shape=(n, 2)] float32, as often as needed

    The extension picks the container (.wav .flac .ogg .mp3 .aiff .w64 ...); ``subtype`` is a
    libsndfile or :data:`SUBTYPES` name, or None for the container's default; PCM is clipped to
    [-1, 1]. With ``frames`` (the expected total) a .wav beyond 4 GiB becomes RF64, else it raises.
    :class:`MixinError` for an unknown extension, a subtype the container cannot hold, a missing or
    unwritable folder, ``path`` a directory, and write errors.
    """

    def __init__(self, path, samplerate, channels, subtype="FLOAT", frames=None):
        p = os.fspath(path)
        self.samplerate = positive_int(samplerate, "samplerate")
        self.channels = positive_int(channels, "channels")
        ext = _ext(p)
        fmt = _EXT_FORMATS.get(ext) or (ext.upper() if ext.upper() in sf.available_formats() else None)
        if fmt is None:
            raise MixinError(f"{p}: unknown output format for extension {'.' + ext if ext else '(none)'}; "
                             f"use one of {', '.join('.' + e for e in sorted(_EXT_FORMATS))}")
        self.subtype = _resolve_subtype(p, fmt, subtype)
        if os.path.isdir(p):
            raise MixinError(f"{p}: is a directory; cannot write an audio file there")
        d = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(d):
            raise MixinError(f"{p}: output directory {d} does not exist")
        self.path, self.format = p, fmt
        self.clipped = self.frames_written = 0  # samples clipped to [-1, 1] (PCM subtypes), frames
        self._clip = self.subtype.startswith("PCM") or self.subtype in ("ULAW", "ALAW")
        bps = _BYTES_PER_SAMPLE.get(self.subtype)
        self._wav_limit = None
        if fmt == "WAV" and bps:
            if frames is not None and frames * self.channels * bps > _WAV_MAX_DATA_BYTES:
                self.format = "RF64"
            else:
                self._wav_limit = _WAV_MAX_DATA_BYTES // (self.channels * bps)
        self._sf, self._done = None, False
        self._part = Part(p)
        try:
            self._sf = sf.SoundFile(self._part.path, "w", self.samplerate, self.channels,
                                    subtype=self.subtype, format=self.format)
        except (*SF_ERRORS, TypeError, ValueError) as e:
            self.abort()
            raise MixinError(f"{p}: cannot write {fmt} {self.subtype} at {self.samplerate} Hz, "
                             f"{self.channels} channel(s) ({sf_reason(e)})") from None

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.abort()

    def write(self, block: np.ndarray) -> None:
        """Append frames [shape=(n, channels)] ((n,) when channels == 1)."""
        if self._done or self._sf is None:
            raise ValueError(f"AtomicWriter for {self.path} is closed")
        b = as_block(block, self.channels)
        if self._clip:
            b, over = clip_unit(b)
            self.clipped += over
        if self._wav_limit is not None and self.frames_written + len(b) > self._wav_limit:
            raise MixinError(f"{self.path}: output exceeds the 4 GiB limit of WAV files; "
                             f"write .w64, .rf64 or .flac instead")
        try:
            self._sf.write(b)
        except SF_ERRORS as e:
            # soundfile asserts that every frame was written: a short write means a full disk
            reason = "short write; disk full?" if isinstance(e, AssertionError) else sf_reason(e)
            raise MixinError(f"{self.path}: write failed after {self.frames_written} frames "
                             f"({reason})") from None
        self.frames_written += len(b)

    def close(self) -> None:
        """Finish: flush and close the part file and rename it to ``path``."""
        if self._done:
            return
        try:
            try:
                self._sf.close()
            except SF_ERRORS as e:
                raise MixinError(f"{self.path}: cannot finish writing ({sf_reason(e)})") from None
            try:
                self._part.commit()
            except OSError as e:
                raise MixinError(f"{self.path}: cannot save ({one_line(e.strerror or e)})") from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        if self.clipped:
            log.warning("%s: %d sample(s) outside [-1, 1] were clipped (%s output)",
                        self.path, self.clipped, self.subtype)

    def abort(self) -> None:
        """Discard everything written: close and delete the part file (``path`` untouched)."""
        self._done = True
        if self._sf is not None:
            with contextlib.suppress(Exception):  # best effort; the file is deleted anyway
                self._sf.close()
        if getattr(self, "_part", None) is not None:
            try:
                self._part.discard()
            except OSError as e:
                log.warning("could not remove temporary file %s: %s", self._part.path, e)

    def __del__(self):
        if not getattr(self, "_done", True):
            self.abort()


def write_audio(path: str | os.PathLike, x: np.ndarray, sr: int, subtype: str | None = "FLOAT") -> None:
    """Write ``x`` [shape=(n,) or (n_frames, n_channels)], taken literally as frames x channels (a
    ``(1, 2)`` array is one stereo frame), at ``sr`` Hz through :class:`AtomicWriter`."""
    x2, _ = as_2d(x, allow_wide=True)
    with AtomicWriter(path, sr, x2.shape[1], subtype=subtype, frames=len(x2)) as w:
        w.write(x2)


def check_output_dir(d: str | os.PathLike) -> None:
    """:class:`MixinError` unless ``d`` is a folder we can create files in (tested by creating one:
    permission bits do not tell for root, ACLs, read-only mounts)."""
    p = os.fspath(d)
    if not os.path.exists(p):
        raise MixinError(f"{p}: output directory does not exist")
    if not os.path.isdir(p):
        raise MixinError(f"{p}: output path is not a directory")
    probe_path = os.path.join(p, f".mixin-write-test.{secrets.token_hex(4)}")
    try:
        os.close(os.open(probe_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise MixinError(f"{p}: output directory is not writable ({one_line(e.strerror or e)})") from None
    with contextlib.suppress(OSError):
        os.unlink(probe_path)
