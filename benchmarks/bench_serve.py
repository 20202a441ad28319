#!/usr/bin/env python3
"""Memory and responsiveness of mixin-serve over a series of jobs.

    python benchmarks/bench_serve.py [--jobs 20] [--seconds 3] [--workdir DIR]

Starts the real command (``python -m mixin.cli.serve`` on a free port, a fresh work folder),
then, one job at a time: uploads a short synthetic mix (the README's example generator), waits
until the job is done while timing ``GET /api/jobs`` every 50 ms (the page must stay responsive
while a song separates), and reads the resident set size (VmRSS) of the server process and of its
worker process. Prints one line per job and, at the end, the RSS after the last job against the
RSS after the first (memory must stay flat: the worker keeps its models, nothing accumulates).

Then (``--upload-mb 50``; 0 skips it) the cost of one file dropped for every model set at once
(``model=mixin,mixin-hpss,...``): a server without its worker (the app under uvicorn with the
lifespan off, in its own process, so the jobs stay queued and nothing separates) receives a
float WAV of that size, alternately for one set and for all sets, over loopback; prints the
median time of the POST (upload, hash, audio check, links, answer) and the disk the inputs take
(distinct inodes' allocated blocks) against the same file uploaded once per set as before.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children(pid):
    """Child pids of ``pid`` (the worker, and the multiprocessing resource tracker)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def worker_pid(pid):
    for c in children(pid):
        with open(f"/proc/{c}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode()
        if "resource_tracker" not in cmd:
            return c
    return None


#: A server without its worker (lifespan off: jobs stay queued); prints its port.
_NO_WORKER = """
import socket, sys, uvicorn
from mixin.serve.app import create_app
app = create_app(sys.argv[1])
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning")).run(sockets=[s])
"""


def _disk(paths):
    """Bytes allocated to the files ``paths`` (each inode once, as du counts) and their sizes
    added up."""
    st = {os.stat(p).st_ino: os.stat(p) for p in paths}
    return sum(s.st_blocks * 512 for s in st.values()), sum(os.stat(p).st_size for p in paths)


def upload_cost(mb, reps, tmp, env):
    """Time and disk of one upload for one set and for every set (see the module's docstring)."""
    import numpy as np
    import soundfile as sf

    from mixin.modelsets import installed_sets
    from mixin.training.render.synth import make_example_mix

    sets = list(installed_sets())
    short = os.path.join(tmp, "short.wav")
    make_example_mix(short, duration=3.0)
    x, sr = sf.read(short, dtype="float32")
    frames = int(mb * 2**20 / (4 * x.shape[1]))
    big = os.path.join(tmp, "big.wav")
    sf.write(big, np.tile(x, (frames // len(x) + 1, 1))[:frames], sr, subtype="FLOAT")
    data = open(big, "rb").read()
    workdir = os.path.join(tmp, "wd-uploads")
    server = subprocess.Popen([sys.executable, "-c", _NO_WORKER, workdir], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/"
        for _ in range(200):  # until it listens
            try:
                urllib.request.urlopen(f"{url}api/config", timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        print(f"\none upload of a {len(data) / 2**20:.1f} MB float WAV "
              f"({frames / sr:.0f} s stereo) for 1 set and for all {len(sets)} sets ({', '.join(sets)}); server without "
              f"worker; median of {reps}")
        times = {1: [], len(sets): []}
        disk = {}
        for _ in range(reps):
            for n in times:
                q = f"name=big.wav&model={','.join(sets[:n])}"
                req = urllib.request.Request(f"{url}api/jobs?{q}", data=data, method="POST",
                                             headers={"X-Mixin": "1"})
                t0 = time.perf_counter()
                body = json.load(urllib.request.urlopen(req, timeout=120))
                times[n].append(time.perf_counter() - t0)
                jobs = body["jobs"] if n > 1 else [body]
                assert len(jobs) == n and len({j["input_sha256"] for j in jobs}) == 1
                disk[n] = _disk([os.path.join(workdir, "jobs", j["id"], "input", "big.wav")
                                 for j in jobs])
                for j in jobs:
                    urllib.request.urlopen(urllib.request.Request(
                        f"{url}api/jobs/{j['id']}", method="DELETE", headers={"X-Mixin": "1"}))
        med = {n: sorted(t)[len(t) // 2] for n, t in times.items()}
        n = len(sets)
        print(f"{'sets':>5} {'POST s':>7} {'MB on disk':>10} {'MB of inputs':>12}")
        for k in times:
            print(f"{k:>5} {med[k]:>7.2f} {disk[k][0] / 2**20:>10.1f} {disk[k][1] / 2**20:>12.1f}")
        print(f"all {n} sets at once / one set: {med[n] / med[1]:.2f}x the time, "
              f"{disk[n][0] / disk[1][0]:.2f}x the disk; the same file dropped once per set as "
              f"before: {n * med[1]:.2f} s and {n * disk[1][0] / 2**20:.1f} MB "
              f"({n * med[1] / med[n]:.1f}x the time of one multi-set drop)")
    finally:
        stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
        os.remove(big)


def stop(server):
    """Stop a server process as Ctrl-C does (killed if it has not exited after 30 s)."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each song (default: 3)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--upload-mb", type=float, default=50,
                   help="size of the file of the multi-set upload measure (0: skip it)")
    p.add_argument("--upload-reps", type=int, default=3)
    args = p.parse_args(argv)

    from mixin.training.render.synth import make_example_mix

    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    workdir = args.workdir or os.path.join(tmp, "wd")
    song = os.path.join(tmp, "song.wav")
    make_example_mix(song, duration=args.seconds)
    data = open(song, "rb").read()
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen([sys.executable, "-m", "mixin.cli.serve", "--port", "0",
                               "--workdir", workdir], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = re.search(r"serving on (http://\S+)", server.stdout.readline()).group(1)
        print(f"mixin-serve at {url}; {args.jobs} jobs of a {args.seconds:g} s stereo mix")
        print(f"{'job':>4} {'wall s':>7} {'max GET ms':>10} {'server MB':>10} {'worker MB':>10}")
        rows = []
        for i in range(args.jobs):
            t0 = time.perf_counter()
            req = urllib.request.Request(f"{url}api/jobs?name=song{i}.wav", data=data,
                                         method="POST", headers={"X-Mixin": "1"})
            job = json.load(urllib.request.urlopen(req, timeout=60))
            worst = 0.0
            while True:
                t1 = time.perf_counter()
                j = json.load(urllib.request.urlopen(f"{url}api/jobs/{job['id']}", timeout=60))
                worst = max(worst, time.perf_counter() - t1)
                if j["state"] in ("done", "failed"):
                    break
                time.sleep(0.05)
            if j["state"] != "done":
                raise SystemExit(f"job {i} failed: {j['error']}")
            wall = time.perf_counter() - t0
            wpid = worker_pid(server.pid)
            row = (wall, 1000 * worst, rss_mb(server.pid), rss_mb(wpid) if wpid else float("nan"))
            rows.append(row)
            print(f"{i + 1:>4} {row[0]:>7.2f} {row[1]:>10.1f} {row[2]:>10.0f} {row[3]:>10.0f}",
                  flush=True)
        first, last = rows[0], rows[-1]
        later = rows[1:] or rows
        print(f"server RSS: {first[2]:.0f} MB after job 1, {last[2]:.0f} MB after job {len(rows)} "
              f"(ratio {last[2] / first[2]:.3f})")
        print(f"worker RSS: {first[3]:.0f} MB after job 1, {last[3]:.0f} MB after job {len(rows)} "
              f"(ratio {last[3] / first[3]:.3f}; max over jobs 2-{len(rows)}: "
              f"{max(r[3] for r in later):.0f} MB)")
        print(f"job wall time: {first[0]:.2f} s for job 1 (loads the models), median "
              f"{sorted(r[0] for r in later)[len(later) // 2]:.2f} s for the others; "
              f"slowest GET /api/jobs/ID while separating: {max(r[1] for r in rows):.1f} ms")
    finally:
        stop(server)
    if args.upload_mb > 0:
        upload_cost(args.upload_mb, args.upload_reps, tmp, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
