#!/usr/bin/env python3
"""Train MiXiN models from multitrack stems: render songs, prepare segments, build HDF5, train.

    ./train_util.py --help

A thin wrapper: the command is :func:`mixin.cli.train.main`, installed as ``mixin-train``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mixin.cli.train import get_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
