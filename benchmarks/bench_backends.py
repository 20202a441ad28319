#!/usr/bin/env python3
"""The onnx backend (ONNX Runtime) against the tf backend (TensorFlow), in one run.

    python benchmarks/bench_backends.py [--minutes 4] [--batch-size 8] [--model-dir DIR]
                                        [--tune] [--light-venv DIR] [--skip SECTION ...]

Sections (each prints its figures; --skip networks/song/tune/venv leaves one out):

networks
    chunks/s of each network alone, per backend, batch --batch-size, in this process (first call
    left out), with CPU seconds per chunk (less sensitive to other processes on a shared machine).
song
    a synthetic stereo song of --minutes (mixin.training.render.synth) through the real command
    (xtract_mixin.py --backend B), each backend in its own process, onnx with the networks one
    after the other on the whole batch (the settings before they ran at once) and onnx without the
    separator's pipeline: wall-clock from the process start to its first chunk and to its end,
    CPU seconds, peak RSS, and the largest differences between the output samples.
tune (with --tune)
    ONNX Runtime settings one at a time from the defaults (networks at once, threads, chunks per
    session call, graph optimisation level, memory arena, spinning, batch size): chunks/s of the
    three networks and peak RSS, each in a fresh process.
venv (with --light-venv DIR)
    installed size of a light install (``pip install <clone>``) and whether TensorFlow is absent.
"""

import argparse
import json
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

from mixin import params  # noqa: E402

#: The peak resident set size of this process in MB, printed on stderr as PEAK_RSS at exit:
#: VmHWM of /proc/self/status, the peak of the process's own memory. (wait4's ru_maxrss, and
#: getrusage's, also count the memory of the parent that started the process: Linux keeps the
#: high-water mark of the address space replaced by exec, the parent's when it was vforked.)
PEAK_RSS = """
import atexit, resource, sys
def _peak():
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"PEAK_RSS {kb / 1024:.1f}", file=sys.stderr)
atexit.register(_peak)
"""

#: Run in a fresh process: xtract_mixin.py's main, printing the time to the first chunk (from
#: argv[1], the parent's clock just before starting the process) on stderr; argv[2] is a JSON
#: object of settings: "pipeline": false turns the separator's pipeline off, other keys set
#: mixin.backends.ORT_<KEY> (e.g. {"parallel": 1, "chunks": 8}: the networks one after the
#: other on the whole batch).
FIRST_CHUNK = PEAK_RSS + """
t_start = float(sys.argv[1])
import json, time
from mixin import backends
from mixin.separation import separate
settings = json.loads(sys.argv.pop(2))
if not settings.pop("pipeline", True):
    d = separate.Separator.__init__.__defaults__
    separate.Separator.__init__.__defaults__ = d[:-1] + (False,)  # pipeline, the last argument
for key, value in settings.items():
    setattr(backends, "ORT_" + key.upper(), value)
_orig = separate.Separator.process_chunks
def process_chunks(self, frames):
    out = _orig(self, frames)
    if not getattr(process_chunks, "seen", False):
        process_chunks.seen = True
        print(f"FIRST_CHUNK {time.time() - t_start:.3f}", file=sys.stderr)
    return out
separate.Separator.process_chunks = process_chunks
from mixin.cli.xtract import main
sys.exit(main(sys.argv[2:]))
"""

#: Run in a fresh process: chunks/s of the three networks with given OnnxBackend options.
TUNE = PEAK_RSS + """
import json, sys, time
import numpy as np
from mixin import backends
opts = json.loads(sys.argv[1]); batch = opts.pop("batch"); model_dir = sys.argv[2]
b = backends.OnnxBackend.from_dir(model_dir, **opts)
x = np.abs(np.random.default_rng(0).standard_normal((batch, 96, 1948))).astype(np.float32)
b.run(x)
n = max(2, 48 // batch)
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(n):
    b.run(x)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"chunks_s": n * batch / wall, "cpu_ms": 1000 * cpu / (n * batch)}))
"""


#: The song section's runs: name (backend first) -> settings (see FIRST_CHUNK).
SONG_RUNS = {
    "onnx": {},
    "tf": {},
    "onnx, networks one by one": {"parallel": 1, "chunks": 8},  # the settings before
    "onnx, no pipeline": {"pipeline": False},
}


