"""Resampling by soxr (``soxr.ResampleStream``, quality "HQ"): streaming, bounded memory, exact lengths."""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np
import soxr

from .read import as_2d, as_block, positive_int

log = logging.getLogger("mixin")


def _check_rate(rate, name):  # -> an exact Fraction
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {rate!r}")
    return Fraction(int(rate)) if float(rate).is_integer() else Fraction(float(rate))


def resampled_length(n: int, in_rate: float, out_rate: float) -> int:
    """Frames that ``n`` frames at ``in_rate`` become at ``out_rate`` (Hz): ``round(n * out_rate /
    in_rate)``, halves up, exact. The separator goes n -> resampled_length(n, sr, 44100) and back
    to exactly n frames (``out_frames=n``)."""
    n = positive_int(n, "n", minimum=0)
    q = Fraction(n) * _check_rate(out_rate, "out_rate") / _check_rate(in_rate, "in_rate")
    return int(math.floor(q + Fraction(1, 2)))


class Resampler:
    """Streaming resampler (soxr "HQ", float32, any channel count) with an exact output length.

    Feed consecutive blocks ``[shape=(n_i, channels)]`` at ``in_rate`` Hz to :meth:`process`, the
    last (maybe empty) with ``last=True``: in all, exactly ``out_frames`` frames at ``out_rate`` Hz
    come out (surplus dropped, a shortfall of a sample or two zero-padded at the end). Equal rates
    pass blocks through unchanged (no copy, no filter).
    """

    def __init__(self, in_rate, out_rate, channels, out_frames):
        _check_rate(in_rate, "in_rate")
        _check_rate(out_rate, "out_rate")
        self.in_rate, self.out_rate = in_rate, out_rate
        self.channels = positive_int(channels, "channels")
        self.out_frames = positive_int(out_frames, "out_frames", minimum=0)
        self.identity = float(in_rate) == float(out_rate)
        self.emitted = self.padded = self.dropped = 0  # frames returned, zero-padded, discarded
        self.finished = False  # True once the last block was processed
        self._stream = None if self.identity else soxr.ResampleStream(
            float(in_rate), float(out_rate), self.channels, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next block; ``last`` flushes the filter and pads/trims to ``out_frames``.
        Returns float32 [shape=(m, channels)]."""
        if self.finished:
            raise ValueError("Resampler.process() called after the last block")
        b = as_block(block, self.channels)
        out = b if self.identity else self._stream.resample_chunk(b, last=bool(last))
        room = self.out_frames - self.emitted
        if len(out) > room:
            self.dropped += len(out) - room
            out = out[:room]
        self.emitted += len(out)
        if last:
            self.finished = True
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
    """Resample a whole array ``[shape=(n,) or (n, channels)]`` (as :class:`Resampler`) to float32
    ``[shape=(out_frames,) or (out_frames, channels)]``; ``out_frames`` defaults to
    ``resampled_length(n, in_rate, out_rate)``."""
    a = np.asarray(x)
    if a.ndim in (1, 2) and a.shape[0] == 0 and a.dtype.kind == "f" and (a.ndim == 1 or a.shape[1] > 0):
        x2, was_1d = np.zeros((0, 1 if a.ndim == 1 else a.shape[1]), np.float32), a.ndim == 1
    else:                                   # (zero frames are valid here: m may round to 0)
        x2, was_1d = as_2d(a, allow_wide=True)
    if out_frames is None:
        out_frames = resampled_length(len(x2), in_rate, out_rate)
    y = Resampler(in_rate, out_rate, x2.shape[1], out_frames).process(x2, last=True)
    return y[:, 0] if was_1d else y
