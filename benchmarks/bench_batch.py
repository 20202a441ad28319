#!/usr/bin/env python3
"""Songs per minute of a batch with --jobs 1 and --jobs 2 (the real command, start-up included).

    python benchmarks/bench_batch.py [--songs 6] [--seconds 30] [--jobs 1 2] [--model-dir DIR]

Writes SONGS synthetic stereo 44.1 kHz songs, then runs ``xtract_mixin.py SONGS... --jobs N`` for
each N in a fresh process and prints wall-clock seconds, songs per minute and the ratio to the
first N, and whether the outputs of every N are bit-for-bit those of the first.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def write_song(path, seconds, seed, sr=44100):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * (110 + 30 * seed) * t)
    bursts = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.9) * 0.2
    x = np.stack([tone + bursts, tone - 0.5 * bursts], axis=1).astype(np.float32)
    sf.write(path, x, sr, subtype="PCM_16")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=6)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model-dir", default=None)
    args = p.parse_args(argv)
    print(f"{args.songs} songs of {args.seconds:g} s stereo, {os.cpu_count()} cores; "
          "wall-clock of the whole command (start-up and model loading included)")
    with tempfile.TemporaryDirectory() as tmp:
        songs = [os.path.join(tmp, f"song{i}.wav") for i in range(args.songs)]
        for i, s in enumerate(songs):
            write_song(s, args.seconds, i)
        base, ref = None, None
        for n in args.jobs:
            out = os.path.join(tmp, f"jobs{n}")
            cmd = [sys.executable, os.path.join(ROOT, "xtract_mixin.py"), *songs, "--outdir", out,
                   "--jobs", str(n), "-q"]
            if args.model_dir:
                cmd += ["--pretrained-model-dir", args.model_dir]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"--jobs {n} failed: {r.stderr.strip()[-500:]}")
            outs = {f: sf.read(os.path.join(out, f), dtype="float32")[0] for f in sorted(os.listdir(out))}
            if ref is None:
                ref, same = outs, "reference"
            else:
                diff = max(float(np.abs(outs[f] - ref[f]).max()) for f in ref)
                same = "bit for bit" if diff == 0 else f"max difference {diff:.3g}"
            base = base or dt
            print(f"--jobs {n}: {dt:6.1f} s, {60 * args.songs / dt:5.2f} songs/min "
                  f"({args.songs * args.seconds / dt:5.1f} s of audio per s), "
                  f"{base / dt:4.2f}x --jobs {args.jobs[0]}; outputs {same}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
