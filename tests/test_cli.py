"""xtract_mixin.py: every bad input gives a one-line error and a non-zero exit; edge cases work."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, shared_path
from xtract_mixin import main

SR = 44100


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def wav(path, x, sr=SR, subtype="FLOAT"):
    sf.write(str(path), np.asarray(x, np.float32), sr, subtype=subtype)
    return path


def noise(n, ch=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) if ch is None else (n, ch)
    return (0.3 * rng.standard_normal(shape)).astype(np.float32)


def assert_one_line_error(code, err):
    """Exactly one line on stderr, ``error: ...``, and a non-zero exit."""
    assert code != 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def outputs(d):
    return sorted(p.name for p in d.iterdir())


@pytest.fixture()
def song(tmp_path):
    return wav(tmp_path / "song.wav", noise(SR // 2, 2))


def test_help_is_instant_without_tensorflow():
    code = ("import sys; sys.argv=['x','--help'];"
            "import xtract_mixin\n"
            "try:\n  xtract_mixin.main(['--help'])\n"
            "except SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "--instrumental" in r.stdout and "--single-model" in r.stdout


@pytest.mark.parametrize("module,flag", [("mixin.cli.xtract", "--instrumental"),
                                         ("mixin.cli.train", "--train-mix"),
                                         ("mixin.cli.eval", "--no-oracle")])
def test_cli_modules_run_with_python_m(tmp_path, module, flag):
    """Every CLI module runs as ``python -m`` (from any directory) and exits with its code."""
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    assert flag in r.stdout
    bad = subprocess.run([sys.executable, "-m", module, "--no-such-flag"], cwd=tmp_path,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert bad.returncode == 2 and "error:" in bad.stderr.splitlines()[-1]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "MiXiN" in capsys.readouterr().out


def test_separates_a_song(tmp_path, capsys, tiny_models, song):
    out = tmp_path / "out"
    code, o, err = run(capsys, song, "--outdir", out, "--pretrained-model-dir", tiny_models, "-q")
    assert code == 0, err
    assert outputs(out) == ["song_harmonic.wav", "song_percussive.wav", "song_vocal.wav"]
    x, _ = sf.read(song)
    for f in out.iterdir():
        y, sr = sf.read(f)
        assert sr == SR and y.shape == x.shape
        assert sf.info(f).subtype == "FLOAT"


def test_prints_like_the_original(tmp_path, capsys, tiny_models, song):
    code, o, err = run(capsys, song, "--outdir", tmp_path, "--pretrained-model-dir", tiny_models)
    assert code == 0
    assert o.startswith("Loading models from:\n\t")
    assert str(tiny_models / "model_vocal.h5") in o
    assert o.rstrip().endswith("Done")


def test_instrumental_needs_and_lists_no_vocal_model(tmp_path, capsys, tiny_models, song):
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    for s in ("harmonic", "percussive"):
        shutil.copy(tiny_models / f"model_{s}.h5", models)
    code, o, err = run(capsys, song, "--outdir", tmp_path / "o", "--pretrained-model-dir", models,
                       "--instrumental")
    assert code == 0, err
    assert "model_vocal" not in o and str(models / "model_percussive.h5") in o
    assert outputs(tmp_path / "o") == ["song_harmonic.wav", "song_percussive.wav"]
    code, _, err = run(capsys, song, "--outdir", tmp_path / "o2", "--pretrained-model-dir", models)
    assert_one_line_error(code, err)
    assert "model_vocal.h5" in err and not (tmp_path / "o2").exists()


def test_instrumental_first_prefix_and_format(tmp_path, capsys, tiny_models):
    src = wav(tmp_path / "mysong_take2_final.wav", noise(1000))
    out = tmp_path / "o"
    code, _, err = run(capsys, src, "--outdir", out, "--pretrained-model-dir", tiny_models,
                       "--instrumental", "--first-prefix", "--format", "pcm24", "-q")
    assert code == 0, err
    assert outputs(out) == ["mysong_harmonic.wav", "mysong_percussive.wav"]
    assert sf.info(out / "mysong_harmonic.wav").subtype == "PCM_24"


def test_several_inputs_good_ones_still_separated(tmp_path, capsys, tiny_models):
    good1 = wav(tmp_path / "a.wav", noise(3000))
    bad = tmp_path / "b.wav"
    bad.write_text("this is not audio")
    good2 = wav(tmp_path / "c.wav", noise(5000, 2))
    out = tmp_path / "out"
    code, _, err = run(capsys, good1, bad, good2, "--outdir", out,
                       "--pretrained-model-dir", tiny_models, "-q")
    assert code == 1
    lines = err.splitlines()  # the failure, then the summary
    assert len(lines) == 2 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and "b.wav" in lines[0] and "not a" in lines[0]
    assert lines[1].startswith("error: 1 of 3 input(s) failed") and "b.wav" in lines[1]
    assert outputs(out) == sorted(f"{n}_{s}.wav" for n in "ac" for s in ("harmonic", "percussive", "vocal"))


def _bad_inputs(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    cases = {"missing": d / "missing.wav", "directory": d / "adir"}
    cases["directory"].mkdir()
    (d / "empty.wav").write_bytes(b"")
    cases["empty"] = d / "empty.wav"
    (d / "text.wav").write_text("hello, I am not a sound\n" * 20)
    cases["not audio"] = d / "text.wav"
    good = wav(d / "full.wav", noise(20000), subtype="PCM_16")
    raw = good.read_bytes()
    (d / "truncated.wav").write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = d / "truncated.wav"
    (d / "header.wav").write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\x00" * 40)
    cases["corrupt header"] = d / "header.wav"
    cases["zero length"] = wav(d / "zero.wav", np.zeros((0, 1)))
    x = noise(5000)
    x[1234] = np.nan
    cases["nan"] = wav(d / "nan.wav", x)
    y = noise(5000)
    y[10] = np.inf
    cases["inf"] = wav(d / "inf.wav", y)
    return cases


def test_every_bad_input_one_line_no_partial_files(tmp_path, capsys, tiny_models):
    out = tmp_path / "out"
    for name, path in _bad_inputs(tmp_path).items():
        code, _, err = run(capsys, path, "--outdir", out, "--filename", "{name}/{stem}.wav",
                           "--pretrained-model-dir", tiny_models, "-q")
        assert_one_line_error(code, err)
        assert os.path.basename(str(path)) in err, (name, err)
        assert not out.exists(), (name, list(out.rglob("*")))  # no folder, no file


def test_several_bad_inputs_one_line_each_and_a_summary(tmp_path, capsys, tiny_models):
    bad = _bad_inputs(tmp_path)
    out = tmp_path / "out"
    code, _, err = run(capsys, bad["missing"], bad["directory"], bad["empty"], "--outdir", out,
                       "--pretrained-model-dir", tiny_models)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 4, err
    assert all(line.startswith("error: ") for line in lines)
    assert lines[3].startswith("error: 3 of 3 input(s) failed")
    assert not out.exists()


def test_checks_answer_before_tensorflow(tmp_path):
    """A bad call is answered without importing TensorFlow, in one line, creating nothing."""
    import json
    import time

    (tmp_path / "x_vocal.wav").write_bytes(b"precious")
    wav(tmp_path / "x.wav", noise(100))
    calls = {
        "missing input": [str(tmp_path / "missing.wav")],
        "not audio": [str(tmp_path / "x_vocal.wav"), "--outdir", str(tmp_path / "o")],
        "existing output": [str(tmp_path / "x.wav"), "--outdir", str(tmp_path)],
        "outdir is a file": [str(tmp_path / "x.wav"), "--outdir", str(tmp_path / "x_vocal.wav")],
        "bad template": [str(tmp_path / "x.wav"), "--filename", "{nme}_{stem}.wav"],
        "float FLAC": [str(tmp_path / "x.wav"), "--filename", "{name}_{stem}.flac",
                       "--format", "float32"],
        "missing model": [str(tmp_path / "x.wav"), "--outdir", str(tmp_path / "o"),
                          "--pretrained-model-dir", str(tmp_path / "nomodels")],
    }
    code = ("import json, sys, time\n"
            "from mixin.cli.xtract import main\n"
            "res = {}\n"
            f"for name, argv in json.loads({json.dumps(json.dumps(calls))}).items():\n"
            "    t = time.perf_counter(); rc = main(argv)\n"
            "    res[name] = [rc, time.perf_counter() - t]\n"
            "    print('--', file=sys.stderr)\n"
            "res['tensorflow'] = 'tensorflow' in sys.modules\n"
            "print(json.dumps(res))\n")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    res = json.loads(r.stdout.splitlines()[-1])
    assert res.pop("tensorflow") is False
    errs = r.stderr.split("--\n")[:-1]
    for (name, (rc, seconds)), err in zip(res.items(), errs):
        assert rc == 1, name
        assert_one_line_error(rc, err)
        assert seconds < 0.5, (name, seconds)
    assert len(errs) == len(calls)
    assert wall < 10  # the interpreter and numpy/soundfile start-up included, on a busy machine
    assert not (tmp_path / "o").exists()
    assert (tmp_path / "x_vocal.wav").read_bytes() == b"precious"


def test_failure_after_start_removes_the_folders_it_made(tmp_path, capsys, tiny_models):
    x = noise(5000)
    x[1234] = np.nan  # found only while streaming
    src = wav(tmp_path / "nan.wav", x)
    out = tmp_path / "out"
    code, _, err = run(capsys, src, "--outdir", out, "--filename", "{name}/{stem}.wav",
                       "--pretrained-model-dir", tiny_models, "-q")
    assert_one_line_error(code, err)
    assert "NaN" in err and not out.exists()


def test_unwritable_outdir(tmp_path, capsys, tiny_models, song):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run(capsys, song, "--outdir", afile, "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err)
    code, _, err = run(capsys, song, "--outdir", afile / "sub", "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err)


def test_model_problems(tmp_path, capsys, tiny_models, song):
    import shutil

    bad = tmp_path / "models"
    shutil.copytree(tiny_models, bad)
    (bad / "model_percussive.h5").unlink()
    code, _, err = run(capsys, song, "--outdir", tmp_path, "--pretrained-model-dir", bad)
    assert_one_line_error(code, err)
    assert "model_percussive.h5" in err
    (bad / "model_percussive.h5").write_bytes(b"corrupt")
    code, _, err = run(capsys, song, "--outdir", tmp_path, "--pretrained-model-dir", bad)
    assert_one_line_error(code, err)
    assert "model_percussive.h5" in err
    import keras

    keras.Sequential([keras.Input(shape=(10, 10, 1)), keras.layers.Conv2D(1, 1)]).save(
        bad / "model_percussive.h5")
    code, _, err = run(capsys, song, "--outdir", tmp_path, "--pretrained-model-dir", bad)
    assert_one_line_error(code, err)
    code, _, err = run(capsys, song, "--outdir", tmp_path, "--pretrained-model-dir", tmp_path / "none")
    assert_one_line_error(code, err)
    assert not list(tmp_path.glob("song_*.wav"))


def test_never_overwrites(tmp_path, capsys, tiny_models):
    src = wav(tmp_path / "x.wav", noise(2000))
    existing = tmp_path / "x_vocal.wav"
    existing.write_bytes(b"precious")
    code, _, err = run(capsys, src, "--outdir", tmp_path, "--pretrained-model-dir", tiny_models, "-q")
    assert_one_line_error(code, err)
    assert "--overwrite" in err and existing.read_bytes() == b"precious"
    code, _, err = run(capsys, src, "--outdir", tmp_path, "--pretrained-model-dir", tiny_models,
                       "-q", "--overwrite")
    assert code == 0 and sf.info(existing).frames == 2000


def test_input_is_never_an_output(tmp_path, capsys, tiny_models):
    victim = wav(tmp_path / "y_harmonic.wav", noise(100))
    code, _, err = run(capsys, victim, "--outdir", tmp_path, "--pretrained-model-dir", tiny_models,
                       "--first-prefix", "--overwrite")
    assert_one_line_error(code, err)
    assert "overwrite an input" in err and sf.info(victim).frames == 100


def test_colliding_outputs_refused_before_work(tmp_path, capsys, tiny_models):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = wav(tmp_path / "a" / "song.wav", noise(100))
    b = wav(tmp_path / "b" / "song.flac", noise(100), subtype="PCM_16")
    code, _, err = run(capsys, a, b, "--outdir", tmp_path / "o", "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err)
    assert "both write" in err
    assert not (tmp_path / "o").exists() or outputs(tmp_path / "o") == []


# ------------------------------------------------------------------------ --filename, formats
def musdb_layout(root, songs=("Artist A - Song 1", "Artist B - Song 2")):
    for i, name in enumerate(songs):
        (root / name).mkdir(parents=True)
        wav(root / name / "mixture.wav", noise(3000, 2, seed=i))
    return [root / name / "mixture.wav" for name in songs]


def test_musdb_layout_in_one_call(tmp_path, capsys, tiny_models):
    inputs = musdb_layout(tmp_path / "musdb")
    out = tmp_path / "sep"
    code, _, err = run(capsys, *inputs, "--outdir", out, "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err)  # the default names collide: refused before any work
    assert "both write" in err and "{parent}" in err and not out.exists()
    code, o, err = run(capsys, *inputs, "--outdir", out, "--filename", "{parent}/{stem}.wav",
                       "--pretrained-model-dir", tiny_models)
    assert code == 0, err
    for song in ("Artist A - Song 1", "Artist B - Song 2"):
        assert outputs(out / song) == ["harmonic.wav", "percussive.wav", "vocal.wav"]
        assert sf.info(out / song / "vocal.wav").frames == 3000
    assert f"{out / 'Artist B - Song 2' / 'vocal.wav'}" in o
    code, _, err = run(capsys, *inputs, "--outdir", out, "--filename", "{parent}/{stem}.wav",
                       "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err.splitlines()[0])
    assert len(err.splitlines()) == 3 and "--overwrite" in err  # two inputs, two lines + summary


def test_template_fields_and_names(tmp_path):
    from mixin.cli.xtract import output_paths

    a = tmp_path / "Band" / "take_1.wav"
    plan = output_paths([str(a)], "out", ("harmonic", "vocal"), "{parent}-{name}.{ext}/{stem}.flac")
    assert plan[str(a)] == {"harmonic": os.path.join("out", "Band-take_1.wav", "harmonic.flac"),
                            "vocal": os.path.join("out", "Band-take_1.wav", "vocal.flac")}
    plan = output_paths([str(a)], "o", ("vocal",), first_prefix=True)
    assert plan[str(a)] == {"vocal": os.path.join("o", "take_vocal.wav")}
    b = tmp_path / "Band" / "take_1.flac"  # {ext} tells song.wav and song.flac apart
    plan = output_paths([str(a), str(b)], "o", ("vocal",), "{name}.{ext}_{stem}.wav")
    assert plan[str(b)]["vocal"] == os.path.join("o", "take_1.flac_vocal.wav")
    assert list(output_paths([str(a), str(a)], "o", ("vocal",))) == [str(a)]  # given twice: once


@pytest.mark.parametrize("template, message", [
    ("{nme}_{stem}.wav", "unknown field {nme}"),
    ("{name}.wav", "needs {stem}"),
    ("{name_{stem}.wav", "--filename"),
    ("{name}_{stem}.mp3", "cannot write .mp3"),
    ("{name}_{stem}.m4a", "cannot write .m4a"),
    ("{name}_{stem}", "without an extension"),
    ("{stem}/", "folder"),
])
def test_bad_templates_one_line_before_work(tmp_path, capsys, tiny_models, song, template, message):
    code, _, err = run(capsys, song, "--outdir", tmp_path / "o", "--filename", template,
                       "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err)
    assert message in err and not (tmp_path / "o").exists()


def test_flac_and_other_lossless_outputs(tmp_path, capsys, tiny_models, song):
    out = tmp_path / "o"
    code, _, err = run(capsys, song, "--outdir", out, "--filename", "{name}_{stem}.flac",
                       "--pretrained-model-dir", tiny_models, "-q")
    assert code == 0, err
    x, _ = sf.read(song)
    for s in ("harmonic", "percussive", "vocal"):
        info = sf.info(out / f"song_{s}.flac")
        assert (info.format, info.subtype) == ("FLAC", "PCM_24")  # FLAC's default: 24-bit
        assert sf.read(out / f"song_{s}.flac")[0].shape == x.shape
    code, _, err = run(capsys, song, "--outdir", out, "--filename", "{stem}.flac", "--format",
                       "pcm16", "--pretrained-model-dir", tiny_models, "-q", "--instrumental")
    assert code == 0, err
    assert sf.info(out / "harmonic.flac").subtype == "PCM_16"
    code, _, err = run(capsys, song, "--outdir", out, "--filename", "{stem}.flac", "--format",
                       "float32", "--pretrained-model-dir", tiny_models, "--overwrite")
    assert_one_line_error(code, err)
    assert "FLAC" in err and "pcm24" in err
    code, _, err = run(capsys, song, "--outdir", out, "--filename", "{stem}.aiff",
                       "--pretrained-model-dir", tiny_models, "-q", "--instrumental")
    assert code == 0, err
    assert sf.info(out / "percussive.aiff").format == "AIFF"


def _m4a(path, seconds=1.0, channels=2, rate=48000, extra=()):
    r = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                        "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}",
                        *extra, "-ac", str(channels), "-c:a", "aac", "-y", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return path


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


@needs_ffmpeg
def test_m4a_input_through_ffmpeg(tmp_path, capsys, tiny_models, monkeypatch):
    import tempfile

    src = _m4a(tmp_path / "song.m4a")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the decoded copy goes
    code, _, err = run(capsys, src, "--outdir", tmp_path / "o", "--filename", "{name}_{stem}.flac",
                       "--pretrained-model-dir", tiny_models, "-q")
    assert code == 0, err
    decoded = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-f", "f32le",
                              "-"], capture_output=True).stdout
    for s in ("harmonic", "percussive", "vocal"):
        info = sf.info(tmp_path / "o" / f"song_{s}.flac")
        assert info.samplerate == 48000 and info.channels == 2
        assert info.frames == len(decoded) // 8  # every decoded sample, float32 stereo
    assert list(temp.iterdir()) == []  # the decoded copy is gone


@needs_ffmpeg
def test_ffmpeg_errors_one_line(tmp_path, capsys, tiny_models):
    text = tmp_path / "fake.m4a"
    text.write_text("not audio at all\n" * 10)
    video = tmp_path / "silent.mp4"
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc=duration=0.2:size=64x64", "-y", str(video)], capture_output=True)
    assert r.returncode == 0
    for path, message in ((text, "Invalid data"), (video, "no audio stream")):
        code, _, err = run(capsys, path, "--outdir", tmp_path / "o",
                           "--pretrained-model-dir", tiny_models)
        assert_one_line_error(code, err)
        assert path.name in err and message in err and not (tmp_path / "o").exists()


def test_without_ffmpeg_one_line_that_says_so(tmp_path, capsys, tiny_models, monkeypatch):
    from mixin.io import read as audio

    monkeypatch.setattr(audio, "ffmpeg_executable", lambda: None)
    src = tmp_path / "song.m4a"
    src.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))  # what libsndfile cannot read
    code, _, err = run(capsys, src, "--outdir", tmp_path / "o", "--pretrained-model-dir", tiny_models)
    assert_one_line_error(code, err)
    assert "song.m4a" in err and "ffmpeg" in err and "not on PATH" in err


def test_bad_flags(capsys, song, tiny_models, tmp_path):
    code, _, err = run(capsys, song, "--overlap", "0.9", "--pretrained-model-dir", tiny_models,
                       "--outdir", tmp_path)
    assert_one_line_error(code, err)
    for bad, says in ((["--hpss-anchor", "1.5"], "--hpss-anchor must be from 0 to 1, got 1.5"),
                      (["--hpss-anchor", "0.5", "--single-model"], "--single-model has none")):
        code, _, err = run(capsys, song, *bad, "--pretrained-model-dir", tiny_models, "--outdir",
                           tmp_path / "o")
        assert_one_line_error(code, err)
        assert says in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as e:
        main([str(song), "--format", "mp3"])
    assert e.value.code == 2


def test_hpss_anchor_flag_moves_the_split_and_keeps_the_total(capsys, song, tiny_models, tmp_path):
    outs = {}
    for a in ("0", "1"):
        code, _, err = run(capsys, song, "--hpss-anchor", a, "--pretrained-model-dir", tiny_models,
                           "--outdir", tmp_path / a, "-q")
        assert code == 0, err
        outs[a] = {s: sf.read(str(tmp_path / a / f"song_{s}.wav"))[0] for s in ("harmonic", "percussive", "vocal")}
    assert np.array_equal(outs["0"]["vocal"], outs["1"]["vocal"])
    assert not np.allclose(outs["0"]["harmonic"], outs["1"]["harmonic"], atol=1e-4)
    tot = {a: o["harmonic"] + o["percussive"] for a, o in outs.items()}
    np.testing.assert_allclose(tot["0"], tot["1"], atol=1e-3)


EDGE_CASES = {
    "one sample": (44100, 1, "FLOAT", ".wav", 1),
    "one sample at 96 kHz": (96000, 2, "FLOAT", ".wav", 1),
    "half a second": (44100, 2, "FLOAT", ".wav", 22050),
    "exact chunk multiple": (44100, 1, "FLOAT", ".wav", 2 * 44032),
    "8 kHz mono": (8000, 1, "PCM_16", ".wav", 9000),
    "96 kHz 24-bit stereo": (96000, 2, "PCM_24", ".wav", 50000),
    "6 channels": (44100, 6, "FLOAT", ".wav", 7000),
    "48 kHz FLAC": (48000, 2, "PCM_16", ".flac", 30000),
    "OGG": (44100, 2, "VORBIS", ".ogg", 30000),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_keep_rate_length_channels(tmp_path, capsys, tiny_models, case):
    sr, ch, subtype, ext, n = EDGE_CASES[case]
    src = tmp_path / f"in{ext}"
    sf.write(str(src), noise(n, ch)[:, :] if ch > 1 else noise(n), sr, subtype=subtype)
    info = sf.info(str(src))
    code, _, err = run(capsys, src, "--outdir", tmp_path / "o", "--pretrained-model-dir", tiny_models, "-q")
    assert code == 0, err
    for s in ("harmonic", "percussive", "vocal"):
        y, ysr = sf.read(tmp_path / "o" / f"in_{s}.wav", always_2d=True)
        assert ysr == sr and y.shape == (info.frames, ch) and np.isfinite(y).all()


def test_silence_and_clipping(tmp_path, capsys, tiny_models):
    wav(tmp_path / "silence.wav", np.zeros((30000, 2)))
    wav(tmp_path / "clip.wav", np.sign(noise(30000, 2)), subtype="PCM_16")
    code, _, err = run(capsys, tmp_path / "silence.wav", tmp_path / "clip.wav", "--outdir",
                       tmp_path / "o", "--pretrained-model-dir", tiny_models, "-q")
    assert code == 0, err
    y, _ = sf.read(tmp_path / "o" / "silence_vocal.wav")
    assert np.isfinite(y).all() and np.abs(y).max() == 0
    y, _ = sf.read(tmp_path / "o" / "clip_vocal.wav")
    assert np.isfinite(y).all() and np.abs(y).max() > 0


@pytest.mark.slow
def test_long_file_streams_with_bounded_memory(tmp_path, capsys, tiny_models):
    """Long inputs stream through with bounded memory: the arrays allocated at the peak (numpy's
    buffers, traced by tracemalloc) do not grow with the song's length (2 vs 12 minutes; the
    12-minute song's 44.1 kHz float32 copy alone is 127 MB). See benchmarks/ for the RSS."""
    import tracemalloc

    sr, peaks = 8000, {}
    block = (0.1 * np.sin(np.arange(sr * 60) * 0.05)).astype(np.float32)
    for minutes in (2, 12):
        src = tmp_path / f"long{minutes}.wav"
        with sf.SoundFile(str(src), "w", sr, 1, "PCM_16") as f:
            for _ in range(minutes):
                f.write(block)
        tracemalloc.start()
        try:
            code, _, err = run(capsys, src, "--outdir", tmp_path / "o", "--pretrained-model-dir",
                               tiny_models, "-q", "--instrumental", "--no-overlap", "--format", "pcm16")
            peaks[minutes] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 0, err
        for s in ("harmonic", "percussive"):
            assert sf.info(str(tmp_path / "o" / f"long{minutes}_{s}.wav")).frames == minutes * 60 * sr
    assert peaks[12] < 1.05 * peaks[2] + 5e6, \
        f"peak {peaks[12] / 1e6:.0f} MB of arrays at 12 minutes, {peaks[2] / 1e6:.0f} MB at 2"
