"""Audio input and output for MiXiN: reading, checking, streaming, resampling and atomic writing.

Every format goes through libsndfile (the ``soundfile`` package): WAV/WAVEX/RF64/W64, AIFF, FLAC,
OGG Vorbis/Opus, MP3 and the rest of what ``soundfile.available_formats()`` lists. Inputs that
libsndfile cannot open (AAC/M4A, WMA, the audio of video files) are decoded by the ``ffmpeg``
program when it is on PATH (:func:`check_input`, :func:`decoded`). Resampling is done by soxr
(``soxr.ResampleStream``, quality "HQ"), which streams with bounded memory.

Channel policy
--------------
Files are read as float32 ``[shape=(n_frames, n_channels)]``; every channel is kept and separated
independently (any channel count >= 1), and outputs have the input's channel count, rate and length.

Arrays passed to the Python API may be mono ``[shape=(n,)]`` or multichannel
``[shape=(n_samples, n_channels)]``. A 2-D array with more columns than rows (for example a
transposed stereo signal ``(2, n)``) is ambiguous and is refused with a :class:`MixinError` that
asks for ``(n_samples, n_channels)``; see :func:`as_2d`.

Errors
------
Everything the user can fix (a missing, empty, non-audio, truncated or corrupt file, NaN/Inf
samples, an unwritable output directory, an output format that cannot hold the requested sample
format) raises :class:`mixin.errors.MixinError` with a one-line message that names the path; raw
``soundfile``/libsndfile exceptions never reach the user. Misuse of the programming interface
(wrong block shape, calling after close) raises ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections import namedtuple
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

import numpy as np
import soundfile as sf
import soxr

from . import params
from .errors import MixinError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

log = logging.getLogger("mixin")

#: Output sample formats offered to the user (CLI choices) -> libsndfile subtype names.
SUBTYPES = {"float32": "FLOAT", "pcm16": "PCM_16", "pcm24": "PCM_24"}

#: What :func:`probe` returns. ``frames`` is the number of sample frames (samples per channel);
#: ``format``/``subtype`` are libsndfile's names (e.g. ``"WAV"``, ``"PCM_16"``).
AudioInfo = namedtuple("AudioInfo", "path samplerate channels frames format subtype")

#: Output container by file extension (lower case). Anything else must be a libsndfile format name.
_EXT_FORMATS = {
    "wav": "WAV", "wave": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "opus": "OGG",
    "mp3": "MP3", "aif": "AIFF", "aiff": "AIFF", "aifc": "AIFF", "w64": "W64", "rf64": "RF64",
    "caf": "CAF", "au": "AU", "snd": "AU",
}
#: Default codec for extensions whose container holds several (".opus" is Opus in OGG).
_EXT_DEFAULT_SUBTYPE = {"opus": "OPUS"}

#: A plain RIFF/WAVE file holds at most 4 GiB (32-bit sizes); leave room for the header chunks.
_WAV_MAX_DATA_BYTES = 0xFFFFFFFF - 4096
_BYTES_PER_SAMPLE = {"FLOAT": 4, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "DOUBLE": 8, "PCM_U8": 1,
                     "PCM_S8": 1, "ULAW": 1, "ALAW": 1}

#: libsndfile's header log says "data : <declared> (should be <present>)" when a WAV/AIFF-style
#: data chunk is longer than the file: the file was cut short.
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Declared data sizes that mean "length unknown" (written by streaming tools), not truncation.
_UNKNOWN_SIZES = {0xFFFFFFFF, 0x7FFFFFFF}


def _one_line(text):
    """Collapse whitespace so that a library message fits on one line."""
    return " ".join(str(text).split())


def _sf_reason(exc):
    """The useful part of a soundfile/libsndfile exception, on one line."""
    reason = getattr(exc, "error_string", None) or str(exc)
    return _one_line(reason).rstrip(".") or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------

def as_2d(x: ArrayLike, allow_wide: bool = False) -> tuple[np.ndarray, bool]:
    """Validate an API audio array and return it as float32 frames x channels.

    Parameters
    ----------
    x : array_like [shape=(n,) or (n_samples, n_channels)]
        Floating-point samples (nominally in [-1, 1]).
    allow_wide : bool
        Accept 2-D arrays with more columns than rows as ``(n_samples, n_channels)`` (for arrays
        known to be frames x channels, e.g. a one-sample stereo file read from disk).

    Returns
    -------
    x2d : np.ndarray [shape=(n_samples, n_channels), dtype=float32]
        C-contiguous; no copy when ``x`` already is such an array.
    was_1d : bool
        True when ``x`` was 1-D (callers return 1-D results for 1-D input).

    Raises
    ------
    MixinError
        Empty, 0-D or more than 2-D arrays, non-float data, or an ambiguous 2-D shape (more
        columns than rows, e.g. ``(2, n)``): pass ``(n_samples, n_channels)``.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "f":
        if a.dtype.kind in "iub":
            raise MixinError(
                f"audio array has integer dtype {a.dtype}: pass floating-point samples in [-1, 1] "
                f"(e.g. int16 data divided by 32768)")
        raise MixinError(f"audio array has unsupported dtype {a.dtype}: pass real floating-point samples")
    if a.ndim == 1:
        was_1d = True
        a = a[:, None]
    elif a.ndim == 2:
        was_1d = False
        if a.shape[1] > a.shape[0] and not allow_wide:
            raise MixinError(
                f"ambiguous audio array shape {a.shape}: more channels than samples; "
                f"pass shape (n_samples, n_channels), e.g. x.T for a (channels, samples) array")
    else:
        raise MixinError(f"audio array must be 1-D (n,) or 2-D (n_samples, n_channels), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise MixinError(f"audio array is empty (shape {a.shape})")
    return np.ascontiguousarray(a, dtype=np.float32), was_1d


def _nonfinite_message(x, what, offset=0):
    """Message for an array with NaN/Inf samples: how many and where the first one is."""
    bad = ~np.isfinite(x)
    count = int(np.count_nonzero(bad))
    first = np.unravel_index(int(np.argmax(bad)), bad.shape)
    kinds = []
    if np.isnan(x).any():
        kinds.append("NaN")
    if np.isinf(x).any():
        kinds.append("Inf")
    where = f"first at sample {offset + int(first[0])}"
    if x.ndim == 2:
        where += f", channel {int(first[1])}"
    return f"{what}: {count} {'/'.join(kinds)} sample{'s' if count != 1 else ''} ({where})"


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise :class:`MixinError` if ``x`` contains NaN or Inf.

    Parameters
    ----------
    x : np.ndarray [shape=(n,) or (n_samples, n_channels)]
    what : str
        Names the data in the message (e.g. the file name).
    """
    x = np.asarray(x)
    if not np.isfinite(x).all():
        raise MixinError(_nonfinite_message(x, what))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _check_input_path(path):
    """File-system checks done before libsndfile sees the path (clearer messages)."""
    p = os.fspath(path)
    if not os.path.lexists(p):
        raise MixinError(f"{p}: file not found")
    if not os.path.exists(p):
        raise MixinError(f"{p}: broken symbolic link")
    if os.path.isdir(p):
        raise MixinError(f"{p}: is a directory, not an audio file")
    if not os.path.isfile(p):
        raise MixinError(f"{p}: not a regular file")
    try:
        size = os.path.getsize(p)
    except OSError as e:
        raise MixinError(f"{p}: cannot read: {_one_line(e.strerror or e)}") from None
    if size == 0:
        raise MixinError(f"{p}: empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise MixinError(f"{p}: permission denied")
    return p


def _looks_like_mpeg(p):
    """MPEG audio (MP3) by extension or by its first bytes (an ID3 tag or an MPEG frame sync)."""
    if os.path.splitext(p)[1].lower() in (".mp3", ".mp2", ".mp1", ".mpga"):
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(3)
    except OSError:
        return False
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


@contextlib.contextmanager
def _stderr_to_log(p):
    """Capture what C code writes to file descriptor 2 and log it at debug level.

    libsndfile's MP3 decoder (mpg123) prints warnings such as "Warning: Xing stream size off by
    more than 1%" straight to stderr when it opens a damaged file; the user should see one error
    line from MiXiN instead.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                tmp.seek(0)
                text = tmp.read(4000).decode("utf-8", "replace")
                if text.strip():
                    log.debug("%s: decoder messages: %s", p, _one_line(text))
    finally:
        os.close(saved)


class UnreadableAudio(MixinError):
    """libsndfile cannot open the file at all (unknown format, not audio): the case in which
    :func:`check_input` and :func:`decoded` turn to ffmpeg. ``reason`` is libsndfile's."""

    def __init__(self, message, reason=""):
        super().__init__(message)
        self.reason = reason


def _sf_open(p):
    """Open ``p`` for reading (:class:`UnreadableAudio` naming the file if libsndfile cannot)."""
    quiet = _stderr_to_log(p) if _looks_like_mpeg(p) else contextlib.nullcontext()
    try:
        with quiet:
            return sf.SoundFile(p)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError) as e:
        reason = _sf_reason(e)
        raise UnreadableAudio(f"{p}: not a readable audio file ({reason})", reason) from None


