#!/usr/bin/env python3
"""Memory and responsiveness of mixin-serve over a series of jobs.

    python benchmarks/bench_serve.py [--jobs 20] [--seconds 3] [--workdir DIR]

Starts the real command (``python -m mixin.cli.serve`` on a free port, a fresh work folder),
then, one job at a time: uploads a short synthetic mix (the README's example generator), waits
until the job is done while timing ``GET /api/jobs`` every 50 ms (the page must stay responsive
while a song separates), and reads the resident set size (VmRSS) of the server process and of its
worker process. Prints one line per job and, at the end, the RSS after the last job against the
RSS after the first (memory must stay flat: the worker keeps its models, nothing accumulates).
"""

import argparse
import json
import os
import re
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each song (default: 3)")
    p.add_argument("--workdir", default=None)
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
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
