#!/usr/bin/env python3
"""What overlapping chunks buy (SDR, at and away from chunk boundaries) and what they cost (time).

    python benchmarks/bench_overlap.py STEMS_DIR [--model-dir DIR] [--overlaps 0 0.0625 0.125 0.25 0.5]
                                       [--duration 20] [--mono]

For each overlap fraction it separates the same excerpt of every song and reports
- the median BSSv4 SDR (museval, 1 s windows; median over windows, then over songs),
- the "boundary SDR": plain SDR over the samples within 10 ms of the hard chunk boundaries of the
  original algorithm (multiples of 44032 samples), where --no-overlap's discontinuities are;
  median over songs,
- the "own-seam SDR": the same, around this setting's own seams (the middle of each cross-fade;
  for overlap 0 the hard boundaries again), to check that the cross-fades add no artefact,
- the separation time relative to --no-overlap, measured in the same process.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from mixin import params  # noqa: E402

BOUNDARY_MS = 10.0


def boundary_mask(n, step=params.CHUNK_SIZE, first=params.CHUNK_SIZE, sr=params.SAMPLE_RATE,
                  ms=BOUNDARY_MS):
    """Boolean [shape=(n,)]: samples within ``ms`` of ``first + k * step``."""
    w = int(round(ms * sr / 1000))
    mask = np.zeros(n, bool)
    for b in range(first, n, step):
        mask[max(0, b - w):b + w] = True
    return mask


def snr_db(ref, est):
    num = float(np.sum(ref.astype(np.float64) ** 2))
    den = float(np.sum((ref - est).astype(np.float64) ** 2))
    return 10 * np.log10(max(num, 1e-20) / max(den, 1e-20))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stems", nargs="+")
    p.add_argument("--model-dir", default=None)
    p.add_argument("--overlaps", type=float, nargs="+", default=[0, 0.0625, 0.125, 0.25, 0.5])
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--songs", nargs="*", default=None)
    p.add_argument("--mono", action="store_true")
    args = p.parse_args(argv)

    from mixin.evaluation.evaluate import (bss_eval_v4, find_songs, load_song, median_over_songs,
                                           song_medians)
    from mixin.separation.separate import Separator

    songs = find_songs(args.stems, args.songs)
    data = [load_song(s, offset="auto", duration=args.duration, mono=args.mono) for s in songs]
    seps = {ov: Separator(args.model_dir, overlap=ov) for ov in args.overlaps}
    sources = params.SOURCES
    rows = {}
    for ov, sep in seps.items():
        sep.separate(np.zeros((1000, 1), np.float32))  # warm up (tracing) outside the timing
        t_sep, sdr = 0.0, {s: [] for s in sources}
        bsdr, osdr = {s: [] for s in sources}, {s: [] for s in sources}
        taper = params.CHUNK_SIZE - sep.hop
        for refs, sr, _ in data:
            mix = sum(refs.values())
            t0 = time.perf_counter()
            est = sep.separate(mix, sr)
            t_sep += time.perf_counter() - t0
            med = song_medians(bss_eval_v4(refs, est, win=sr, hop=sr))
            mask = boundary_mask(len(mix))
            own = boundary_mask(len(mix), step=sep.hop, first=sep.hop + taper // 2)
            for s in sources:
                sdr[s].append(med[s]["SDR"])
                bsdr[s].append(snr_db(refs[s][mask], est[s][mask]))
                osdr[s].append(snr_db(refs[s][own], est[s][own]))
        rows[ov] = (t_sep, {s: median_over_songs(sdr[s]) for s in sources},
                    {s: float(np.median(bsdr[s])) for s in sources},
                    {s: float(np.median(osdr[s])) for s in sources})
        print(f"overlap {ov:g} done in {t_sep:.1f} s", file=sys.stderr, flush=True)

    base = rows[min(rows)][0]
    print(f"\n{len(songs)} songs, {args.duration:g} s excerpts, {'mono' if args.mono else 'stereo'}; "
          "SDR in dB (H / P / V)")
    print(f"{'overlap':>8} {'chunks x':>9} {'time x':>7}   {'median BSSv4 SDR':<22} "
          f"{'boundary SDR':<22} {'own-seam SDR':<22}")
    for ov, (t, sdr, bsdr, osdr) in rows.items():
        f, b, o = (" / ".join(f"{d[s]:5.2f}" for s in sources) for d in (sdr, bsdr, osdr))
        work = params.CHUNK_SIZE / seps[ov].hop
        print(f"{ov:8.4g} {work:9.2f} {t / base:7.2f}   {f:<22} {b:<22} {o:<22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
