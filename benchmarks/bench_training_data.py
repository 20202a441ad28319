#!/usr/bin/env python3
"""Training data: HDF5 path against examples mixed on the fly — examples per second and disk.

    python benchmarks/bench_training_data.py [--stem-dir DIR] [--minutes 2] [--batch-size 32]

With no --stem-dir it makes synthetic stem folders (two songs). It measures, in one process:

- the HDF5 path: --prepare-stems + --create-hdf5 time and disk per minute of stereo song, and
  reading training batches of all three files (what --train feeds the networks);
- on the fly (--train-mix): disk of the stems themselves, and examples per second of
  :class:`mixin.training.mixing.Mixer` (reading, speed change, transform, gains/EQ), in this
  process;
- one training step of the three networks together (what both paths feed), examples per second.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stem-dir", help="folder of song folders (default: synthetic songs)")
    p.add_argument("--minutes", type=float, default=2.0, help="synthetic material (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=8, help="batches timed per measurement")
    args = p.parse_args(argv)

    from mixin.training.hdf5 import create_hdf5, hdf5_paths
    from mixin.training.mixing import MixConfig, Mixer, build_catalogue
    from mixin.training.stems import prepare_stems
    from mixin.training.train import _h5_batches

    work = tempfile.mkdtemp(prefix="mixin-bench-data-")
    try:
        stems = args.stem_dir
        if stems is None:
            from mixin.training.render.synth import write_stem_folders

            stems = os.path.join(work, "stems")
            write_stem_folders(stems, 2, args.minutes * 30.0, seed=0)
        songs = build_catalogue([stems])
        minutes = sum(s.frames for s in songs) / 44100 / 60
        print(f"material: {len(songs)} songs, {minutes:.2f} min, stereo")

        data = os.path.join(work, "data")
        t = time.perf_counter()
        prepare_stems([stems], data_dir=data, segment_duration=10.0)
        t_prep = time.perf_counter() - t
        t = time.perf_counter()
        create_hdf5(data, n_pool=1)
        t_h5 = time.perf_counter() - t
        h5 = hdf5_paths(data)
        h5_bytes = sum(os.path.getsize(f) for f in h5.values())
        seg_bytes = du(data) - h5_bytes
        b = args.batch_size
        gens = [_h5_batches(f, "train", b, 0, 0, None, True) for f in h5.values()]
        for g in gens:
            next(g)
        t = time.perf_counter()
        for _ in range(args.batches):
            for g in gens:
                next(g)
        h5_rate = args.batches * b / (time.perf_counter() - t)

        mixer = Mixer(songs, MixConfig(), seed=0)
        mixer.batch(0, 2)
        t = time.perf_counter()
        for k in range(args.batches):
            mixer.batch(k + 1, b)
        fly_rate = args.batches * b / (time.perf_counter() - t)
        mixer1 = Mixer(songs, MixConfig(variants=1), seed=0)
        t = time.perf_counter()
        for k in range(args.batches):
            mixer1.batch(k + 1, b)
        fly1_rate = args.batches * b / (time.perf_counter() - t)

        from mixin.training.mixing import build_joint
        from mixin.training.engine import DEFAULT_LOSSES

        joint = build_joint(DEFAULT_LOSSES, 1e-4)
        x, ys = mixer.batch(0, b)
        joint.train_on_batch(x, list(ys))
        n_steps = max(2, args.batches // 2)
        t = time.perf_counter()
        for _ in range(n_steps):
            joint.train_on_batch(x, list(ys))
        step_rate = n_steps * b / (time.perf_counter() - t)

        stem_bytes = du(stems)
        print()
        print("| | HDF5 path (--prepare-stems, --create-hdf5, --train) | on the fly (--train-mix) |")
        print("|---|---:|---:|")
        print(f"| disk per stereo minute | {(h5_bytes + seg_bytes) / minutes / 1e6:.0f} MB "
              f"(HDF5 {h5_bytes / minutes / 1e6:.0f} + segments {seg_bytes / minutes / 1e6:.0f}) "
              f"| {stem_bytes / minutes / 1e6:.1f} MB (the stems as given) |")
        print(f"| preparation per stereo minute | {(t_prep + t_h5) / minutes:.1f} s | 0 |")
        print(f"| examples/s of data, 1 process | {h5_rate:.0f} (reading 3 files) | "
              f"{fly_rate:.1f} (2 examples per draw), {fly1_rate:.1f} (1 per draw) |")
        print(f"| training step, 3 networks, batch {b} | {step_rate:.1f} examples/s | same |")
        print()
        print(f"on-the-fly data cost per example = {100 * step_rate / fly_rate:.0f} % of a "
              f"training step's (the HDF5 read: {100 * step_rate / h5_rate:.0f} %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
