"""xtract_mixin.py: every bad input gives a one-line error and a non-zero exit; edge cases work."""

import os
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
    assert code != 0
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert lines and lines[0].startswith("error: ")


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
    assert "Traceback" not in err and "1 of 3 input(s) failed" in err and "b.wav" in err
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
        code, _, err = run(capsys, path, "--outdir", out, "--pretrained-model-dir", tiny_models, "-q")
        assert_one_line_error(code, err)
        assert os.path.basename(str(path)) in err, (name, err)
        assert not out.exists() or outputs(out) == [], (name, outputs(out))


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


def test_bad_flags(capsys, song, tiny_models, tmp_path):
    code, _, err = run(capsys, song, "--overlap", "0.9", "--pretrained-model-dir", tiny_models,
                       "--outdir", tmp_path)
    assert_one_line_error(code, err)
    with pytest.raises(SystemExit) as e:
        main([str(song), "--format", "mp3"])
    assert e.value.code == 2


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
def test_sixty_minute_file(tmp_path, capsys, tiny_models):
    """A 60-minute input streams through (bounded memory; see benchmarks/ for the figures)."""
    sr, n = 8000, 60 * 60 * 8000
    src = tmp_path / "long.wav"
    with sf.SoundFile(str(src), "w", sr, 1, "PCM_16") as f:
        block = (0.1 * np.sin(np.arange(sr * 60) * 0.05)).astype(np.float32)
        for _ in range(60):
            f.write(block)
    code, _, err = run(capsys, src, "--outdir", tmp_path / "o", "--pretrained-model-dir", tiny_models,
                       "-q", "--instrumental", "--no-overlap", "--format", "pcm16")
    assert code == 0, err
    for s in ("harmonic", "percussive"):
        assert sf.info(str(tmp_path / "o" / f"long_{s}.wav")).frames == n
