"""Reading audio: array checks, probing, streaming, whole files; libsndfile (WAV/RF64/W64, AIFF,
FLAC, OGG Vorbis/Opus, MP3, ...), and ffmpeg for what it cannot open (:func:`check_input`,
:func:`decoded`)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections import namedtuple
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
import soundfile as sf

from ..errors import MixinError
from .files import one_line

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

log = logging.getLogger("mixin")

#: What :func:`probe` returns: ``frames`` per channel; libsndfile's ``format``/``subtype`` names.
AudioInfo = namedtuple("AudioInfo", "path samplerate channels frames format subtype")

#: libsndfile's header log of a file cut short: "data : <declared> (should be <present>)".
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Declared data sizes that mean "length unknown" (written by streaming tools), not truncation.
_UNKNOWN_SIZES = {0xFFFFFFFF, 0x7FFFFFFF}
SF_ERRORS = (sf.SoundFileError, RuntimeError, AssertionError, OSError)


def sf_reason(exc) -> str:
    """The useful part of a soundfile/libsndfile exception, on one line."""
    return one_line(getattr(exc, "error_string", None) or str(exc)).rstrip(".") or type(exc).__name__


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools refused); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"{name} must be {kind} integer, got {value!r}")
    return int(value)


def as_2d(x: ArrayLike, allow_wide: bool = False) -> tuple[np.ndarray, bool]:
    """An API audio array ``[shape=(n,) or (n_samples, n_channels)]`` of floats as C-contiguous
    float32 ``[shape=(n_samples, n_channels)]`` (no copy if it is one) and whether it was 1-D.
    :class:`MixinError` for empty, 0-D or > 2-D arrays, non-float data, and more columns than rows
    (ambiguous, e.g. ``(2, n)``) unless ``allow_wide`` (known frames x channels, e.g. read from disk)."""
    a = np.asarray(x)
    was_1d = a.ndim == 1
    if a.dtype.kind not in "f":
        if a.dtype.kind in "iub":
            raise MixinError(
                f"audio array has integer dtype {a.dtype}: pass floating-point samples in [-1, 1] "
                f"(e.g. int16 data divided by 32768)")
        raise MixinError(f"audio array has unsupported dtype {a.dtype}: pass real floating-point samples")
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim != 2:
        raise MixinError(f"audio array must be 1-D (n,) or 2-D (n_samples, n_channels), got shape {a.shape}")
    elif a.shape[1] > a.shape[0] and not allow_wide:
        raise MixinError(
            f"ambiguous audio array shape {a.shape}: more channels than samples; "
            f"pass shape (n_samples, n_channels), e.g. x.T for a (channels, samples) array")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise MixinError(f"audio array is empty (shape {a.shape})")
    return np.ascontiguousarray(a, dtype=np.float32), was_1d


def as_block(block, channels: int) -> np.ndarray:
    """A streamed block as contiguous float32 [shape=(n, channels)] ((n,) for mono), else ValueError."""
    b = np.asarray(block)
    if b.ndim == 1 and channels == 1:
        b = b[:, None]
    if b.ndim != 2 or b.shape[1] != channels:
        raise ValueError(f"block must have shape (n, {channels}), got {b.shape}")
    return np.ascontiguousarray(b, dtype=np.float32)


def check_finite(x: np.ndarray, what: str, offset: int = 0) -> None:
    """:class:`MixinError` naming ``what`` if ``x`` [shape=(n,) or (n, channels)] has NaN or Inf
    samples: how many, and where the first is (sample numbers counted from ``offset``)."""
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    count = int(np.count_nonzero(bad))
    first = np.unravel_index(int(np.argmax(bad)), bad.shape)
    kinds = "/".join(k for k, f in (("NaN", np.isnan), ("Inf", np.isinf)) if f(x).any())
    where = f"first at sample {offset + int(first[0])}" + (f", channel {first[1]}" if x.ndim == 2 else "")
    raise MixinError(f"{what}: {count} {kinds} sample{'s' if count != 1 else ''} ({where})")


# Unchecked libsndfile access for training readers that seek (their own messages; libsndfile's
# exceptions, RuntimeErrors, propagate): a handle, the header, frames [start, stop) as float32
# [shape=(n, n_channels)] with the rate.
sound_file, sound_info = sf.SoundFile, sf.info


def read_range(path, start: int, stop: int) -> tuple[np.ndarray, int]:
    return sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)


def _check_input_path(path):  # before libsndfile sees it: clearer messages
    p = os.fspath(path)
    for bad, why in ((not os.path.lexists(p), "file not found"),
                     (not os.path.exists(p), "broken symbolic link"),
                     (os.path.isdir(p), "is a directory, not an audio file"),
                     (not os.path.isfile(p), "not a regular file")):
        if bad:
            raise MixinError(f"{p}: {why}")
    try:
        size = os.path.getsize(p)
    except OSError as e:
        raise MixinError(f"{p}: cannot read: {one_line(e.strerror or e)}") from None
    if size == 0:
        raise MixinError(f"{p}: empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise MixinError(f"{p}: permission denied")
    return p


def _looks_like_mpeg(p):
    """MPEG audio (MP3) by extension or by its first bytes (an ID3 tag or an MPEG frame sync)."""
    with open(p, "rb") as fh:  # readable: checked by _check_input_path
        head = fh.read(3)
    return (os.path.splitext(p)[1].lower() in (".mp3", ".mp2", ".mp1", ".mpga") or head == b"ID3"
            or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0))


@contextlib.contextmanager
def _stderr_to_log(p):
    """Log at debug level what C code writes to fd 2 meanwhile (mpg123's warnings about damaged
    MP3s): the user sees one error line from MiXiN instead."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2
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
                if text := tmp.read(4000).decode("utf-8", "replace").strip():
                    log.debug("%s: decoder messages: %s", p, one_line(text))
    finally:
        os.close(saved)


