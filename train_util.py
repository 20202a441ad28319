#!/usr/bin/env python3
"""Train MiXiN models from multitrack stems: prepare segments, build HDF5 datasets, train.

Stages (run in this order when combined)::

    ./train_util.py --prepare-stems --stem-dirs STEMS/ [--segment-duration 30] [--augment N]
    ./train_util.py --create-hdf5 [--n-pool 2] [--mono]
    ./train_util.py --train [--plot-training] [--epochs 100] [--batch-size 64] [--seed 0]
    ./train_util.py --calibrate [--calibration-chunks 128]

Paths default to ./data, ./model and ./logdir. Nothing existing is replaced without --overwrite;
re-running --train resumes from the checkpoints in logdir/.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

log = logging.getLogger("mixin")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def get_parser():
    from mixin.argtypes import nonneg_float, nonneg_int, positive_float, positive_int
    from mixin.stems import AUGMENT_GAIN_DB
    from mixin import __version__
    from mixin.hdf5 import DEFAULT_STORAGE, STORAGE
    from mixin.params import SOURCES

    p = _Parser(prog="train_util.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Stages run in order: --prepare-stems, --create-hdf5, --train, --calibrate.")
    p.add_argument("--version", action="version", version=f"MiXiN {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages (and TensorFlow's)")
    p.add_argument("--data-dir", default="data", help="segments and HDF5 files (default: %(default)s)")
    p.add_argument("--model-dir", default="model", help="trained models (default: %(default)s)")
    p.add_argument("--logdir", default="logdir",
                   help="checkpoints, training state and history (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing segments / HDF5 files / checkpoints and models of the "
                        "stages run (otherwise they are refused, or training resumes)")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of augmentation, song split, initial weights and batch order "
                        "(default: %(default)s)")

    g = p.add_argument_group("--prepare-stems: cut stem folders into training segments")
    g.add_argument("--prepare-stems", action="store_true", help="run this stage")
    g.add_argument("--stem-dirs", nargs="+", metavar="DIR",
                   help="folders holding one sub-folder of stems per song (MUSDB18-HQ layout)")
    g.add_argument("--segment-duration", type=positive_float, default=30.0, metavar="S",
                   help="segment length in seconds (default: %(default)s)")
    g.add_argument("--segment-offset", type=nonneg_int, default=0, metavar="N",
                   help="skip the first N segments of each song (default: %(default)s)")
    g.add_argument("--track-limit", type=int, default=-1, metavar="N",
                   help="use at most N songs (-1 = all, the default)")
    g.add_argument("--segment-limit", type=positive_int, default=None, metavar="N",
                   help="at most N segments per song (default: all)")
    g.add_argument("--augment", type=nonneg_int, default=0, metavar="N",
                   help="add N remixed songs (stems of different training songs, random gains) "
                        "(default: %(default)s)")
    g.add_argument("--augment-gain-db", type=nonneg_float, default=AUGMENT_GAIN_DB, metavar="DB",
                   help="remixed stems get a random gain in +-DB (default: %(default)s)")
    g.add_argument("--augment-segments", type=positive_int, default=None, metavar="N",
                   help="at most N segments per remix (default: as long as its shortest source)")
    g.add_argument("--validation-songs", nargs="+", default=None, metavar="NAME",
                   help="song folder names held out for validation (default: a random 10 %% "
                        "validation, 10 %% test split by song)")
    g.add_argument("--test-songs", nargs="+", default=None, metavar="NAME",
                   help="song folder names held out for testing (like --validation-songs, the "
                        "random split is then not used)")

    g = p.add_argument_group("--create-hdf5: NSGT magnitudes of the segments, split by song")
    g.add_argument("--create-hdf5", action="store_true", help="run this stage")
    g.add_argument("--n-pool", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: %(default)s, the number of CPUs)")
    g.add_argument("--mono", action="store_true",
                   help="downmix each segment (as the original) instead of one example per channel")
    g.add_argument("--hdf5-storage", default=DEFAULT_STORAGE, choices=list(STORAGE),
                   help="dtype and compression of the datasets (default: %(default)s, chosen by "
                        "measurement: half the size of float32, no measurable cost)")

    g = p.add_argument_group("--train: train the CDAEs")
    g.add_argument("--train", action="store_true", help="run this stage")
    g.add_argument("--plot-training", action="store_true",
                   help="write loss and MAE curves as PNG beside the models")
    g.add_argument("--epochs", type=positive_int, default=100, help="at most N epochs (default: %(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=64, help="default: %(default)s")
    g.add_argument("--patience", type=nonneg_int, default=2,
                   help="epochs without lower validation loss before stopping (default: %(default)s)")
    g.add_argument("--steps-per-epoch", type=positive_int, default=None, metavar="N",
                   help="batches per epoch (default: one pass over the training examples)")
    g.add_argument("--learning-rate", type=positive_float, default=1e-3, metavar="LR",
                   help="Adam learning rate (default: %(default)s)")
    g.add_argument("--loss", choices=("mae", "mse"), default="mae", help="default: %(default)s")
    g.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES),
                   help="networks to build data for and train (default: all three)")
    g.add_argument("--eval-batches", type=positive_int, default=None, metavar="N",
                   help="score the training MAE on N shuffled batches (default: all)")

    g = p.add_argument_group("--calibrate: fit the networks' output gains for the soft masks")
    g.add_argument("--calibrate", action="store_true",
                   help="run this stage on the three models in --model-dir (kept as "
                        "model_*.uncalibrated.h5; record in calibration.json)")
    g.add_argument("--calibration-chunks", type=positive_int, default=128, metavar="N",
                   help="chunks of the training songs to fit on (default: %(default)s)")
    return p


def _setup_logging(quiet, verbose):
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    log.setLevel(level)
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
    log.propagate = False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if not (args.prepare_stems or args.create_hdf5 or args.train or args.calibrate):
        parser.error("nothing to do: give --prepare-stems, --create-hdf5, --train and/or --calibrate")
    if args.prepare_stems and not args.stem_dirs:
        parser.error("--prepare-stems needs --stem-dirs DIR [DIR ...]")
    if args.stem_dirs and not args.prepare_stems:
        parser.error("--stem-dirs is only used by --prepare-stems")
    if args.track_limit < -1 or args.track_limit == 0:
        parser.error(f"--track-limit must be -1 (all) or a positive integer, got {args.track_limit}")
    _setup_logging(args.quiet, args.verbose)

    from mixin.errors import MixinError

    try:
        if args.prepare_stems:
            from mixin.stems import prepare_stems

            summary = prepare_stems(args.stem_dirs, data_dir=args.data_dir,
                                    segment_duration=args.segment_duration,
                                    segment_offset=args.segment_offset, track_limit=args.track_limit,
                                    segment_limit=args.segment_limit, augment=args.augment,
                                    seed=args.seed, overwrite=args.overwrite,
                                    augment_gain_db=args.augment_gain_db,
                                    augment_segments=args.augment_segments,
                                    validation_songs=args.validation_songs,
                                    test_songs=args.test_songs)
            log.debug("prepare-stems: %s", summary)
        if args.create_hdf5:
            from mixin.hdf5 import create_hdf5

            create_hdf5(args.data_dir, n_pool=args.n_pool, mono=args.mono, seed=args.seed,
                        overwrite=args.overwrite, storage=args.hdf5_storage, sources=args.sources)
        if args.train:
            from mixin.train import train

            train(args.data_dir, args.model_dir, args.logdir, sources=args.sources,
                  epochs=args.epochs, batch_size=args.batch_size, patience=args.patience,
                  seed=args.seed, plot=args.plot_training, steps_per_epoch=args.steps_per_epoch,
                  loss=args.loss, learning_rate=args.learning_rate, overwrite=args.overwrite,
                  eval_batches=args.eval_batches)
        if args.calibrate:
            from mixin.calibrate import calibrate

            calibrate(args.data_dir, args.model_dir, n_chunks=args.calibration_chunks,
                      seed=args.seed, overwrite=args.overwrite)
    except MixinError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
