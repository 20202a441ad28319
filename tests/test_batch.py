"""Many songs: input lists and folders, resumable batches with a manifest (SIGKILL and rerun),
stale part files, ``--jobs``, and Dask (LocalCluster, a worker killed mid-batch)."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from mixin.io import AtomicWriter, part_files, remove_stale_parts
from mixin.separation import batch
from xtract_mixin import main

SR = 44100
SOURCES = ("harmonic", "percussive", "vocal")


def song(path, seconds, seed, ch=2):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (220 + 20 * seed) * t)[:, None] + 0.05 * rng.standard_normal((len(t), ch))
    sf.write(str(path), x.astype(np.float32), SR, subtype="FLOAT")
    return path


def rows(manifest):
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def stale_parts(d):
    return sorted(str(p) for p in d.rglob("*.part"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------

def test_folders_patterns_and_input_lists(tmp_path):
    (tmp_path / "lib" / "album" / ".hidden").mkdir(parents=True)
    for p in ("lib/a.wav", "lib/b.FLAC", "lib/notes.txt", "lib/album/c.wav", "lib/album/d.mp3",
              "lib/.e.wav", "lib/album/.hidden/f.wav"):
        (tmp_path / p).write_bytes(b"x")
    lib = str(tmp_path / "lib")
    names = lambda files: [os.path.relpath(f, lib) for f in files]  # noqa: E731
    assert names(batch.expand_folder(lib)) == ["a.wav", "b.FLAC"]
    assert names(batch.expand_folder(lib, recursive=True)) == ["a.wav", "album/c.wav",
                                                              "album/d.mp3", "b.FLAC"]
    assert names(batch.expand_folder(lib, True, "*.wav")) == ["a.wav", "album/c.wav"]
    listing = tmp_path / "list.txt"
    listing.write_text("# my songs\nlib/a.wav\n\n  lib/album/c.wav  \n/abs/x.wav\n")
    inputs, failures = batch.collect_inputs([lib], str(listing), pattern="*.wav")
    assert names(inputs[:1]) == ["a.wav"] and failures == []
    assert inputs[1:] == [str(tmp_path / "lib/a.wav"), str(tmp_path / "lib/album/c.wav"), "/abs/x.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    inputs, failures = batch.collect_inputs([str(empty)])
    assert inputs == [] and "holding no file" in failures[0][1] and "--recursive" in failures[0][1]
    (tmp_path / "blank.txt").write_text("\n# nothing\n")
    with pytest.raises(batch.MixinError, match="names no input"):
        batch.read_input_list(tmp_path / "blank.txt")


def test_bad_batch_flags_one_line(tmp_path, capsys, tiny_models):
    s = song(tmp_path / "a.wav", 0.5, 0)
    for argv, msg in [((s, "--jobs", "0"), "--jobs must be at least 1"),
                      ((s, "--jobs", "2", "--scheduler", "tcp://x:1"), "exclude each other"),
                      ((s, "--skip-existing", "--overwrite"), "exclude each other"),
                      ((), "no input given"),
                      (("--input-list", tmp_path / "missing.txt"), "cannot read it"),
                      ((s, "--manifest", tmp_path), "is a directory")]:
        code, _, err = run(capsys, *argv, "--pretrained-model-dir", tiny_models, "--outdir", tmp_path / "o")
        assert code == 1 and err.count("\n") == 1 and msg in err, (argv, err)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    code, _, err = run(capsys, s, "--manifest", tmp_path / "other.csv", "--outdir", tmp_path / "o",
                       "--pretrained-model-dir", tiny_models)
    assert code == 1 and "not a MiXiN manifest" in err
    assert not (tmp_path / "o").exists()


def test_scheduler_without_dask_names_the_extra(tmp_path, capsys, tiny_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "mixin.separation.cluster", raising=False)
    s = song(tmp_path / "a.wav", 0.5, 0)
    code, _, err = run(capsys, s, "--scheduler", "tcp://127.0.0.1:1", "-q",
                       "--pretrained-model-dir", tiny_models, "--outdir", tmp_path / "o")
    assert code == 1 and err.count("\n") == 1 and '.[dask]' in err, err


# ------------------------------------------------------------------------------------------------
# Stale part files
# ------------------------------------------------------------------------------------------------

def test_stale_parts_removed_live_ones_and_others_kept(tmp_path):
    out = tmp_path / "song_vocal.wav"
    stale = tmp_path / ".song_vocal.wav.0123abcd.part"
    stale.write_bytes(b"left by a SIGKILL")
    others = [tmp_path / ".song_harmonic.wav.0123abcd.part",    # another output's part
              tmp_path / ".song_vocal.wav.part",                # not our name pattern
              tmp_path / "song_vocal.wav.0123abcd.part",        # not hidden
              tmp_path / ".song_vocal.wav.0123abcd.part.bak"]
    for p in others:
        p.write_bytes(b"keep")
    with AtomicWriter(out, SR, 1) as w:      # a live writer: holds the lock on its part
        w.write(np.zeros(10, np.float32))
        live = [p for p in part_files(out) if p != str(stale)]
        assert len(live) == 1
        assert remove_stale_parts(out) == [str(stale)]
        assert part_files(out) == live          # the live part survives
        w.write(np.ones(10, np.float32))
    assert sf.info(str(out)).frames == 20 and part_files(out) == []
    assert all(p.exists() for p in others)


def test_a_live_part_of_another_process_is_kept(tmp_path):
    """The lock is seen across processes (a Dask worker sharing the folder)."""
    out = tmp_path / "x_vocal.wav"
    code = ("import sys, time, numpy as np\n"
            "from mixin.io import AtomicWriter\n"
            f"w = AtomicWriter({str(out)!r}, 44100, 1)\n"
            "w.write(np.zeros(5, np.float32)); print('ready', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert p.stdout.readline().strip() == "ready"
        assert len(part_files(out)) == 1
        assert remove_stale_parts(out) == [] and len(part_files(out)) == 1
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert len(remove_stale_parts(out)) == 1 and part_files(out) == []
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------------------------------------------
# Resumable batches
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_batch_killed_then_resumed_does_only_what_is_left(tmp_path, tiny_models):
    """SIGKILL after 2 of 6 inputs are done; the same command again separates exactly the 4
    others, the manifest has one done row per input, and no part file is left anywhere."""
    # the third input is long (about 1 s to separate with the onnx backend on 2 idle cores: 12 s
    # took 0.27), so the kill lands inside it; the others are short
    seconds = [6, 6, 48, 6, 6, 6]
    inputs = [song(tmp_path / f"in{i}.wav", float(t), i) for i, t in enumerate(seconds)]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(p.name for p in inputs) + "\n")
    out, manifest = tmp_path / "out", tmp_path / "manifest.csv"
    cmd = [sys.executable, "-m", "mixin.cli.xtract", "--input-list", str(listing), "--outdir",
           str(out), "--skip-existing", "--manifest", str(manifest), "--pretrained-model-dir",
           str(tiny_models), "--batch-size", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if manifest.exists() and len(rows(manifest)) >= 2:
                break
            time.sleep(0.01)
        assert p.poll() is None, p.communicate()
        time.sleep(0.2)  # into the third input (each takes about a second)
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    first = rows(manifest)
    assert [r["status"] for r in first] == ["done", "done"], first
    assert stale_parts(out), "the kill should have left the third input's part files"
    done_first = {r["input"] for r in first}

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    separated = [line.split(" -> ")[0] for line in r.stdout.splitlines() if " -> " in line]
    assert len(separated) == 4 and not set(separated) & done_first
    assert "skipped 2 input(s)" in r.stdout
    final = rows(manifest)
    assert sorted(x["input"] for x in final) == sorted(str(p) for p in inputs)
    assert all(x["status"] == "done" and not x["error"] for x in final)
    assert stale_parts(tmp_path) == []
    for p, t in zip(inputs, seconds):
        for s in SOURCES:
            assert sf.info(str(out / f"{p.stem}_{s}.wav")).frames == t * SR

    # the same command once more: nothing to do, nothing added
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "skipped 6 input(s)" in r.stdout and " -> " not in r.stdout
    assert rows(manifest) == final


def test_failing_inputs_in_the_middle_never_stop_the_batch(tmp_path, capsys, tiny_models):
    good = [song(tmp_path / f"g{i}.wav", 1.0, i) for i in range(3)]
    raw = good[0].read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(raw[: len(raw) // 2])
    x = np.zeros((SR, 2), np.float32)
    x[30000, 1] = np.nan
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), x, SR, subtype="FLOAT")   # found only while separating
    manifest = tmp_path / "m.csv"
    args = [good[0], truncated, good[1], nan, good[2], "--outdir", tmp_path / "out", "--manifest",
            manifest, "--skip-existing", "--pretrained-model-dir", tiny_models]
    code, out, err = run(capsys, *args)
    assert code == 1
    assert err.splitlines()[-1].startswith("error: 2 of 5 input(s) failed")
    status = {os.path.basename(r["input"]): (r["status"], r["error"]) for r in rows(manifest)}
    assert status["truncated.wav"][0] == "failed" and "truncated" in status["truncated.wav"][1]
    assert status["nan.wav"][0] == "failed" and "NaN" in status["nan.wav"][1]
    assert all(status[f"g{i}.wav"] == ("done", "") for i in range(3))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"g{i}_{s}.wav" for i in range(3) for s in SOURCES)
    # fixed input, same command: only it is separated; its failed row is replaced
    sf.write(str(nan), np.zeros((SR, 2), np.float32), SR, subtype="FLOAT")
    code, out, err = run(capsys, *args)
    assert out.count(" -> ") == 1 and "nan.wav ->" in out
    final = rows(manifest)
    assert len(final) == 5 and [r["status"] for r in final].count("done") == 4


# ------------------------------------------------------------------------------------------------
# --jobs
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_jobs_2_equals_jobs_1_bit_for_bit(tmp_path, capsys):
    """Two processes with one thread each give the same bits as one with all cores (the
    shipped models)."""
    inputs = [song(tmp_path / f"s{i}.wav", 3.0, i) for i in range(3)]
    outs = {}
    for jobs in (1, 2):
        d = tmp_path / f"jobs{jobs}"
        code, out, err = run(capsys, *inputs, "--outdir", d, "--jobs", jobs, "--manifest",
                             tmp_path / f"m{jobs}.csv")
        assert code == 0, err
        assert (f"in {jobs} processes" in out) == (jobs == 2)
        outs[jobs] = {p.name: sf.read(str(p))[0] for p in d.iterdir()}
        assert len(rows(tmp_path / f"m{jobs}.csv")) == 3
    assert outs[1].keys() == outs[2].keys() and len(outs[1]) == 9
    for k in outs[1]:
        assert np.array_equal(outs[1][k], outs[2][k]), k


# ------------------------------------------------------------------------------------------------
# Dask
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _tasks(inputs, outdir):
    from mixin.cli.xtract import output_paths

    plan = output_paths([str(p) for p in inputs], str(outdir), SOURCES)
    return [batch.make_task(i, o, "FLOAT") for i, o in plan.items()]


@pytest.mark.slow
def test_dask_two_workers_equal_one_process(tmp_path, dask_client):
    from mixin.separation.separate import Separator

    inputs = [song(tmp_path / f"s{i}.wav", 3.0, i) for i in range(4)]
    got = []
    batch.run_dask(dask_client, {"model_dir": None}, _tasks(inputs, tmp_path / "dask"), got.append)
    assert sorted(r["input"] for r in got) == sorted(str(p) for p in inputs)
    assert all(r["status"] == "done" for r in got)
    assert len({r["worker"] for r in got}) == 2  # both workers took part
    sep = Separator()
    here = []
    batch.run_serial(sep, _tasks(inputs, tmp_path / "here"), here.append)
    for p in inputs:
        for s in SOURCES:
            a = sf.read(str(tmp_path / "here" / f"{p.stem}_{s}.wav"))[0]
            b = sf.read(str(tmp_path / "dask" / f"{p.stem}_{s}.wav"))[0]
            assert np.array_equal(a, b), (p, s, np.abs(a - b).max())


def _wait_dead(pid, timeout=60.0):
    """Wait until process ``pid`` is gone or a zombie (its files closed, its locks released)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive {timeout} s after SIGKILL")