class UnreadableAudio(MixinError):
    """libsndfile cannot open the file at all (unknown format, not audio): where :func:`check_input`
    and :func:`decoded` turn to ffmpeg. ``.reason`` is libsndfile's."""


def _sf_open(p):
    """Open ``p`` for reading (:class:`UnreadableAudio` naming the file if libsndfile cannot)."""
    try:
        with _stderr_to_log(p) if _looks_like_mpeg(p) else contextlib.nullcontext():
            return sf.SoundFile(p)
    except (*SF_ERRORS, TypeError, ValueError) as e:
        reason = sf_reason(e)
        if "does not exist" in reason and os.path.isfile(p):
            # libsndfile's text for some of its decoders' internal codes (a damaged MP3, say),
            # which would send the user looking for a file that is there
            reason = "unrecognised or damaged audio data"
        err = UnreadableAudio(f"{p}: not a readable audio file ({reason})")
        err.reason = reason
        raise err from None


def probe(path: str | os.PathLike) -> AudioInfo:
    """:class:`AudioInfo` of a readable, non-empty audio file; :class:`MixinError`, one line naming
    it: missing, a directory, empty, not audio, corrupt header, truncated (WAV/AIFF), zero frames."""
    p = _check_input_path(path)
    with _sf_open(p) as f:
        info = AudioInfo(p, int(f.samplerate), int(f.channels), int(f.frames), f.format, f.subtype)
        if info.samplerate <= 0 or info.channels <= 0:
            raise MixinError(f"{p}: corrupt header (sample rate {info.samplerate}, {info.channels} channels)")
        m = _SHORT_CHUNK.search(f.extra_info or "")
        if m:
            declared, present = int(m.group(2)), int(m.group(3))
            if present < declared and declared not in _UNKNOWN_SIZES:
                raise MixinError(f"{p}: truncated file: its header declares {declared} bytes of "
                                 f"audio data but only {present} are present")
    if info.frames <= 0:
        raise MixinError(f"{p}: contains no audio (0 frames; empty or truncated)")
    return info


def iter_blocks(path: str | os.PathLike, blocksize: int) -> Iterator[np.ndarray]:
    """Stream a file as float32 blocks ``[shape=(<= blocksize, n_channels)]``, exactly
    ``probe(path).frames`` frames in all. The file is probed at once (bad files raise here); while
    iterating, :class:`MixinError` for NaN/Inf, undecodable data, or fewer frames than declared."""
    blocksize = positive_int(blocksize, "blocksize")
    return _blocks(probe(path), blocksize)


