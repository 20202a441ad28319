"""The commands, each a ``main(argv=None)`` that parses its flags, checks them and calls a
pipeline: :mod:`~mixin.cli.xtract` (``xtract-mixin``, ``./xtract_mixin.py``: separation),
:mod:`~mixin.cli.train` (``mixin-train``, ``./train_util.py``: training) and
:mod:`~mixin.cli.eval` (``mixin-eval``, ``./eval_mixin.py``: evaluation) and
:mod:`~mixin.cli.serve` (``mixin-serve``: the local web app, :mod:`mixin.serve`).

``--help`` imports no TensorFlow, and ``xtract-mixin`` checks its flags, inputs and outputs before
importing it.
"""

from __future__ import annotations

import argparse
import os
import sys


def prog_name(name: str, otherwise: str) -> str:
    """The command name a parser shows: ``name`` when the process was started as ``name`` (the
    file name of ``sys.argv[0]``, e.g. ``eval_mixin.py``), else ``otherwise`` (e.g. ``mixin-eval``)."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if argv0 == name else otherwise


def script_parser(prog: str | None, script: str, command: str,
                  description: str) -> argparse.ArgumentParser:
    """The parser of a command that is also a script: named ``prog``, else ``script`` when started
    as the script and ``command`` otherwise (:func:`prog_name`)."""
    return argparse.ArgumentParser(prog=prog or prog_name(script, command), description=description)
