"""argparse value types shared by the scripts: numbers checked before any work, with the value."""

import argparse
import math


def number(kind=float, minimum=None, strict=False, allow=()):
    """An argparse ``type``: ``kind`` (int or float), finite, >= ``minimum`` (> with ``strict``).

    Values in ``allow`` (e.g. "auto") pass through unchanged.
    """
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    what = f"{'an integer' if kind is int else 'a number'}{bound}"

    def parse(text):
        if text in allow:
            return text
        try:
            v = kind(text)
        except ValueError:
            extra = "".join(f" or {a!r}" for a in allow)
            raise argparse.ArgumentTypeError(f"expected {what}{extra}, got {text!r}") from None
        bad = not math.isfinite(v) or (minimum is not None and (v <= minimum if strict else v < minimum))
        if bad:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


positive_int = number(int, 0, strict=True)
nonneg_int = number(int, 0)
positive_float = number(float, 0, strict=True)
nonneg_float = number(float, 0)


def probability(text):
    """An argparse ``type``: a number in [0, 1]."""
    v = nonneg_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return v


def ema_momentum(text):
    """An argparse ``type``: a moving-average momentum in [0, 1)."""
    v = nonneg_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a momentum in [0, 1), got {text!r}")
    return v
