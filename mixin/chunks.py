"""Chunking: cutting a signal into chunks of ``CHUNK_SIZE`` samples and overlap-adding them back.

The one rule every stage that transforms audio follows (the separator with cross-faded chunks; the
training data, the calibration and the oracle with hard chunks), needing only numpy. Chunk ``k``
covers samples ``[k * hop, k * hop + size)``; there are ``ceil(n_samples / hop)`` chunks (at least
one), the last ones zero-padded. Consecutive chunks share ``size - hop`` samples (at most half a
chunk), over which the earlier one fades out and the later one fades in with sin^2/cos^2 tapers
that sum to one (the first chunk does not fade in). With ``hop == size`` these are the published
MiXiN's hard chunks and every weight is one. Signals are [shape=(n_channels, n_samples)] or
[shape=(n_samples,)]; chunks [shape=(n_chunks, n_channels, size)] or [shape=(n_chunks, size)].
"""

from __future__ import annotations

import math

import numpy as np

from . import params
from .errors import MixinError


def hop_size(overlap: float, size: int = params.CHUNK_SIZE) -> int:
    """Samples between chunk starts for ``overlap``, the fraction of a chunk that consecutive chunks
    share, in [0, 0.5]: ``size - round(overlap * size)``.

    Raises :class:`MixinError` for an overlap outside [0, 0.5] (it comes from the user)."""
    if not isinstance(overlap, (int, float)) or not 0 <= overlap <= 0.5 or math.isnan(overlap):
        raise MixinError(f"overlap must be a fraction between 0 and 0.5, got {overlap!r}")
    return size - int(round(overlap * size))


def n_chunks(n_samples: int, hop: int) -> int:
    """Number of chunks that cover ``n_samples`` with chunk starts ``hop`` samples apart: at least
    one, and the last one is included however few samples it holds."""
    return max(1, -(-int(n_samples) // hop))


def _check_hop(hop: int, size: int) -> None:
    if int(hop) != hop or not size / 2 <= hop <= size:
        raise ValueError(f"hop must be an integer from size/2 to size ({size}), got {hop!r}")


def tapers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Rising (sin^2) and falling (cos^2, computed as 1 - sin^2) tapers of ``length`` samples.

    Returns two float32 arrays [shape=(length,)] that sum to one up to float32 rounding.
    """
    t = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1)
    rise = np.sin(0.5 * np.pi * t) ** 2
    return rise.astype(np.float32), (1.0 - rise).astype(np.float32)


def weights(hop: int, size: int = params.CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Overlap-add weights of the first chunk and of every later chunk.

    Both are float32 [shape=(size,)]: one, times the falling taper on the last ``size - hop``
    samples, and (later chunks only) times the rising taper on the first ``size - hop``. Raises
    ``ValueError`` unless ``size / 2 <= hop <= size``."""
    _check_hop(hop, size)
    overlap = size - hop
    rise, fall = tapers(overlap)
    first = np.ones(size, np.float32)
    first[hop:] = fall
    later = first.copy()
    later[:overlap] *= rise  # the rise and the fall do not overlap: overlap <= hop
    return first, later


def cut(x: np.ndarray, hop: int = params.CHUNK_SIZE, size: int = params.CHUNK_SIZE) -> np.ndarray:
    """Cut a signal [shape=(n_channels, n_samples)] or [shape=(n_samples,)] into
    ``n_chunks(n_samples, hop)`` zero-padded chunks of ``size`` samples, ``hop`` samples apart
    (``size / 2`` to ``size``; default: no overlap): a new array of ``x``'s dtype
    [shape=(n_chunks, n_channels, size)] or [shape=(n_chunks, size)]. ``ValueError`` for another
    number of dimensions or a hop out of range.
    """
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a signal of shape (n_channels, n_samples) or (n_samples,), "
                         f"got {x.shape}")
    _check_hop(hop, size)
    n = x.shape[-1]
    out = np.zeros((n_chunks(n, hop),) + x.shape[:-1] + (size,), x.dtype)
    for k in range(len(out)):
        seg = x[..., k * hop:k * hop + size]
        out[k, ..., :seg.shape[-1]] = seg
    return out


def overlap_add(chunks: np.ndarray, n_samples: int, hop: int = params.CHUNK_SIZE) -> np.ndarray:
    """Overlap-add chunks [shape=(n_chunks, n_channels, size)] or [shape=(n_chunks, size)] with the
    :func:`weights`, the inverse of :func:`cut`: [shape=(n_channels, n_samples)] or
    [shape=(n_samples,)], float32 for float32 chunks (float64 for float64); samples past
    ``n_samples`` are dropped. ``overlap_add(cut(x, hop), n, hop)`` is ``x`` exactly without overlap,
    up to float32 rounding of the tapers with it. ``ValueError`` for a number of chunks other than
    ``n_chunks(n_samples, hop)`` or a hop out of range.
    """
    chunks = np.asarray(chunks)
    size = chunks.shape[-1]
    first, later = weights(hop, size)
    if chunks.ndim not in (2, 3) or len(chunks) != n_chunks(n_samples, hop):
        raise ValueError(f"expected {n_chunks(n_samples, hop)} chunks of shape (n_channels, size) "
                         f"or (size,) for {n_samples} samples, got {chunks.shape}")
    out = np.zeros(chunks.shape[1:-1] + (n_samples,), np.result_type(chunks.dtype, np.float32))
    for k, c in enumerate(chunks):
        m = min(size, n_samples - k * hop)
        out[..., k * hop:k * hop + m] += c[..., :m] * (later if k else first)[:m]
    return out