def make_song(path, seconds, channels=2, sr=params.SAMPLE_RATE, seed=0):
    """A synthetic mix (drums, bass, chords, voice), written minute by minute."""
    from mixin.training.render.synth import make_song as synth_song

    with sf.SoundFile(str(path), "w", sr, channels, "PCM_16") as f:
        left, i = int(seconds * sr), 0
        while left > 0:
            stems = synth_song(min(60.0, left / sr), sr=sr, seed=seed + i, channels=channels)
            mix = sum(stems.values())
            mix = 0.9 * mix / max(1e-9, np.abs(mix).max())
            f.write(mix[:left])
            left -= len(mix)
            i += 1


def env():
    e = dict(os.environ, PYTHONPATH=ROOT)
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return e


def run_child(cmd):
    """Run cmd (a script starting with PEAK_RSS); (wall seconds from just before the start,
    peak RSS MB, stdout, stderr, CPU seconds)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env())
    wall = time.time() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])}... failed: {proc.stderr.strip()[-800:]}")
    rss = float(next(line.split()[1] for line in proc.stderr.splitlines()
                     if line.startswith("PEAK_RSS")))
    return wall, rss, proc.stdout, proc.stderr, cpu


def bench_networks(model_dir, batch, reps):
    from mixin.backends import OnnxBackend, TFBackend

    x = np.abs(np.random.default_rng(0).standard_normal((batch, 96, 1948))).astype(np.float32)
    print(f"\nnetworks alone, batch {batch}, {reps} calls each (after one warm-up call):")
    print(f"  {'network':<12}{'backend':<8}{'load s':>8}{'1st call s':>11}{'chunks/s':>10}"
          f"{'cpu ms/chunk':>14}")
    res = {}
    for s in params.SOURCES:
        for name in ("onnx", "tf"):
            t0 = time.perf_counter()
            if name == "onnx":
                b = OnnxBackend.from_dir(model_dir, (s,))
            else:
                b = TFBackend.from_dir(model_dir, (s,))
            t_load = time.perf_counter() - t0
            t0 = time.perf_counter()
            b.run(x)
            t_first = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(reps):
                b.run(x)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            res[s, name] = reps * batch / wall
            print(f"  {s:<12}{name:<8}{t_load:8.2f}{t_first:11.2f}{res[s, name]:10.1f}"
                  f"{1000 * cpu / (reps * batch):14.1f}")
    for s in params.SOURCES:
        print(f"  {s}: onnx / tf = {res[s, 'onnx'] / res[s, 'tf']:.2f}x")


def bench_song(model_dir, minutes, batch, tmp):
    src = os.path.join(tmp, "song.wav")
    t0 = time.perf_counter()
    make_song(src, minutes * 60)
    print(f"\n{minutes:g}-minute stereo 44.1 kHz song (made in {time.perf_counter() - t0:.1f} s) "
          f"through xtract_mixin.py, default settings, batch {batch}, each backend in its own process:")
    rows, outs = {}, {}
    for name, settings in SONG_RUNS.items():
        backend = name.split(",")[0]
        outs[name] = os.path.join(tmp, name.replace(", ", "-").replace(" ", "-"))
        cmd = [sys.executable, "-c", FIRST_CHUNK, str(time.time()), json.dumps(settings), src, "--outdir",
               outs[name], "--backend", backend, "-q", "--overwrite", "--batch-size", str(batch)]
        if model_dir:
            cmd += ["--pretrained-model-dir", model_dir]
        wall, rss, _, err, cpu = run_child(cmd)
        first = float(next(line.split()[1] for line in err.splitlines()
                           if line.startswith("FIRST_CHUNK")))
        rows[name] = (first, wall, rss, cpu)
    print(f"  {'backend':<34}{'first chunk s':>14}{'total s':>9}{'x real time':>12}{'CPU s':>8}"
          f"{'peak RSS MB':>13}")
    for name, (first, wall, rss, cpu) in rows.items():
        print(f"  {name:<34}{first:14.2f}{wall:9.2f}{minutes * 60 / wall:12.1f}{cpu:8.1f}{rss:13.0f}")
    print(f"  onnx / tf: {rows['tf'][1] / rows['onnx'][1]:.2f}x faster end to end, "
          f"{rows['onnx'][2] / rows['tf'][2]:.2f}x the memory")
    for other in list(SONG_RUNS)[1:]:
        diff = 0.0
        for s in params.SOURCES:
            a, _ = sf.read(os.path.join(outs["onnx"], f"song_{s}.wav"), dtype="float32")
            b, _ = sf.read(os.path.join(outs[other], f"song_{s}.wav"), dtype="float32")
            diff = max(diff, float(np.abs(a - b).max()))
        print(f"  largest |onnx - {other}| over the output samples: {diff:.2e}")


def bench_tune(model_dir, batch):
    from mixin import backends

    parallel = backends.default_parallel()
    base = {"parallel": parallel, "threads": backends.default_threads(parallel),
            "chunks": backends.ORT_CHUNKS, "opt_level": backends.ORT_OPT_LEVEL,
            "arena": backends.ORT_ARENA, "spin": backends.ORT_SPIN, "batch": batch}
    trials = [{}]
    trials += [{"parallel": p} for p in (1, 2, 3) if p != base["parallel"]]
    trials += [{"parallel": 1, "threads": t} for t in (1, 2)]
    trials += [{"chunks": c} for c in (2, batch) if c != base["chunks"]]
    trials += [{"opt_level": o} for o in ("disable", "basic", "extended")]
    trials += [{"arena": a} for a in ("session", "off")]
    trials += [{"spin": not backends.ORT_SPIN}]
    trials += [{"batch": b} for b in (2, 4, 16) if b != batch]
    print(f"\nONNX Runtime settings, one at a time from the defaults {base} "
          "(three networks, fresh process each):")
    print(f"  {'change':<28}{'chunks/s':>10}{'cpu ms/chunk':>14}{'peak RSS MB':>13}")
    for change in trials:
        opts = dict(base, **change)
        _, rss, out, _, _ = run_child([sys.executable, "-c", TUNE, json.dumps(opts), model_dir])
        r = dict(json.loads(out.splitlines()[-1]), rss_mb=rss)
        label = ", ".join(f"{k} {v}" for k, v in change.items()) or "(defaults)"
        print(f"  {label:<28}{r['chunks_s']:10.1f}{r['cpu_ms']:14.1f}{r['rss_mb']:13.0f}")


def bench_venv(venv):
    py = os.path.join(venv, "bin", "python")
    size = subprocess.run(["du", "-sm", venv], capture_output=True, text=True, check=True).stdout.split()[0]
    code = ("import importlib.util as u; print(' '.join(m for m in ('tensorflow', 'keras', 'h5py', "
            "'matplotlib', 'onnxruntime') if u.find_spec(m)))")
    found = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    t0 = time.time()
    subprocess.run([os.path.join(venv, "bin", "xtract-mixin"), "--help"], capture_output=True,
                   check=True, cwd=tempfile.gettempdir())
    print(f"\nlight venv {venv}: {size} MB installed; of tensorflow, keras, h5py, matplotlib, "
          f"onnxruntime it has: {', '.join(found) or 'none'}; xtract-mixin --help in "
          f"{time.time() - t0:.2f} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model-dir", default=None, help="default: the shipped models")
    p.add_argument("--reps", type=int, default=6, help="network calls timed per network and backend")
    p.add_argument("--tune", action="store_true", help="also try ONNX Runtime settings")
    p.add_argument("--light-venv", default=None, metavar="DIR")
    p.add_argument("--skip", nargs="+", default=[], choices=("networks", "song", "tune", "venv"))
    args = p.parse_args(argv)
    from mixin.separation.separate import default_model_dir

    model_dir = args.model_dir or default_model_dir()
    print(f"models: {model_dir}; {os.cpu_count()} CPUs")
    if args.light_venv and "venv" not in args.skip:
        bench_venv(args.light_venv)
    with tempfile.TemporaryDirectory() as tmp:
        if "song" not in args.skip:
            bench_song(args.model_dir, args.minutes, args.batch_size, tmp)
    if args.tune and "tune" not in args.skip:
        bench_tune(model_dir, args.batch_size)
    if "networks" not in args.skip:
        bench_networks(model_dir, args.batch_size, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
