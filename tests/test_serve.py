"""mixin-serve: the web app's API in-process (Starlette TestClient, the real worker process),
the job store, file-name sanitising, the PNG writer, and the command line."""

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT

pytest.importorskip("starlette")
pytest.importorskip("httpx")

import warnings  # noqa: E402

with warnings.catch_warnings():  # Starlette >= 1.x prefers the httpx2 fork; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from mixin.serve import jobs as J  # noqa: E402
from mixin.serve.app import create_app  # noqa: E402
from mixin.serve.render import peaks, png_bytes, spectrogram_png  # noqa: E402

BASE = "http://127.0.0.1"
POST_HEADERS = {"X-Mixin": "1"}


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A 3 s stereo synthetic mix (the README's example generator)."""
    from mixin.training.render.synth import make_example_mix

    p = tmp_path_factory.mktemp("song") / "song.wav"
    make_example_mix(p, duration=3.0)
    return p


def client(workdir, **kw):
    return TestClient(create_app(workdir, **kw), base_url=BASE)


def upload(c, path, name=None, **opts):
    q = {"name": name or os.path.basename(path), **{k: str(v) for k, v in opts.items()}}
    with open(path, "rb") as f:
        return c.post("/api/jobs", params=q, content=f.read(), headers=POST_HEADERS)


def wait_done(c, ids, timeout=180):
    """Read the server-sent events until every job in ``ids`` is done or failed; return
    {id: [job events]}."""
    seen = {i: [] for i in ids}
    deadline = time.monotonic() + timeout
    with c.stream("GET", "/api/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            assert time.monotonic() < deadline, "jobs did not finish in time"
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                got = data if event == "jobs" else [data["job"]] if event == "job" else []
                for j in got:
                    if j["id"] in seen:
                        seen[j["id"]].append(j)
                if all(v and v[-1]["state"] in (J.DONE, J.FAILED) for v in seen.values()):
                    return seen
    raise AssertionError("event stream ended")


def xtract(song, outdir, *flags):
    from mixin.cli import xtract

    assert xtract.main([str(song), "--outdir", str(outdir), "-q", *flags]) == 0


# ------------------------------------------------------------------------------------------------
# The whole path: upload -> queue -> progress -> done -> downloads equal xtract-mixin's
# ------------------------------------------------------------------------------------------------

def test_upload_progress_done_and_downloads_equal_xtract_mixin(song, tmp_path):
    with client(tmp_path / "wd") as c:
        r1 = upload(c, song)
        r2 = upload(c, song, name="second.wav", instrumental=1, overlap=0, format="flac")
        assert r1.status_code == 201 and r2.status_code == 201, (r1.text, r2.text)
        a, b = r1.json(), r2.json()
        assert a["state"] in (J.QUEUED, J.SEPARATING) and b["state"] == J.QUEUED
        assert b["position"] >= 1  # one worker: the second job waits
        assert len(a["id"]) >= 22 and a["id"] != b["id"]
        events = wait_done(c, [a["id"], b["id"]])
        for jid in (a["id"], b["id"]):
            ev = events[jid]
            assert ev[-1]["state"] == J.DONE, ev[-1]
            prog = [e["progress"] for e in ev if e["state"] == J.SEPARATING]
            assert prog and prog == sorted(prog) and 0 <= prog[0] < 1
            assert prog[-1] == 1.0  # the separator's last batch was reported
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()}
        assert jobs[a["id"]]["stems"] == ["harmonic", "percussive", "vocal"]
        assert jobs[b["id"]]["stems"] == ["harmonic", "percussive"]

        ref_a, ref_b = tmp_path / "ref_a", tmp_path / "ref_b"
        xtract(song, ref_a)
        xtract(song, ref_b, "--instrumental", "--no-overlap", "--filename", "{name}_{stem}.flac")
        for jid, ref, ext, stems in ((a["id"], ref_a, "wav", jobs[a["id"]]["stems"]),
                                     (b["id"], ref_b, "flac", jobs[b["id"]]["stems"])):
            for s in stems:
                r = c.get(f"/api/jobs/{jid}/audio/{s}", params={"download": 1})
                assert r.status_code == 200
                ref_bytes = (ref / f"song_{s}.{ext}").read_bytes()
                assert same_file(r.content, ref_bytes), s  # bit for bit
                assert np.array_equal(sf.read(io.BytesIO(r.content), dtype="float32")[0],
                                      sf.read(io.BytesIO(ref_bytes), dtype="float32")[0])
                assert "attachment" in r.headers["content-disposition"]
            z = zipfile.ZipFile(io.BytesIO(c.get(f"/api/jobs/{jid}/zip").content))
            assert sorted(z.namelist()) == sorted(f"{os.path.splitext(jobs[jid]['name'])[0]}_{s}.{ext}"
                                                  for s in stems)
            for s in stems:
                name = next(n for n in z.namelist() if n.endswith(f"_{s}.{ext}"))
                assert same_file(z.read(name), (ref / f"song_{s}.{ext}").read_bytes())
        # the mixture is the upload itself
        assert c.get(f"/api/jobs/{a['id']}/audio/mixture").content == song.read_bytes()
        # waveform peaks: every track, the song's length
        pk = c.get(f"/api/jobs/{a['id']}/peaks").json()
        assert set(pk) == {"mixture", "harmonic", "percussive", "vocal"}
        for t in pk.values():
            assert t["duration"] == pytest.approx(3.0) and len(t["min"]) == len(t["max"]) == J_PEAKS
        # spectrogram on demand, cached
        r = c.get(f"/api/jobs/{a['id']}/spectrogram/vocal.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        w, h = _png_size(r.content)
        assert h == 96 * 3 and 100 < w <= 1300
        assert c.get(f"/api/jobs/{a['id']}/spectrogram/drums.png").status_code == 404
        # delete removes the files
        d = tmp_path / "wd" / "jobs" / b["id"]
        assert d.is_dir()
        assert c.delete(f"/api/jobs/{b['id']}", headers=POST_HEADERS).status_code == 200
        assert not d.exists() and c.get(f"/api/jobs/{b['id']}").status_code == 404


J_PEAKS = 1200


def same_file(a: bytes, b: bytes) -> bool:
    """Byte equality of two audio files but for the write time that libsndfile puts in the PEAK
    chunk of a float WAV (two runs of xtract-mixin differ there only)."""
    def mask(x):
        i = x.find(b"PEAK", 12, 200)
        return x if i < 0 else x[:i + 12] + b"\0\0\0\0" + x[i + 16:]
    return len(a) == len(b) and mask(a) == mask(b)


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ------------------------------------------------------------------------------------------------
# Bad requests
# ------------------------------------------------------------------------------------------------

def test_bad_upload_is_refused_with_one_line_and_leaves_nothing(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all\n" * 50)
    with client(tmp_path / "wd") as c:
        r = upload(c, bad)
        assert r.status_code == 400
        msg = r.json()["error"]
        assert "\n" not in msg and msg.startswith("notes.wav: ") and "not a readable audio file" in msg
        assert str(tmp_path) not in msg  # no server path in the message
        r = c.post("/api/jobs", params={"name": "empty.wav"}, content=b"", headers=POST_HEADERS)
        assert r.status_code == 400 and "empty" in r.json()["error"]
        for q in ({"overlap": "0.9"}, {"overlap": "x"}, {"format": "mp3"}, {"model": "demucs"},
                  {"instrumental": "maybe"}, {"hpss_anchor": "-0.1"}, {"hpss_anchor": "x"},
                  {"hpss_anchor": "nan"}, {"hpss_anchor": "inf"}):
            r = c.post("/api/jobs", params={"name": "a.wav", **q}, content=b"RIFF",
                       headers=POST_HEADERS)
            assert r.status_code == 400 and r.json()["error"], q
        assert "0.9" in c.post("/api/jobs", params={"name": "a.wav", "overlap": "0.9"},
                               content=b"RIFF", headers=POST_HEADERS).json()["error"]
        # the anchor is checked before the body is read (not "not a readable audio file")
        r = c.post("/api/jobs", params={"name": "a.wav", "hpss_anchor": "1.5"}, content=b"RIFF",
                   headers=POST_HEADERS)
        assert r.status_code == 400
        assert r.json()["error"] == "hpss_anchor must be a number from 0 to 1, got '1.5'"
        # changing requests need the X-Mixin header (a cross-site form cannot send it)
        r = c.post("/api/jobs", params={"name": "a.wav"}, content=b"RIFF")
        assert r.status_code == 403
        assert c.get("/api/jobs").json() == []
    assert os.listdir(tmp_path / "wd" / "jobs") == []


def test_config_carries_each_sets_credits(tmp_path):
    import shutil

    from mixin.modelsets import describe, installed_sets

    sets = installed_sets()
    got = client(tmp_path / "wd").get("/api/config").json()["credits"]
    assert got == {m: describe(d)["credits"] for m, d in sets.items()}
    assert all(any("Groove MIDI Dataset" in c for c in v) for v in got.values())
    # a set whose record cannot be read still serves, without credits
    broken = tmp_path / "broken"
    shutil.copytree(sets["mixin"], broken, ignore=shutil.ignore_patterns("mixin-*", "*.png"))
    (broken / "training.json").write_text("{not json")
    got = client(tmp_path / "wd2", model_dirs={"mixin": sets["mixin"], "broken": str(broken)}).get(
        "/api/config").json()["credits"]
    assert got["broken"] == [] and got["mixin"]


def test_hpss_anchor_absent_or_empty_is_the_sets_own(song, tmp_path):
    """Without the lifespan (no ``with``) no worker starts: the jobs stay queued."""
    from mixin.model import read_model_spec
    from mixin.modelsets import installed_sets

    sets = installed_sets()
    own = {m: read_model_spec(d)["hpss_anchor"] for m, d in sets.items()}
    assert own["mixin"] == 0 and own["mixin-hpss"] > 0  # the shipped sets differ: a real test
    c = client(tmp_path / "wd")
    try:
        assert c.get("/api/config").json()["hpss_anchors"] == own
        got = {}
        for model, given in (("mixin", None), ("mixin-hpss", None), ("mixin-hpss", ""),
                             ("mixin-hpss", "0"), ("mixin", "0.5"), ("mixin", "1")):
            opts = {"model": model} if given is None else {"model": model, "hpss_anchor": given}
            r = upload(c, song, name=f"{model}-{given}.wav", **opts)
            assert r.status_code == 201, r.text
            got[(model, given)] = r.json()["hpss_anchor"]
        assert got == {("mixin", None): 0.0, ("mixin-hpss", None): own["mixin-hpss"],
                       ("mixin-hpss", ""): own["mixin-hpss"], ("mixin-hpss", "0"): 0.0,
                       ("mixin", "0.5"): 0.5, ("mixin", "1"): 1.0}
        listed = {j["name"]: j["hpss_anchor"] for j in c.get("/api/jobs").json()}
        assert listed == {f"{m}-{g}.wav": a for (m, g), a in got.items()}
        assert all(j["state"] == J.QUEUED for j in c.get("/api/jobs").json())
    finally:
        c.app.state.server.store.close()


#: The jobs table as mixin-serve created it before the hpss_anchor column.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL, state TEXT NOT NULL,
    error TEXT, model TEXT NOT NULL, instrumental INTEGER NOT NULL, overlap REAL NOT NULL,
    format TEXT NOT NULL, size INTEGER NOT NULL, finished REAL, seconds REAL
)
"""


def test_old_database_without_the_anchor_column_opens_and_lists(song, tmp_path):
    import sqlite3

    wd = tmp_path / "wd"
    (wd / "jobs").mkdir(parents=True)
    db = sqlite3.connect(wd / "jobs.sqlite")
    db.execute(OLD_SCHEMA)
    old = J.new_job_id()
    db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (old, "old.wav", time.time(), J.DONE, None, "mixin-hpss", 0, 0.25, "wav", 1234,
                time.time(), 3.5))
    db.commit()
    db.close()
    (wd / "jobs" / old).mkdir()
    for _ in range(2):  # the column is added once; a second open finds it
        store = J.JobStore(wd)
        (job,) = store.all()
        assert job["id"] == old and job["state"] == J.DONE and job["hpss_anchor"] == 0.0
        assert job["input_sha256"] == ""  # unknown: never offered for comparison
        store.close()
    cols = [r[1] for r in sqlite3.connect(wd / "jobs.sqlite").execute("PRAGMA table_info(jobs)")]
    assert cols == list(J._COLUMNS)
    c = client(wd)  # the app on the migrated database: the old job lists, a new one is added
    try:
        (job,) = c.get("/api/jobs").json()
        assert job["id"] == old and job["hpss_anchor"] == 0.0 and job["model"] == "mixin-hpss"
        assert job["state"] == J.DONE and job["stems"] == ["harmonic", "percussive", "vocal"]
        r = upload(c, song, model="mixin", hpss_anchor=0.75)
        assert r.status_code == 201 and r.json()["hpss_anchor"] == 0.75
        assert [j["hpss_anchor"] for j in c.get("/api/jobs").json()] == [0.0, 0.75]
        assert [j["input_sha256"] for j in c.get("/api/jobs").json()] == [
            "", hashlib.sha256(song.read_bytes()).hexdigest()]
    finally:
        c.app.state.server.store.close()


#: The jobs table as mixin-serve created it after the hpss_anchor column, before input_sha256.
ANCHOR_SCHEMA = OLD_SCHEMA.replace("seconds REAL\n",
                                   "seconds REAL,\n    hpss_anchor REAL NOT NULL DEFAULT 0\n")


def test_old_database_without_the_sha256_column_opens_with_empty_digests(song, tmp_path):
    import sqlite3

    assert "hpss_anchor" in ANCHOR_SCHEMA and "input_sha256" not in ANCHOR_SCHEMA
    wd = tmp_path / "wd"
    (wd / "jobs").mkdir(parents=True)
    db = sqlite3.connect(wd / "jobs.sqlite")
    db.execute(ANCHOR_SCHEMA)
    old = [J.new_job_id() for _ in range(2)]
    for i, jid in enumerate(old):  # two jobs of one song, from before the digest
        db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (jid, "old.wav", time.time() + i, J.DONE, None, "mixin", 0, 0.25, "wav",
                    1234, time.time(), 3.5, 0.25 * i))
        (wd / "jobs" / jid).mkdir()
    db.commit()
    db.close()
    c = client(wd)
    try:
        listed = c.get("/api/jobs").json()
        assert [j["id"] for j in listed] == old
        assert [j["input_sha256"] for j in listed] == ["", ""]
        assert [j["hpss_anchor"] for j in listed] == [0.0, 0.25]
        assert c.get(f"/api/jobs/{old[1]}").json()["input_sha256"] == ""
        r = upload(c, song)
        assert r.status_code == 201
        assert r.json()["input_sha256"] == hashlib.sha256(song.read_bytes()).hexdigest()
    finally:
        c.app.state.server.store.close()
    cols = [r[1] for r in sqlite3.connect(wd / "jobs.sqlite").execute("PRAGMA table_info(jobs)")]
    assert cols == list(J._COLUMNS)


def test_same_song_same_input_sha256(song, tmp_path):
    """The upload's digest is of its bytes (streamed in pieces, as a browser sends a large file):
    the same file under other names and options has the same, another file another. Without the
    lifespan no worker starts: the jobs stay queued."""
    other = tmp_path / "other.wav"
    x, sr = sf.read(song, dtype="float32")
    sf.write(other, x[::-1], sr, subtype="FLOAT")  # same length and format, other audio
    data = song.read_bytes()
    want = hashlib.sha256(data).hexdigest()
    c = client(tmp_path / "wd")
    try:
        a = upload(c, song).json()
        b = c.post("/api/jobs", params={"name": "again.wav", "model": "mixin-hpss",
                                        "instrumental": "1"},
                   content=(data[i:i + 65521] for i in range(0, len(data), 65521)),
                   headers=POST_HEADERS).json()  # chunked: many pieces, no Content-Length
        d = upload(c, other).json()
        assert a["input_sha256"] == b["input_sha256"] == want
        assert re.fullmatch(r"[0-9a-f]{64}", d["input_sha256"]) and d["input_sha256"] != want
        assert d["input_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
        assert b["model"] == "mixin-hpss" and b["instrumental"] is True
        listed = {j["id"]: j["input_sha256"] for j in c.get("/api/jobs").json()}
        assert listed == {a["id"]: want, b["id"]: want, d["id"]: d["input_sha256"]}
        for j in (a, b, d):
            assert c.get(f"/api/jobs/{j['id']}").json()["input_sha256"] == j["input_sha256"]
    finally:
        c.app.state.server.store.close()


#: Every shipped model set (the multi-set upload names them all).
ALL_SETS = ("mixin", "mixin-hpss", "mixin-onset")


def test_several_sets_one_upload_one_input(song, tmp_path, monkeypatch):
    """``model=a,b,c``: one upload, one job per set in the order named, each with its own folder
    and its set's anchor (or the one given), the same digest, and one input file (hard links);
    a file system without links gets copies. One set: the job itself, as before. Without the
    lifespan no worker starts: the jobs stay queued."""
    from mixin.model import read_model_spec
    from mixin.modelsets import installed_sets
    from mixin.serve import app as A

    sets = installed_sets()
    assert set(ALL_SETS) <= set(sets)
    own = {m: read_model_spec(sets[m])["hpss_anchor"] for m in ALL_SETS}
    want = hashlib.sha256(song.read_bytes()).hexdigest()
    wd = tmp_path / "wd"
    c = client(wd)
    try:
        single = upload(c, song, model="mixin")
        assert single.status_code == 201
        one = single.json()
        assert "jobs" not in one and one["model"] == "mixin" and one["input_sha256"] == want
        assert set(one) == {*J._COLUMNS, "progress", "stems", "position"}  # the job, as before

        r = upload(c, song, name="all.wav", model=" mixin-onset,mixin , mixin-hpss",
                   overlap=0, instrumental=1)
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"jobs"}
        got = r.json()["jobs"]
        assert [j["model"] for j in got] == ["mixin-onset", "mixin", "mixin-hpss"]
        assert [j["hpss_anchor"] for j in got] == [own[m] for m in ("mixin-onset", "mixin",
                                                                      "mixin-hpss")]
        assert len({j["id"] for j in got} | {one["id"]}) == 4
        for j in got:
            assert j["input_sha256"] == want and j["name"] == "all.wav"
            assert j["state"] == J.QUEUED and j["overlap"] == 0 and j["instrumental"] is True
            assert j["size"] == song.stat().st_size and j["format"] == "wav"
        listed = [j["id"] for j in c.get("/api/jobs").json()]
        assert listed == [one["id"], *(j["id"] for j in got)]  # in the order named
        inputs = [wd / "jobs" / j["id"] / "input" / "all.wav" for j in got]
        assert len({p.parent.parent for p in inputs}) == 3
        st = [p.stat() for p in inputs]
        assert len({s.st_ino for s in st}) == 1 and all(s.st_nlink == 3 for s in st)
        assert inputs[0].read_bytes() == song.read_bytes()
        assert not list(wd.glob("jobs/*/input/*.part"))
        # an anchor given applies to every set
        r = upload(c, song, name="half.wav", model="mixin,mixin-hpss", hpss_anchor="0.5")
        assert [j["hpss_anchor"] for j in r.json()["jobs"]] == [0.5, 0.5]

        # deleting one job removes its link only: the others' input stays, whole
        assert c.delete(f"/api/jobs/{got[0]['id']}", headers=POST_HEADERS).status_code == 200
        assert not (wd / "jobs" / got[0]["id"]).exists()
        assert inputs[1].stat().st_nlink == 2 and inputs[2].read_bytes() == song.read_bytes()

        # where linking fails: equal copies
        def no_link(src, dst):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(A.os, "link", no_link)
        r = upload(c, song, name="copied.wav", model="mixin,mixin-hpss")
        assert r.status_code == 201, r.text
        copies = [wd / "jobs" / j["id"] / "input" / "copied.wav" for j in r.json()["jobs"]]
        assert copies[0].stat().st_ino != copies[1].stat().st_ino
        assert copies[0].read_bytes() == copies[1].read_bytes() == song.read_bytes()
    finally:
        c.app.state.server.store.close()


@pytest.mark.parametrize("model, named", [
    ("mixin,demucs", "unknown model set 'demucs'"),
    ("demucs,mixin-hpss", "unknown model set 'demucs'"),
    ("mixin,mixin-hpss,mixin", "model set 'mixin' named twice"),
    ("mixin-hpss, mixin-hpss", "model set 'mixin-hpss' named twice"),
    ("mixin,,mixin-hpss", "empty model set name in 'mixin,,mixin-hpss'"),
    ("mixin,", "empty model set name"),
])
def test_several_sets_refused_before_the_body_and_leave_nothing(model, named, song, tmp_path):
    wd = tmp_path / "wd"
    c = client(wd)
    try:
        for body in (b"RIFF", song.read_bytes()):  # refused before the body is read
            r = c.post("/api/jobs", params={"name": "a.wav", "model": model}, content=body,
                       headers=POST_HEADERS)
            assert r.status_code == 400
            msg = r.json()["error"]
            assert msg.startswith(named) and "readable" not in msg, msg
        assert c.get("/api/jobs").json() == []
        # a bad file for several sets: refused once, no folder left
        bad = tmp_path / "notes.wav"
        bad.write_text("not audio at all\n" * 50)
        r = upload(c, bad, model=",".join(ALL_SETS))
        assert r.status_code == 400 and "not a readable audio file" in r.json()["error"]
        assert c.get("/api/jobs").json() == []
    finally:
        c.app.state.server.store.close()
    assert os.listdir(wd / "jobs") == []


def test_several_sets_separate_and_stay_playable_after_a_delete(song, tmp_path):
    """Two sets from one upload, separated by the worker: each job's stems are its set's (they
    differ), the mixture is the upload; deleting the job whose folder received the upload leaves
    the other playable (its mixture, peaks and stems still served)."""
    with client(tmp_path / "wd") as c:
        r = upload(c, song, model="mixin,mixin-hpss")
        assert r.status_code == 201, r.text
        a, b = r.json()["jobs"]
        events = wait_done(c, [a["id"], b["id"]])
        assert events[a["id"]][-1]["state"] == events[b["id"]][-1]["state"] == J.DONE
        va = c.get(f"/api/jobs/{a['id']}/audio/harmonic").content
        vb = c.get(f"/api/jobs/{b['id']}/audio/harmonic").content
        xa, xb = (sf.read(io.BytesIO(v), dtype="float32")[0] for v in (va, vb))
        assert xa.shape == xb.shape and np.abs(xa - xb).max() > 1e-3  # other set, other stems
        assert c.delete(f"/api/jobs/{a['id']}", headers=POST_HEADERS).status_code == 200
        assert c.get(f"/api/jobs/{a['id']}").status_code == 404
        assert c.get(f"/api/jobs/{b['id']}/audio/mixture").content == song.read_bytes()
        assert c.get(f"/api/jobs/{b['id']}/audio/harmonic").content == vb
        assert set(c.get(f"/api/jobs/{b['id']}/peaks").json()) == {"mixture", "harmonic",
                                                                    "percussive", "vocal"}
        assert c.get(f"/api/jobs/{b['id']}/spectrogram/mixture.png").status_code == 200


def test_hpss_anchor_per_job_equals_xtract_mixin(song, tmp_path):
    """The same song and set at two anchors in one worker (the separator cache must tell them
    apart): each job's stems are xtract-mixin's with that anchor."""
    with client(tmp_path / "wd") as c:
        a = upload(c, song, name="own.wav", model="mixin-hpss", instrumental=1).json()
        b = upload(c, song, name="one.wav", model="mixin-hpss", instrumental=1,
                   hpss_anchor=1).json()
        assert b["hpss_anchor"] == 1.0 and a["hpss_anchor"] != 1.0
        events = wait_done(c, [a["id"], b["id"]])
        assert events[a["id"]][-1]["state"] == events[b["id"]][-1]["state"] == J.DONE
        ref_a, ref_b = tmp_path / "ref_a", tmp_path / "ref_b"
        xtract(song, ref_a, "-n", "mixin-hpss", "--instrumental")
        xtract(song, ref_b, "-n", "mixin-hpss", "--instrumental", "--hpss-anchor", "1")
        got = {}
        for job, ref in ((a, ref_a), (b, ref_b)):
            for s in ("harmonic", "percussive"):
                r = c.get(f"/api/jobs/{job['id']}/audio/{s}")
                assert r.status_code == 200
                assert same_file(r.content, (ref / f"song_{s}.wav").read_bytes()), (job["name"], s)
                got[job["name"], s] = sf.read(io.BytesIO(r.content), dtype="float32")[0]
        for s in ("harmonic", "percussive"):  # the anchor moved the split
            assert np.abs(got["own.wav", s] - got["one.wav", s]).max() > 1e-3


def test_oversize_upload_is_refused(song, tmp_path):
    with client(tmp_path / "wd", max_upload_mb=0.1) as c:
        r = upload(c, song)  # 1 MB with a Content-Length: refused before reading
        assert r.status_code == 413 and "0.1 MB" in r.json()["error"]

        def chunks():  # no Content-Length: refused while streaming
            data = song.read_bytes()
            for i in range(0, len(data), 16384):
                yield data[i:i + 16384]

        r = c.post("/api/jobs", params={"name": "song.wav"}, content=chunks(), headers=POST_HEADERS)
        assert r.status_code == 413 and "upload limit" in r.json()["error"]
        assert c.get("/api/jobs").json() == []
    assert os.listdir(tmp_path / "wd" / "jobs") == []


@pytest.mark.parametrize("name, expected", [
    ("../../evil.wav", "evil.wav"), ("..\\..\\win.wav", "win.wav"), ("/etc/passwd", "passwd"),
    ("..", "upload"), ("", "upload"), (".hidden.wav", "hidden.wav"), ("a b;rm -rf.wav", "a b_rm -rf.wav"),
    ("ｓｏｎｇ.wav", "song.wav"), ("x" * 300 + ".flac", "x" * 100 + ".flac"), ("song.wav\x00.sh", "song.wav_.sh"),
])
def test_safe_filename(name, expected):
    assert J.safe_filename(name) == expected


def test_path_traversal_names_stay_in_the_job_folder(song, tmp_path):
    wd = tmp_path / "wd"
    with client(wd) as c:
        ids = []
        for name in ("../../../escape.wav", "..\\..\\escape2.wav", "/tmp/abs.wav"):
            r = upload(c, song, name=name)
            assert r.status_code == 201, r.text
            j = r.json()
            assert "/" not in j["name"] and "\\" not in j["name"] and not j["name"].startswith(".")
            assert (wd / "jobs" / j["id"] / "input" / j["name"]).is_file()
            ids.append(j["id"])
        for i in ids:
            c.delete(f"/api/jobs/{i}", headers=POST_HEADERS)
        # only a job's own tracks: names that are no track are 404, encoded slashes included
        for path in ("audio/..%2F..%2Fjobs.sqlite", "audio/..", "audio/input", "spectrogram/..%2Fx"):
            assert c.get(f"/api/jobs/{'A' * 22}/{path}").status_code == 404
    assert not (tmp_path / "escape.wav").exists() and not (tmp_path.parent / "escape.wav").exists()
    assert os.listdir(wd / "jobs") == []


def test_unknown_job(tmp_path):
    with client(tmp_path / "wd") as c:
        unknown = J.new_job_id()
        for path in ("", "/peaks", "/audio/vocal", "/zip", "/spectrogram/vocal.png"):
            r = c.get(f"/api/jobs/{unknown}{path}")
            assert r.status_code == 404 and r.json()["error"] == "no such job", path
        assert c.get("/api/jobs/not*an*id").status_code == 404
        assert c.delete(f"/api/jobs/{unknown}", headers=POST_HEADERS).status_code == 404


def test_token_refused_and_accepted(tmp_path):
    token = "s3cret-token-for-tests"
    with client(tmp_path / "wd", token=token) as c:
        for path in ("/", "/api/jobs", "/api/config", "/static/app.js"):
            r = c.get(path)
            assert r.status_code == 401 and "token" in r.json()["error"], path
        assert c.get("/api/jobs", headers={"X-Mixin-Token": "wrong"}).status_code == 401
        assert c.get("/api/jobs", params={"token": token[:-1]}).status_code == 401
        assert c.get("/api/jobs", headers={"X-Mixin-Token": token}).status_code == 200
        assert c.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        r = c.get("/", params={"token": token})  # the printed address: sets the cookie
        assert r.status_code == 200 and "<title>" in r.text
        assert "mixin_token" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        assert c.get("/api/config").status_code == 200  # the cookie is enough from now on
        c.cookies.clear()
        assert c.get("/api/config").status_code == 401


def test_loopback_server_refuses_other_host_names(tmp_path):
    from mixin.serve.app import LOOPBACK_HOSTS

    with client(tmp_path / "wd", allowed_hosts=LOOPBACK_HOSTS) as c:
        assert c.get("/api/config").status_code == 200
        assert c.get("/api/config", headers={"Host": "attacker.example:8765"}).status_code == 400


# ------------------------------------------------------------------------------------------------
# Restart
# ------------------------------------------------------------------------------------------------

def test_restart_keeps_finished_jobs_and_fails_interrupted_ones(song, tmp_path):
    wd = tmp_path / "wd"
    with client(wd) as c:
        done = upload(c, song).json()
        wait_done(c, [done["id"]])
    # a job the server was separating when it stopped: state 'separating', partial outputs
    store = J.JobStore(wd)
    cut = dict(done, id=J.new_job_id(), name="cut.wav", state=J.SEPARATING, created=time.time())
    queued = dict(done, id=J.new_job_id(), name="later.wav", state=J.QUEUED,
                  created=time.time() + 1, finished=None, seconds=None)
    for j in (cut, queued):
        store.add(j)
        os.makedirs(os.path.dirname(store.input_path(j)))
        os.link(song, store.input_path(j))
    out = os.path.dirname(store.output_paths(cut)["vocal"])
    os.makedirs(out)
    open(os.path.join(out, ".cut_vocal.wav.abc123.tmp.wav"), "wb").write(b"RIFF partial")
    store.close()
    (wd / "jobs" / "stray-folder").mkdir()  # no row: removed

    with client(wd) as c:
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()}
        assert jobs[done["id"]]["state"] == J.DONE
        assert jobs[cut["id"]]["state"] == J.FAILED and jobs[cut["id"]]["error"] == J.INTERRUPTED
        assert not os.path.exists(out)  # no half-written output left
        assert not (wd / "jobs" / "stray-folder").exists()
        # the finished job is playable as before
        assert c.get(f"/api/jobs/{done['id']}/peaks").status_code == 200
        r = c.get(f"/api/jobs/{done['id']}/audio/vocal")
        x, sr = sf.read(io.BytesIO(r.content))
        assert x.shape == (3 * 44100, 2) and sr == 44100
        # the queued one is queued again (the worker takes it at once)
        assert jobs[queued["id"]]["state"] in (J.QUEUED, J.SEPARATING)
        assert c.delete(f"/api/jobs/{queued['id']}", headers=POST_HEADERS).status_code == 200


# ------------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------------

def _png_decode(data):
    """RGB pixels of a PNG written by png_bytes (filter 0 rows only)."""
    w, h = _png_size(data)
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert zlib.crc32(tag + body) == int.from_bytes(data[pos + 8 + n:pos + 12 + n], "big")
        if tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_png_bytes_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    assert np.array_equal(_png_decode(png_bytes(rgb)), rgb)
    with pytest.raises(ValueError):
        png_bytes(np.zeros((4, 4)))


def test_peaks_and_spectrogram(tmp_path):
    sr = 22050
    t = np.arange(int(2.5 * sr)) / sr
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 440 * t)], axis=1)
    x[sr:sr + 10, 0] = 0.9  # a click in the second second
    p = tmp_path / "tone.wav"
    sf.write(p, x.astype(np.float32), sr, subtype="FLOAT")
    pk = peaks(p, n=10)
    assert pk["frames"] == len(t) and pk["duration"] == pytest.approx(2.5) and len(pk["max"]) == 10
    assert max(pk["max"]) == pytest.approx(0.9) and pk["max"].index(max(pk["max"])) == 4
    assert min(pk["min"]) == pytest.approx(-0.5, abs=1e-3)
    img = _png_decode(spectrogram_png(p))
    assert img.shape[0] == 96 * 3 and 1000 <= img.shape[1] <= 1300
    # the 440 Hz tone is the brightest row (low bands at the bottom): bark band of 440 Hz
    from mixin.nsgt import bark_frequencies

    row = np.argmin(np.abs(np.asarray(bark_frequencies()) - 440))
    bright = img.astype(int).sum(axis=(1, 2))
    assert abs((img.shape[0] - 1 - np.argmax(bright)) // 3 - row) <= 1


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------

def _serve(*args):
    from mixin.cli.serve import main

    return main(list(args))


@pytest.mark.parametrize("args, expected", [
    (["--model", "demucs"], "unknown model set 'demucs'"),
    (["--port", "70000"], "--port must be 0 to 65535, got 70000"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be positive, got 0"),
    (["--token", "short"], "--token must have at least 8 characters"),
])
def test_cli_refuses_bad_flags(args, expected, tmp_path, capsys):
    assert _serve(*args, "--workdir", str(tmp_path / "wd")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1


def test_cli_refuses_a_model_folder_without_models(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    assert _serve("--model", str(tmp_path / "models"), "--workdir", str(tmp_path / "wd")) == 1
    assert "model file not found" in capsys.readouterr().err


def test_cli_refuses_a_model_folder_with_a_bad_model_json(tmp_path, capsys):
    from mixin.model import model_paths, model_spec

    d = tmp_path / "models"
    d.mkdir()
    for p in model_paths(ROOT / "pretrained-models").values():
        os.symlink(p, d / os.path.basename(p))
    (d / "model.json").write_text(json.dumps({**model_spec("mixin"), "hpss_anchor": 2}))
    assert _serve("--model", str(d), "--workdir", str(tmp_path / "wd")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "hpss_anchor" in err, err


def test_cli_port_in_use(tmp_path, capsys):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        assert _serve("--port", str(s.getsockname()[1]), "--workdir", str(tmp_path)) == 1
        assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
    finally:
        s.close()


def _start(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "mixin.cli.serve", "--port", "0",
                          "--workdir", str(tmp_path / "wd"), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"serving on (http://\S+)", line)
    assert m, line + p.stderr.read()
    return p, m.group(1)


def _stop(p):
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    return out, err


def test_cli_serves_and_stops(tmp_path):
    import urllib.request

    p, url = _start(tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        cfg = json.load(urllib.request.urlopen(url + "api/config", timeout=10))
        from mixin import modelsets

        assert cfg["models"] == list(modelsets.installed_sets()) and cfg["max_upload_mb"] == 500
        assert cfg["models"][0] == "mixin"
        assert "window.mixinPlayer" in urllib.request.urlopen(url + "static/app.js", timeout=10).read().decode()
    finally:
        _stop(p)
    assert (tmp_path / "wd" / "jobs.sqlite").is_file()


def test_cli_other_host_requires_the_printed_token(tmp_path):
    import urllib.error
    import urllib.request

    p, url = _start(tmp_path, "--host", "0.0.0.0")
    try:
        m = re.search(r":(\d+)/\?token=([\w-]{16,})$", url)
        assert m, url
        local = f"http://127.0.0.1:{m.group(1)}/api/config"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(local, timeout=10)
        assert e.value.code == 401
        assert urllib.request.urlopen(f"{local}?token={m.group(2)}", timeout=10).status == 200
    finally:
        _stop(p)


def test_lost_worker_and_deleted_running_job_leave_the_queue_working(song, tmp_path):
    def wait_state(c, jid, state, timeout=60):
        deadline = time.monotonic() + timeout
        while c.get(f"/api/jobs/{jid}").json()["state"] != state:
            assert time.monotonic() < deadline, f"job never {state}"
            time.sleep(0.05)

    with client(tmp_path / "wd") as c:
        manager = c.app.state.server.manager
        a = upload(c, song, name="killed.wav").json()
        wait_state(c, a["id"], J.SEPARATING)
        first = manager.worker_pid
        os.kill(first, signal.SIGKILL)  # e.g. the out-of-memory killer
        b = upload(c, song, name="deleted.wav").json()
        wait_state(c, a["id"], J.FAILED)
        assert "worker process stopped" in c.get(f"/api/jobs/{a['id']}").json()["error"]
        assert not (tmp_path / "wd" / "jobs" / a["id"] / "out").exists()
        wait_state(c, b["id"], J.SEPARATING)
        second = manager.worker_pid
        assert second != first
        assert c.delete(f"/api/jobs/{b['id']}", headers=POST_HEADERS).status_code == 200
        assert not (tmp_path / "wd" / "jobs" / b["id"]).exists()
        d = upload(c, song, name="last.wav").json()
        ev = wait_done(c, [d["id"]])
        assert ev[d["id"]][-1]["state"] == J.DONE
        assert manager.worker_pid not in (first, second)


def test_model_sets(tmp_path):
    from mixin.cli.serve import model_sets
    from mixin.separation.separate import default_model_dir

    from mixin.modelsets import installed_sets

    installed = installed_sets()
    assert model_sets("mixin") == (installed, "mixin") and installed["mixin"] == default_model_dir()
    sets, default = model_sets(str(ROOT / "pretrained-models"))
    assert default == "pretrained-models" and sets[default] == str(ROOT / "pretrained-models")
    assert set(sets) == set(installed) | {"pretrained-models"}
