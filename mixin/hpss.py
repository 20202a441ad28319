"""Median-filtering HPSS in the NSGT's bins: the classic estimate MiXiN set out to improve.

Fitzgerald (DAFx 2010): a median filter along time keeps what is steady in time (harmonic) and one
along frequency what is broadband in one instant (percussive). Here the spectrogram is a chunk's
NSGT magnitude [shape=(96, 1948)] (columns of about 0.5 ms), first averaged in groups of columns —
:data:`TIME_POOL` (~16 ms) for the median along time, :data:`BAND_POOL` (~4 ms) for the median
across bands — then repeated back to 1948 columns (about 1 ms per chunk and filter). The estimates
are extra inputs of the ``--arch`` models whose ``model.json`` lists them; they depend on the chunk
only, so separation, streaming and overlap stay chunk by chunk.
"""

from __future__ import annotations

import numpy as np

from .errors import MixinError

#: Columns averaged before the median along time (1948 columns per 44032 samples: 32 is ~16 ms)
#: and its length in pooled columns (13 x ~16 ms = ~0.2 s, as Fitzgerald's).
TIME_POOL = 32
TIME_MEDIAN = 13

#: Columns averaged before the median across bands (8: ~4 ms) and its length in Bark bands (9 of 96).
BAND_POOL = 8
BAND_MEDIAN = 9


def _median_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Running median of odd length ``size`` along ``axis``, edges padded by repeating the edge
    value (scipy.ndimage's "nearest" mode)."""
    from scipy.ndimage import median_filter

    shape = [1] * x.ndim
    shape[axis] = size
    return median_filter(x, size=shape, mode="nearest")


def _pooled(mag: np.ndarray, pool: int) -> np.ndarray:
    """Means of ``pool`` consecutive columns (the last group padded with the edge column)."""
    n_cols = mag.shape[-1]
    k = -(-n_cols // pool)
    padded = np.pad(mag, [(0, 0)] * (mag.ndim - 1) + [(0, k * pool - n_cols)], mode="edge")
    return padded.reshape(mag.shape[:-1] + (k, pool)).mean(axis=-1)


def hpss(mag: np.ndarray, time_pool: int = TIME_POOL, time_median: int = TIME_MEDIAN,
         band_pool: int = BAND_POOL, band_median: int = BAND_MEDIAN) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic, percussive) median-filter estimates, float32 of ``mag``'s shape, of NSGT
    magnitudes ``mag`` [shape=(..., n_bands, n_cols)] (e.g. (b, 96, 1948)). ``time_pool`` /
    ``band_pool`` (>= 1) columns are averaged before the median along time / across bands, of odd
    lengths ``time_median`` (pooled columns) / ``band_median`` (bands)."""
    for name, v in (("time_pool", time_pool), ("time_median", time_median), ("band_pool", band_pool),
                    ("band_median", band_median)):
        if int(v) != v or v < 1:
            raise MixinError(f"{name} must be a positive integer, got {v!r}")
    for name, v in (("time_median", time_median), ("band_median", band_median)):
        if v % 2 == 0:
            raise MixinError(f"{name} must be odd, got {v}")
    mag = np.asarray(mag, dtype=np.float32)
    if mag.ndim < 2:
        raise MixinError(f"magnitudes need at least 2 dimensions (bands, columns), got {mag.shape}")
    n_cols = mag.shape[-1]
    harm = _median_axis(_pooled(mag, int(time_pool)), int(time_median), axis=-1)
    perc = _median_axis(_pooled(mag, int(band_pool)), int(band_median), axis=-2)
    return tuple(np.repeat(a, p, axis=-1)[..., :n_cols].astype(np.float32, copy=False)
                 for a, p in ((harm, int(time_pool)), (perc, int(band_pool))))


#: Bands whose Bark centre is at least this (Hz) make the :func:`onset` channel: where a kick's
#: beater click and a snare's crack are, and a sub bass is not.
ONSET_MIN_HZ = 1000.0


def onset(mag: np.ndarray, percussive: np.ndarray, min_hz: float = ONSET_MIN_HZ) -> np.ndarray:
    """How percussive the chunk's upper bands are at each column, broadcast to every band: float32
    in [0, 1] of ``mag``'s shape [shape=(..., n_bands, n_cols)] — the sum over bands whose centre
    is at least ``min_hz`` of HPSS's ``percussive`` estimate over that of ``mag`` (1e-7 guard).
    It tells the lowest bands, which cannot hear a kick from a sub bass, whether a drum hit is
    sounding now: it does not depend on the level, so mixes and renders at any gain agree."""
    from .nsgt import bark_frequencies

    mag = np.asarray(mag, dtype=np.float32)
    freqs = bark_frequencies(mag.shape[-2])
    upper = freqs >= float(min_hz)
    if not upper.any():
        raise MixinError(f"no band is at or above {min_hz} Hz")
    num = np.asarray(percussive, dtype=np.float32)[..., upper, :].sum(axis=-2)
    den = mag[..., upper, :].sum(axis=-2) + np.float32(1e-7)
    ratio = np.clip(num / den, 0.0, 1.0).astype(np.float32)
    return np.broadcast_to(ratio[..., None, :], mag.shape).astype(np.float32)
