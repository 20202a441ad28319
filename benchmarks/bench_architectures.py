#!/usr/bin/env python3
"""The cost of each --arch architecture against the published CDAE, in one process.

    python benchmarks/bench_architectures.py [--batch-size 8] [--repeats 5] [--archs mixin mixin-hpss ...]

For every architecture of :data:`mixin.model.ARCHITECTURES` (untrained weights: the cost does not
depend on them) it prints the parameters, the multiply-adds x 2 of one chunk (96 x 1948), the
separation speed of its three networks (chunks per second through TensorFlow, with the HPSS input
channels computed as the separator does), one training step of the three networks together
(examples per second, MAE), and each figure's ratio to the published architecture ("mixin"),
measured in the same run. The separation of a whole song costs the NSGT and masks too
(``bench_speed.py``), which do not change with the architecture.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def best_rate(fn, n_items, repeats):
    """Items per second of the fastest of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


def main(argv=None):
    import numpy as np

    from mixin import model as M
    from mixin.params import SOURCES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--archs", nargs="+", default=list(M.ARCHITECTURES), choices=list(M.ARCHITECTURES))
    args = p.parse_args(argv)
    archs = ["mixin"] + [a for a in args.archs if a != "mixin"]
    tf = M.import_tensorflow()
    import keras

    rng = np.random.default_rng(0)
    mag = rng.random((args.batch_size, 96, 1948), dtype=np.float32)
    rows = []
    for arch in archs:
        inputs = M.ARCHITECTURES[arch]["inputs"]
        nets = [M.build_model(arch, name=f"{arch}_{s}") for s in SOURCES]
        shape = (None,) + tuple(nets[0].input_shape[1:])
        run = tf.function(lambda x, nets=nets: [n(x, training=False) for n in nets],
                          input_signature=[tf.TensorSpec(shape, tf.float32)])

        def separate():
            return [o.numpy() for o in run(M.network_input(mag, inputs))]

        sep = best_rate(separate, args.batch_size, args.repeats)
        inp = keras.Input(shape=shape[1:])
        joint = keras.Model(inp, [n(inp) for n in nets])
        joint.compile(optimizer=keras.optimizers.Adam(1e-4), loss=["mae"] * 3)
        x = M.network_input(mag, inputs)
        ys = [rng.random((args.batch_size, 96, 1948, 1), dtype=np.float32) for _ in SOURCES]
        train = best_rate(lambda: joint.train_on_batch(x, ys), args.batch_size, max(2, args.repeats // 2))
        rows.append((arch, nets[0].count_params(), M.model_flops(nets[0]), sep, train))
    base = rows[0]
    print(f"batch {args.batch_size}; ratios against the published architecture in this run\n")
    print("| architecture | parameters | GFLOP per chunk | separation, 3 networks (chunks/s) "
          "| training step, 3 networks (examples/s) |")
    print("|---|---:|---:|---:|---:|")
    for arch, n, fl, sep, train in rows:
        print(f"| {arch} | {n:,} ({n / base[1]:.1f}x) | {fl / 1e9:.2f} ({fl / base[2]:.1f}x) "
              f"| {sep:.1f} ({sep / base[3]:.2f}x) | {train:.1f} ({train / base[4]:.2f}x) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
