"""Non-stationary Gabor transform (NSGT) on a Bark scale, vectorised over chunks and channels.

MiXiN's time-frequency representation: a non-sliced, real, matrix-form NSGT with Hann windows on
``N_BANDS`` bands spaced evenly in Bark (``6 * asinh(f / 600)``) from ``F_MIN`` to ``F_MAX``, on
chunks of ``CHUNK_SIZE`` samples: with :mod:`mixin.params` each chunk becomes a complex matrix of
``coef_shape() == (96, 1948)`` (0 Hz and Nyquist the first and last rows). The inverse uses the
canonical dual frame and reconstructs perfectly. The frame follows the painless non-stationary
Gabor frame (Balazs, Doerfler, Jaillet, Holighaus, Velasco, J. Comput. Appl. Math. 2011) with the
conventions of nsgt 0.19, which made the coefficients the published models were trained on (checked
against ``shared/reference/nsgt_chunk0.npy`` in the tests). Everything that does not depend on the
signal is precomputed (gather indices and windows, a sparse overlap-add matrix), so a batch of
chunks costs one real FFT, one gather and one batched inverse FFT (and the reverse).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft
import scipy.sparse

from . import params

#: Threads of each FFT call (scipy.fft ``workers``; -1: all cores). Batches running several
#: separator processes on one machine (``xtract-mixin --jobs N``) give each its share.
FFT_WORKERS = -1

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike


def hz2bark(f: ArrayLike) -> np.ndarray | float:
    """Hertz to Bark, ``6 * asinh(f / 600)`` (an array for an array, a float for a number)."""
    return 6.0 * np.arcsinh(np.asarray(f, dtype=float) / 600.0)


def bark2hz(b: ArrayLike) -> np.ndarray | float:
    """Bark to Hertz, the inverse of :func:`hz2bark` (an array for an array, a float for a number)."""
    return 600.0 * np.sinh(np.asarray(b, dtype=float) / 6.0)


def bark_frequencies(n_bands: int = params.N_BANDS, fmin: float = params.F_MIN,
                     fmax: float = params.F_MAX) -> np.ndarray:
    """Centre frequencies (Hz) of ``n_bands`` bands spaced evenly in Bark from fmin to fmax (Hz).

    Returns [shape=(n_bands,)]. Raises ``ValueError`` unless ``n_bands >= 2`` and ``0 <= fmin < fmax``.
    """
    if n_bands < 2:
        raise ValueError(f"n_bands must be at least 2, got {n_bands}")
    if not 0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    bmin, bmax = hz2bark(fmin), hz2bark(fmax)
    step = (bmax - bmin) / (n_bands - 1)
    return bark2hz(np.arange(n_bands) * step + bmin)


def _frame(Ls, fs, n_bands, fmin, fmax, min_win):
    """The frame: the bands strictly inside (0, fs/2) (Hz), and the Hann window lengths and centre
    bins of every window (DC, the bands, Nyquist, then the mirrored negative frequencies)."""
    nyq = fs / 2.0
    f = bark_frequencies(n_bands, fmin, fmax)
    # The 0 Hz and Nyquist bands are implicit (added below): keep the bands strictly inside.
    first = np.argmax(f > 0)
    if first != 0:
        f = f[first:]
    last = np.argmax(f >= nyq)
    if last != 0:
        f = f[:last]
    if len(f) < 2 or np.any(np.diff(f) <= 0):
        raise ValueError("the frequency scale must hold at least two increasing bands inside (0, fs/2)")
    nb = len(f)  # bands strictly between 0 and Nyquist
    centres = np.concatenate(([0.0], f, [nyq]))
    centres = np.concatenate((centres, fs - centres[-2:0:-1])) * (Ls / fs)
    win_len = np.empty(len(centres), dtype=int)  # 2 * nb + 2 windows
    win_len[0] = np.round(2 * centres[1])
    win_len[1:-1] = np.round(centres[2:] - centres[:-2])
    win_len[-1] = np.round(Ls - centres[-2])
    win_len = np.maximum(win_len, min_win)
    # The last band below Nyquist is centred halfway between its neighbours (and its mirror).
    centres[nb] = (centres[nb - 1] + centres[nb + 1]) / 2
    centres[nb + 2] = Ls - centres[nb]
    return f, win_len, np.round(centres).astype(int)


def _layout(win_len, pos, n_cols, nn):
    """Coefficient layout: band k, column j <-> FFT bin bins[k, j], with the analysis window and
    the canonical dual (synthesis) window there: (bins, support, w_ana, w_syn) [shape=(n_win, n_cols)].

    The windowed band is placed circularly around column 0: columns 0 .. ceil(m/2)-1 hold the
    centre bin and above, the last floor(m/2) columns the bins below; the rest are zero. The dual
    (painless case) is each window divided by the sum of all squared, scaled windows at its bins."""
    windows = [0.5 + 0.5 * np.cos(np.arange(m) * (2.0 * np.pi / m)) for m in win_len]  # Hann, peak first
    idxs = [(np.arange(-(len(g) // 2), len(g) - len(g) // 2) + p) % nn for g, p in zip(windows, pos)]
    diag = np.zeros(nn)
    for g, idx in zip(windows, idxs):
        diag[idx] += np.fft.fftshift(g) ** 2 * n_cols
    cols = np.arange(n_cols)
    n_win = len(windows)
    bins = np.zeros((n_win, n_cols), dtype=np.int64)
    support = np.zeros((n_win, n_cols), dtype=bool)
    w_ana = np.zeros((n_win, n_cols))
    w_syn = np.zeros((n_win, n_cols))
    for k, (g, idx, p) in enumerate(zip(windows, idxs, pos)):
        gd = g / np.fft.ifftshift(diag[idx])
        m = len(g)
        hi = cols < (m + 1) // 2
        lo = cols >= n_cols - m // 2
        bins[k] = (p + np.where(lo, cols - n_cols, cols)) % nn
        support[k] = hi | lo
        src = np.where(lo, cols - n_cols + m, cols)[support[k]]
        w_ana[k, support[k]] = g[src]
        w_syn[k, support[k]] = gd[src] * n_cols
    return bins, support, w_ana, w_syn


class NSGT:
    """Bark-scale NSGT of chunks of ``length`` samples at ``fs`` Hz (``n_bands``, ``fmin``, ``fmax``:
    :func:`bark_frequencies`). ``dtype``: float64 (matches the reference to ~1e-12) or float32 (about
    twice as fast; ~1e-7 relative error). ``shape``: one chunk's coefficient matrix, e.g. (96, 1948).
    """

    def __init__(self, length=params.CHUNK_SIZE, fs=params.SAMPLE_RATE, n_bands=params.N_BANDS,
                 fmin=params.F_MIN, fmax=params.F_MAX, dtype=np.float32, min_win=params.MIN_WIN):
        if int(length) != length or length < 16:
            raise ValueError(f"length must be an integer >= 16, got {length}")
        if fs <= 0:
            raise ValueError(f"fs must be positive, got {fs}")
        self.length = int(length)
        self.fs = float(fs)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.cdtype = np.result_type(self.dtype, np.complex64)
        f, win_len, pos = _frame(self.length, self.fs, n_bands, fmin, fmax, min_win)
        n_rows = len(f) + 2  # real signal: DC, the inner bands, Nyquist
        n_cols = int(win_len[:n_rows].max())  # matrix form: every band has the longest band's length
        nn = (-pos[-1]) % self.length + pos[-1] - pos[0]  # total length of the frequency axis (== Ls)
        self.shape = (n_rows, n_cols)
        self.n_fft = nn
        self.frequencies = np.concatenate(([0.0], f, [self.fs / 2.0]))
        self.window_lengths = win_len[:n_rows].copy()
        bins, support, w_ana, w_syn = _layout(win_len, pos, n_cols, nn)

        # Analysis: gather from the one-sided spectrum (bins above Nyquist are conjugates).
        b = bins[:n_rows]
        upper = b > nn // 2
        self._gather = np.where(upper, nn - b, b)
        self._conj = upper & support[:n_rows]
        self._w_ana = w_ana[:n_rows].astype(self.dtype)

        # Synthesis: overlap-add of every band (the mirrored ones are conjugates of the real rows)
        # into the one-sided spectrum, as two sparse matrices (direct and conjugated terms).
        n_half, n_win = nn // 2 + 1, len(win_len)
        flat = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
        direct, conj = ([], [], []), ([], [], [])
        for k in range(n_win):
            keep = support[k] & (bins[k] < n_half)
            # mirrored band k takes conj(FFT of row (n_win - k)) at column -j
            src = flat[k][keep] if k < n_rows else flat[n_win - k][(-np.arange(n_cols)[keep]) % n_cols]
            for lst, v in zip(direct if k < n_rows else conj, (bins[k][keep], src, w_syn[k][keep])):
                lst.append(v)

        def _csr(r, c, v):
            return scipy.sparse.csr_matrix(
                (np.concatenate(v).astype(self.dtype), (np.concatenate(r), np.concatenate(c))),
                shape=(n_half, n_rows * n_cols))

        self._syn_direct = _csr(*direct)
        self._syn_conj = _csr(*conj) if conj[0] else None

    # ------------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Transform real chunks [shape=(..., length)] (any leading batch dimensions, e.g. (n_chunks,
        n_channels, length)) to complex coefficients [shape=(..., n_rows, n_cols)]. ``ValueError``
        when the last axis of ``x`` is not ``length`` samples long."""
        x = np.asarray(x)
        if x.shape[-1:] != (self.length,):
            raise ValueError(f"forward expects chunks of {self.length} samples, got shape {x.shape}")
        spec = scipy.fft.rfft(x.astype(self.dtype, copy=False), axis=-1, workers=FFT_WORKERS)
        # np.take keeps the result C-contiguous (fancy indexing would lay it out band-major)
        band = np.take(spec, self._gather, axis=-1)
        np.conjugate(band, out=band, where=self._conj)
        band *= self._w_ana
        return scipy.fft.ifft(band, axis=-1, overwrite_x=True, workers=FFT_WORKERS)

    def backward(self, c: np.ndarray) -> np.ndarray:
        """Inverse transform (canonical dual frame) of coefficients [shape=(..., n_rows, n_cols)] to
        real chunks [shape=(..., length)]. ``ValueError`` when the last two axes of ``c`` are not
        ``shape``."""
        c = np.asarray(c)
        if c.shape[-2:] != self.shape:
            raise ValueError(f"backward expects coefficients of shape (..., {self.shape[0]}, "
                             f"{self.shape[1]}), got {c.shape}")
        lead = c.shape[:-2]
        fc = scipy.fft.fft(c.astype(self.cdtype, copy=False), axis=-1, workers=FFT_WORKERS)
        fc = fc.reshape(-1, self.shape[0] * self.shape[1])  # (batch, rows*cols)
        # overlap-add into the one-sided spectrum, one chunk at a time (a sparse matrix times a
        # contiguous vector is several times faster than times a strided matrix)
        half = np.empty((len(fc), self.n_fft // 2 + 1), dtype=self.cdtype)
        for i, row in enumerate(fc):
            half[i] = self._syn_direct @ row
            if self._syn_conj is not None and self._syn_conj.nnz:  # MiXiN's frame has none
                half[i] += self._syn_conj @ np.conj(row)
        x = scipy.fft.irfft(half, n=self.n_fft, axis=-1, workers=FFT_WORKERS)[..., :self.length]
        return x.reshape(lead + (self.length,))


@functools.lru_cache(maxsize=4)
def get_nsgt(length: int = params.CHUNK_SIZE, fs: float = params.SAMPLE_RATE,
             dtype: DTypeLike = "float32") -> NSGT:
    """A cached :class:`NSGT` with MiXiN's Bark scale for chunks of ``length`` samples at ``fs`` Hz
    (building one takes ~0.1 s)."""
    return NSGT(length=length, fs=fs, dtype=np.dtype(dtype))


def coef_shape() -> tuple[int, int]:
    """Shape of one chunk's coefficient matrix, the networks' input: (n_bands, n_cols) = (96, 1948)."""
    return get_nsgt().shape
