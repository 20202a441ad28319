"""Scoring separations: active windows, the excerpt to score, and the window SDR.

One module for what training (choosing a checkpoint by separation quality) and evaluation
(BSS Eval v4 in :mod:`mixin.evaluation.evaluate`) share. Signals are [shape=(n_samples, n_channels)].
"""

from __future__ import annotations

import math

import numpy as np

from . import params


def active_windows(x: np.ndarray, win: int) -> np.ndarray:
    """Which ``win``-sample windows of ``x`` [shape=(n_samples, n_channels)] are active (RMS above
    :data:`mixin.params.ACTIVE_RMS`): bool [shape=(n_samples // win,)] (a partial last window is left
    out)."""
    n = (x.shape[0] // win) * win
    if n == 0:
        return np.zeros(0, dtype=bool)
    power = np.mean(np.square(x[:n], dtype=np.float64).reshape(-1, win, x.shape[1]), axis=(1, 2))
    return power > params.ACTIVE_RMS ** 2


def auto_offset(references: dict[str, np.ndarray], sr: int, duration: float) -> int:
    """Start (whole seconds) of the ``duration`` s excerpt with the most 1 s windows in which every
    target is active (the earliest such excerpt on ties). Targets that are silent throughout (a
    song without vocals) are left out of the count.

    Parameters
    ----------
    references : dict target -> array [shape=(n, ch)]
    """
    acts = [a for a in (active_windows(r, sr) for r in references.values()) if a.any()]
    if not acts:
        return 0
    act = np.logical_and.reduce(acts)
    d = int(math.ceil(duration))
    if act.size <= d:
        return 0
    counts = np.convolve(act.astype(int), np.ones(d, dtype=int), mode="valid")
    return int(np.argmax(counts))


def window_sdr(ref: np.ndarray, est: np.ndarray, win: int = params.SAMPLE_RATE) -> float:
    """Median over active ``win``-sample windows of 10·log10(Σref² / Σ(ref−est)²) (dB), or NaN
    when the reference is never active. ``ref``, ``est``: [shape=(n, ch)]."""
    n = (len(ref) // win) * win
    if n == 0:
        return float("nan")
    r = ref[:n].reshape(-1, win * ref.shape[1]).astype(np.float64)
    e = est[:n].reshape(-1, win * ref.shape[1]).astype(np.float64)
    num = np.sum(r * r, axis=1)
    den = np.sum((r - e) ** 2, axis=1)
    active = num / (win * ref.shape[1]) > params.ACTIVE_RMS ** 2
    if not np.any(active):
        return float("nan")
    sdr = 10.0 * np.log10((num[active] + 1e-12) / (den[active] + 1e-12))
    return float(np.median(sdr))