def _open_checked(p):
    """Open ``p`` for reading and check its header; returns (SoundFile, AudioInfo)."""
    f = _sf_open(p)
    try:
        info = AudioInfo(p, int(f.samplerate), int(f.channels), int(f.frames), f.format, f.subtype)
        if info.samplerate <= 0 or info.channels <= 0:
            raise MixinError(f"{p}: corrupt header (sample rate {info.samplerate}, "
                             f"{info.channels} channels)")
        m = _SHORT_CHUNK.search(f.extra_info or "")
        if m:
            declared, present = int(m.group(2)), int(m.group(3))
            if present < declared and declared not in _UNKNOWN_SIZES:
                raise MixinError(f"{p}: truncated file: its header declares {declared} bytes of "
                                 f"audio data but only {present} are present")
        if info.frames <= 0:
            raise MixinError(f"{p}: contains no audio (0 frames; empty or truncated)")
    except BaseException:
        f.close()
        raise
    return f, info


def probe(path: str | os.PathLike) -> AudioInfo:
    """Check that ``path`` is a readable, non-empty audio file and return its :class:`AudioInfo`.

    Raises
    ------
    MixinError
        One line naming the file: missing, a directory, empty (0 bytes), not audio / unknown
        format, corrupt header, truncated data chunk (WAV/AIFF), zero frames.
    """
    f, info = _open_checked(_check_input_path(path))
    f.close()
    return info


