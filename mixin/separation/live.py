"""Separating a live stream (``xtract-mixin --stream``): audio on standard input, stems out as
each chunk is done.

Input: a WAV stream (as ``ffmpeg -f wav -`` or ``arecord -f cd`` write it: the sizes in its
header may be unknown, 0 or 0xFFFFFFFF; it is read up to the declared data size or the end of the
stream) or raw interleaved PCM described by a format spec ``FORMAT:RATE:CHANNELS``
(:func:`parse_stream_format`), FORMAT one of :data:`RAW_FORMATS` (ffmpeg's names), e.g.
``s16le:44100:2`` for ``ffmpeg ... -f s16le -ar 44100 -ac 2 -``.

The blocks go through :meth:`mixin.separation.separate.Separator.stream` — the code path of the
file command — so a stream's outputs equal the file's for the same samples and batch size.
Output: WAV files written as the chunks are done (:class:`WavStreamWriter`: the header is
rewritten after every block, so the files are readable while they grow, and completed at the
end) or named pipes (FIFOs, written as a WAV stream whose sizes are 0xFFFFFFFF).

Latency: the output up to sample ``(k + 1) * hop`` is final once chunk ``k`` — input up to
``k * hop + CHUNK_SIZE`` — is separated; with one chunk per network call (the default batch in
stream mode), a sample leaves between ``CHUNK_SIZE - hop`` and ``CHUNK_SIZE`` samples (0.25 to
1.0 s at the default overlap) after it arrived, plus the time to separate one chunk.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import numpy as np

from .. import params
from ..errors import MixinError

log = logging.getLogger("mixin")

#: Raw sample formats of ``--stream-format`` (ffmpeg's names): numpy dtype, scale to [-1, 1).
RAW_FORMATS = {
    "u8": ("u1", 1 / 128),
    "s16le": ("<i2", 1 / 32768),
    "s24le": ("s24", 1 / 8388608),
    "s32le": ("<i4", 1 / 2147483648),
    "f32le": ("<f4", 1.0),
    "f64le": ("<f8", 1.0),
}

#: Bytes per sample of each raw format.
_WIDTH = {"u8": 1, "s16le": 2, "s24le": 3, "s32le": 4, "f32le": 4, "f64le": 8}

#: Bytes read from the stream at a time (at most; whatever is available is taken at once).
READ_SIZE = 1 << 16

#: Output subtypes of a stream (WAV): format tag, bits per sample.
_OUT_SUBTYPES = {"FLOAT": (3, 32), "PCM_16": (1, 16), "PCM_24": (1, 24)}

_UNKNOWN = 0xFFFFFFFF


class StreamFormat(NamedTuple):
    """A decoded stream's sample format: ``kind`` (a :data:`RAW_FORMATS` key), sample rate, channels."""
    kind: str
    rate: int
    channels: int


def parse_stream_format(spec: str) -> StreamFormat | None:
    """Parse ``--stream-format``: ``wav`` -> None (the header says), ``FORMAT:RATE:CHANNELS`` ->
    :class:`StreamFormat`. Raises :class:`MixinError` naming the bad part."""
    s = spec.strip().lower()
    if s == "wav":
        return None
    parts = s.split(":")
    where = f"--stream-format {spec!r}"
    if len(parts) != 3:
        raise MixinError(f"{where}: expected wav or FORMAT:RATE:CHANNELS, e.g. s16le:44100:2 "
                         f"(FORMAT one of {', '.join(RAW_FORMATS)})")
    kind, rate, ch = parts
    if kind not in RAW_FORMATS:
        raise MixinError(f"{where}: unknown sample format {kind!r}; one of {', '.join(RAW_FORMATS)}")
    if not rate.isdigit() or not 1 <= int(rate) <= 1_000_000:
        raise MixinError(f"{where}: the sample rate must be a positive integer, got {rate!r}")
    if not ch.isdigit() or not 1 <= int(ch) <= 64:
        raise MixinError(f"{where}: the channel count must be an integer from 1 to 64, got {ch!r}")
    return StreamFormat(kind, int(rate), int(ch))