def _blocks(info, blocksize):
    p, done = info.path, 0
    with _sf_open(p) as f:
        while done < info.frames:
            try:
                block = f.read(min(blocksize, info.frames - done), dtype="float32", always_2d=True)
            except SF_ERRORS as e:
                raise MixinError(f"{p}: corrupt or truncated audio data near frame {done} "
                                 f"of {info.frames} ({sf_reason(e)})") from None
            if len(block) == 0:
                break
            check_finite(block, p, offset=done)
            done += len(block)
            yield block
    if done < info.frames:
        raise MixinError(f"{p}: truncated or corrupt audio: the header declares {info.frames} "
                         f"frames but only {done} could be decoded")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A whole file: float32 ``[shape=(n_frames, n_channels)]``, rate in Hz (errors: :func:`iter_blocks`)."""
    info = probe(path)
    x, done = np.empty((info.frames, info.channels), dtype=np.float32), 0
    for block in _blocks(info, 1 << 18):  # exactly info.frames, or it raises
        x[done:done + len(block)] = block
        done += len(block)
    return x, info.samplerate


FFMPEG_FORMATS = "AAC/M4A, WMA, video files"

#: ffmpeg's message prefixes such as "[mov,mp4,m4a @ 0x55d0c0a8] " (dropped from messages).
_FFMPEG_CONTEXT = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def ffmpeg_executable() -> str | None:
    """The ``ffmpeg`` program on PATH, or None."""
    return shutil.which("ffmpeg")


def _ffmpeg_reason(p, stderr):
    """ffmpeg's error output on one line, without the file name and context prefixes."""
    lines = [ln for ln in (_FFMPEG_CONTEXT.sub("", ln).strip() for ln in stderr.splitlines()) if ln]
    if any("matches no streams" in ln for ln in lines):
        return "no audio stream"
    named = (ln[len(pre):] for pre in (f"file:{p}: ", f"{p}: ") for ln in lines if ln.startswith(pre))
    return one_line(next(named, lines[-1] if lines else "ffmpeg failed")).rstrip(".")


def _run_ffmpeg(exe, p, args, what):
    """Run ``ffmpeg -i p ARGS``; MixinError with ffmpeg's own reason on one line if it fails
    (``what`` is a format string with ``{reason}``)."""
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "file:" + os.path.abspath(p),
           *args]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, check=False)
    except OSError as e:
        raise MixinError(f"{p}: cannot run {exe} ({one_line(e.strerror or e)})") from None
    if r.returncode != 0:
        text = r.stderr.decode("utf-8", "replace").replace("file:" + os.path.abspath(p), p)
        reason = _ffmpeg_reason(p, text)
        if reason == "no audio stream":
            raise MixinError(f"{p}: no audio stream (ffmpeg)")
        raise MixinError(f"{p}: " + what.format(reason=reason))


def _ffmpeg_for(path):
    """(path, None) if libsndfile reads ``path``, else (path, (ffmpeg, libsndfile's reason))."""
    p = _check_input_path(path)
    try:
        probe(p)
        return p, None
    except UnreadableAudio as e:
        exe = ffmpeg_executable()
        if exe is None:
            raise MixinError(f"{p}: not a format libsndfile reads ({e.reason}); "
                             f"{FFMPEG_FORMATS} need ffmpeg, which is not on PATH") from None
        return p, (exe, e.reason)


def check_input(path: str | os.PathLike) -> Literal["sndfile", "ffmpeg"]:
    """How ``path`` will be read, checked without decoding it: "sndfile" (header checked as by
    :func:`probe`) or "ffmpeg" (its first packets decoded). :class:`MixinError`, one line naming the
    file: what :func:`probe` refuses, ffmpeg's reason, or that ffmpeg is needed and not on PATH."""
    p, ff = _ffmpeg_for(path)
    if ff is None:
        return "sndfile"
    _run_ffmpeg(ff[0], p, ["-map", "0:a:0", "-t", "0.1", "-f", "null", "-"],
                f"not a readable audio file (libsndfile: {ff[1]}; ffmpeg: {{reason}})")
    return "ffmpeg"


@contextlib.contextmanager
def decoded(path: str | os.PathLike, tmpdir: str | os.PathLike | None = None) -> Iterator[str]:
    """A path libsndfile reads for ``path``: itself, or a float32 WAV (RF64 beyond 4 GiB) decoded by
    ffmpeg (first audio stream, every channel, its own rate) in ``tmpdir`` (default: the system's),
    deleted when the block ends; messages name ``path``. :class:`MixinError` as :func:`check_input`."""
    p, ff = _ffmpeg_for(path)
    if ff is None:
        yield p
        return
    fd, tmp = tempfile.mkstemp(prefix="mixin-ffmpeg-", suffix=".wav", dir=tmpdir)
    os.close(fd)
    try:
        log.debug("%s: decoding with %s to %s", p, ff[0], tmp)
        _run_ffmpeg(ff[0], p, ["-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "pcm_f32le",
                               "-rf64", "auto", "-f", "wav", "-y", "file:" + tmp],
                    "ffmpeg cannot decode it ({reason})")
        try:
            yield tmp
        except MixinError as e:
            raise MixinError(str(e).replace(tmp, p)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
