#!/usr/bin/env python3
"""Separate songs into harmonic, percussive and vocal parts with MiXiN.

    ./xtract_mixin.py song.wav            ->  song_harmonic.wav, song_percussive.wav, song_vocal.wav

A thin wrapper: the command is :func:`mixin.cli.xtract.main`, installed as ``xtract-mixin``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mixin.cli.xtract import get_parser, main, output_paths  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
