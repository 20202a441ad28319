"""``train_util.py`` / ``mixin-train``: train MiXiN models from multitrack stems: prepare segments, build HDF5 datasets, train.

Stages (run in this order when combined)::

    ./train_util.py --render-stems --render-dir DIR --songs N [--split train] [--vocal-dirs ...]
    ./train_util.py --prepare-stems --stem-dirs STEMS/ [--segment-duration 30] [--augment N]
    ./train_util.py --create-hdf5 [--n-pool 2] [--mono]
    ./train_util.py --train [--plot-training] [--epochs 100] [--batch-size 64] [--seed 0]
    ./train_util.py --calibrate [--calibration-chunks 128]
    ./train_util.py --export-onnx [--model-dir model]

or, without segments and HDF5 (examples mixed on the fly from the stem folders)::

    ./train_util.py --train-mix --stem-dirs STEMS/ RENDERED/ --validation-songs NAME ... [--rounds 30]

Paths default to ./data, ./model and ./logdir. Nothing existing is replaced without --overwrite;
re-running --train resumes from the checkpoints in logdir/.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

log = logging.getLogger("mixin")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _prog():
    """The name the user typed: ``mixin-train`` or ``train_util.py``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in ("mixin-train", "train_util.py") else "train_util.py"


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of ``train_util.py`` / ``mixin-train``."""
    from mixin.argtypes import (ema_momentum, nonneg_float, nonneg_int, positive_float, positive_int,
                                probability)
    from mixin.training.stems import AUGMENT_GAIN_DB
    from mixin import __version__
    from mixin.training.hdf5 import DEFAULT_STORAGE, STORAGE
    from mixin.training.mixing import MixConfig
    from mixin.params import SOURCES

    p = _Parser(prog=_prog(), description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Stages run in order: --render-stems, --prepare-stems, --create-hdf5, --train, "
                       "--calibrate, --export-onnx; --train-mix replaces "
                       "--prepare-stems/--create-hdf5/--train.")
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

    g = p.add_argument_group("--render-stems: render multitrack songs (drums, bass, other, vocals) "
                             "to train on (runs before --prepare-stems)")
    g.add_argument("--render-stems", action="store_true", help="run this stage")
    g.add_argument("--render-dir", metavar="DIR", default=None,
                   help="folder the song folders are written to (required; refused if not empty, "
                        "unless --overwrite)")
    g.add_argument("--songs", type=positive_int, default=None, metavar="N",
                   help="number of songs to render (required)")
    g.add_argument("--duration", type=positive_float, default=60.0, metavar="S",
                   help="length of each song in seconds (default: %(default)s)")
    g.add_argument("--split", choices=("train", "validation", "test"), default="train",
                   help="Groove MIDI split and kit pool: training kits for train, held-out kits "
                        "and SoundFonts for validation / test (default: %(default)s)")
    g.add_argument("--vocal-dirs", nargs="+", metavar="DIR", default=None,
                   help="folders of song stems whose vocals.* files give the vocal excerpts "
                        "(default: no vocals)")
    g.add_argument("--jobs", type=positive_int, default=1, metavar="J",
                   help="songs rendered in parallel processes (default: %(default)s)")
    g.add_argument("--groove-dir", metavar="DIR", default=None,
                   help="the Groove MIDI Dataset (default: ../shared/groove-midi)")
    g.add_argument("--synth-bass", type=probability, default=0.0, metavar="P",
                   help="probability that a song's bass is synthesised (sine sub, 808, filtered "
                        "saw...; side-chain ducking too) instead of a GM program (default: "
                        "%(default)s, the renders the shipped models were trained on; 0.4 tried)")

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
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help="examples per batch (default: 64 for --train, 16 for --train-mix)")
    g.add_argument("--patience", type=nonneg_int, default=None,
                   help="epochs (--train: default 2) or rounds (--train-mix: default 0 = off) "
                        "without improvement before stopping")
    g.add_argument("--steps-per-epoch", type=positive_int, default=None, metavar="N",
                   help="batches per epoch (default: one pass over the training examples)")
    g.add_argument("--learning-rate", type=positive_float, default=None, metavar="LR",
                   help="Adam learning rate (default: 1e-4, the measured best; the original: 1e-3)")
    g.add_argument("--loss", choices=("mae", "mse"), default=None,
                   help="one loss for every network (default: the measured best per network, "
                        "MAE for harmonic and percussive and MSE for vocal)")
    g.add_argument("--original-settings", action="store_true",
                   help="the original MiXiN's training settings: learning rate 1e-3 and MAE for "
                        "all three networks (measured worse, see the README)")
    g.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES),
                   help="networks to build data for and train (default: all three)")
    g.add_argument("--eval-batches", type=positive_int, default=None, metavar="N",
                   help="score the training MAE on N shuffled batches (default: all)")

    g = p.add_argument_group(
        "--train-mix: train the three networks together on examples mixed on the fly from stem "
        "folders (no segments or HDF5), choosing the checkpoint by separation quality on held-out "
        "real songs (uses --stem-dirs, --validation-songs, --batch-size, --learning-rate, --loss, "
        "--patience, --seed)")
    g.add_argument("--train-mix", action="store_true", help="run this stage")
    g.add_argument("--rounds", type=positive_int, default=30, metavar="N",
                   help="at most N rounds of training + validation (default: %(default)s)")
    g.add_argument("--round-batches", type=positive_int, default=200, metavar="N",
                   help="batches per round (default: %(default)s)")
    g.add_argument("--monitor-dirs", nargs="+", default=[], metavar="DIR",
                   help="extra validation song folders (e.g. rendered songs with held-out kits "
                        "and instruments): scored every round and recorded, never used to choose")
    g.add_argument("--validation-duration", type=positive_float, default=30.0, metavar="S",
                   help="seconds of each validation song separated every round (default: "
                        "%(default)s; the excerpt where all sources are most active)")
    g.add_argument("--mix-workers", type=nonneg_int, default=1, metavar="N",
                   help="processes computing examples (default: %(default)s; 0 = in the trainer)")
    g.add_argument("--mix-remix", type=probability, default=MixConfig.remix, metavar="P",
                   help="probability that an example's sources come from three different songs "
                        "(default: %(default)s)")
    g.add_argument("--mix-gain-db", type=nonneg_float, default=MixConfig.gain_db, metavar="DB",
                   help="random gain per source in +-DB (default: %(default)s)")
    g.add_argument("--mix-level-db", type=float, nargs=2, default=list(MixConfig.level_db),
                   metavar=("LOW", "HIGH"), help="the mixture of each example is scaled to an RMS "
                   "level uniform in [LOW, HIGH] dBFS (default: %(default)s)")
    g.add_argument("--mix-natural-level", action="store_true",
                   help="keep the stems' own level (no --mix-level-db scaling)")
    g.add_argument("--mix-eq-db", type=nonneg_float, default=MixConfig.eq_db, metavar="DB",
                   help="random EQ curve per source, tilt and two bumps of up to +-DB "
                        "(default: %(default)s; 0 = off)")
    g.add_argument("--mix-shift", type=probability, default=MixConfig.shift, metavar="P",
                   help="probability of a speed change (pitch and tempo) (default: %(default)s)")
    g.add_argument("--mix-shift-semitones", type=nonneg_float, default=MixConfig.shift_semitones,
                   metavar="ST", help="largest speed change in semitones (default: %(default)s)")
    g.add_argument("--mix-silence", type=probability, default=MixConfig.silence, metavar="P",
                   help="probability that a source is silenced (default: %(default)s)")
    g.add_argument("--mix-dir-weights", type=nonneg_float, nargs="+", default=None, metavar="W",
                   help="probability weight of each --stem-dirs entry (default: by duration)")
    g.add_argument("--init-model-dir", default=None, metavar="DIR",
                   help="start from the three models in DIR instead of random weights")
    g.add_argument("--init-seed", type=nonneg_int, default=None, metavar="K",
                   help="seed of the initial weights only (default: --seed, which then sets "
                        "only the stream of training examples)")
    g.add_argument("--ema", type=ema_momentum, default=0.0, metavar="M",
                   help="validate and save an exponential moving average of the weights with "
                        "momentum M, e.g. 0.99 (default: %(default)s = off, the raw weights)")
    g.add_argument("--mask-loss-weight", type=nonneg_float, default=0.0, metavar="W",
                   help="add a separation loss with weight W: the three estimates' soft masks "
                        "times the mixture, against the true sources, so each network learns "
                        "from the other two (default: %(default)s = off, each network alone)")
    g.add_argument("--mask-loss", choices=("mae", "mse"), default="mae",
                   help="the separation loss's error (default: %(default)s)")
    g.add_argument("--low-band-weight", type=positive_float, default=1.0, metavar="W",
                   help="weigh the networks' errors in the --low-bands lowest Bark bands by W "
                        "(default: %(default)s = off)")
    g.add_argument("--low-bands", type=positive_int, default=5, metavar="N",
                   help="how many of the lowest bands --low-band-weight covers (default: "
                        "%(default)s, below 110 Hz)")

    g = p.add_argument_group("--calibrate: fit the networks' output gains for the soft masks")
    g.add_argument("--calibrate", action="store_true",
                   help="run this stage on the three models in --model-dir (kept as "
                        "model_*.uncalibrated.h5; record in calibration.json)")
    g.add_argument("--calibration-chunks", type=positive_int, default=128, metavar="N",
                   help="chunks of the training songs to fit on (default: %(default)s)")
    p.add_argument("--export-onnx", action="store_true",
                   help="write model_*.onnx beside the model_*.h5 files of --model-dir, for the "
                        "separator's onnx backend (done anyway after training or calibrating; an "
                        "existing .onnx of another .h5 is replaced only with --overwrite)")
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


def _check_train_extra(args):
    """The stages that need TensorFlow (the ``[train]`` extra) refuse at once, in one line, when
    it is not installed (a light install separates only)."""
    from mixin.backends import TRAIN_EXTRA, installed
    from mixin.errors import MixinError

    tf = ("tensorflow", "keras", "h5py")
    needs = {"create_hdf5": ("h5py",),
             "train": tf + (("matplotlib",) if args.plot_training else ()),
             "train_mix": tf + ("matplotlib",), "calibrate": tf, "export_onnx": tf + ("onnx",)}
    for stage, modules in needs.items():
        absent = [m for m in modules if getattr(args, stage) and not installed(m)]
        if absent:
            raise MixinError(f"--{stage.replace('_', '-')} needs {', '.join(absent)}, not "
                             f"installed: {TRAIN_EXTRA}")


def main(argv: list[str] | None = None) -> int:
    """Run the stages asked for: 0 on success, 1 after a one-line ``error: ...`` on stderr, 130 when
    interrupted (argparse exits with 2 for bad flags)."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not (args.render_stems or args.prepare_stems or args.create_hdf5 or args.train
            or args.train_mix or args.calibrate or args.export_onnx):
        parser.error("nothing to do: give --render-stems, --prepare-stems, --create-hdf5, --train, "
                     "--train-mix, --calibrate and/or --export-onnx")
    if args.render_stems and (not args.render_dir or args.songs is None):
        parser.error("--render-stems needs --render-dir DIR and --songs N")
    if (args.render_dir or args.songs is not None or args.vocal_dirs) and not args.render_stems:
        parser.error("--render-dir, --songs and --vocal-dirs are only used by --render-stems")
    if (args.prepare_stems or args.train_mix) and not args.stem_dirs:
        parser.error(f"--{'prepare-stems' if args.prepare_stems else 'train-mix'} needs --stem-dirs DIR [DIR ...]")
    if args.stem_dirs and not (args.prepare_stems or args.train_mix):
        parser.error("--stem-dirs is only used by --prepare-stems and --train-mix")
    if args.train_mix and not args.validation_songs:
        parser.error("--train-mix needs --validation-songs NAME ... (held-out real songs in the "
                     "stem dirs that choose the checkpoint)")
    if args.train_mix and (args.create_hdf5 or args.train or args.calibrate):
        parser.error("--train-mix does not combine with --create-hdf5, --train or --calibrate")
    lo, hi = args.mix_level_db
    if lo > hi:
        parser.error(f"--mix-level-db LOW HIGH needs LOW <= HIGH, got {lo:g} {hi:g}")
    if args.original_settings and (args.learning_rate is not None or args.loss is not None):
        parser.error("--original-settings sets --learning-rate and --loss; give one or the other")
    from mixin.training.train import DEFAULT_LEARNING_RATE, DEFAULT_LOSSES
    if args.original_settings:
        args.learning_rate, args.loss = 1e-3, "mae"
    learning_rate = args.learning_rate if args.learning_rate is not None else DEFAULT_LEARNING_RATE
    loss = args.loss if args.loss is not None else dict(DEFAULT_LOSSES)
    if args.track_limit < -1 or args.track_limit == 0:
        parser.error(f"--track-limit must be -1 (all) or a positive integer, got {args.track_limit}")
    _setup_logging(args.quiet, args.verbose)

    from mixin.errors import MixinError

    try:
        _check_train_extra(args)
        if args.render_stems:
            from mixin.training.render.render import render_stems

            summary = render_stems(args.render_dir, args.songs, duration=args.duration,
                                   seed=args.seed, split=args.split,
                                   vocal_dirs=args.vocal_dirs or (), jobs=args.jobs,
                                   overwrite=args.overwrite, progress=not args.quiet,
                                   groove_dir=args.groove_dir, synth_bass=args.synth_bass)
            log.debug("render-stems: %s", summary)
        if args.prepare_stems:
            from mixin.training.stems import prepare_stems

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
            from mixin.training.hdf5 import create_hdf5

            create_hdf5(args.data_dir, n_pool=args.n_pool, mono=args.mono, seed=args.seed,
                        overwrite=args.overwrite, storage=args.hdf5_storage, sources=args.sources)
        if args.train:
            from mixin.training.train import TrainConfig, train

            train(TrainConfig(
                data_dir=args.data_dir, model_dir=args.model_dir, logdir=args.logdir,
                sources=tuple(args.sources), epochs=args.epochs,
                batch_size=args.batch_size or TrainConfig.batch_size,
                patience=TrainConfig.patience if args.patience is None else args.patience,
                seed=args.seed, plot=args.plot_training, steps_per_epoch=args.steps_per_epoch,
                loss=loss, learning_rate=learning_rate, overwrite=args.overwrite,
                eval_batches=args.eval_batches))
        if args.train_mix:
            from mixin.training.jointtrain import MixTrainConfig, train_mix
            from mixin.training.mixing import MixConfig

            mix = MixConfig(remix=args.mix_remix, gain_db=args.mix_gain_db,
                            level_db=None if args.mix_natural_level else tuple(args.mix_level_db),
                            eq_db=args.mix_eq_db,
                            shift=args.mix_shift, shift_semitones=args.mix_shift_semitones,
                            silence=args.mix_silence,
                            dir_weights=tuple(args.mix_dir_weights) if args.mix_dir_weights else None)
            losses = loss if isinstance(loss, dict) else {s: loss for s in DEFAULT_LOSSES}
            train_mix(MixTrainConfig(
                stem_dirs=args.stem_dirs, validation_songs=args.validation_songs,
                monitor_dirs=args.monitor_dirs, model_dir=args.model_dir, logdir=args.logdir,
                mix=mix, seed=args.seed, init_seed=args.init_seed, batch_size=args.batch_size or 16,
                steps_per_round=args.round_batches, rounds=args.rounds,
                patience=args.patience or None, learning_rate=learning_rate, losses=losses,
                workers=args.mix_workers, validation_duration=args.validation_duration,
                init_model_dir=args.init_model_dir, ema=args.ema,
                mask_weight=args.mask_loss_weight, mask_loss=args.mask_loss,
                low_band_weight=args.low_band_weight, low_bands=args.low_bands,
                overwrite=args.overwrite,
                plot=True), progress=not args.quiet)
        if args.calibrate:
            from mixin.training.calibrate import calibrate

            calibrate(args.data_dir, args.model_dir, n_chunks=args.calibration_chunks,
                      seed=args.seed, overwrite=args.overwrite)
        if args.export_onnx:
            from mixin.onnxexport import export_dir

            export_dir(args.model_dir, overwrite=args.overwrite)
    except MixinError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
