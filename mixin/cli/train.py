"""``train_util.py`` / ``mixin-train``: train MiXiN models from multitrack stems: prepare segments, build HDF5 datasets, train.

Stages run in the order of :data:`STAGES`; a flag that none of the stages run uses is refused;
``--recipe FILE``: :func:`read_recipe`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, NoReturn

from . import prog_name

log = logging.getLogger("mixin")

#: The stages, in the order they run.
STAGES = ("render-stems", "render-report", "prepare-stems", "create-hdf5", "train", "train-mix",
          "calibrate", "export-onnx")
_TRAINING = ("train", "train-mix")
_DATA = ("prepare-stems", "create-hdf5", "train", "calibrate")
_MIXED = ("train-mix", "calibrate")  # the mixer's data flags: --calibrate on --stem-dirs uses them


class _Parser(argparse.ArgumentParser):
    """Errors: one line on stderr (exit 2), prefixed by ``where`` (the recipe step being read);
    ``used_by``: dest -> the stages that use it."""

    where = ""
    used_by: dict[str, tuple[str, ...]]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {self.where}{message} (see --help)\n")


def _group(p: _Parser, title: str, stages: tuple[str, ...]):
    """An argument group whose ``add(*flags, used_by=stages, **kw)`` records the stages using each flag."""
    g = p.add_argument_group(title)

    def add(*flags: str, used_by: tuple[str, ...] = stages, **kw: Any) -> None:
        p.used_by[g.add_argument(*flags, **kw).dest] = used_by

    return add


def _common_and_render_flags(p: _Parser) -> None:
    """The common options, --render-stems and --render-report."""
    from mixin import __version__
    from mixin.argtypes import ListAction, nonneg_int, positive_float, positive_int

    add = _group(p, "common options", STAGES)
    add("--version", action="version", version=f"MiXiN {__version__}")
    add("-q", "--quiet", action="store_true", help="only warnings and errors")
    add("-v", "--verbose", action="store_true", help="debug messages (and TensorFlow's)")
    add("--recipe", metavar="FILE",
        help="run the steps of a JSON recipe, e.g. pretrained-models/recipe.json (the shipped "
             "models' commands); flags given here override the recipe's, stage flags pick steps")
    add("--overwrite", action="store_true",
        help="replace existing renders / segments / HDF5 files / checkpoints and models of the "
             "stages run (otherwise they are refused, or training resumes)")
    add("--seed", type=nonneg_int, default=0,
        help="seed of rendering, augmentation, song split, initial weights and batch order (default: %(default)s)")
    add("--data-dir", default="data", used_by=_DATA, help="segments and HDF5 files (default: %(default)s)")
    add("--model-dir", default="model", used_by=("train", "train-mix", "calibrate", "export-onnx"),
        help="trained models (default: %(default)s)")
    add("--logdir", default="logdir", used_by=_TRAINING,
        help="checkpoints, training state and history (default: %(default)s)")

    add = _group(p, "--render-stems: render multitrack songs (drums, bass, other, vocals) to train on",
                 ("render-stems",))
    add("--render-stems", action="store_true", help="run this stage")
    add("--render-dir", metavar="DIR",
        help="folder the song folders are written to (required; refused if not empty, unless --overwrite)")
    add("--songs", type=positive_int, metavar="N", help="number of songs (required)")
    add("--duration", type=positive_float, default=60.0, metavar="S",
        help="length of each song in seconds (default: %(default)s)")
    add("--split", choices=("train", "validation", "test"), default="train",
        help="Groove MIDI split and kit pool: training kits for train, held-out kits and "
             "SoundFonts for validation / test (default: %(default)s)")
    add("--vocal-dirs", action=ListAction, metavar="DIR",
        help="folders of song stems whose vocals.* files give the vocal excerpts (default: none)")
    add("--jobs", type=positive_int, default=1, metavar="J",
        help="songs rendered in parallel processes (default: %(default)s)")
    add("--groove-dir", metavar="DIR", help="the Groove MIDI Dataset (default: ../shared/groove-midi)")
    add("--render-profile", choices=("classic", "recorded", "wide", "synth"), default="classic",
        help="classic: the renders the shipped models were trained on (default); recorded: drum low end, "
             "cymbal level, drum-bus compression and vocal level spanning real records (see --render-report); "
             "wide: recorded, and 30%% of songs with a loud sub bass under sparse kicks; "
             "synth: wide, and 40%% of songs with the bass line on a sine sub-bass synthesizer")

    add = _group(p, "--render-report: how realistic are song folders? Statistics per song and "
                    "per folder (drum low end, kick vs bass, cymbals, drum crest factor, vocal level, harmonic low end)",
                 ("render-report",))
    add("--render-report", action=ListAction, metavar="DIR",
        help="folders of song folders (rendered or real), one column each")
    add("--report-songs", type=positive_int, metavar="N", help="at most N songs per folder (default: all)")
    add("--report-json", metavar="FILE",
        help="also write every song's statistics as JSON (refused if FILE exists, unless --overwrite)")


def _prepare_and_hdf5_flags(p: _Parser) -> None:
    """--prepare-stems and --create-hdf5."""
    from mixin.argtypes import ListAction, nonneg_float, nonneg_int, one_of, positive_float, positive_int
    from mixin.params import SOURCES
    from mixin.training.hdf5 import DEFAULT_STORAGE, STORAGE
    from mixin.training.stems import AUGMENT_GAIN_DB

    add = _group(p, "--prepare-stems: cut stem folders into training segments", ("prepare-stems",))
    add("--prepare-stems", action="store_true", help="run this stage")
    add("--stem-dirs", action=ListAction, metavar="DIR", used_by=("prepare-stems", "train-mix", "calibrate"),
        help="folders holding one sub-folder of stems per song (MUSDB18-HQ layout) (--prepare-stems and --train-mix)")
    add("--segment-duration", type=positive_float, default=30.0, metavar="S",
        help="segment length in seconds (default: %(default)s)")
    add("--segment-offset", type=nonneg_int, default=0, metavar="N",
        help="skip the first N segments of each song (default: %(default)s)")
    add("--track-limit", type=int, default=-1, metavar="N", help="use at most N songs (-1 = all, the default)")
    add("--segment-limit", type=positive_int, metavar="N", help="at most N segments per song (default: all)")
    add("--augment", type=nonneg_int, default=0, metavar="N",
        help="add N remixed songs (stems of different training songs, random gains) (default: %(default)s)")
    add("--augment-gain-db", type=nonneg_float, default=AUGMENT_GAIN_DB, metavar="DB",
        help="remixed stems get a random gain in +-DB (default: %(default)s)")
    add("--augment-segments", type=positive_int, metavar="N",
        help="at most N segments per remix (default: as long as its shortest source)")
    add("--validation-songs", action=ListAction, metavar="NAME", used_by=("prepare-stems", "train-mix", "calibrate"),
        help="song folder names held out for validation (--prepare-stems: default a random 10 %% validation, 10 %% "
             "test split by song; --train-mix: required, they choose the checkpoint)")
    add("--test-songs", action=ListAction, metavar="NAME",
        help="song folder names held out for testing (like --validation-songs, the random split is then not used)")

    add = _group(p, "--create-hdf5: NSGT magnitudes of the segments, split by song", ("create-hdf5",))
    add("--create-hdf5", action="store_true", help="run this stage")
    add("--n-pool", type=positive_int, default=os.cpu_count() or 1, metavar="N",
        help="worker processes (default: %(default)s, the number of CPUs)")
    add("--mono", action="store_true", help="downmix each segment (as the original) instead of one example per channel")
    add("--hdf5-storage", default=DEFAULT_STORAGE, choices=list(STORAGE),
        help="dtype and compression of the datasets (default: %(default)s, chosen by measurement: "
             "half the size of float32, no measurable cost)")
    add("--sources", action=ListAction, item=one_of(SOURCES), default=list(SOURCES),
        metavar="SOURCE", used_by=("create-hdf5", "train"),
        help="networks to build data for (--create-hdf5) and train (--train): "
             f"{', '.join(SOURCES)} (default: all three)")


def _train_flags(p: _Parser) -> None:
    """--train and --train-mix."""
    from mixin.argtypes import ListAction, nonneg_float, nonneg_int, positive_float, positive_int, probability
    from mixin.training.engine import MixConfig

    add = _group(p, "--train: train the CDAEs one at a time from the HDF5 files (options marked "
                    "(both) are --train-mix's too)", ("train",))
    add("--train", action="store_true", help="run this stage")
    add("--plot-training", action="store_true", help="write loss and MAE curves as PNG beside the models")
    add("--epochs", type=positive_int, default=100, help="at most N epochs (default: %(default)s)")
    add("--steps-per-epoch", type=positive_int, metavar="N",
        help="batches per epoch (default: one pass over the training examples)")
    add("--eval-batches", type=positive_int, metavar="N",
        help="score the training MAE on N shuffled batches (default: all)")
    add("--batch-size", type=positive_int, metavar="N", used_by=_TRAINING,
        help="(both) examples per batch (default: 64 for --train, 16 for --train-mix)")
    add("--patience", type=nonneg_int, metavar="N", used_by=_TRAINING,
        help="(both) stop after N epochs (--train; default 2) or N rounds (--train-mix; default "
             "0 = never) without improvement")
    add("--learning-rate", type=positive_float, metavar="LR", used_by=_TRAINING,
        help="(both) Adam learning rate (default: 1e-4, the measured best; the original: 1e-3)")
    add("--loss", choices=("mae", "mse"), used_by=_TRAINING,
        help="(both) one loss for every network (default: the measured best per network, MAE for "
             "harmonic and percussive and MSE for vocal)")
    add("--original-settings", action="store_true", used_by=_TRAINING,
        help="(both) the original MiXiN's training settings: learning rate 1e-3 and MAE for all "
             "three networks (measured worse, see the README)")

    add = _group(p, "--train-mix: train the three networks together on examples mixed on the fly "
                    "from --stem-dirs (no segments or HDF5), choosing the checkpoint by separation "
                    "quality on the held-out --validation-songs", ("train-mix",))
    add("--train-mix", action="store_true", help="run this stage")
    add("--rounds", type=positive_int, default=30, metavar="N",
        help="at most N rounds of training + validation (default: %(default)s)")
    add("--round-batches", type=positive_int, default=200, metavar="N", help="batches per round (default: %(default)s)")
    add("--monitor-dirs", action=ListAction, default=[], metavar="DIR",
        help="extra validation song folders (e.g. rendered songs with held-out kits and "
             "instruments): scored every round and recorded, never used to choose")
    add("--validation-duration", type=positive_float, default=30.0, metavar="S",
        help="seconds of each validation song separated every round (default: %(default)s; the "
             "excerpt where all sources are most active)")
    add("--mix-workers", type=nonneg_int, default=1, metavar="N",
        help="processes computing examples (default: %(default)s; 0 = in the trainer)")
    add("--mix-dir-weights", used_by=_MIXED, action=ListAction, item=nonneg_float, metavar="W",
        help="probability weight of each --stem-dirs entry (default: by duration)")
    add("--mix-remix", used_by=_MIXED, type=probability, default=MixConfig.remix, metavar="P",
        help="probability that an example's sources come from three different songs (default: %(default)s)")
    add("--mix-gain-db", used_by=_MIXED, type=nonneg_float, default=MixConfig.gain_db, metavar="DB",
        help="random gain per source in +-DB (default: %(default)s)")
    add("--mix-level-db", used_by=_MIXED, type=float, nargs=2, default=list(MixConfig.level_db), metavar=("LOW", "HIGH"),
        help="the mixture of each example is scaled to an RMS level uniform in [LOW, HIGH] dBFS "
             "(default: %(default)s)")
    add("--mix-natural-level", used_by=_MIXED, action="store_true",
        help="keep the stems' own level (no --mix-level-db scaling)")
    add("--mix-eq-db", used_by=_MIXED, type=nonneg_float, default=MixConfig.eq_db, metavar="DB",
        help="random EQ curve per source, tilt and two bumps of up to +-DB (default: %(default)s; 0 = off)")
    add("--mix-shift", used_by=_MIXED, type=probability, default=MixConfig.shift, metavar="P",
        help="probability of a speed change (pitch and tempo) (default: %(default)s)")
    add("--mix-shift-semitones", used_by=_MIXED, type=nonneg_float, default=MixConfig.shift_semitones, metavar="ST",
        help="largest speed change in semitones (default: %(default)s)")
    add("--init-model-dir", metavar="DIR",
        help="start from the three models in DIR (e.g. the shipped ones: a set of --arch's architecture) instead of random weights")
    add("--arch", default="mixin", metavar="NAME", used_by=("train-mix",),
        help="network architecture: mixin (the published CDAE, default), mixin-hpss (fed the "
             "mixture's median-filtering HPSS estimates too), mixin-context (~1 s of time context), "
             "mixin-wide (twice the filters), mixin-plus (all three), mixin-onset (mixin-hpss + "
             "the upper bands' percussiveness in every band); recorded in model.json")
    add("--panel-dirs", action=ListAction, default=[], metavar="DIR",
        help="rendered held-out song folders (--render-stems --split validation) that join the --validation-songs in a "
             "panel: the round kept is the one whose SDR minus HPSS's, median over every song and target, is highest")
    add("--init-seed", type=nonneg_int, metavar="K",
        help="seed of the initial weights only (default: --seed, which then sets only the stream of training examples)")


def _calibrate_and_export_flags(p: _Parser) -> None:
    """--calibrate and --export-onnx."""
    from mixin.argtypes import positive_int

    add = _group(p, "--calibrate: fit the networks' output gains for the soft masks", ("calibrate",))
    add("--calibrate", action="store_true",
        help="run this stage on the three models in --model-dir (kept as model_*.uncalibrated.h5; "
             "record in calibration.json), fitted on the prepared segments of --data-dir, or with "
             "--stem-dirs (and no --prepare-stems) on examples mixed from them as --train-mix "
             "mixes them (its --mix-* flags; --validation-songs held out)")
    add("--calibration-chunks", type=positive_int, default=128, metavar="N",
        help="chunks of the training songs to fit on (default: %(default)s)")

    add = _group(p, "--export-onnx: the networks as ONNX files for the separator's onnx backend",
                 ("export-onnx",))
    add("--export-onnx", action="store_true",
        help="write model_*.onnx beside the model_*.h5 files of --model-dir (done anyway after training or "
             "calibrating; an existing .onnx of another .h5 is replaced only with --overwrite)")


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of ``train_util.py`` / ``mixin-train``: one argument group per stage."""
    p = _Parser(prog=prog_name("mixin-train", "train_util.py"), description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Stages run in order: --render-stems, --prepare-stems, --create-hdf5, --train, "
                       "--calibrate; --train-mix replaces --prepare-stems/--create-hdf5/--train. "
                       "List flags take values separated by spaces or commas.")
    p.used_by = {}
    for add_flags in (_common_and_render_flags, _prepare_and_hdf5_flags, _train_flags, _calibrate_and_export_flags):
        add_flags(p)
    return p


