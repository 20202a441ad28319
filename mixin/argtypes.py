"""argparse value types shared by the scripts: numbers checked before any work, with the value, and
the one convention of list flags (:class:`ListAction`)."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Container
from typing import Any


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


def one_of(names: Container[str]) -> Callable[[str], str]:
    """An argparse ``type``: one of ``names`` (for list flags, whose choices are checked per item)."""
    def parse(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
        return text

    return parse


def split_list(values: list[str]) -> list[str]:
    """The items of a list flag's words: a word is split at commas (``A,B`` -> ``A``, ``B``) unless
    the comma is followed by a space (``"Jokers, Jacks & Kings - Sea Of Leaves"`` is one name) or
    the word names an existing file or folder; empty items are dropped."""
    out = []
    for v in values:
        out += [v] if os.path.exists(v) else [w for w in re.split(r",(?!\s)", v) if w]
    return out


class ListAction(argparse.Action):
    """The one convention of the commands' list flags (``add_argument(..., action=ListAction,
    item=TYPE)``): values separated by spaces (``--songs A B``), commas (``--songs A,B``, see
    :func:`split_list`) or both, and a repeated flag adds to the list (``--songs A --songs B``).
    ``item`` converts and checks each item (an argparse ``type``); a non-empty default is
    replaced, not added to."""

    def __init__(self, option_strings: list[str], dest: str, item: Callable[[str], Any] = str,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=kwargs.pop("nargs", "+"), **kwargs)
        self.item = item

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        old = getattr(namespace, self.dest, None)
        items = list(old) if isinstance(old, list) and old is not self.default else []
        try:
            items += [self.item(v) for v in split_list(values)]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentError(self, str(e)) from None
        if not items:
            raise argparse.ArgumentError(self, f"expected at least one value, got {values!r}")
        setattr(namespace, self.dest, items)