def iter_blocks(path: str | os.PathLike, blocksize: int) -> Iterator[np.ndarray]:
    """Stream a file as float32 blocks with memory bounded by ``blocksize``.

    The file is probed immediately (bad files raise here, before any block is requested); the
    returned generator then yields ``[shape=(<= blocksize, n_channels)]`` float32 arrays, a total
    of exactly ``probe(path).frames`` frames. Each block is checked for NaN/Inf.

    Raises
    ------
    MixinError
        Everything :func:`probe` refuses; during iteration: NaN/Inf samples, a decoding error
        (truncated or corrupt data), or fewer frames than the header declared.
    """
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) or blocksize < 1:
        raise ValueError(f"blocksize must be a positive integer, got {blocksize!r}")
    p = _check_input_path(path)
    f, info = _open_checked(p)
    f.close()
    return _blocks(p, info, int(blocksize))


def _blocks(p, info, blocksize):
    with _sf_open(p) as f:
        done = 0
        while done < info.frames:
            want = min(blocksize, info.frames - done)
            try:
                block = f.read(want, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, AssertionError, OSError) as e:
                raise MixinError(f"{p}: corrupt or truncated audio data near frame {done} "
                                 f"of {info.frames} ({_sf_reason(e)})") from None
            if len(block) == 0:
                break
            if not np.isfinite(block).all():
                raise MixinError(_nonfinite_message(block, p, offset=done))
            done += len(block)
            yield block
        if done < info.frames:
            raise MixinError(f"{p}: truncated or corrupt audio: the header declares {info.frames} "
                             f"frames but only {done} could be decoded")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole file.

    Returns
    -------
    x : np.ndarray [shape=(n_frames, n_channels), dtype=float32]
    sr : int
        Sample rate in Hz.

    Raises
    ------
    MixinError
        As :func:`iter_blocks` (bad file, truncated/corrupt data, NaN/Inf samples).
    """
    p = _check_input_path(path)
    f, info = _open_checked(p)
    f.close()
    x = np.empty((info.frames, info.channels), dtype=np.float32)
    done = 0
    for block in _blocks(p, info, 1 << 18):
        x[done:done + len(block)] = block
        done += len(block)
    return x, info.samplerate


# --------------------------------------------------------------------------------------------
# Other formats through ffmpeg
# --------------------------------------------------------------------------------------------

#: What ffmpeg adds to what libsndfile reads (for messages).
FFMPEG_FORMATS = "AAC/M4A, WMA, video files"

#: ffmpeg's message prefixes such as "[mov,mp4,m4a @ 0x55d0c0a8] " (dropped from messages).
_FFMPEG_CONTEXT = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def ffmpeg_executable() -> str | None:
    """The ``ffmpeg`` program on PATH, or None."""
    return shutil.which("ffmpeg")


def _ffmpeg_reason(p, stderr):
    """ffmpeg's error output reduced to one line (without the file name and context prefixes)."""
    lines = [_FFMPEG_CONTEXT.sub("", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    if any("matches no streams" in ln for ln in lines):
        return "no audio stream"
    for prefix in (f"file:{p}: ", f"{p}: "):
        for ln in lines:
            if ln.startswith(prefix):
                return _one_line(ln[len(prefix):]).rstrip(".")
    return _one_line(lines[-1]).rstrip(".") if lines else "ffmpeg failed"


def _run_ffmpeg(exe, p, args, what):
    """Run ``ffmpeg -i p ARGS``; MixinError with ffmpeg's own reason on one line if it fails
    (``what`` is a format string with ``{reason}``)."""
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "file:" + os.path.abspath(p),
           *args]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, check=False)
    except OSError as e:
        raise MixinError(f"{p}: cannot run {exe} ({_one_line(e.strerror or e)})") from None
    if r.returncode != 0:
        text = r.stderr.decode("utf-8", "replace").replace("file:" + os.path.abspath(p), p)
        reason = _ffmpeg_reason(p, text)
        if reason == "no audio stream":
            raise MixinError(f"{p}: no audio stream (ffmpeg)")
        raise MixinError(f"{p}: " + what.format(reason=reason))