def _setup_logging(quiet, verbose):
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # other libraries: quiet
    log.setLevel(level)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"


def _dest(stage: str) -> str:
    return stage.replace("-", "_")


def _parse(parser: _Parser, argv: list[str] | None) -> dict[str, Any]:
    """The settings given in ``argv`` (flags left out are absent, not defaults)."""
    unset = object()
    ns = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.default is not argparse.SUPPRESS})
    parser.parse_args(argv, namespace=ns)
    return {k: v for k, v in vars(ns).items() if v is not unset}


def _stages(settings: dict[str, Any]) -> list[str]:
    return [s for s in STAGES if settings.get(_dest(s))]


def _refuse_unused(parser: _Parser, given: dict[str, Any], stages: list[str]) -> None:
    """One-line error for a flag in ``given`` that none of ``stages`` uses."""
    for dest in given:
        if not set(parser.used_by.get(dest, STAGES)) & set(stages):
            flag = next(a.option_strings[-1] for a in parser._actions if a.dest == dest)
            parser.error(f"{flag} is not used by {' or '.join('--' + s for s in stages)}")


def read_recipe(parser: _Parser, path: str) -> list[dict[str, Any]]:
    """The steps of a recipe file: ``{"steps": [{"train-mix": true, "stem-dirs": [...], ...}, ...]}``
    (keys are flag names without the dashes, values as on the command line), each parsed by the
    parser (so checked as flags are) into the settings it gives."""
    try:
        with open(path, encoding="utf-8") as f:
            steps = json.load(f)["steps"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        parser.error(f"cannot read recipe {path}: {' '.join(str(e).split()) or type(e).__name__}")
    known = {o for a in parser._actions for o in a.option_strings} - {"--recipe", "--help", "--version"}
    out = []
    for i, step in enumerate(steps, 1):
        parser.where = f"recipe {path}, step {i}: "
        argv = []
        for key, value in (step.items() if isinstance(step, dict) else [("", step)]):
            if "--" + key not in known:
                parser.error(f"unknown setting {key!r}" if key else f"a step must be an object, got {step!r}")
            if value is True:
                argv.append("--" + key)
            elif value is not False:
                argv += ["--" + key] + [str(v) for v in (value if isinstance(value, list) else [value])]
        given = _parse(parser, argv)
        if len(_stages(given)) != 1:
            parser.error("each step runs one stage (e.g. \"train-mix\": true)")
        _refuse_unused(parser, given, _stages(given))
        out.append(given)
    parser.where = ""
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the stages asked for (or the recipe's steps): 0 on success, 1 after a one-line
    ``error: ...`` on stderr, 130 when interrupted (argparse exits with 2 for bad flags)."""
    parser = get_parser()
    given = _parse(parser, argv)
    steps = [{}]
    if "recipe" in given:
        path, picked = given.pop("recipe"), _stages(given)
        steps = [s for s in read_recipe(parser, path) if not picked or _stages(s)[0] in picked]
        if not steps:
            parser.error(f"recipe {path} has no step for {' or '.join('--' + s for s in picked)}")
        given = {k: v for k, v in given.items() if k not in map(_dest, STAGES)}
    defaults = {a.dest: a.default for a in parser._actions if a.default is not argparse.SUPPRESS}
    runs = []
    for step in steps:
        stages = _stages({**step, **given})
        if not stages:
            parser.error(f"nothing to do: give {', '.join('--' + s for s in STAGES[:-1])} and/or "
                         f"--{STAGES[-1]} (or --recipe FILE)")
        mine = {k: v for k, v in given.items() if set(parser.used_by.get(k, STAGES)) & set(stages)}
        runs.append(argparse.Namespace(**{**defaults, **step, **mine}))
    _refuse_unused(parser, given, [s for s in STAGES if any(getattr(a, _dest(s)) for a in runs)])
    for args in runs:
        _check(parser, args)
    _setup_logging(runs[0].quiet, runs[0].verbose)
    from mixin.errors import MixinError

    try:
        for args in runs:
            _run(args)
    except MixinError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def _check(parser: _Parser, args: argparse.Namespace) -> None:
    """The checks across flags, before any work (argparse checked each value)."""
    if args.render_stems and (not args.render_dir or args.songs is None):
        parser.error("--render-stems needs --render-dir DIR and --songs N")
    if (args.prepare_stems or args.train_mix) and not args.stem_dirs:
        parser.error(f"--{'prepare-stems' if args.prepare_stems else 'train-mix'} needs --stem-dirs DIR [DIR ...]")
    if args.train_mix and not args.validation_songs:
        parser.error("--train-mix needs --validation-songs NAME ... (held-out real songs in the "
                     "stem dirs that choose the checkpoint)")
    if args.train_mix and (args.create_hdf5 or args.train):
        parser.error("--train-mix does not combine with --create-hdf5 or --train")
    lo, hi = args.mix_level_db
    if lo > hi:
        parser.error(f"--mix-level-db LOW HIGH needs LOW <= HIGH, got {lo:g} {hi:g}")
    if args.original_settings and (args.learning_rate is not None or args.loss is not None):
        parser.error("--original-settings sets --learning-rate and --loss; give one or the other")
    if args.track_limit < -1 or args.track_limit == 0:
        parser.error(f"--track-limit must be -1 (all) or a positive integer, got {args.track_limit}")


def _train_config(args: argparse.Namespace, data_source: str):
    """The :class:`~mixin.training.engine.TrainConfig` of the flags (checked by the stage)."""
    from mixin.training.engine import MixConfig, TrainConfig

    mix = data_source == "mix"
    if args.original_settings:
        args.learning_rate, args.loss = 1e-3, "mae"
    return TrainConfig(
        data_dir=args.data_dir, model_dir=args.model_dir, logdir=args.logdir, sources=tuple(args.sources),
        epochs=args.rounds if mix else args.epochs, batch_size=args.batch_size, patience=args.patience,
        seed=args.seed, init_seed=args.init_seed, plot=mix or args.plot_training,
        steps_per_epoch=args.round_batches if mix else args.steps_per_epoch,
        **({} if args.loss is None else {"loss": args.loss}),
        **({} if args.learning_rate is None else {"learning_rate": args.learning_rate}),
        eval_batches=args.eval_batches, overwrite=args.overwrite, data_source=data_source,
        stem_dirs=args.stem_dirs or [], validation_songs=args.validation_songs or [],
        monitor_dirs=args.monitor_dirs, panel_dirs=args.panel_dirs, workers=args.mix_workers,
        validation_duration=args.validation_duration, init_model_dir=args.init_model_dir, arch=args.arch,
        mix=MixConfig(remix=args.mix_remix, gain_db=args.mix_gain_db,
                      level_db=None if args.mix_natural_level else tuple(args.mix_level_db),
                      eq_db=args.mix_eq_db, shift=args.mix_shift, shift_semitones=args.mix_shift_semitones,
                      dir_weights=tuple(args.mix_dir_weights) if args.mix_dir_weights else None))


def _run(args: argparse.Namespace) -> None:
    """Run the stages of one checked set of settings."""
    # stages that need TensorFlow (the ``[train]`` extra) refuse at once, in one line, when it is not
    # installed (a light install separates only)
    from mixin.backends import TRAIN_EXTRA, installed
    from mixin.errors import MixinError

    tf = ("tensorflow", "keras", "h5py")
    needs = {"create_hdf5": ("h5py",), "train": tf + (("matplotlib",) if args.plot_training else ()),
             "train_mix": tf + ("matplotlib",), "calibrate": tf, "export_onnx": tf + ("onnx",)}
    for stage, modules in needs.items():
        if absent := [m for m in modules if getattr(args, stage) and not installed(m)]:
            raise MixinError(f"--{stage.replace('_', '-')} needs {', '.join(absent)}, not installed: {TRAIN_EXTRA}")
    if args.render_stems:
        from mixin.training.render.render import render_stems

        summary = render_stems(args.render_dir, args.songs, duration=args.duration, seed=args.seed, split=args.split,
                               vocal_dirs=args.vocal_dirs or (), jobs=args.jobs, overwrite=args.overwrite,
                               progress=not args.quiet, groove_dir=args.groove_dir, profile=args.render_profile)
        log.debug("render-stems: %s", summary)
    if args.render_report:
        _render_report(args)
    if args.prepare_stems:
        from mixin.training.stems import prepare_stems

        summary = prepare_stems(args.stem_dirs, data_dir=args.data_dir, segment_duration=args.segment_duration,
                                segment_offset=args.segment_offset, track_limit=args.track_limit, seed=args.seed,
                                segment_limit=args.segment_limit, augment=args.augment, overwrite=args.overwrite,
                                augment_gain_db=args.augment_gain_db, augment_segments=args.augment_segments,
                                validation_songs=args.validation_songs, test_songs=args.test_songs)
        log.debug("prepare-stems: %s", summary)
    if args.create_hdf5:
        from mixin.training.hdf5 import create_hdf5

        create_hdf5(args.data_dir, n_pool=args.n_pool, mono=args.mono, seed=args.seed,
                    overwrite=args.overwrite, storage=args.hdf5_storage, sources=args.sources)
    if args.train:
        from mixin.training.train import train

        train(_train_config(args, "hdf5"))
    if args.train_mix:
        from mixin.training.mixing import train_mix

        train_mix(_train_config(args, "mix"), progress=not args.quiet)
    if args.calibrate:
        from mixin.training.calibrate import calibrate

        mixed = bool(args.stem_dirs) and not args.prepare_stems  # else the prepared segments
        calibrate(_train_config(args, "mix") if mixed else args.data_dir, args.model_dir,
                  n_chunks=args.calibration_chunks, seed=args.seed, overwrite=args.overwrite)
    if args.export_onnx:
        from mixin.onnxexport import export_dir

        export_dir(args.model_dir, overwrite=args.overwrite)


def _render_report(args: argparse.Namespace) -> None:
    """Print the realism report of ``--render-report`` folders (and write it as JSON)."""
    from mixin.io import write_json
    from mixin.errors import MixinError
    from mixin.training.render import realism

    out = args.report_json
    if out:  # checked before the songs are read
        if os.path.isdir(out):
            raise MixinError(f"--report-json {out} is a folder; give a file name")
        if os.path.exists(out) and not args.overwrite:
            raise MixinError(f"{out} exists; use --overwrite to replace it")
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise MixinError(f"--report-json {out}: the folder {folder} does not exist")
    rep = realism.report(args.render_report, limit=args.report_songs)
    print(realism.format_report(rep))
    if out:
        try:
            write_json(out, rep)
        except OSError as e:
            raise MixinError(f"cannot write {out}: {e.strerror or e}") from None


if __name__ == "__main__":
    sys.exit(main())
