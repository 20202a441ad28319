#!/usr/bin/env python3
"""Score MiXiN against baselines with BSS Eval v4 on songs given as stems (MUSDB18-HQ layout).

    ./eval_mixin.py ../shared/stems --model-dir orig=../shared/mixin-original-models \
        --duration 20 --mono --jobs 2 --outdir eval-results

A thin wrapper: the command is :func:`mixin.cli.eval.main`, installed as ``mixin-eval``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mixin.cli.eval import get_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
