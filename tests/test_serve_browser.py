"""mixin-serve in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven
by Selenium loads the page of a running ``mixin-serve``, uploads a file that is not audio (its
one-line reason shows on the page), uploads the example mix twice (the model set's own HPSS
anchor, then anchor 0.5 chosen on the page), waits for the jobs to finish, checks
the player (four tracks of the song's duration, play, solo by keyboard), downloads a stem and
takes a screenshot (kept as the README's docs/serve.png with MIXIN_SCREENSHOT=docs/serve.png);
then the A/B comparison: jobs of one song with other options are offered in the player, which
switches between them at the same position while playing."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Where to keep the screenshot: only when asked (``MIXIN_SCREENSHOT=docs/serve.png`` refreshes the
#: README's), so that running the suite never changes a tracked file.
SCREENSHOT = os.environ.get("MIXIN_SCREENSHOT")

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = open(tmp_path / "server.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "mixin.cli.serve", "--port", "0",
                          "--workdir", str(tmp_path / "wd")],
                         stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        line = p.stdout.readline()
        m = re.search(r"serving on (http://\S+)", line)
        assert m, line + (tmp_path / "server.log").read_text()
        yield m.group(1), tmp_path / "wd"
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    if not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER):
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} not found (Debian: apt install chromium "
                    "chromium-driver; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 "--window-size=1100,1120", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    # Service with the Debian driver: Selenium Manager downloads nothing
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver, downloads
    finally:
        driver.quit()


def wait_for(driver, script, timeout=60, what=None):
    """Poll a JavaScript expression until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = driver.execute_script(f"return {script};")
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or script}")


