"""Pictures for the stem player: waveform peaks and NSGT spectrograms (numpy only, no matplotlib).

:func:`peaks` streams a file once and returns, for ``n`` equal spans of it, the lowest and
highest sample over all channels (what a waveform display draws). :func:`spectrogram_png`
renders the magnitude of MiXiN's own Bark-scale NSGT (:mod:`mixin.nsgt`) of a file as a PNG,
written with :func:`png_bytes` (zlib + struct from the standard library).
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from .. import params

#: Spans of a waveform (the page draws at most this many columns per track).
N_PEAKS = 1200

#: Width (pixels) a spectrogram image aims at; each NSGT row is drawn SPEC_ROW_PX pixels high.
SPEC_WIDTH = 1200
SPEC_ROW_PX = 3

#: Dynamic range of the spectrogram (dB below the loudest bin).
SPEC_RANGE_DB = 80.0

#: Colour map (dark blue -> teal -> yellow, as viridis) as anchors on [0, 1].
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                    dtype=np.float64)


def peaks(path: str | os.PathLike, n: int = N_PEAKS) -> dict:
    """Waveform peaks of an audio file libsndfile reads, in one streaming pass.

    Returns dict with ``frames``, ``samplerate``, ``channels``, ``duration`` (s) and ``min``,
    ``max``: lists of ``min(n, frames)`` floats, the extremes over all channels of each of that
    many equal spans of the file. Raises :class:`mixin.errors.MixinError` for a bad file.
    """
    from ..io import iter_blocks, probe

    info = probe(path)
    total = info.frames
    nb = max(1, min(int(n), total))
    edges = (np.arange(nb + 1, dtype=np.int64) * total) // nb  # strictly increasing: nb <= total
    lo = np.full(nb, np.inf, np.float32)
    hi = np.full(nb, -np.inf, np.float32)
    start = 0
    for block in iter_blocks(path, 1 << 18):
        end = start + len(block)
        b0 = int(np.searchsorted(edges, start, "right")) - 1
        b1 = int(np.searchsorted(edges, end - 1, "right")) - 1
        cuts = np.maximum(edges[b0:b1 + 1], start) - start
        hi[b0:b1 + 1] = np.maximum(hi[b0:b1 + 1], np.maximum.reduceat(block.max(axis=1), cuts))
        lo[b0:b1 + 1] = np.minimum(lo[b0:b1 + 1], np.minimum.reduceat(block.min(axis=1), cuts))
        start = end
    return {"frames": total, "samplerate": info.samplerate, "channels": info.channels,
            "duration": total / info.samplerate,
            "min": [round(float(v), 4) for v in lo], "max": [round(float(v), 4) for v in hi]}


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an image as PNG (8-bit RGB, no interlace).

    Parameters
    ----------
    rgb : uint8 array [shape=(height, width, 3)]
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected a (height, width, 3) image, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def colormap(v: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] [shape=(...)] to uint8 RGB [shape=(..., 3)]."""
    v = np.clip(np.asarray(v, np.float64), 0.0, 1.0) * (len(_ANCHORS) - 1)
    i = np.minimum(v.astype(np.int64), len(_ANCHORS) - 2)
    f = (v - i)[..., None]
    return np.round(_ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f).astype(np.uint8)


def nsgt_image(path: str | os.PathLike, width: int = SPEC_WIDTH, batch: int = 4) -> np.ndarray:
    """The NSGT magnitude of a file (channels averaged, at 44.1 kHz), in dB, pooled to about
    ``width`` columns.

    The file is cut into consecutive chunks of ``CHUNK_SIZE`` samples (the last zero-padded),
    each transformed by :func:`mixin.nsgt.get_nsgt` ([shape=(96, 1948)] per chunk) and max-pooled
    over time to ``ceil(width / n_chunks)`` columns; memory stays bounded by ``batch`` chunks.

    Returns float array [shape=(96, cols)] (the padding's columns left out), dB relative to the loudest bin, in [-SPEC_RANGE_DB, 0],
    row 0 the lowest band.
    """
    from ..io import iter_blocks, probe, resample, resampled_length
    from ..nsgt import get_nsgt

    info = probe(path)
    x = np.concatenate([b.mean(axis=1) for b in iter_blocks(path, 1 << 18)])
    if info.samplerate != params.SAMPLE_RATE:
        m = resampled_length(len(x), info.samplerate, params.SAMPLE_RATE)
        x = resample(x[:, None], info.samplerate, params.SAMPLE_RATE, m)[:, 0]
    N = params.CHUNK_SIZE
    n = len(x)
    k = -(-n // N)
    x = np.concatenate([x, np.zeros(k * N - len(x), np.float32)]).reshape(k, N)
    nsgt = get_nsgt()
    cols = nsgt.shape[1]
    per = max(1, min(cols, -(-int(width) // k)))
    groups = np.linspace(0, cols, per + 1).astype(np.int64)[:-1]
    parts = []
    for i in range(0, k, batch):
        mag = np.abs(nsgt.forward(x[i:i + batch]))  # (b, 96, cols)
        pooled = np.maximum.reduceat(mag, groups, axis=2)  # (b, 96, per)
        parts.append(np.moveaxis(pooled, 0, 1).reshape(mag.shape[1], -1))
    mag = np.concatenate(parts, axis=1)
    mag = mag[:, :max(1, -(-mag.shape[1] * n // (k * N)))]  # the zero padding left out
    ref = float(mag.max())
    if ref <= 0:
        return np.full(mag.shape, -SPEC_RANGE_DB)
    db = 20 * np.log10(np.maximum(mag / ref, 1e-12))
    return np.maximum(db, -SPEC_RANGE_DB)


def spectrogram_png(path: str | os.PathLike, width: int = SPEC_WIDTH) -> bytes:
    """PNG of :func:`nsgt_image` of ``path``: low bands at the bottom, each band
    ``SPEC_ROW_PX`` pixels high, -SPEC_RANGE_DB..0 dB mapped through :func:`colormap`."""
    db = nsgt_image(path, width)
    img = colormap(db[::-1] / SPEC_RANGE_DB + 1.0)
    return png_bytes(np.repeat(img, SPEC_ROW_PX, axis=0))