def _ffmpeg_needed(p, unreadable):
    return MixinError(f"{p}: not a format libsndfile reads ({unreadable.reason}); "
                      f"{FFMPEG_FORMATS} need ffmpeg, which is not on PATH")


def check_input(path: str | os.PathLike) -> Literal["sndfile", "ffmpeg"]:
    """Check, without decoding it, that ``path`` can be separated; say how it will be read.

    Returns
    -------
    "sndfile" when libsndfile reads it (header checked as by :func:`probe`), "ffmpeg" when only
    ffmpeg does (its first audio packets were decoded).

    Raises
    ------
    MixinError
        One line naming the file: everything :func:`probe` refuses; for a file libsndfile cannot
        open, ffmpeg's reason (no audio stream, invalid data), or that ffmpeg is needed and is
        not on PATH.
    """
    p = _check_input_path(path)
    try:
        probe(p)
        return "sndfile"
    except UnreadableAudio as e:
        exe = ffmpeg_executable()
        if exe is None:
            raise _ffmpeg_needed(p, e) from None
        _run_ffmpeg(exe, p, ["-map", "0:a:0", "-t", "0.1", "-f", "null", "-"],
                    f"not a readable audio file (libsndfile: {e.reason}; ffmpeg: {{reason}})")
        return "ffmpeg"


@contextlib.contextmanager
def decoded(path: str | os.PathLike, tmpdir: str | os.PathLike | None = None) -> Iterator[str]:
    """A path libsndfile reads for ``path``: ``path`` itself, or a temporary decoded copy.

    Files libsndfile cannot open are decoded by ffmpeg (first audio stream, every channel, the
    stream's own sample rate) to a 32-bit float WAV (RF64 beyond 4 GiB) in ``tmpdir`` (default:
    the system temporary folder), which is deleted when the ``with`` block ends, however it ends.
    Messages about the decoded copy name ``path``.

    Raises
    ------
    MixinError
        As :func:`check_input`.
    """
    p = _check_input_path(path)
    try:
        probe(p)
    except UnreadableAudio as e:
        exe = ffmpeg_executable()
        if exe is None:
            raise _ffmpeg_needed(p, e) from None
    else:
        yield p
        return
    fd, tmp = tempfile.mkstemp(prefix="mixin-ffmpeg-", suffix=".wav", dir=tmpdir)
    os.close(fd)
    try:
        log.debug("%s: decoding with %s to %s", p, exe, tmp)
        _run_ffmpeg(exe, p, ["-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "pcm_f32le",
                             "-rf64", "auto", "-f", "wav", "-y", "file:" + tmp],
                    "ffmpeg cannot decode it ({reason})")
        try:
            yield tmp
        except MixinError as e:
            raise MixinError(str(e).replace(tmp, p)) from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------

def _check_rate(rate, name):
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {rate!r}")
    return Fraction(int(rate)) if float(rate).is_integer() else Fraction(float(rate))


