#!/usr/bin/env python3
"""Cost of the stem player's A/B switch (mixin-serve's Compare selector), in headless Chromium.

    python benchmarks/bench_compare.py [--seconds 6 240] [--sets mixin mixin-hpss]

Starts the real command (``python -m mixin.cli.serve`` on a free port, a fresh work folder); for
each song length, writes a synthetic stereo mix (the README's example generator), separates it
with each of the two model sets, opens the first job in the page (Debian's chromium and
chromium-driver through Selenium), plays it, seeks to a third of the song and switches:

* to the second job, not yet decoded (fetch + ``decodeAudioData`` of its four tracks, then the
  sources restart at the same ``AudioContext`` offset),
* back to the first (still decoded: the player keeps two jobs),
* to the second again with the key ``c``'s call (decoded).

Prints the milliseconds from ``switchTo()`` to the other job's audio playing (the player's
``lastSwitch.ms``: until the new sources start, its 50 ms scheduling lookahead included), the
jump of the playback position (position after minus position before minus wall time between,
must be ~0), the time to open the first job (fetch + decode, the baseline) and the decoded
tracks' memory (32-bit float samples of every track of the jobs kept). Ratios: a decoding switch
against a cached one, and the longest song against the shortest.
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
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def post(url, path, **opts):
    q = urllib.parse.urlencode({"name": os.path.basename(path), **opts})
    req = urllib.request.Request(f"{url}api/jobs?{q}", data=open(path, "rb").read(),
                                 headers={"X-Mixin": "1"}, method="POST")
    return json.load(urllib.request.urlopen(req, timeout=120))


def wait_done(url, ids, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in json.load(urllib.request.urlopen(f"{url}api/jobs"))}
        states = [jobs[i]["state"] for i in ids]
        if "failed" in states:
            raise SystemExit(f"a job failed: {[jobs[i]['error'] for i in ids]}")
        if all(s == "done" for s in states):
            return
        time.sleep(0.3)
    raise SystemExit("the jobs did not finish in time")


def browser(tmp):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 "--window-size=1100,1000", f"--user-data-dir={os.path.join(tmp, 'profile')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_js(driver, script, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script(f"return {script};"):
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {script}")


SWITCH = """
const done = arguments[arguments.length - 1];
const p0 = mixinPlayer.position(), t0 = performance.now();
Promise.resolve(%s).then(() => done({p0, p1: mixinPlayer.position(),
    dt: (performance.now() - t0) / 1000, last: mixinPlayer.lastSwitch,
    playing: mixinPlayer.playing}), e => done({error: String(e)}));
"""

DECODED_MB = """
const done = arguments[arguments.length - 1];
Promise.all([...mixinPlayer._cache.values()]).then(ds => done(ds.reduce((s, d) => s +
    Object.values(d.buffers).reduce((u, b) => u + 4 * b.length * b.numberOfChannels, 0), 0)
    / 2 ** 20));
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[6.0, 240.0],
                   help="song lengths (default: 6 240)")
    p.add_argument("--sets", nargs=2, default=["mixin", "mixin-hpss"],
                   help="the two model sets compared (default: mixin mixin-hpss)")
    args = p.parse_args(argv)
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise SystemExit(f"error: {CHROMIUM} and {CHROMEDRIVER} are needed")

    from mixin.training.render.synth import make_example_mix

    tmp = tempfile.mkdtemp(prefix="bench-compare-")
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen([sys.executable, "-m", "mixin.cli.serve", "--port", "0",
                               "--workdir", os.path.join(tmp, "wd")], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    driver = None
    results = {}
    try:
        url = re.search(r"serving on (http://\S+)", server.stdout.readline()).group(1)
        driver = browser(tmp)
        driver.set_script_timeout(300)
        print(f"mixin-serve at {url}; sets {args.sets[0]} and {args.sets[1]}; headless Chromium")
        print(f"{'song s':>7} {'open ms':>8} {'decode ms':>10} {'cached ms':>10} "
              f"{'c ms':>6} {'max jump s':>10} {'decoded MB':>11}")
        for seconds in args.seconds:
            song = os.path.join(tmp, f"song{seconds:g}.wav")
            make_example_mix(song, duration=seconds)
            a, b = (post(url, song, model=m) for m in args.sets)
            wait_done(url, [a["id"], b["id"]])
            driver.get(url)
            wait_js(driver, f"document.querySelector(\".job[data-id='{a['id']}'] .listen\")")
            t0 = time.perf_counter()
            driver.execute_script(
                f"document.querySelector(\".job[data-id='{a['id']}'] .listen\").click()")
            wait_js(driver, "window.mixinPlayer.ready")
            t_open = 1000 * (time.perf_counter() - t0)  # includes Selenium's polling (<= 0.1 s)
            driver.execute_script(f"mixinPlayer.play(); mixinPlayer.seek({seconds / 3});")
            wait_js(driver, f"mixinPlayer.position() > {seconds / 3 + 0.2}")
            got = []
            for how in (f"mixinPlayer.switchTo('{b['id']}')", f"mixinPlayer.switchTo('{a['id']}')",
                        "mixinPlayer.toggleCompare()"):
                r = driver.execute_async_script(SWITCH % how)
                if "error" in r or not r["playing"]:
                    raise SystemExit(f"switch failed: {r}")
                got.append(r)
                time.sleep(0.3)
            mb = driver.execute_async_script(DECODED_MB)
            ms = [r["last"]["ms"] for r in got]
            jump = max(abs(r["p1"] - r["p0"] - r["dt"]) for r in got)
            results[seconds] = ms
            print(f"{seconds:>7g} {t_open:>8.0f} {ms[0]:>10.0f} {ms[1]:>10.0f} {ms[2]:>6.0f} "
                  f"{jump:>10.3f} {mb:>11.0f}", flush=True)
            driver.execute_script("mixinPlayer.close();")
        lo, hi = min(results), max(results)
        print(f"decoding switch / cached switch: "
              + ", ".join(f"{s:g} s: {results[s][0] / results[s][1]:.1f}x" for s in results))
        if hi != lo:
            print(f"decoding switch, {hi:g} s song / {lo:g} s song: "
                  f"{results[hi][0] / results[lo][0]:.1f}x (length ratio {hi / lo:.0f}x)")
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
