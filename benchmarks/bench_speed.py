#!/usr/bin/env python3
"""Speed of a separation, split into stages, with the original algorithm's cost as a baseline.

    python benchmarks/bench_speed.py [--minutes 3] [--channels 2] [--overlap F] [--model-dir DIR]
                                     [--baseline-seconds 20]

It makes a test song (mixin.training.render.synth), times TensorFlow start-up and model loading
(the tf backend; benchmarks/bench_backends.py compares it with the default onnx backend),
then separates the file with mixin.separation.separate.separate_file and prints seconds per second
of audio for reading and resampling, the transform, the networks and writing. With
--baseline-seconds it also runs the original MiXiN's loop (mono, one chunk at a time, one Keras
predict() per chunk and model, float64 transform) in the same process on that many seconds, and
prints the speed-up against it.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from mixin import params  # noqa: E402


def make_song(path, seconds, channels, sr=params.SAMPLE_RATE, seed=0):
    """Write a synthetic mix (drums, bass, chords, voice) of the given length, block by block."""
    from mixin.training.render.synth import make_song as synth_song

    with sf.SoundFile(str(path), "w", sr, channels, "PCM_16") as f:
        left = int(seconds * sr)
        i = 0
        while left > 0:
            d = min(60.0, left / sr)
            stems = synth_song(d, sr=sr, seed=seed + i, channels=channels)
            mix = sum(stems.values())
            mix = 0.9 * mix / max(1e-9, np.abs(mix).max())
            f.write(mix[:left])
            left -= len(mix)
            i += 1


def original_loop(models, x):
    """The published MiXiN's per-chunk loop (default mode), on a mono float array: the baseline."""
    from mixin.nsgt import NSGT

    nsgt = NSGT(dtype=np.float64)
    N = params.CHUNK_SIZE
    shape = (1,) + nsgt.shape + (1,)
    out = {s: np.zeros(len(x)) for s in params.SOURCES}
    for k in range(len(x) // N):
        c = nsgt.forward(x[k * N:(k + 1) * N].astype(np.float64))
        mag = np.abs(c).reshape(shape)
        est = {s: models[s].predict(mag, verbose=0).reshape(nsgt.shape) for s in params.SOURCES}
        tot = sum(e ** 2 for e in est.values()) + 1e-7
        for s in params.SOURCES:
            out[s][k * N:(k + 1) * N] = nsgt.backward(est[s] ** 2 / tot * c)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--overlap", type=float, default=params.DEFAULT_OVERLAP)
    p.add_argument("--model-dir", default=None, help="default: pretrained-models/")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--jit", choices=["on", "off"], default="off")
    p.add_argument("--baseline-seconds", type=float, default=0,
                   help="also time the original per-chunk loop on this many seconds (mono)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "song.wav")
        t0 = time.perf_counter()
        make_song(src, args.minutes * 60, args.channels)
        print(f"test song: {args.minutes:g} min, {args.channels} channel(s), made in "
              f"{time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        from mixin.model import import_tensorflow
        from mixin.separation.separate import Separator, separate_file

        import_tensorflow()
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        jit = args.jit == "on"
        sep = Separator(args.model_dir, overlap=args.overlap, batch_size=args.batch_size, jit=jit,
                        backend="tf")
        t_load = time.perf_counter() - t0

        outs = {s: os.path.join(tmp, f"out_{s}.wav") for s in sep.sources}
        timings = {}
        t0 = time.perf_counter()
        separate_file(sep, src, outs, timings=timings)
        t_sep = time.perf_counter() - t0
        secs = args.minutes * 60
        ch_secs = secs * args.channels
        print(f"\nseparation (overlap {args.overlap:g}, batch {args.batch_size}, jit {args.jit}):")
        print(f"  {'stage':<22}{'seconds':>9}{'s per s of audio':>18}{'share':>8}")
        rows = [("TensorFlow import", t_import), ("model loading", t_load)]
        rows += [(k, timings[k]) for k in ("read", "transform", "networks", "write")]
        other = t_sep - sum(timings[k] for k in ("read", "transform", "networks", "write"))
        rows.append(("other (overlap-add...)", other))
        total = t_import + t_load + t_sep
        for name, t in rows:
            print(f"  {name:<22}{t:9.2f}{t / secs:18.4f}{100 * t / total:7.1f}%")
        print(f"  {'total wall-clock':<22}{total:9.2f}{total / secs:18.4f}")
        print(f"  networks: {timings['networks'] / ch_secs:.4f} s per channel-second; "
              f"transform: {timings['transform'] / ch_secs:.4f} s per channel-second "
              f"({100 * timings['transform'] / (timings['transform'] + timings['networks']):.1f}% "
              "of transform + networks)")

        if args.baseline_seconds > 0:
            x, _ = sf.read(src, dtype="float32", frames=int(args.baseline_seconds * params.SAMPLE_RATE),
                           always_2d=True)
            mono = x.mean(axis=1)
            n_full = (len(mono) // params.CHUNK_SIZE) * params.CHUNK_SIZE
            t0 = time.perf_counter()
            original_loop(sep.models if not sep.instrumental else None, mono)
            t_orig = (time.perf_counter() - t0) / (n_full / params.SAMPLE_RATE)
            sep0 = Separator(args.model_dir, overlap=0.0, batch_size=args.batch_size, jit=jit,
                             backend="tf")
            t0 = time.perf_counter()
            sep0.separate(mono[:n_full])
            t_ours = (time.perf_counter() - t0) / (n_full / params.SAMPLE_RATE)
            print(f"\nbaseline on {n_full / params.SAMPLE_RATE:.0f} s mono, --no-overlap, same process:")
            print(f"  original loop {t_orig:.4f} s/s, ours {t_ours:.4f} s/s: {t_orig / t_ours:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