def resampled_length(n: int, in_rate: float, out_rate: float) -> int:
    """Number of frames that ``n`` frames at ``in_rate`` become at ``out_rate`` (rates in Hz).

    ``round(n * out_rate / in_rate)`` (halves round up), computed exactly. The separator uses the
    same rule both ways: n -> m = resampled_length(n, sr, 44100) on the way in, and back to exactly
    n frames (``out_frames=n``) on the way out.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    q = Fraction(int(n)) * _check_rate(out_rate, "out_rate") / _check_rate(in_rate, "in_rate")
    return int(math.floor(q + Fraction(1, 2)))


def _block(block, channels):
    """A streamed block as contiguous float32 [shape=(n, channels)] ((n,) accepted for mono)."""
    b = np.asarray(block)
    if b.ndim == 1 and channels == 1:
        b = b[:, None]
    if b.ndim != 2 or b.shape[1] != channels:
        raise ValueError(f"block must have shape (n, {channels}), got {b.shape}")
    return np.ascontiguousarray(b, dtype=np.float32)


class Resampler:
    """Streaming resampler (soxr "HQ", float32, any channel count) with an exact output length.

    Feed consecutive blocks ``[shape=(n_i, channels)]`` to :meth:`process`; the last one with
    ``last=True`` (it may be empty). Over all calls exactly ``out_frames`` frames are returned:
    surplus output is dropped and a shortfall is zero-padded at the end (at most a sample or two
    with the :func:`resampled_length` convention). Memory is bounded by the block size. When
    ``in_rate == out_rate`` blocks pass through unchanged (no copy, no filter).

    Parameters
    ----------
    in_rate, out_rate : int or float
        Sample rates in Hz.
    channels : int
        Channel count of every block.
    out_frames : int
        Exact total number of frames to emit, usually ``resampled_length(n, in_rate, out_rate)``.
    """

    def __init__(self, in_rate, out_rate, channels, out_frames):
        _check_rate(in_rate, "in_rate")
        _check_rate(out_rate, "out_rate")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if isinstance(out_frames, bool) or not isinstance(out_frames, (int, np.integer)) or out_frames < 0:
            raise ValueError(f"out_frames must be a non-negative integer, got {out_frames!r}")
        self.in_rate, self.out_rate = in_rate, out_rate
        self.channels, self.out_frames = int(channels), int(out_frames)
        self.identity = float(in_rate) == float(out_rate)
        self.emitted = 0     # frames returned so far
        self.padded = 0      # zero frames appended at the end to reach out_frames
        self.dropped = 0     # surplus frames discarded
        self._finished = False
        self._stream = None
        if not self.identity:
            self._stream = soxr.ResampleStream(float(in_rate), float(out_rate), self.channels,
                                               dtype="float32", quality="HQ")

    @property
    def finished(self) -> bool:
        """True once the last block was processed (``out_frames`` frames were emitted)."""
        return self._finished

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next block.

        Parameters
        ----------
        block : np.ndarray [shape=(n, channels)] (or (n,) when channels == 1)
        last : bool
            True for the final block: flushes the filter and pads/trims to ``out_frames``.

        Returns
        -------
        np.ndarray [shape=(m, channels), dtype=float32]
        """
        if self._finished:
            raise ValueError("Resampler.process() called after the last block")
        b = _block(block, self.channels)
        out = b if self.identity else self._stream.resample_chunk(b, last=bool(last))
        room = self.out_frames - self.emitted
        if len(out) > room:
            self.dropped += len(out) - room
            out = out[:room]
        self.emitted += len(out)
        if last:
            self._finished = True
            short = self.out_frames - self.emitted
            if short > 0:
                out = np.concatenate([out, np.zeros((short, self.channels), np.float32)])
                self.emitted += short
                self.padded = short
            if self.padded > 2 or self.dropped > 2:
                log.debug("resampler %s->%s Hz: padded %d, dropped %d frames",
                          self.in_rate, self.out_rate, self.padded, self.dropped)
        return out


def resample(x: np.ndarray, in_rate: float, out_rate: float, out_frames: int | None = None) -> np.ndarray:
    """Resample a whole array (same filter and length rule as :class:`Resampler`).

    Parameters
    ----------
    x : np.ndarray [shape=(n,) or (n, channels)]
    in_rate, out_rate : int or float, sample rates in Hz
    out_frames : int or None
        Output length; default ``resampled_length(n, in_rate, out_rate)``.

    Returns
    -------
    np.ndarray [shape=(out_frames,) or (out_frames, channels), dtype=float32]
    """
    a = np.asarray(x)
    if a.ndim in (1, 2) and a.shape[0] == 0 and a.dtype.kind == "f" and (a.ndim == 1 or a.shape[1] > 0):
        x2, was_1d = np.zeros((0, 1 if a.ndim == 1 else a.shape[1]), np.float32), a.ndim == 1
    else:                                   # (zero frames are valid here: m may round to 0)
        x2, was_1d = as_2d(a, allow_wide=True)
    if out_frames is None:
        out_frames = resampled_length(len(x2), in_rate, out_rate)
    y = Resampler(in_rate, out_rate, x2.shape[1], out_frames).process(x2, last=True)
    return y[:, 0] if was_1d else y


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _format_for_path(p):
    ext = os.path.splitext(p)[1].lower().lstrip(".")
    fmt = _EXT_FORMATS.get(ext) or (ext.upper() if ext.upper() in sf.available_formats() else None)
    if fmt is None:
        known = ", ".join("." + e for e in sorted(_EXT_FORMATS))
        raise MixinError(f"{p}: unknown output format for extension {'.' + ext if ext else '(none)'}; "
                         f"use one of {known}")
    return fmt, ext


