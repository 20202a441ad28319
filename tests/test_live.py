"""Live streams (xtract-mixin --stream): a song piped in blocks of random sizes equals the file
path's output bit for bit; outputs readable while growing; named pipes; a stream cut mid-sample;
malformed headers and format specs."""

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from mixin.errors import MixinError
from mixin.separation import live
from xtract_mixin import main

SR = 44100
SOURCES = ("harmonic", "percussive", "vocal")


def mix(seconds, ch=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = (0.3 * np.sin(2 * np.pi * 330 * t) * (t % 0.5 < 0.1))[:, None] + 0.05 * rng.standard_normal((len(t), ch))
    return x.astype(np.float32)


def wav_bytes(x, sr=SR, subtype="FLOAT"):
    bio = io.BytesIO()
    sf.write(bio, x, sr, subtype=subtype, format="WAV")
    return bio.getvalue()


class Trickle(io.RawIOBase):
    """A pipe delivering random amounts of bytes per read (1 byte to 20 000), often cutting
    samples and frames in two."""

    def __init__(self, data, seed=0):
        self.data, self.pos = data, 0
        self.rng = np.random.default_rng(seed)
        self.reads = 0

    def readable(self):
        return True

    def read1(self, n=-1):
        k = int(self.rng.integers(1, 20000))
        k = k if n is None or n < 0 else min(k, n)
        b = self.data[self.pos:self.pos + k]
        self.pos += len(b)
        self.reads += 1
        return b

    read = read1


@pytest.fixture(scope="module")
def sep():
    from mixin.separation.separate import Separator

    return Separator(batch_size=2, pipeline=False)  # shipped models, one stereo chunk per call, no read-ahead


@pytest.fixture(scope="module")
def song_and_file_outputs(sep, tmp_path_factory):
    """A 4-second stereo song and the file path's outputs (separate_file)."""
    from mixin.separation.separate import separate_file

    d = tmp_path_factory.mktemp("file")
    x = mix(4.0)
    sf.write(str(d / "song.wav"), x, SR, subtype="FLOAT")
    outs = {s: str(d / f"song_{s}.wav") for s in SOURCES}
    separate_file(sep, d / "song.wav", outs)
    return x, {s: sf.read(o, dtype="float32")[0] for s, o in outs.items()}


def test_stream_in_random_blocks_equals_the_file_path(sep, song_and_file_outputs, tmp_path):
    x, ref = song_and_file_outputs
    src = Trickle(wav_bytes(x), seed=1)
    reader = live.StreamReader(src)
    assert (reader.rate, reader.channels) == (SR, 2)
    outs = {s: str(tmp_path / f"stream_{s}.wav") for s in SOURCES}
    seen = []

    def on_block(n_in, n_out):  # the files are readable while they grow
        info = sf.info(outs["vocal"])
        seen.append((n_in, n_out, info.frames))

    res = live.separate_stream(sep, reader, outs, on_block=on_block)
    assert res["frames"] == len(x) and res["trailing"] == 0 and src.reads > 50
    assert len(seen) > 3 and all(n_out == frames for _, n_out, frames in seen)
    # output lags the input by less than a chunk (the default overlap's latency bound)
    assert all(0 <= n_in - n_out <= 44032 for n_in, n_out, _ in seen[:-1])
    for s in SOURCES:
        y = sf.read(outs[s], dtype="float32")[0]
        assert y.shape == x.shape
        assert np.array_equal(y, ref[s]), (s, np.abs(y - ref[s]).max())


def test_raw_pcm16_cut_mid_sample(sep, tmp_path, caplog):
    """s16le:44100:2 with 3 stray bytes at the end (a cut inside the last frame): the complete
    frames are separated and the outputs are finished cleanly; they equal the file path's on
    the same 16-bit samples."""
    from mixin.separation.separate import separate_file

    caplog.set_level("WARNING", logger="mixin")  # an in-process command run before may have quietened it
    x = mix(2.0, seed=3)
    q = np.round(x * 32767).astype("<i2")
    data = q.tobytes() + q[-1].tobytes()[:3]
    reader = live.StreamReader(Trickle(data, seed=2), live.parse_stream_format("s16le:44100:2"))
    outs = {s: str(tmp_path / f"raw_{s}.wav") for s in SOURCES}
    res = live.separate_stream(sep, reader, outs, subtype="PCM_16")
    assert res["frames"] == len(q) and res["trailing"] == 3
    assert "3 trailing byte(s) dropped" in caplog.text
    sf.write(str(tmp_path / "q.wav"), q, SR, subtype="PCM_16")
    ref = {s: str(tmp_path / f"q_{s}.wav") for s in SOURCES}
    separate_file(sep, tmp_path / "q.wav", ref, subtype="PCM_16")
    for s in SOURCES:
        a, b = sf.read(outs[s], dtype="int16")[0], sf.read(ref[s], dtype="int16")[0]
        assert a.shape == (len(q), 2) and np.array_equal(a, b), s


def test_named_pipes(sep, song_and_file_outputs, tmp_path):
    x, ref = song_and_file_outputs
    outs = {s: str(tmp_path / f"{s}.fifo") for s in SOURCES}
    got = {}

    def drain(s):
        with open(outs[s], "rb") as f:
            got[s] = f.read()

    for o in outs.values():
        os.mkfifo(o)
    threads = [threading.Thread(target=drain, args=(s,)) for s in SOURCES]
    for t in threads:
        t.start()
    live.separate_stream(sep, live.StreamReader(io.BytesIO(wav_bytes(x))), outs)
    for t in threads:
        t.join(10)
    for s in SOURCES:
        assert got[s][4:8] == b"\xff\xff\xff\xff"  # size unknown: a stream
        y = np.frombuffer(got[s][44:], "<f4").reshape(-1, 2)
        assert np.array_equal(y, ref[s]), s


@pytest.mark.parametrize("data,message", [
    (b"", "ended inside the WAV header"),
    (b"ID3\x03" + b"\x00" * 60, "not a WAV stream"),
    (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "data before fmt"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x02\x00\x02\x00D\xac\x00\x00" + b"\x00" * 8,
     "unsupported WAV sample format"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00", "ended inside the WAV header"),
])
def test_malformed_header_one_line_before_tensorflow(tmp_path, data, message):
    r = subprocess.run([sys.executable, "-c",
                        "import sys; from xtract_mixin import main; rc = main(); "
                        "assert 'tensorflow' not in sys.modules; sys.exit(rc)",
                        "--stream", "--outdir", str(tmp_path / "out")],
                       input=data, capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    err = r.stderr.decode()
    assert r.returncode == 1 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec,message", [("s16le:44100", "FORMAT:RATE:CHANNELS"),
                                          ("mp3:44100:2", "unknown sample format"),
                                          ("s16le:0:2", "sample rate"),
                                          ("f32le:44100:x", "channel count")])
def test_bad_stream_format(spec, message):
    with pytest.raises(MixinError, match=message):
        live.parse_stream_format(spec)
    assert live.parse_stream_format("F32LE:48000:1") == live.StreamFormat("f32le", 48000, 1)
    assert live.parse_stream_format("wav") is None


def test_stream_flag_conflicts_one_line(capsys, tmp_path):
    for argv, msg in [(["x.wav", "--stream"], "INPUT cannot go with it"),
                      (["--stream", "--jobs", "2"], "--jobs cannot go with it"),
                      (["--stream", "--filename", "{name}_{stem}.flac"], "must end in .wav"),
                      (["--stream", "--stream-name", "a/b"], "must be a file name")]:
        code = main(argv + ["--outdir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and msg in err, (argv, err)


def test_cli_pipe_equals_the_file_command(song_and_file_outputs, tmp_path):
    """The real command on a real pipe, written in random-size pieces, with --stream-name and
    --filename; equal to the file command's outputs at the same --batch-size."""
    x, ref = song_and_file_outputs
    data = wav_bytes(x)
    p = subprocess.Popen([sys.executable, "-m", "mixin.cli.xtract", "--stream", "--outdir",
                          str(tmp_path), "--stream-name", "live", "--filename", "{name}/{stem}.wav",
                          "--batch-size", "2"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rng = np.random.default_rng(5)
    pos = 0
    while pos < len(data):
        k = int(rng.integers(1, 60000))
        p.stdin.write(data[pos:pos + k])
        p.stdin.flush()
        pos += k
    p.stdin.close()
    assert p.wait(120) == 0, p.stderr.read().decode()
    for s in SOURCES:
        y = sf.read(str(tmp_path / "live" / f"{s}.wav"), dtype="float32")[0]
        assert np.array_equal(y, ref[s]), s


def test_48khz_stream_equals_the_file_path(sep, tmp_path):
    """Resampled on the way in and out (soxr streams): still bit for bit, also against the file
    path's default batch of 8 chunks."""
    from mixin.separation.separate import Separator, separate_file

    x = mix(2.5, seed=7)
    import soxr

    y = soxr.resample(x, SR, 48000).astype(np.float32)
    sf.write(str(tmp_path / "s48.wav"), y, 48000, subtype="FLOAT")
    ref = {s: str(tmp_path / f"f_{s}.wav") for s in SOURCES}
    separate_file(Separator(batch_size=8, models=sep.models), tmp_path / "s48.wav", ref)
    outs = {s: str(tmp_path / f"st_{s}.wav") for s in SOURCES}
    live.separate_stream(sep, live.StreamReader(Trickle(wav_bytes(y, 48000), seed=4)), outs)
    for s in SOURCES:
        a, b = sf.read(outs[s], dtype="float32"), sf.read(ref[s], dtype="float32")
        assert a[1] == 48000 and a[0].shape == y.shape and np.array_equal(a[0], b[0]), s
