#!/usr/bin/env python3
"""End-to-end test of MiXiN training: stems -> segments -> HDF5 -> trained models -> separation.

    STEM_DIR=/path/to/musdb18hq/test ./test_e2e.py [--delete]
    python -m mixin.training.render.synth /tmp/stems --songs 2 --duration 45 && STEM_DIR=/tmp/stems ./test_e2e.py

Runs ``train_util.py`` and ``xtract_mixin.py`` as subprocesses in the current directory, which
gets ``data/``, ``model/`` and ``logdir/``. Without ``--delete`` it refuses to start if any of
them exists (they may hold your training); with ``--delete`` it removes them first. STEM_DIR
needs at least two songs of at least 30 s. The first failing step exits non-zero.

Steps (the original's seven, plus calibration and separation with the new models):
  1. the CDAE: 13 layers, output shape = input shape
  2. train_util.py --prepare-stems --stem-dirs $STEM_DIR --segment-offset 1 --segment-limit 3
     --track-limit 2 --segment-duration 10
  3. the segments: 8 folders (4 v, 4 nov, two songs), 28 wav files of 10 s at 44.1 kHz
  4. train_util.py --create-hdf5 makes the three files
  5. their datasets and shapes (all three files), split by song
  6. train_util.py --train for the three networks (short: see --epochs, --steps-per-epoch)
  7. checkpoints and saved models exist and load
  8. train_util.py --calibrate fits the output gains (calibration.json, uncalibrated models kept)
  9. xtract_mixin.py --pretrained-model-dir model separates a file with them
 10. train_util.py --train-mix trains the three networks on examples mixed on the fly from
     STEM_DIR (one round, one song held out to choose the checkpoint by separation SDR) into
     model_mix/ and logdir_mix/
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

N_STEPS = 10


class bcolors:  # noqa: N801  (the original's name)
    HEADER = "\033[95m"
    OKBLUE = "\033[94m"
    OKCYAN = "\033[96m"
    OKGREEN = "\033[92m"
    WARNING = "\033[93m"
    FAIL = "\033[91m"
    ENDC = "\033[0m"
    BOLD = "\033[1m"


def _say(color, message, stream=sys.stdout):
    if os.environ.get("NO_COLOR"):
        print(f"[MiXiN e2e test] {message}", file=stream, flush=True)
    else:
        print(f"{color}[MiXiN e2e test] {message}{bcolors.ENDC}", file=stream, flush=True)


def errexit(message):
    _say(bcolors.FAIL, f"FAILED: {message}")
    sys.exit(1)


def warn(message):
    _say(bcolors.WARNING, message)


def nextstep(n, message):
    _say(bcolors.OKBLUE, f"[{n}/{N_STEPS}] {message}")


def success(message):
    _say(bcolors.OKGREEN, message)


def run(args, what):
    """Run a command in the current directory; exit with its output's tail if it fails."""
    cmd = [sys.executable] + args
    print("    $ " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
        errexit(f"{what} exited with code {p.returncode}:\n{tail}")
    return p.stdout, time.perf_counter() - t0


def get_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="STEM_DIR (environment): folder of song folders with stems")
    p.add_argument("--delete", action="store_true",
                   help="delete data/, model/ and logdir/ in the current directory first")
    p.add_argument("--epochs", type=int, default=2, help="--train epochs (default: %(default)s)")
    p.add_argument("--steps-per-epoch", type=int, default=2,
                   help="--train batches per epoch (default: %(default)s; 0 = full epochs)")
    p.add_argument("--batch-size", type=int, default=8, help="--train batch size (default: %(default)s)")
    p.add_argument("--n-pool", type=int, default=2, help="--create-hdf5 processes (default: %(default)s)")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    dirs = ["data", "model", "logdir", "model_mix", "logdir_mix"]
    train_util = os.path.join(HERE, "train_util.py")

    stem_dir = os.environ.get("STEM_DIR")
    if not stem_dir:
        errexit("STEM_DIR is not set: run e.g. STEM_DIR=/path/to/musdb18hq/test ./test_e2e.py, or make "
                "synthetic stems first: python -m mixin.training.render.synth /tmp/stems --songs 2 "
                "--duration 45 && STEM_DIR=/tmp/stems ./test_e2e.py")
    if not os.path.isdir(stem_dir):
        errexit(f"STEM_DIR={stem_dir} is not a directory")

    if args.delete:
        for d in dirs:
            if os.path.isdir(d):
                warn(f"deleting {os.path.abspath(d)}")
                shutil.rmtree(d)
            elif os.path.exists(d):
                errexit(f"{d} exists and is not a directory; not deleting it")
    existing = [d for d in dirs if os.path.exists(d)]
    if existing:
        errexit(f"{', '.join(existing)} already exist in {os.getcwd()}: they may hold your training. "
                f"Move them away or run with --delete")

    import numpy as np

    # 1 -----------------------------------------------------------------------------------------
    nextstep(1, "Keras CDAE: layers and input/output dimensions")
    from mixin.model import N_LAYERS, build_cdae, input_shape, load_cdae
    from mixin.params import MODEL_FILES, SAMPLE_RATE, SOURCES

    model = build_cdae()
    n_layers = len([la for la in model.layers if la.__class__.__name__ != "InputLayer"])
    if n_layers != N_LAYERS:
        errexit(f"model created with {n_layers} layers, expected {N_LAYERS}")
    x = np.ones((2,) + input_shape(), dtype=np.float32)
    y = np.asarray(model(x))
    if y.shape != x.shape:
        errexit(f"input shape {x.shape} into the network, got output shape {y.shape}")
    success(f"good: {n_layers} layers, {model.count_params()} parameters, {x.shape[1:]} -> {y.shape[1:]}")

    # 2 -----------------------------------------------------------------------------------------
    nextstep(2, f"Preparing stems from {stem_dir}")
    _, t = run([train_util, "--prepare-stems", "--stem-dirs", stem_dir, "--segment-offset", "1",
                "--segment-limit", "3", "--track-limit", "2", "--segment-duration", "10"],
               "train_util.py --prepare-stems")
    success(f"good ({t:.1f} s)")

    # 3 -----------------------------------------------------------------------------------------
    nextstep(3, "Verifying the prepared segments")
    from mixin import io as audio, layout
    from mixin.errors import MixinError

    folders = sorted(f for f in os.listdir("data") if os.path.isdir(os.path.join("data", f)))
    expected = [(song, seg, kind) for song in (0, 1) for seg in (1, 2) for kind in layout.KINDS]
    names = sorted(layout.segment_name(*e) for e in expected)
    if folders != names:
        errexit(f"--prepare-stems wrote folders {folders}, expected {names}")
    n_tested = 0
    channels = set()
    for song, seg, kind in expected:
        for part in layout.SEGMENT_PARTS[kind]:
            path = layout.segment_file(layout.segment_folder("data", song, seg, kind), part)
            try:
                info = audio.probe(path)
            except MixinError as e:
                errexit(str(e))
            n_tested += 1
            channels.add(info.channels)
            if info.samplerate != SAMPLE_RATE or info.frames != 10 * SAMPLE_RATE:
                errexit(f"{path}: {info.frames / info.samplerate:.4f} s at {info.samplerate} Hz, "
                        f"expected 10 s at {SAMPLE_RATE} Hz")
    if n_tested != 28:
        errexit(f"expected 28 segment files, found {n_tested}")
    if not layout.songs_json("data").is_file():
        errexit(f"{layout.songs_json('data')} is missing")
    success(f"good: 8 folders, 28 files of 10 s at 44.1 kHz ({'/'.join(map(str, sorted(channels)))} "
            f"channel(s))")

    # 4 -----------------------------------------------------------------------------------------
    nextstep(4, "Creating the HDF5 datasets")
    _, t = run([train_util, "--create-hdf5", "--n-pool", str(args.n_pool)], "train_util.py --create-hdf5")
    hdf5_files = [layout.hdf5_path("data", s).name for s in SOURCES]
    found = sorted(f for f in os.listdir("data") if f.endswith(".hdf5"))
    if found != sorted(hdf5_files):
        errexit(f"--create-hdf5 wrote {found}, expected {hdf5_files}")
    success(f"good ({t:.1f} s)")

    # 5 -----------------------------------------------------------------------------------------
    nextstep(5, "Verifying the datasets and their shapes in all three files")
    import h5py

    from mixin.nsgt import coef_shape

    try:
        split = layout.read_songs("data")["split"]
    except MixinError as e:
        errexit(str(e))
    n_chunks = -(-10 * SAMPLE_RATE // 44032)  # every chunk, the last zero-padded: 11
    (n_ch,) = channels if len(channels) == 1 else (None,)
    if n_ch is None:
        errexit(f"segments have different channel counts {channels}")
    shape = coef_shape() + (1,)
    for s, fname in zip(SOURCES, hdf5_files):
        per_song = (2 if s != "vocal" else 1) * 2 * n_chunks * n_ch  # folders x segments x chunks x ch
        path = os.path.join("data", fname)
        try:
            with h5py.File(path, "r") as hf:
                songs_seen = {}
                for part in ("train", "validation", "test"):
                    want = (per_song * len(split[part]),) + shape
                    for xy in "xy":
                        d = hf.get(f"data-{xy}-{part}")
                        if d is None:
                            errexit(f"{path}: dataset data-{xy}-{part} is missing")
                        if d.shape != want:
                            errexit(f"{path}: data-{xy}-{part} has shape {d.shape}, expected {want}")
                    songs_seen[part] = set(np.unique(hf[f"index/{part}"][:, 0]).tolist())
                for part, seen in songs_seen.items():
                    if seen != set(split[part]):
                        errexit(f"{path}: {part} examples come from songs {sorted(seen)}, "
                                f"expected {split[part]}")
        except OSError as e:
            errexit(f"cannot read {path}: {e}")
    success(f"good: (N, {shape[0]}, {shape[1]}, 1) everywhere, split by song {split}")

    # 6 -----------------------------------------------------------------------------------------
    nextstep(6, "Training the three networks")
    cmd = [train_util, "--train", "--plot-training", "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size)]
    if args.steps_per_epoch:
        cmd += ["--steps-per-epoch", str(args.steps_per_epoch), "--eval-batches",
                str(max(1, args.steps_per_epoch))]
    out, t = run(cmd, "train_util.py --train")
    for line in out.splitlines():
        if "MAE" in line:
            print("    " + line.strip())
    success(f"good ({t:.1f} s)")

    # 7 -----------------------------------------------------------------------------------------
    nextstep(7, "Verifying the training outputs")
    for s in SOURCES:
        want_log = [f"model_{s}.best.h5", f"model_{s}.last.keras", f"model_{s}.state.json",
                    f"history_{s}.csv"]
        missing = [f for f in want_log if not os.path.isfile(os.path.join("logdir", f))]
        if missing:
            errexit(f"did not find the checkpoints {missing} in logdir/: {sorted(os.listdir('logdir'))}")
        want_model = [MODEL_FILES[s], f"history_{s}.csv", f"{s}_train_loss.png", f"{s}_train_mae.png"]
        missing = [f for f in want_model if not os.path.isfile(os.path.join("model", f))]
        if missing:
            errexit(f"did not find {missing} in model/: {sorted(os.listdir('model'))}")
        try:
            load_cdae(os.path.join("model", MODEL_FILES[s]))
            load_cdae(os.path.join("logdir", f"model_{s}.best.h5"))
        except Exception as e:  # MixinError names the file
            errexit(str(e))
    success("good: checkpoints, histories, plots and loadable models")

    # 8 -----------------------------------------------------------------------------------------
    nextstep(8, "Calibrating the networks' output gains")
    _, t = run([train_util, "--calibrate", "--calibration-chunks", "16"], "train_util.py --calibrate")
    try:
        with open(os.path.join("model", "calibration.json")) as f:
            gains = json.load(f)["gains_db"]
    except (OSError, ValueError, KeyError) as e:
        errexit(f"no usable model/calibration.json: {e}")
    kept = [f"model_{s}.uncalibrated.h5" for s in SOURCES]
    missing = [f for f in kept if not os.path.isfile(os.path.join("model", f))]
    if missing or sorted(gains) != sorted(SOURCES):
        errexit(f"calibration incomplete: gains {gains}, missing {missing}")
    success(f"good ({t:.1f} s): gains " + ", ".join(f"{s} {g:+.0f} dB" for s, g in gains.items()))

    # 9 -----------------------------------------------------------------------------------------
    nextstep(9, "Separating a file with the freshly trained models")
    song = layout.segment_file(layout.segment_folder("data", 0, 1, "v"), "mix")
    outdir = tempfile.mkdtemp(prefix="mixin-e2e-")
    try:
        _, t = run([os.path.join(HERE, "xtract_mixin.py"), "--pretrained-model-dir", "model",
                    "--outdir", outdir, str(song)], "xtract_mixin.py")
        info_in = audio.probe(song)
        for s in SOURCES:
            path = os.path.join(outdir, f"mix_{s}.wav")
            if not os.path.isfile(path):
                errexit(f"xtract_mixin.py did not write {path}: {sorted(os.listdir(outdir))}")
            try:
                out_audio, sr = audio.read_audio(path)  # non-finite samples are an error
            except MixinError as e:
                errexit(str(e))
            if sr != info_in.samplerate or out_audio.shape != (info_in.frames, info_in.channels):
                errexit(f"{path}: {out_audio.shape} at {sr} Hz, expected "
                        f"{(info_in.frames, info_in.channels)} at {info_in.samplerate} Hz")
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    success(f"good ({t:.1f} s): three outputs of the input's length and channels")

    # 10 ----------------------------------------------------------------------------------------
    nextstep(10, "Training on examples mixed on the fly (--train-mix)")
    from mixin.training.stems import find_song_folders

    held = find_song_folders([stem_dir])[0][0].name
    _, t = run([train_util, "--train-mix", "--stem-dirs", stem_dir, "--validation-songs", held,
                "--rounds", "1", "--round-batches", "2", "--batch-size", "2",
                "--validation-duration", "5", "--model-dir", "model_mix", "--logdir", "logdir_mix"],
               "train_util.py --train-mix")
    try:
        with open(os.path.join("logdir_mix", "joint.state.json")) as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        errexit(f"no usable logdir_mix/joint.state.json: {e}")
    if state.get("batches") != 2 or not state.get("best"):
        errexit(f"--train-mix state: {state.get('batches')} batches, best {state.get('best')}")
    for s in SOURCES:
        m = load_cdae(os.path.join("model_mix", f"model_{s}.h5"))
        if tuple(m.output_shape[1:]) != tuple(input_shape()):
            errexit(f"model_mix/model_{s}.h5 maps to {m.output_shape}")
    best = state["best"]
    success(f"good ({t:.1f} s): 2 batches; validation SDR on {held} "
            + " / ".join(f"{best[f'select_{s}']:.1f}" for s in SOURCES) + " dB (H / P / V)")

    success("finished!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