def _resolve_subtype(p, fmt, ext, subtype):
    if subtype is None:
        subtype = _EXT_DEFAULT_SUBTYPE.get(ext) or sf.default_subtype(fmt)
    name = SUBTYPES.get(subtype, subtype)
    if not isinstance(name, str) or not sf.check_format(fmt, name.upper()):
        ok = [k for k, v in SUBTYPES.items() if sf.check_format(fmt, v)]
        if not ok:
            ok = sorted(sf.available_subtypes(fmt))
        label = f"{subtype} ({name})" if name != subtype else f"{subtype}"
        raise MixinError(f"{p}: sample format {label} is not supported by {fmt} files; "
                         f"use one of: {', '.join(ok)}")
    return name.upper()


#: Containers MiXiN writes separated outputs in (lossless), by file extension.
OUTPUT_CONTAINERS = {"wav": "WAV", "wave": "WAV", "flac": "FLAC", "aif": "AIFF", "aiff": "AIFF",
                     "w64": "W64", "rf64": "RF64", "caf": "CAF"}
#: Default sample format by container: 32-bit float, except FLAC (integers only): 24-bit.
OUTPUT_DEFAULT_SUBTYPE = {"FLAC": "PCM_24"}


def output_subtype(path: str | os.PathLike, sample_format: str | None = None) -> str:
    """The libsndfile subtype to write the separated output ``path`` with.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its extension picks the container, one of :data:`OUTPUT_CONTAINERS`
        (lossless: .wav .flac .aiff .w64 .rf64 .caf).
    sample_format : str or None
        A :data:`SUBTYPES` key ("float32", "pcm16", "pcm24"); None = the container's default
        (float32, or pcm24 for FLAC, which has no float samples).

    Raises
    ------
    MixinError
        One line: an extension that is not a lossless container libsndfile writes, or a sample
        format the container cannot hold (float32 in FLAC).
    """
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower().lstrip(".")
    fmt = OUTPUT_CONTAINERS.get(ext)
    if fmt is None or fmt not in sf.available_formats():
        kinds = ", ".join("." + e for e in OUTPUT_CONTAINERS if e not in ("wave", "aif"))
        what = f".{ext} files" if ext else "a file without an extension"
        raise MixinError(f"{p}: cannot write {what}; outputs are lossless {kinds}")
    if sample_format is None:
        return OUTPUT_DEFAULT_SUBTYPE.get(fmt, "FLOAT")
    if sample_format not in SUBTYPES:
        raise MixinError(f"unknown sample format {sample_format!r}; use one of {', '.join(SUBTYPES)}")
    return _resolve_subtype(p, fmt, ext, sample_format)


#: Hidden part file of an output being written by :class:`AtomicWriter`: ``.NAME.XXXXXXXX.part``.
PART_SUFFIX = ".part"


