#!/usr/bin/env python3
"""Real-time factor and latency of a live stream (the code of ``xtract-mixin --stream``).

    python benchmarks/bench_stream.py [--seconds 30] [--channels 2] [--model-dir DIR]

1. Real-time factor: a WAV stream of SECONDS is separated as fast as it can be read; RTF =
   processing time / audio duration (below 1: faster than real time).
2. Latency: the same stream is delivered at the pace of real time (as from a sound card, in
   1024-frame reads); after each output block, the age of its newest and oldest sample (now minus
   the moment that sample had arrived) is recorded. The Separator is the one of ``--stream``
   (the shipped models, one chunk per network call, default overlap), loaded before timing.
"""

import argparse
import io
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 44100


class Paced(io.RawIOBase):
    """Bytes of a WAV stream delivered at the pace of real time, ``frames`` frames per read."""

    def __init__(self, data, header, frame_bytes, frames=1024):
        self.data, self.pos, self.header = data, 0, header
        self.fb, self.step = frame_bytes, frames * frame_bytes
        self.t0 = None

    def readable(self):
        return True

    def read1(self, n=-1):
        if self.pos < self.header:
            b = self.data[:self.header]
            self.pos = self.header
            return b
        if self.t0 is None:
            self.t0 = time.perf_counter()
        frame = (self.pos - self.header) // self.fb
        wait = self.t0 + (frame + self.step // self.fb) / SR - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        b = self.data[self.pos:self.pos + self.step]
        self.pos += len(b)
        return b

    read = read1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--model-dir", default=None)
    args = p.parse_args(argv)
    from mixin.separation import live
    from mixin.separation.separate import Separator

    rng = np.random.default_rng(0)
    t = np.arange(int(args.seconds * SR)) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t)[:, None]
         + 0.05 * rng.standard_normal((len(t), args.channels))).astype(np.float32)
    bio = io.BytesIO()
    sf.write(bio, x, SR, subtype="FLOAT", format="WAV")
    data = bio.getvalue()
    header = len(data) - x.nbytes
    sep = Separator(args.model_dir, batch_size=args.channels)
    print(f"{args.seconds:g} s, {args.channels} channel(s) at 44.1 kHz, {os.cpu_count()} cores; "
          f"chunk {sep.chunk} samples, hop {sep.hop} ({sep.chunk / SR:.3f} s / {sep.hop / SR:.3f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        outs = {s: os.path.join(tmp, f"{s}.wav") for s in sep.sources}
        # warm-up: trace the network function once
        live.separate_stream(sep, live.StreamReader(io.BytesIO(data[:header + 4 * SR * args.channels * 4])), outs)
        t0 = time.perf_counter()
        res = live.separate_stream(sep, live.StreamReader(io.BytesIO(data)), outs)
        dt = time.perf_counter() - t0
        print(f"real-time factor (as fast as possible): {dt / res['seconds']:.3f} "
              f"({res['seconds'] / dt:.1f}x faster than real time; {dt:.1f} s)")

        src = Paced(data, header, 4 * args.channels)
        newest, oldest, last = [], [], [0]

        def on_block(n_in, n_out):
            now = time.perf_counter()
            newest.append(now - (src.t0 + n_out / SR))
            oldest.append(now - (src.t0 + last[0] / SR))
            last[0] = n_out

        res = live.separate_stream(sep, live.StreamReader(src), outs, on_block=on_block)
        newest, oldest = np.array(newest[:-1]), np.array(oldest[:-1])  # the last block: end of input
        print(f"paced at real time: {len(newest)} output blocks; latency of the newest sample of "
              f"a block: median {np.median(newest):.3f} s, max {newest.max():.3f} s; of the oldest: "
              f"median {np.median(oldest):.3f} s, max {oldest.max():.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
