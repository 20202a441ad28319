"""Reference systems for the evaluation: the HPSS and REPET-SIM baselines and the oracle NSGT mask.

- :func:`hpss`: median-filtering harmonic/percussive separation (Fitzgerald 2010) exactly as users
  know it from librosa (``librosa.effects.hpss``: STFT 2048/512, 31-bin median filters, soft masks
  with power 2, inverse STFT). It has no vocal part.
- :func:`repet_sim`: the vocal baseline, REPET-SIM (Rafii & Pardo 2012) as in librosa's vocal
  separation example: the repeating background is the median of the most similar frames
  (``librosa.decompose.nn_filter``, cosine metric, frames at least 2 s apart); the vocal is the soft
  mask of what does not repeat, with the example's margin of 10 (measured on ../shared/stems, 20 s
  excerpts: margin 10 scores 1.4 to 3.7 dB higher vocal SDR than margin 1).
- :func:`oracle`: the upper bound of MiXiN's masking: soft masks ``|S_s|^2 / sum_s |S_s|^2`` built
  from the true stems' NSGT coefficients, chunk by chunk with the original's hard chunks of
  ``CHUNK_SIZE`` samples (:mod:`mixin.chunks`; the separator's ``--no-overlap``), applied to the
  mixture's coefficients.

librosa is an evaluation-only dependency: it is imported inside the functions that need it.
Every function takes and returns audio as float arrays [shape=(n_samples, n_channels)].
"""

from __future__ import annotations

import numpy as np

from ..errors import MixinError

#: STFT of the librosa baselines (librosa's defaults).
N_FFT = 2048
HOP = 512
#: REPET-SIM: minimum distance (s) between a frame and the frames it is compared with, and the
#: number of STFT frames per block of the similarity search (about 60 s at 44.1 kHz: the search is
#: quadratic in the number of frames, so whole songs are processed block by block, one STFT).
REPET_WIDTH_S = 2.0
REPET_BLOCK_FRAMES = 5168


def _as_2d(x, name="x"):
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise MixinError(f"{name} must have shape (n_samples, n_channels) with n_samples > 0, "
                         f"got {x.shape}")
    return x


def _librosa():
    try:
        import librosa  # noqa: PLC0415  (evaluation-only dependency)
    except ImportError:
        raise MixinError("the HPSS/REPET-SIM baselines need librosa: pip install librosa") from None
    return librosa


def hpss(x: np.ndarray, sr: int, kernel_size: int = 31, power: float = 2.0,
         margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Median-filtering HPSS (librosa's ``effects.hpss``; ``kernel_size``, ``power``, ``margin`` as
    ``librosa.decompose.hpss``'s) of each channel of ``x`` [shape=(n_samples, n_channels) or
    (n_samples,)]; ``sr`` is unused (a uniform signature). Returns harmonic, percussive: float32
    [shape=(n_samples, n_channels)]; with the default soft masks (margin 1) they add up to ``x``
    up to the STFT round trip. :class:`MixinError` when librosa is missing or ``x`` is empty or
    not 1-D or 2-D."""
    del sr
    x = _as_2d(x)
    librosa = _librosa()
    y = np.ascontiguousarray(x.T, dtype=np.float32)  # (ch, n): librosa works on the last axis
    stft = librosa.stft(y, n_fft=N_FFT, hop_length=HOP)
    h, p = librosa.decompose.hpss(stft, kernel_size=kernel_size, power=power, margin=margin)
    h = librosa.istft(h, hop_length=HOP, n_fft=N_FFT, length=x.shape[0])
    p = librosa.istft(p, hop_length=HOP, n_fft=N_FFT, length=x.shape[0])
    return h.T.astype(np.float32), p.T.astype(np.float32)


def repet_sim(x: np.ndarray, sr: int, width_s: float = REPET_WIDTH_S, margin: float = 10.0,
              power: float = 2.0, block_frames: int = REPET_BLOCK_FRAMES) -> np.ndarray:
    """REPET-SIM vocal (foreground) estimate, float32 [shape=(n_samples, n_channels)], of each
    channel of ``x`` [shape=(n_samples, n_channels) or (n_samples,)] at ``sr`` Hz. Compared frames
    are at least ``width_s`` seconds apart, ``block_frames`` STFT frames per block of the
    similarity search; ``margin``: how much the non-repeating part must dominate to count as
    vocal; ``power``: the soft mask's exponent. :class:`MixinError` when librosa is missing or
    ``x`` is empty or not 1-D or 2-D."""
    x = _as_2d(x)
    librosa = _librosa()
    width = max(1, int(round(width_s * sr / HOP)))
    out = np.empty(x.shape, dtype=np.float32)
    for c in range(x.shape[1]):
        stft = librosa.stft(np.ascontiguousarray(x[:, c], dtype=np.float32), n_fft=N_FFT,
                            hop_length=HOP)
        mag = np.abs(stft)
        n_frames = mag.shape[1]
        parts = []  # blocks of equal size (at most block_frames), none left too short
        for block in np.array_split(mag, max(1, -(-n_frames // block_frames)), axis=1):
            w = min(width, (block.shape[1] - 1) // 2 - 1)  # librosa needs width < (T-1)//2
            if w < 1:  # too few frames to compare: all background (no vocal)
                parts.append(block)
            else:
                parts.append(librosa.decompose.nn_filter(block, aggregate=np.median,
                                                         metric="cosine", width=w))
        background = np.concatenate(parts, axis=1)
        background = np.minimum(mag, background)
        mask = librosa.util.softmask(mag - background, margin * background, power=power)
        out[:, c] = librosa.istft(mask * stft, hop_length=HOP, n_fft=N_FFT, length=x.shape[0])
    return out


def oracle(references: dict[str, np.ndarray], batch: int = 8) -> dict[str, np.ndarray]:
    """Oracle NSGT soft masks from the true sources ``references`` (dict name -> [shape=(n_samples,
    n_channels)], all one shape), applied to their sum (the mixture), ``batch`` chunks at a time
    (about 6 MB per chunk, channel and source). Returns dict name -> float32 [shape=(n_samples,
    n_channels)]: ``backward(M_s * C_mix)`` with ``M_s = |C_s|^2 / (sum_k |C_k|^2 + MASK_EPS)``;
    they add up to the mixture wherever the mixture is not silent."""
    from ..chunks import cut, overlap_add
    from ..masks import soft_masks
    from ..nsgt import get_nsgt

    names = list(references)
    if not names:
        raise MixinError("oracle: no reference sources given")
    refs = [_as_2d(references[k], k) for k in names]
    shape = refs[0].shape
    for k, r in zip(names, refs):
        if r.shape != shape:
            raise MixinError(f"oracle: source {k} has shape {r.shape}, expected {shape}")
    nsgt = get_nsgt()
    chunks = np.stack([cut(r.T.astype(np.float32, copy=False)) for r in refs])  # (src, nc, ch, L)
    out = np.empty_like(chunks)
    for b in range(0, chunks.shape[1], batch):
        coefs = nsgt.forward(chunks[:, b:b + batch])  # (src, nb, ch, rows, cols)
        masks = soft_masks({i: np.square(np.abs(c)) for i, c in enumerate(coefs)})
        mix = coefs.sum(axis=0)
        out[:, b:b + batch] = nsgt.backward(np.stack([masks[i] for i in range(len(names))]) * mix
                                            ).astype(np.float32)
    return {k: overlap_add(out[i], shape[0]).T for i, k in enumerate(names)}
