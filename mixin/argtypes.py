"""argparse value types shared by the scripts: numbers checked before any work, with the value."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Container


def number(kind: type[int] | type[float] = float, minimum: float | None = None, strict: bool = False,
           allow: Container[str] = ()) -> Callable[[str], int | float | str]:
    """An argparse ``type``: ``kind`` (int or float), finite, >= ``minimum`` (> with ``strict``).

    Values in ``allow`` (e.g. "auto") pass through unchanged. The parser raises
    ``argparse.ArgumentTypeError`` (argparse's one-line usage error) for anything else.
    """
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    what = f"{'an integer' if kind is int else 'a number'}{bound}"

    def parse(text: str) -> int | float | str:
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


def probability(text: str) -> float:
    """An argparse ``type``: a number in [0, 1]."""
    v = nonneg_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return v


def ema_momentum(text: str) -> float:
    """An argparse ``type``: a moving-average momentum in [0, 1)."""
    v = nonneg_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a momentum in [0, 1), got {text!r}")
    return v
