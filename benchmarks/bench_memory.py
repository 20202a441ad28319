#!/usr/bin/env python3
"""Peak memory of xtract_mixin.py for long inputs (3- and 30-minute stereo by default).

    python benchmarks/bench_memory.py [--minutes 3 30] [--model-dir DIR] [--overlap F]

Each run is a fresh process (the real command line), so its peak resident set size is that of
one separation: it must stay under 1.5 GB and must not grow with the length of the input.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def write_long(path, minutes, channels=2, sr=44100):
    """A long stereo file, written in one-minute blocks (tones and noise bursts)."""
    rng = np.random.default_rng(0)
    t = np.arange(60 * sr) / sr
    with sf.SoundFile(path, "w", sr, channels, "PCM_16") as f:
        for i in range(int(np.ceil(minutes))):
            n = int(min(60.0, minutes * 60 - 60 * i) * sr)
            tone = 0.3 * np.sin(2 * np.pi * (110 * (1 + i % 4)) * t[:n])
            bursts = (rng.standard_normal(n) * (np.sin(2 * np.pi * 2 * t[:n]) > 0.95)) * 0.2
            f.write(np.stack([tone + bursts] * channels, axis=1).astype(np.float32))


def peak_rss_mb(cmd):
    """Run cmd in a child process; its peak RSS in MB (via wait4's rusage)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"separation failed: {err.strip()[-500:]}")
    return usage.ru_maxrss / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[3, 30])
    p.add_argument("--model-dir", default=None)
    p.add_argument("--overlap", type=float, default=None)
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            src = os.path.join(tmp, f"long_{minutes:g}min.wav")
            write_long(src, minutes)
            cmd = [sys.executable, os.path.join(ROOT, "xtract_mixin.py"), src, "--outdir", tmp,
                   "-q", "--overwrite"]
            if args.model_dir:
                cmd += ["--pretrained-model-dir", args.model_dir]
            if args.overlap is not None:
                cmd += ["--overlap", str(args.overlap)]
            t0 = time.perf_counter()
            mb = peak_rss_mb(cmd)
            dt = time.perf_counter() - t0
            results.append((minutes, mb, dt))
            print(f"{minutes:6g} min stereo: peak RSS {mb:7.0f} MB, {dt:7.1f} s "
                  f"({dt / (60 * minutes):.3f} s per s of audio)", flush=True)
    if len(results) > 1:
        growth = results[-1][1] - results[0][1]
        print(f"growth from {results[0][0]:g} to {results[-1][0]:g} min: {growth:+.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
