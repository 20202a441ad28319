"""The ``mixin-eval`` command (also ``./eval_mixin.py``): score MiXiN against baselines with BSS
Eval v4 on songs given as stems (MUSDB18-HQ layout). The work is done by
:mod:`mixin.evaluation.evaluate`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..argtypes import ListAction, number, positive_float
from ..backends import BACKENDS
from ..errors import MixinError
from . import script_parser
from .train import _setup_logging

log = logging.getLogger("mixin")


#: What ``--help`` says ``mixin-eval`` does.
DESCRIPTION = """\
Separate the mixture (sum of the stems) of each song with every system and score harmonic (every
stem but drums and vocals), percussive (drums) and vocal with BSS Eval v4 (museval, 1 s windows;
median over windows per song, then median over songs). Systems: each --model-dir (default
overlap and --no-overlap), the HPSS baseline (librosa's median-filtering HPSS; vocal by
REPET-SIM) and the oracle NSGT soft mask from the true stems. Writes scores.json, songs.csv,
medians.csv, medians.md and boxplot.png to OUTDIR. List flags take values separated by spaces or
commas; give STEMS_DIR first (or end a list with --)."""


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``mixin-eval``."""
    p = script_parser(prog, "eval_mixin.py", "mixin-eval", DESCRIPTION)
    p.add_argument("stems", nargs="*", metavar="STEMS_DIR",
                   help="a song folder (drums, vocals, bass/other as WAV/FLAC), a folder of song "
                        "folders, or a MUSDB18-HQ root")
    p.add_argument("--model-dir", action=ListAction, default=[], metavar="[LABEL=]DIR",
                   help="MiXiN model directories or installed model sets (xtract-mixin --list-models) to "
                        "evaluate; the label defaults to the folder's or set's name (default: the shipped set)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="what runs the networks: onnx (ONNX Runtime), tf (TensorFlow, for .h5-only folders such as the "
                        "original's weights) or auto (default: onnx when the .onnx files and onnxruntime are there)")
    p.add_argument("--variants", choices=("both", "default", "no-overlap"), default="both",
                   help="MiXiN with the default chunk overlap, with the original's hard chunks "
                        "(no-overlap), or both (default)")
    p.add_argument("--no-hpss", action="store_true", help="leave out the HPSS/REPET-SIM baseline")
    p.add_argument("--no-oracle", action="store_true", help="leave out the oracle soft mask")
    p.add_argument("--songs", action=ListAction, default=[], metavar="NAME",
                   help="evaluate only these songs (folder names)")
    p.add_argument("--duration", type=positive_float, metavar="S",
                   help="score an excerpt of S seconds of each song (default: whole songs)")
    p.add_argument("--offset", type=number(float, 0, allow=("auto",)), default="auto", metavar="S|auto",
                   help="excerpt start in seconds; 'auto' (default) picks the excerpt in which "
                        "all three targets are active in the most 1 s windows")
    p.add_argument("--mono", action="store_true",
                   help="downmix the stems to mono, as the original MiXiN (default: stereo)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="songs evaluated in parallel processes (default: 1)")
    p.add_argument("--outdir", default="eval-results", metavar="DIR", help="output folder (default: eval-results)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in OUTDIR (refused otherwise)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors and the table only (no per-song scores)")
    p.add_argument("-v", "--verbose", action="store_true", help="print debugging output and TensorFlow's logs")
    p.add_argument("--version", action="version", version=f"MiXiN {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``mixin-eval`` with ``argv`` (default: the command line); return the exit status."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.stems:  # e.g. "--songs A B STEMS": the list flag took the folder too
        parser.error("give STEMS_DIR first (a list flag such as --songs takes every value after it, "
                     "or end the list with --)")
    _setup_logging(args.quiet, args.verbose)
    try:
        from ..evaluation import evaluate
        from ..backends import choose
        from ..separation.separate import default_model_dir

        if args.jobs < 1:
            raise MixinError(f"--jobs must be at least 1, got {args.jobs}")
        songs = evaluate.find_songs(args.stems, args.songs or None)
        model_dirs = list(args.model_dir)
        if not model_dirs:
            shipped = default_model_dir()
            try:
                choose(args.backend, shipped)
                model_dirs = [f"MiXiN={shipped}"]
            except MixinError as e:
                log.warning("no --model-dir and no usable models in %s (%s): baselines only",
                            shipped, e)
        systems = evaluate.make_systems(model_dirs, args.variants, hpss=not args.no_hpss,
                                        oracle=not args.no_oracle, backend=args.backend)
        evaluate.check_outdir(args.outdir, args.overwrite)
        if not args.quiet:
            print(f"{len(songs)} song(s): {', '.join(s.name for s in songs)}; systems: "
                  f"{', '.join(s.name for s in systems)}")
        results = evaluate.run(songs, systems, offset=args.offset, duration=args.duration,
                               mono=args.mono, jobs=args.jobs,
                               progress=not args.quiet and sys.stderr.isatty())
        paths = evaluate.write_results(results, args.outdir, overwrite=args.overwrite)
    except MixinError as e:  # one line, whatever the message holds
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(evaluate.format_table(results))
    if not args.quiet:
        print(f"wrote {', '.join(str(p) for p in paths)} ({results['time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