@pytest.mark.slow
def test_dask_worker_killed_mid_batch_every_input_done_once(tmp_path, dask_client):
    inputs = [song(tmp_path / f"k{i}.wav", 8.0, i) for i in range(6)]
    got, killed = [], []

    def on_result(row):
        got.append(row)
        if not killed:  # kill a worker that is separating an input right now
            busy = [w for w, keys in dask_client.processing().items() if keys]
            assert busy
            pid = dask_client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            _wait_dead(pid)  # its flock is released only once the kernel has torn it down
            killed.append(busy[0])

    batch.run_dask(dask_client, {"model_dir": None}, _tasks(inputs, tmp_path / "out"), on_result)
    assert killed
    assert sorted(r["input"] for r in got) == sorted(str(p) for p in inputs)  # each once
    assert all(r["status"] == "done" for r in got), got
    assert stale_parts(tmp_path) == []
    for p in inputs:
        for s in SOURCES:
            assert sf.info(str(tmp_path / "out" / f"{p.stem}_{s}.wav")).frames == 8 * SR


@pytest.mark.slow
def test_the_readme_recipe_dask_scheduler_dask_worker_and_the_command(tmp_path):
    """The two-machine recipe on one machine: `dask scheduler`, `dask worker`, then
    `xtract-mixin --scheduler ADDRESS` with a manifest; relative paths work (made absolute)."""
    pytest.importorskip("distributed")
    import json

    dask_exe = os.path.join(os.path.dirname(sys.executable), "dask")
    if not os.path.exists(dask_exe):
        pytest.skip(f"{dask_exe} not found")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask_exe, "scheduler", "--scheduler-file", str(sched_file), "--port", "0",
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([dask_exe, "worker", address, "--nworkers", "1", "--nthreads",
                                       "1", "--no-dashboard"], env=env, cwd="/",
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i in range(2):
            song(tmp_path / f"s{i}.wav", 2.0, i)
        r = subprocess.run([sys.executable, "-m", "mixin.cli.xtract", "s0.wav", "s1.wav",
                            "--outdir", "out", "--manifest", "m.csv", "--scheduler", address],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        assert "Dask scheduler" in r.stdout and r.stdout.count(" -> ") == 2
        assert [x["status"] for x in rows(tmp_path / "m.csv")] == ["done", "done"]
        assert len(list((tmp_path / "out").glob("*.wav"))) == 6
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
