#!/usr/bin/env python3
"""Separate songs into harmonic, percussive and vocal parts with MiXiN.

    ./xtract_mixin.py song.wav            ->  song_harmonic.wav, song_percussive.wav, song_vocal.wav
"""

import argparse
import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from mixin import __version__, params  # noqa: E402  (light imports only: --help stays instant)
from mixin.errors import MixinError  # noqa: E402

log = logging.getLogger("mixin")

FORMATS = {"float32": "FLOAT", "pcm16": "PCM_16", "pcm24": "PCM_24"}


def get_parser():
    p = argparse.ArgumentParser(
        prog="xtract_mixin.py",
        description="Separate songs into harmonic, percussive and vocal parts with MiXiN "
                    "(Bark-scale NSGT + convolutional denoising autoencoders + soft masks). "
                    "Writes OUTDIR/NAME_harmonic.wav, NAME_percussive.wav and NAME_vocal.wav "
                    "for each input, at the input's sample rate, length and channels.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio file(s) to separate (WAV, FLAC, OGG, MP3, ...; any rate, any channels)")
    p.add_argument("--instrumental", action="store_true",
                   help="leave the vocal model out (for instrumental songs; no vocal file is written)")
    p.add_argument("--single-model", action="store_true",
                   help="output each network's magnitude estimate with the mixture's phase "
                        "instead of soft masks (as the original's --single-model)")
    p.add_argument("--outdir", default=".", metavar="DIR",
                   help="output directory (default: the current directory; created if missing)")
    p.add_argument("--first-prefix", action="store_true",
                   help="name outputs by the input's file name up to its first underscore")
    p.add_argument("--pretrained-model-dir", default=None, metavar="DIR",
                   help="directory holding model_harmonic.h5, model_percussive.h5 and "
                        "model_vocal.h5 (default: the repository's pretrained-models/)")
    ov = p.add_mutually_exclusive_group()
    ov.add_argument("--no-overlap", action="store_true",
                    help="hard chunk boundaries, exactly as the original MiXiN")
    ov.add_argument("--overlap", type=float, default=params.DEFAULT_OVERLAP, metavar="F",
                    help="fraction of a chunk shared by consecutive chunks, 0 to 0.5 "
                         f"(default: {params.DEFAULT_OVERLAP})")
    p.add_argument("--format", choices=sorted(FORMATS), default="float32",
                   help="output sample format (default: float32 WAV)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that already exist (refused otherwise)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="chunks per network call (default: 8)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print debugging information (TensorFlow's logs included)")
    p.add_argument("--version", action="version", version=f"MiXiN {__version__}")
    return p


def output_paths(inputs, outdir, sources, first_prefix=False):
    """Output file per input and source; refuses collisions and overwriting an input."""
    plan = {}
    seen = {}
    in_real = {os.path.realpath(i) for i in inputs}
    for inp in inputs:
        name = os.path.splitext(os.path.basename(inp))[0]
        if first_prefix:
            name = name.split("_")[0] or name
        outs = {s: os.path.join(outdir, f"{name}_{s}.wav") for s in sources}
        for s, o in outs.items():
            r = os.path.realpath(o)
            if r in in_real:
                raise MixinError(f"output {o} would overwrite an input file")
            if r in seen:
                raise MixinError(f"inputs {seen[r]} and {inp} would both write {o}")
            seen[r] = inp
        plan[inp] = outs
    return plan


def main(argv=None):
    args = get_parser().parse_args(argv)
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    log.setLevel(level)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if args.verbose else "3"
    say = (lambda *a: None) if args.quiet else print
    try:
        from mixin.audio import check_output_dir
        from mixin.model import model_paths
        from mixin.separate import DEFAULT_MODEL_DIR, Separator, hop_size, separate_file

        overlap = 0.0 if args.no_overlap else args.overlap
        hop_size(overlap)  # validates the fraction before anything heavy
        if args.batch_size < 1:
            raise MixinError(f"--batch-size must be at least 1, got {args.batch_size}")
        sources = params.SOURCES[:2] if args.instrumental else params.SOURCES
        if not os.path.isdir(args.outdir):
            if os.path.exists(args.outdir):
                raise MixinError(f"--outdir {args.outdir} is not a directory")
            try:
                os.makedirs(args.outdir)
            except OSError as e:
                raise MixinError(f"cannot create --outdir {args.outdir}: {e.strerror}") from None
        check_output_dir(args.outdir)
        plan = output_paths(args.inputs, args.outdir, sources, args.first_prefix)
        model_dir = args.pretrained_model_dir or DEFAULT_MODEL_DIR
        paths = model_paths(model_dir)
        say("Loading models from:\n\t{0}\n\t{1}\n\t{2}".format(
            paths["harmonic"], paths["percussive"], paths["vocal"]))
        sep = Separator(model_dir, instrumental=args.instrumental,
                        single_model=args.single_model, overlap=overlap,
                        batch_size=args.batch_size)
    except MixinError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    failures = []
    for inp, outs in plan.items():
        try:
            log.debug("separating %s", inp)
            existing = [o for o in outs.values() if os.path.exists(o)]
            if existing and not args.overwrite:
                raise MixinError(f"{existing[0]} exists (use --overwrite to replace it)")
            separate_file(sep, inp, outs, subtype=FORMATS[args.format],
                          progress=not args.quiet and sys.stderr.isatty())
            say(f"{inp} -> " + ", ".join(outs[s] for s in sources))
        except MixinError as e:
            failures.append((inp, str(e)))
            print(f"error: {e}", file=sys.stderr)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    if failures:
        print(f"error: {len(failures)} of {len(plan)} input(s) failed:", file=sys.stderr)
        for inp, msg in failures:
            print(f"  {msg}" if inp in msg else f"  {inp}: {msg}", file=sys.stderr)
        return 1
    say("Done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