def test_browser_upload_listen_solo_download(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from mixin.model import read_model_spec
    from mixin.modelsets import installed_sets

    url, workdir = server
    driver, downloads = browser
    song = tmp_path / "example.wav"
    subprocess.run([sys.executable, "-m", "mixin.training.render.synth", "--example-mix",
                    str(song), "--duration", "8"], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    info = sf.info(str(song))
    duration = info.frames / info.samplerate

    driver.get(url)
    wait_for(driver, "document.querySelector('#conn').textContent === 'live'", what="event stream")
    # the training material's credits (CC BY 4.0: wherever the models are used), once for all sets
    credits = driver.find_element(By.ID, "credit-list").text
    assert credits.count("Groove MIDI Dataset") == 1 and "Model sets trained on" in credits, credits
    # a file that is not audio: refused, with its one-line reason on the page; Delete clears it
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n" * 100)
    driver.find_element(By.ID, "file-input").send_keys(str(bad))
    msg = wait_for(driver, "document.querySelector('.job[data-state=failed] .error')?.textContent",
                   what="the rejected upload")
    assert msg.startswith("notes.wav: not a readable audio file"), msg
    driver.find_element(By.CSS_SELECTOR, ".job[data-state=failed] .delete").click()
    wait_for(driver, "!document.querySelector('.job')", what="the rejected row to go")
    # the anchor option names the chosen set's own anchor; upload at the set's, then at 0.5
    model, anchor = Select(driver.find_element(By.ID, "opt-model")), Select(
        driver.find_element(By.ID, "opt-anchor"))
    own = read_model_spec(installed_sets()["mixin-hpss"])["hpss_anchor"]
    model.select_by_value("mixin-hpss")
    assert anchor.options[0].text == f"set's ({own:g})"
    model.select_by_value("mixin")
    assert anchor.options[0].text == "set's (0)" and anchor.first_selected_option.text == "set's (0)"
    driver.find_element(By.ID, "file-input").send_keys(str(song))
    wait_for(driver, "document.querySelectorAll('.job').length === 1 && "
             "!document.querySelector('.job').dataset.id.startsWith('upload-')",
             what="the first upload to be accepted")
    anchor.select_by_visible_text("0.5")
    driver.find_element(By.ID, "file-input").send_keys(str(song))
    rows_js = ("Array.from(document.querySelectorAll('.job[data-state=done]'), li => "
               "[li.dataset.id, li.querySelector('.opts').textContent])")
    done = wait_for(driver, f"{rows_js}.length === 2 && {rows_js}", timeout=240,
                    what="both jobs to be done")
    opts = {t: i for i, t in done}
    assert set(opts) == {"mixin · overlap 0.25 · anchor 0 · WAV",
                         "mixin · overlap 0.25 · anchor 0.5 · WAV"}, opts
    first = opts["mixin · overlap 0.25 · anchor 0 · WAV"]
    assert all(n.text == "example.wav" for n in driver.find_elements(By.CSS_SELECTOR, ".job .name"))
    driver.find_element(By.CSS_SELECTOR, f".job[data-id='{first}'] .listen").click()
    wait_for(driver, "window.mixinPlayer.ready", what="the player to load the tracks")

    tracks = driver.execute_script(
        "return mixinPlayer.tracks.map(t => [t.name, t.duration, t.buffer.numberOfChannels]);")
    assert [t[0] for t in tracks] == ["mixture", "harmonic", "percussive", "vocal"]
    for name, d, ch in tracks:
        assert abs(d - duration) < 1e-3 and ch == info.channels, (name, d, duration)

    driver.find_element(By.ID, "play").click()
    wait_for(driver, "mixinPlayer.playing && mixinPlayer.position() > 0.3", what="playback")
    driver.find_element(By.TAG_NAME, "body").send_keys("4")  # solo the vocal
    gains = driver.execute_script("return mixinPlayer.gains();")
    assert gains["vocal"] == 1 and gains["mixture"] == gains["harmonic"] == gains["percussive"] == 0
    assert "on" in driver.find_elements(By.CSS_SELECTOR, ".track .solo")[3].get_attribute("class")
    driver.find_element(By.TAG_NAME, "body").send_keys(" ")  # pause
    assert driver.execute_script("return mixinPlayer.playing;") is False

    # a stem's download equals the job's output file
    driver.find_elements(By.CSS_SELECTOR, ".track .dl")[3].click()
    target = downloads / "example_vocal.wav"
    deadline = time.monotonic() + 60
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), os.listdir(downloads)
    job_dir = workdir / "jobs" / first
    time.sleep(0.5)
    assert target.read_bytes() == (job_dir / "out" / "example_vocal.wav").read_bytes()

    # the vocal's NSGT spectrogram on demand, then the screenshot for the README
    driver.find_elements(By.CSS_SELECTOR, ".track .spec-btn")[3].click()
    wait_for(driver, "document.querySelectorAll('.track .spec')[3].naturalWidth > 0",
             what="the spectrogram")
    driver.execute_script("mixinPlayer.seek(3.2); window.scrollTo(0, 0);")
    shot = tmp_path / "serve.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10000
    if not SCREENSHOT:
        return
    try:  # a 256-colour PNG is a third of the size (Pillow is optional: else the plain copy)
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(256).save(SCREENSHOT, optimize=True)
    except ImportError:
        shutil.copy(shot, SCREENSHOT)


def _post(url, path, **opts):
    """Upload ``path`` to the server at ``url`` as the page does (raw body); the job as JSON."""
    import json
    import urllib.parse
    import urllib.request

    q = urllib.parse.urlencode({"name": os.path.basename(path), **opts})
    req = urllib.request.Request(f"{url.rstrip('/')}/api/jobs?{q}", data=open(path, "rb").read(),
                                 headers={"X-Mixin": "1"}, method="POST")
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def test_browser_compare_jobs_of_the_same_song(server, browser, tmp_path):
    """Three jobs of one song (mixin instrumental, then mixin and mixin-hpss) and one of another
    song: the instrumental job's player has nothing to compare until the other two finish, then
    offers the three (and shows the vocal role, absent there). The mixin job's player switches
    between them while playing at the same position (the soloed role stays soloed, the sources
    play the other job's decoded tracks, links and spectrogram follow), the key c goes back, the
    vocal is absent in the instrumental job, at most two jobs stay decoded, and a switch while
    paused keeps the position."""
    url, _ = server
    driver, _ = browser
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    song, other = tmp_path / "song.wav", tmp_path / "other.wav"
    for path, seconds in ((song, 6), (other, 3)):
        subprocess.run([sys.executable, "-m", "mixin.training.render.synth", "--example-mix",
                        str(path), "--duration", str(seconds)], check=True, capture_output=True,
                       env=env)
    c = _post(url, song, model="mixin", instrumental="1")
    d = _post(url, other, model="mixin")
    assert c["input_sha256"] != d["input_sha256"]

    driver.get(url)
    wait_for(driver, "document.querySelectorAll('.job[data-state=done]').length === 2",
             timeout=240, what="the first two jobs to be done")
    # the instrumental job alone: nothing to compare (the other song is not offered), 3 tracks
    driver.execute_script(f"document.querySelector(\".job[data-id='{c['id']}'] .listen\").click()")
    wait_for(driver, "window.mixinPlayer.ready", what="the player to load the tracks")
    assert driver.execute_script("return mixinPlayer.compare;") == {
        "current": c["id"], "options": [], "previous": None}
    assert driver.execute_script("return document.querySelector('#compare-box').hidden;")
    assert driver.execute_script("return mixinPlayer.tracks.map(t => t.name);") == [
        "mixture", "harmonic", "percussive"]
    # two more jobs of the same song: offered as they finish; the vocal role appears, absent here
    a = _post(url, song, model="mixin")
    b = _post(url, song, model="mixin-hpss")
    assert a["input_sha256"] == b["input_sha256"] == c["input_sha256"]
    wait_for(driver, "mixinPlayer.compare.options.length === 3", timeout=240,
             what="the new jobs to be offered")
    assert driver.execute_script("return mixinPlayer.compare.options;") == [c["id"], a["id"],
                                                                            b["id"]]
    assert driver.execute_script("return mixinPlayer.tracks.map(t => [t.name, t.absent]);") == [
        ["mixture", False], ["harmonic", False], ["percussive", False], ["vocal", True]]

    driver.execute_script(f"document.querySelector(\".job[data-id='{a['id']}'] .listen\").click()")
    wait_for(driver, f"window.mixinPlayer.ready && mixinPlayer.job.id === '{a['id']}'",
             what="the player to load the tracks")
    cmp = driver.execute_script("return mixinPlayer.compare;")
    # opened from c's player: c is the job compared before
    assert cmp == {"current": a["id"], "options": [c["id"], a["id"], b["id"]],
                   "previous": c["id"]}, cmp
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#compare option'), o => [o.value, o.text]);")
    assert labels == [[c["id"], "mixin · anchor 0 · overlap 0.25 · instrumental · WAV"],
                      [a["id"], "mixin · anchor 0 · overlap 0.25 · WAV"],
                      [b["id"], "mixin-hpss · anchor 0.25 · overlap 0.25 · WAV"]], labels
    assert driver.execute_script("return !document.querySelector('#compare-box').hidden;")

    sources = ("return mixinPlayer.tracks.map(t => [t.name, t.url, !!t.source && "
               "t.source.buffer === t.buffer, t.absent]);")
    body = driver.find_element("tag name", "body")
    body.send_keys("2")  # solo the harmonic
    driver.execute_script("document.querySelectorAll('.track .spec-btn')[1].click();")
    driver.execute_script("mixinPlayer.play(); mixinPlayer.seek(2.0);")
    wait_for(driver, "mixinPlayer.playing && mixinPlayer.position() > 2.3", what="playback")

    def switch(to, how):
        """Switch (``how``: JS returning the switch's Promise); the position before and after
        with the elapsed wall time between them, and the switch's own record."""
        return driver.execute_async_script(f"""
            const done = arguments[arguments.length - 1];
            const p0 = mixinPlayer.position(), t0 = performance.now();
            Promise.resolve({how}).then(() => done({{
                p0, p1: mixinPlayer.position(), dt: (performance.now() - t0) / 1000,
                playing: mixinPlayer.playing, last: mixinPlayer.lastSwitch,
                current: mixinPlayer.compare.current}}), e => done({{error: String(e)}}));""")

    driver.set_script_timeout(60)
    timings = {}
    for to, how, absent in ((b["id"], f"mixinPlayer.switchTo('{b['id']}')", False),
                            (a["id"], "mixinPlayer.toggleCompare()", False),  # the key c's call
                            (c["id"], f"mixinPlayer.switchTo('{c['id']}')", True)):
        r = switch(to, how)
        assert "error" not in r, r
        assert r["current"] == to and r["playing"], r
        assert abs(r["p1"] - (r["p0"] + r["dt"])) < 0.3, r  # continuous, no jump, no restart
        timings[to] = r["last"]
        got = driver.execute_script(sources)
        assert [g[0] for g in got] == ["mixture", "harmonic", "percussive", "vocal"]
        for name, src_url, from_buffer, is_absent in got:
            if absent and name == "vocal":  # the instrumental job has none
                assert is_absent and src_url is None and not from_buffer, got
            else:
                assert src_url == f"api/jobs/{to}/audio/{name}" and from_buffer, got
        # the sources play the decoded tracks of the job switched to
        assert driver.execute_async_script(f"""
            const done = arguments[arguments.length - 1];
            mixinPlayer._cache.get('{to}').then(d => done(mixinPlayer.tracks.every(t =>
                t.absent ? !d.buffers[t.name] : t.source.buffer === d.buffers[t.name])));""")
        # the open spectrogram and the download links are the job's
        assert driver.execute_script("return document.querySelectorAll('.track .spec')[1].src;") \
            .endswith(f"/api/jobs/{to}/spectrogram/harmonic.png")
        assert driver.execute_script(
            "return document.querySelectorAll('.track .dl')[2].getAttribute('href');") == \
            f"api/jobs/{to}/audio/percussive?download=1"
        gains = driver.execute_script("return mixinPlayer.gains();")
        assert gains["harmonic"] == 1 and gains["mixture"] == gains["percussive"] == 0, gains
        assert gains["vocal"] == 0
        assert driver.execute_script("return mixinPlayer.tracks[1].solo && "
                                     "document.querySelectorAll('.track .solo')[1]"
                                     ".classList.contains('on');")
        assert driver.execute_script("return mixinPlayer._cache.size;") <= 2
        wait_for(driver, f"mixinPlayer.position() > {r['p1'] + 0.2}", what="playback to go on")
    assert driver.execute_script(
        "return document.querySelectorAll('.track')[3].classList.contains('absent') && "
        "!document.querySelectorAll('.track .absent-note')[3].hidden;")
    assert driver.execute_script("return document.querySelector('#player-title').textContent;") \
        == "song.wav"
    assert driver.execute_script("return document.querySelector('#compare').value;") == c["id"]
    assert driver.execute_script("return document.querySelector('#zip').getAttribute('href');") \
        == f"api/jobs/{c['id']}/zip"
    # the key c: back to the job compared before (a), its tracks still decoded (cached)
    body.send_keys("c")
    wait_for(driver, f"mixinPlayer.compare.current === '{a['id']}'", what="the key c")
    assert driver.execute_script("return mixinPlayer.lastSwitch.cached;") is True
    assert driver.execute_script("return mixinPlayer.tracks[3].url;") == \
        f"api/jobs/{a['id']}/audio/vocal"
    # paused, with the selector: a switch keeps the position and starts nothing
    from selenium.webdriver.support.ui import Select

    driver.execute_script("mixinPlayer.pause();")
    p0 = driver.execute_script("return mixinPlayer.position();")
    Select(driver.find_element("id", "compare")).select_by_value(b["id"])
    wait_for(driver, f"mixinPlayer.compare.current === '{b['id']}'", what="the selector's switch")
    assert driver.execute_script("return [mixinPlayer.playing, mixinPlayer.position(), "
                                 "mixinPlayer.tracks.every(t => t.source === null), "
                                 "mixinPlayer.tracks[0].url];") == [
        False, p0, True, f"api/jobs/{b['id']}/audio/mixture"]
    print(f"\nswitchTo() until the other job's audio plays ({6} s stereo song): "
          + ", ".join(f"{'cached' if t['cached'] else 'decoded'} {t['ms']:.0f} ms"
                      for t in timings.values()))


def test_browser_all_sets_one_drop(server, browser, tmp_path):
    """"all sets" in the model-set option: one file chosen once is uploaded once and gives one job
    per set (the same upload: one input file, hard-linked); when they are done, the player of one
    offers all of them in the Compare selector."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from mixin.modelsets import installed_sets

    url, workdir = server
    driver, _ = browser
    sets = list(installed_sets())
    assert len(sets) >= 3
    song = tmp_path / "drop.wav"
    subprocess.run([sys.executable, "-m", "mixin.training.render.synth", "--example-mix",
                    str(song), "--duration", "3"], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    driver.get(url)
    wait_for(driver, "document.querySelector('#conn').textContent === 'live'", what="event stream")
    model = Select(driver.find_element(By.ID, "opt-model"))
    model.select_by_visible_text(f"all sets ({len(sets)})")
    assert model.first_selected_option.get_attribute("value") == ",".join(sets)
    assert Select(driver.find_element(By.ID, "opt-anchor")).options[0].text == "each set's"
    driver.find_element(By.ID, "file-input").send_keys(str(song))
    rows_js = ("Array.from(document.querySelectorAll('.job[data-state=done]'), li => "
               "[li.dataset.id, li.querySelector('.opts').textContent])")
    done = wait_for(driver, f"{rows_js}.length === {len(sets)} && {rows_js}", timeout=240,
                    what="one job per set to be done")
    assert driver.execute_script("return document.querySelectorAll('.job').length;") == len(sets)
    assert [o.split(" · ")[0] for _, o in done] == sets, done  # in the order of the sets
    ids = [i for i, _ in done]
    inputs = [workdir / "jobs" / i / "input" / "drop.wav" for i in ids]
    assert len({p.stat().st_ino for p in inputs}) == 1  # uploaded once
    driver.execute_script(f"document.querySelector(\".job[data-id='{ids[1]}'] .listen\").click()")
    wait_for(driver, f"window.mixinPlayer.ready && mixinPlayer.job.id === '{ids[1]}'",
             what="the player to load the tracks")
    assert driver.execute_script("return mixinPlayer.compare.options;") == ids
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#compare option'), o => o.text);")
    assert [lab.split(" · ")[0] for lab in labels] == sets
    assert driver.execute_script("return !document.querySelector('#compare-box').hidden;")