def lock_part(fd: int, path: str) -> bool:
    """Take an exclusive, non-blocking ``flock`` on the open part file ``fd`` (at ``path``).

    Returns True when the lock is held and ``path`` still names the file of ``fd`` (it was not
    removed or replaced meanwhile), False otherwise. Where ``fcntl`` does not exist (Windows) no
    lock is taken and True is returned. ``flock`` locks belong to the open file (not the process),
    so they also exclude threads of one process; on NFS, Linux emulates ``flock`` with byte-range
    locks that the server arbitrates (NFSv4, or v3 with lockd; not with the ``local_lock`` or
    ``nolock`` mount options, where locks are only seen on one machine).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def part_files(path: str | os.PathLike) -> list[str]:
    """The hidden part files of output ``path`` that exist now (``.NAME.XXXXXXXX.part`` beside
    it, as :class:`AtomicWriter` names them); other files never match."""
    p = os.fspath(path)
    d, base = os.path.split(os.path.abspath(p))
    pat = re.compile(r"\." + re.escape(base) + r"\.[0-9a-f]{8}" + re.escape(PART_SUFFIX) + r"\Z")
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return sorted(os.path.join(d, n) for n in names if pat.match(n))


def remove_stale_parts(path: str | os.PathLike) -> list[str]:
    """Remove the part files of output ``path`` left by a writer that died (SIGKILL, power loss).

    A part file is removed only if its exclusive lock can be taken: a live :class:`AtomicWriter`
    (in this or any other process on a machine sharing the folder) holds the lock on its part
    until it is renamed or deleted, so its part is left alone. Returns the paths removed.
    """
    removed = []
    for part in part_files(path):
        try:
            fd = os.open(part, os.O_RDONLY)
        except OSError:
            continue  # gone meanwhile, or not ours to open
        try:
            if lock_part(fd, part):
                try:
                    os.unlink(part)
                    removed.append(part)
                except OSError:
                    pass
        finally:
            os.close(fd)
    return removed


class AtomicWriter:
    """Write an audio file atomically: a hidden temporary file in the destination directory
    (same filesystem), renamed over ``path`` only when everything was written.

    Use as a context manager::

        with AtomicWriter("out.wav", 44100, 2, subtype="PCM_16") as w:
            for block in blocks:
                w.write(block)          # [shape=(n, 2)] float32

    On a clean exit the file is flushed, closed, fsync'ed and renamed (``os.replace``) to
    ``path``; on an exception (including KeyboardInterrupt) the temporary file is deleted and
    ``path`` is left untouched. ``path`` is never seen half-written. (An existing ``path`` is
    replaced on success: whether that is allowed is the caller's decision.)

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the container comes from the extension (.wav .flac .ogg .mp3 .aiff .w64 ...).
    samplerate : int
    channels : int
    subtype : str or None
        libsndfile subtype ("FLOAT", "PCM_16", "PCM_24", ...) or a :data:`SUBTYPES` key
        ("float32", "pcm16", "pcm24"); None = the container's default (e.g. Vorbis for .ogg).
        PCM subtypes clip samples to [-1, 1] (full scale) instead of wrapping around.
    frames : int or None
        Expected total frames, if known. A .wav whose data would exceed the 4 GiB RIFF limit is
        then written as RF64 (the WAV extension for large files); without it, such a write
        raises :class:`MixinError` rather than produce a corrupt WAV.

    Raises
    ------
    MixinError
        Unknown extension, a subtype the container cannot hold (e.g. float32 in .flac), a
        missing/unwritable destination directory, ``path`` is a directory, write errors.
    """

    def __init__(self, path, samplerate, channels, subtype="FLOAT", frames=None):
        p = os.fspath(path)
        if isinstance(samplerate, bool) or not isinstance(samplerate, (int, np.integer)) or samplerate < 1:
            raise ValueError(f"samplerate must be a positive integer, got {samplerate!r}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        fmt, ext = _format_for_path(p)
        self.subtype = _resolve_subtype(p, fmt, ext, subtype)
        if os.path.isdir(p):
            raise MixinError(f"{p}: is a directory; cannot write an audio file there")
        d = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(d):
            raise MixinError(f"{p}: output directory {d} does not exist")
        self.path, self.samplerate, self.channels = p, int(samplerate), int(channels)
        self.format = fmt
        self.clipped = 0                 # samples clipped to [-1, 1] (PCM subtypes)
        self.frames_written = 0
        self._clip = self.subtype.startswith("PCM") or self.subtype in ("ULAW", "ALAW")
        bps = _BYTES_PER_SAMPLE.get(self.subtype)
        self._wav_limit = None
        if fmt == "WAV" and bps:
            if frames is not None and frames * self.channels * bps > _WAV_MAX_DATA_BYTES:
                self.format = "RF64"
            else:
                self._wav_limit = _WAV_MAX_DATA_BYTES // (self.channels * bps)
        self._tmp = None
        self._sf = None
        self._lock_fd = None
        self._done = False
        self._tmp = self._create_temp(d, os.path.basename(p))
        try:
            self._sf = sf.SoundFile(self._tmp, "w", self.samplerate, self.channels,
                                    subtype=self.subtype, format=self.format)
        except (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError) as e:
            self.abort()
            raise MixinError(f"{p}: cannot write {fmt} {self.subtype} at {self.samplerate} Hz, "
                             f"{self.channels} channel(s) ({_sf_reason(e)})") from None

    def _create_temp(self, d, base):
        """Create the hidden part file ``d/.BASE.XXXXXXXX.part`` and hold an exclusive lock on it
        (:func:`lock_part`) until :meth:`close` or :meth:`abort`, so that
        :func:`remove_stale_parts` never deletes a part that a live writer is writing."""
        for _ in range(100):
            tmp = os.path.join(d, f".{base}.{secrets.token_hex(4)}.part")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
            except FileExistsError:
                continue
            except OSError as e:
                raise MixinError(f"{os.path.join(d, base)}: cannot create a file in {d} "
                                 f"({_one_line(e.strerror or e)})") from None
            if not lock_part(fd, tmp):  # removed by a cleaner between creation and lock: retry
                os.close(fd)
                continue
            self._lock_fd = fd
            return tmp
        raise MixinError(f"{os.path.join(d, base)}: cannot create a temporary file in {d}")

    def _unlock(self):
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)  # releases the lock

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def write(self, block: np.ndarray) -> None:
        """Append frames.

        Parameters
        ----------
        block : np.ndarray [shape=(n, channels)] (or (n,) when channels == 1)
        """
        if self._done or self._sf is None:
            raise ValueError(f"AtomicWriter for {self.path} is closed")
        b = _block(block, self.channels)
        if self._clip:
            over = np.count_nonzero(np.abs(b) > 1.0)
            if over:
                self.clipped += int(over)
                b = np.clip(b, -1.0, 1.0)
        if self._wav_limit is not None and self.frames_written + len(b) > self._wav_limit:
            raise MixinError(f"{self.path}: output exceeds the 4 GiB limit of WAV files; "
                             f"write .w64, .rf64 or .flac instead")
        try:
            self._sf.write(b)
        except (sf.SoundFileError, RuntimeError, AssertionError, OSError) as e:
            # soundfile asserts that every frame was written: a short write means a full disk
            reason = "short write; disk full?" if isinstance(e, AssertionError) else _sf_reason(e)
            raise MixinError(f"{self.path}: write failed after {self.frames_written} frames "
                             f"({reason})") from None
        self.frames_written += len(b)

    def close(self) -> None:
        """Finish: flush, close and rename the temporary file to ``path``."""
        if self._done:
            return
        try:
            try:
                self._sf.close()
            except (sf.SoundFileError, RuntimeError, OSError) as e:
                raise MixinError(f"{self.path}: cannot finish writing ({_sf_reason(e)})") from None
            try:
                fd = os.open(self._tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(self._tmp, self.path)
            except OSError as e:
                raise MixinError(f"{self.path}: cannot save ({_one_line(e.strerror or e)})") from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._unlock()
        if self.clipped:
            log.warning("%s: %d sample(s) outside [-1, 1] were clipped (%s output)",
                        self.path, self.clipped, self.subtype)

    def abort(self) -> None:
        """Discard everything written: close and delete the temporary file (``path`` untouched)."""
        self._done = True
        if self._sf is not None:
            try:
                self._sf.close()
            except Exception:  # noqa: BLE001 - best effort; the file is deleted anyway
                pass
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove temporary file %s: %s", self._tmp, e)
            self._tmp = None
        self._unlock()

    def __del__(self):
        if not getattr(self, "_done", True):
            self.abort()


def write_audio(path: str | os.PathLike, x: np.ndarray, sr: int, subtype: str | None = "FLOAT") -> None:
    """Write a whole array atomically (see :class:`AtomicWriter`).

    Parameters
    ----------
    x : np.ndarray [shape=(n,) or (n_frames, n_channels)]
        Taken literally as frames x channels (a ``(1, 2)`` array is one stereo frame).
    sr : int
        Sample rate in Hz.
    subtype : str or None, as for :class:`AtomicWriter` (whose :class:`MixinError` cases apply)
    """
    x2, _ = as_2d(x, allow_wide=True)
    with AtomicWriter(path, sr, x2.shape[1], subtype=subtype, frames=len(x2)) as w:
        w.write(x2)


def check_output_dir(d: str | os.PathLike) -> None:
    """Raise :class:`MixinError` unless ``d`` is an existing directory we can create files in.

    Writability is tested by creating and removing a temporary file (permission bits alone do not
    tell: root, ACLs, read-only mounts).
    """
    p = os.fspath(d)
    if not os.path.exists(p):
        raise MixinError(f"{p}: output directory does not exist")
    if not os.path.isdir(p):
        raise MixinError(f"{p}: output path is not a directory")
    probe_path = os.path.join(p, f".mixin-write-test.{secrets.token_hex(4)}")
    try:
        fd = os.open(probe_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise MixinError(f"{p}: output directory is not writable ({_one_line(e.strerror or e)})") from None
    os.close(fd)
    try:
        os.unlink(probe_path)
    except OSError:
        pass