def _decode(raw: bytes, kind: str, channels: int) -> np.ndarray:
    """Interleaved samples -> float32 [shape=(n, channels)] (as libsndfile reads them)."""
    dtype, scale = RAW_FORMATS[kind]
    if dtype == "s24":
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8)
             | (b[:, 2].astype(np.int32) << 16))
        v = np.where(v >= 1 << 23, v - (1 << 24), v) << 8  # as libsndfile: to int32, then scaled
        x = v.astype(np.float32) * np.float32(1 / 2147483648)
    elif dtype == "u1":
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) * np.float32(scale)
    elif scale == 1.0:
        x = np.frombuffer(raw, dtype).astype(np.float32)
    else:
        x = np.frombuffer(raw, dtype).astype(np.float32) * np.float32(scale)
    return x.reshape(-1, channels)


class StreamReader:
    """Reads a WAV or raw PCM stream from a binary file object (standard input).

    The WAV header is read and checked on construction (:class:`MixinError`, one line, for a
    malformed one); :meth:`blocks` then yields float32 blocks [shape=(n_i, channels)] of the
    whole frames available after each read. Bytes of an incomplete last frame (a stream cut
    mid-sample) are dropped: :attr:`trailing` counts them.
    """

    def __init__(self, f, fmt: StreamFormat | None = None, name: str = "standard input"):
        self.f, self.name = f, name
        self._read = getattr(f, "read1", None) or f.read
        self.frames = 0      # frames yielded so far
        self.trailing = 0    # bytes of an incomplete frame at the end
        self._pending = b""
        self._left = None    # bytes of the data chunk still to read (None: until the end)
        self.format = fmt if fmt is not None else self._read_wav_header()
        self.rate, self.channels = self.format.rate, self.format.channels
        self.frame_bytes = _WIDTH[self.format.kind] * self.channels

    def _exact(self, n: int, what: str) -> bytes:
        out = self._pending[:n]
        self._pending = self._pending[n:]
        while len(out) < n:
            b = self._read(max(n - len(out), 1))
            if not b:
                raise MixinError(f"{self.name}: the stream ended inside the WAV header ({what})")
            out += b
        if len(out) > n:
            self._pending, out = out[n:] + self._pending, out[:n]
        return out

    def _read_wav_header(self) -> StreamFormat:
        head = self._exact(12, "RIFF header")
        if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise MixinError(f"{self.name}: not a WAV stream (it starts with {head[:4]!r}, not "
                             "RIFF....WAVE); for raw PCM give --stream-format FORMAT:RATE:CHANNELS, "
                             "e.g. s16le:44100:2")
        fmt = None
        for _ in range(64):
            cid, size = struct.unpack("<4sI", self._exact(8, "chunk header"))
            if cid == b"fmt ":
                if size < 16:
                    raise MixinError(f"{self.name}: malformed WAV header (fmt chunk of {size} bytes)")
                body = self._exact(size + (size & 1), "fmt chunk")
                tag, ch, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the GUID's first 2 bytes
                    tag = struct.unpack("<H", body[24:26])[0]
                kind = {(1, 8): "u8", (1, 16): "s16le", (1, 24): "s24le", (1, 32): "s32le",
                        (3, 32): "f32le", (3, 64): "f64le"}.get((tag, bits))
                if kind is None:
                    raise MixinError(f"{self.name}: unsupported WAV sample format (format tag "
                                     f"{tag}, {bits} bits); send PCM 8/16/24/32-bit or float 32/64")
                if ch < 1 or rate < 1 or align != ch * bits // 8:
                    raise MixinError(f"{self.name}: malformed WAV header ({ch} channels, {rate} Hz, "
                                     f"block align {align})")
                fmt = StreamFormat(kind, rate, ch)
            elif cid == b"data":
                if fmt is None:
                    raise MixinError(f"{self.name}: malformed WAV header (data before fmt chunk)")
                # sizes unknown to a writer that cannot seek: 0, 0xFFFFFFFF, or RF64's
                self._left = None if size in (0, _UNKNOWN) or head[:4] == b"RF64" else size
                return fmt
            else:
                if size > 1 << 24:
                    raise MixinError(f"{self.name}: malformed WAV header (a {cid!r} chunk of "
                                     f"{size} bytes before the data)")
                self._exact(size + (size & 1), f"{cid!r} chunk")
        raise MixinError(f"{self.name}: malformed WAV header (no data chunk in the first 64 chunks)")

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield the whole frames read so far, block by block, until the stream (or the WAV
        data chunk) ends."""
        buf = self._pending
        self._pending = b""
        fb = self.frame_bytes
        while True:
            if len(buf) < fb or not buf:
                want = READ_SIZE if self._left is None else min(READ_SIZE, self._left - len(buf))
                b = self._read(want) if want > 0 else b""
                if not b:
                    break
                buf += b
                if len(buf) < fb:
                    continue
            if self._left is not None and len(buf) > self._left:
                buf = buf[:self._left]
            n = len(buf) // fb * fb
            if n == 0:
                continue
            if self._left is not None:
                self._left -= n
            x = _decode(buf[:n], self.format.kind, self.channels)
            buf = buf[n:]
            self.frames += len(x)
            yield x
        self.trailing = len(buf)
        if self.trailing:
            log.warning("%s: the stream ended inside a frame: %d trailing byte(s) dropped",
                        self.name, self.trailing)


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------

class WavStreamWriter:
    """A WAV file (or named pipe) written block by block and readable while it grows.

    For a regular file the RIFF and data sizes are rewritten after every block (and the block
    pushed to the file system), so a reader sees every frame written so far; for a FIFO the
    sizes are 0xFFFFFFFF (unknown, as ffmpeg writes to pipes). ``subtype``: "FLOAT", "PCM_16"
    or "PCM_24" (PCM clipped to [-1, 1] and converted by libsndfile, as
    :class:`mixin.io.AtomicWriter` does).
    """

    def __init__(self, path: str, rate: int, channels: int, subtype: str = "FLOAT"):
        if subtype not in _OUT_SUBTYPES:
            raise MixinError(f"{path}: a stream writes float32, pcm16 or pcm24 WAV, not {subtype}")
        self.path, self.rate, self.channels, self.subtype = path, rate, channels, subtype
        try:
            self.fifo = stat.S_ISFIFO(os.stat(path).st_mode)
        except OSError:
            self.fifo = False
        try:
            self.f = open(path, "wb")  # a FIFO: waits here until its reader opens it
        except OSError as e:
            raise MixinError(f"{path}: cannot write ({e.strerror})") from None
        self.seekable = not self.fifo and self.f.seekable()
        self.frames = 0
        tag, self.bits = _OUT_SUBTYPES[subtype]
        self.clipped = 0
        align = channels * self.bits // 8
        self._header = (b"RIFF", b"WAVE", b"fmt ", struct.pack("<IHHIIHH", 16, tag, channels, rate,
                                                                rate * align, align, self.bits))
        self._write(self._header_bytes(None if not self.seekable else 0))

    def _header_bytes(self, data_bytes):
        riff, wave, fmt, fmt_body = self._header
        size = _UNKNOWN if data_bytes is None else min(36 + data_bytes, _UNKNOWN)
        data = _UNKNOWN if data_bytes is None else min(data_bytes, _UNKNOWN)
        return riff + struct.pack("<I", size) + wave + fmt + fmt_body + b"data" + struct.pack("<I", data)

    def _write(self, b: bytes) -> None:
        try:
            self.f.write(b)
        except BrokenPipeError:
            raise MixinError(f"{self.path}: the reader of the pipe went away") from None
        except OSError as e:
            raise MixinError(f"{self.path}: write failed ({e.strerror})") from None

    def _convert(self, x: np.ndarray) -> bytes:
        if self.subtype == "FLOAT":
            return np.ascontiguousarray(x, "<f4").tobytes()
        from ..io import clip_unit, raw_pcm

        x, over = clip_unit(x)
        self.clipped += over
        return raw_pcm(x, self.rate, self.subtype)

    def write(self, x: np.ndarray) -> None:
        """Append frames [shape=(n, channels)] float32, then make them visible."""
        if len(x) == 0:
            return
        self._write(self._convert(x))
        self.frames += len(x)
        try:
            if self.seekable:
                self.f.seek(0)
                self._write(self._header_bytes(self.frames * self.channels * self.bits // 8))
                self.f.seek(0, os.SEEK_END)
            self.f.flush()
        except BrokenPipeError:
            raise MixinError(f"{self.path}: the reader of the pipe went away") from None

    def close(self) -> None:
        """Complete the header and close."""
        try:
            self.f.close()
        except BrokenPipeError:
            raise MixinError(f"{self.path}: the reader of the pipe went away") from None
        if self.clipped:
            log.warning("%s: %d sample(s) outside [-1, 1] were clipped (%s output)",
                        self.path, self.clipped, self.subtype)


# ------------------------------------------------------------------------------------------------
# Separation
# ------------------------------------------------------------------------------------------------

class _Rate:
    """Streaming soxr resampling (the filter of :class:`mixin.io.Resampler`) for a stream of
    unknown length: blocks pass through as they come; :meth:`finish` flushes the filter and
    trims or pads the total to ``total`` frames."""

    def __init__(self, in_rate, out_rate, channels):
        import soxr

        self.identity = in_rate == out_rate
        self.channels = channels
        self.emitted = 0
        self._s = None if self.identity else soxr.ResampleStream(
            float(in_rate), float(out_rate), channels, dtype="float32", quality="HQ")

    def process(self, x):
        y = x if self.identity else self._s.resample_chunk(np.ascontiguousarray(x), last=False)
        self.emitted += len(y)
        return y

    def finish(self, total):
        y = (np.zeros((0, self.channels), np.float32) if self.identity else
             self._s.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
        room = total - self.emitted
        y = y[:max(room, 0)]
        if len(y) < room:
            y = np.concatenate([y, np.zeros((room - len(y), self.channels), np.float32)])
        self.emitted += len(y)
        return y


def separate_stream(sep, reader: StreamReader, out_paths: Mapping[str, str],
                    subtype: str = "FLOAT",
                    on_block: Callable[[int, int], object] | None = None) -> dict:
    """Separate the stream of ``reader`` with ``sep`` into one growing WAV (or FIFO) per source.

    Parameters
    ----------
    sep : Separator
    reader : StreamReader
    out_paths : dict source -> path
    subtype : "FLOAT", "PCM_16" or "PCM_24"
    on_block : callable(frames_in, frames_out) or None
        Called after each output block is written, with the input frames read and the output
        frames written so far (at the stream's rate), e.g. to measure latency.

    Returns dict frames (input frames), seconds (audio duration), wall (seconds spent), trailing
    (bytes of a cut last frame dropped).
    """
    from ..io import resampled_length

    t0 = time.perf_counter()
    sr, ch = reader.rate, reader.channels
    fs = params.SAMPLE_RATE
    into = _Rate(sr, fs, ch)
    back = {s: _Rate(fs, sr, ch) for s in sep.sources}

    def blocks():
        for x in reader.blocks():
            y = into.process(x)
            if len(y):
                yield y
        if not into.identity:
            y = into.finish(resampled_length(reader.frames, sr, fs))
            if len(y):
                yield y

    writers = {}
    try:
        for s in sep.sources:
            writers[s] = WavStreamWriter(out_paths[s], sr, ch, subtype)
        for out in sep.stream(blocks(), ch):
            for s in sep.sources:
                writers[s].write(back[s].process(out[s]))
            if on_block is not None:
                on_block(reader.frames, writers[sep.sources[0]].frames)
        for s in sep.sources:
            if not back[s].identity:
                writers[s].write(back[s].finish(reader.frames))
    finally:
        for w in writers.values():
            try:
                w.close()
            except MixinError as e:
                log.error("%s", e)
    return {"frames": reader.frames, "seconds": reader.frames / sr,
            "wall": time.perf_counter() - t0, "trailing": reader.trailing}
