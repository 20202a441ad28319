"""Tests of mixin.io (audio): bad input, round trips, streaming, resampling, atomic writing."""

import os
import struct

import numpy as np
import pytest
import soundfile as sf
import soxr

from mixin import io as audio
from mixin.io import read as audio_read, write as audio_write
from mixin.io import (SUBTYPES, AtomicWriter, Resampler, as_2d, check_finite, check_output_dir,
                         iter_blocks, probe, read_audio, resample, resampled_length, write_audio)
from mixin.errors import MixinError

RNG = np.random.default_rng(1234)


def noise(n, ch, scale=0.25):
    return (RNG.standard_normal((n, ch)) * scale).clip(-0.99, 0.99).astype(np.float32)


def sf_write(path, x, sr=44100, subtype="FLOAT", **kw):
    sf.write(str(path), x, sr, subtype=subtype, **kw)
    return path


def assert_error(exc_info, path, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg


def all_readers(path):
    """probe, read_audio and iterating iter_blocks, each must raise MixinError."""
    return [lambda: probe(path), lambda: read_audio(path), lambda: list(iter_blocks(path, 1000))]


def no_temp_files(d):
    return [f for f in os.listdir(d) if f.startswith(".") or f.endswith(".part")]


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

@pytest.fixture
def good_wav(tmp_path):
    return sf_write(tmp_path / "good.wav", noise(20000, 2))


def test_missing_file(tmp_path):
    p = tmp_path / "nope.wav"
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p, "not found")


def test_directory(tmp_path):
    for f in all_readers(tmp_path):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, tmp_path, "directory")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p, "empty")


def test_text_file_named_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 50)
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p, "not a readable audio file")


def test_garbage_mp3_is_not_called_missing(tmp_path):
    # libsndfile's MPEG decoder answers a damaged MP3 with "File does not exist or is not a
    # regular file": the message must not send the user looking for a file that is there
    p = tmp_path / "broken.mp3"
    p.write_bytes(b"ID3" + bytes(range(256)) * 8)
    with pytest.raises(MixinError) as e:
        probe(p)
    assert_error(e, p, "not a readable audio file")
    assert "does not exist" not in str(e.value) and "damaged" in str(e.value)


def test_truncated_wav_data(tmp_path, good_wav):
    b = good_wav.read_bytes()
    p = tmp_path / "half.wav"
    p.write_bytes(b[: len(b) // 2])
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p, "truncated")


def test_truncated_wav_partial_frame(tmp_path):
    b = sf_write(tmp_path / "a.wav", noise(1000, 2), subtype="PCM_16").read_bytes()
    p = tmp_path / "odd.wav"
    p.write_bytes(b[:-3])          # cut in the middle of the last frame
    with pytest.raises(MixinError) as e:
        probe(p)
    assert_error(e, p, "truncated")


def test_truncated_wav_header(tmp_path, good_wav):
    p = tmp_path / "hdr.wav"
    p.write_bytes(good_wav.read_bytes()[:30])
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p)


@pytest.mark.parametrize("where", ["magic", "fmt"])
def test_corrupt_header(tmp_path, good_wav, where):
    b = bytearray(good_wav.read_bytes())
    if where == "magic":
        b[0:4] = b"RIFX"
        b[8:12] = b"WAVX"
    else:
        b[20:22] = b"\x99\x99"     # format tag inside the 'fmt ' chunk
    p = tmp_path / f"corrupt_{where}.wav"
    p.write_bytes(bytes(b))
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p)


def test_zero_length_audio(tmp_path):
    p = sf_write(tmp_path / "zero.wav", np.zeros((0, 2), np.float32))
    assert p.stat().st_size > 0
    for f in all_readers(p):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p, "no audio")


def test_streaming_wav_unknown_length_is_accepted(tmp_path):
    """Streaming tools write 0xFFFFFFFF as data size: that is "unknown", not truncation."""
    x = noise(1000, 2)
    b = bytearray(sf_write(tmp_path / "a.wav", x, subtype="PCM_16").read_bytes())
    i = b.find(b"data")
    b[i + 4:i + 8] = struct.pack("<I", 0xFFFFFFFF)
    p = tmp_path / "stream.wav"
    p.write_bytes(bytes(b))
    y, sr = read_audio(p)
    assert y.shape == (1000, 2) and sr == 44100


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_samples(tmp_path, bad):
    x = noise(5000, 2)
    x[3000, 1] = bad
    x[4000, 0] = bad
    p = sf_write(tmp_path / "nan.wav", x)
    assert probe(p).frames == 5000            # the header is fine
    with pytest.raises(MixinError) as e:
        read_audio(p)
    assert_error(e, p, "2 ", "sample 3000", "channel 1", "NaN" if np.isnan(bad) else "Inf")
    blocks = iter_blocks(p, 1024)
    got = [next(blocks), next(blocks)]        # frames 0..2047 are fine
    assert sum(len(b) for b in got) == 2048
    with pytest.raises(MixinError) as e:
        list(blocks)
    assert_error(e, p, "sample 3000", "channel 1")


def test_truncated_flac(tmp_path):
    b = sf_write(tmp_path / "a.flac", noise(3 * 44100, 2), subtype="PCM_24").read_bytes()
    for frac in (0.5, 0.9):
        p = tmp_path / f"cut{frac}.flac"
        p.write_bytes(b[: int(len(b) * frac)])
        with pytest.raises(MixinError) as e:
            read_audio(p)
        assert_error(e, p)
        with pytest.raises(MixinError):
            list(iter_blocks(p, 4096))


def mp3_writable():
    return "MP3" in sf.available_formats() and sf.check_format("MP3", "MPEG_LAYER_III")


@pytest.mark.skipif(not mp3_writable(), reason="this libsndfile cannot write MP3")
def test_truncated_mp3(tmp_path, capfd):
    b = sf_write(tmp_path / "a.mp3", noise(3 * 44100, 2), subtype="MPEG_LAYER_III",
                 format="MP3").read_bytes()
    capfd.readouterr()
    for name in ("cut.mp3", "cut_no_extension"):
        p = tmp_path / name
        p.write_bytes(b[: len(b) // 2])
        with pytest.raises(MixinError) as e:
            read_audio(p)
        assert_error(e, p, "truncated")
        # the decoder's own "Warning: Xing stream size off ..." must not reach the terminal
        assert capfd.readouterr().err == ""


def test_errors_do_not_leak_library_exceptions(tmp_path):
    """Every failure above is a MixinError, never a soundfile/RuntimeError."""
    p = tmp_path / "x.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(MixinError):
        read_audio(p)
    assert not issubclass(MixinError, RuntimeError)


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------

def test_as_2d_shapes():
    y, was_1d = as_2d(np.zeros(10))
    assert y.shape == (10, 1) and y.dtype == np.float32 and was_1d
    x = noise(10, 2)
    y, was_1d = as_2d(x)
    assert y is x and not was_1d                  # no copy for float32 C-contiguous input
    y, _ = as_2d(np.zeros((10, 6), np.float64))
    assert y.shape == (10, 6) and y.dtype == np.float32
    assert as_2d(np.zeros((1, 1)))[0].shape == (1, 1)


@pytest.mark.parametrize("shape", [(2, 1000), (1, 2), (6, 7)])
def test_as_2d_refuses_ambiguous(shape):
    with pytest.raises(MixinError) as e:
        as_2d(np.zeros(shape, np.float32))
    assert "(n_samples, n_channels)" in str(e.value) and str(shape) in str(e.value)
    assert as_2d(np.zeros(shape, np.float32), allow_wide=True)[0].shape == shape


@pytest.mark.parametrize("x", [np.zeros(0), np.zeros((0, 2)), np.zeros((5, 0)), np.zeros((2, 3, 4)),
                               np.float32(1.0), np.zeros(10, np.int16), np.zeros(4, complex)])
def test_as_2d_refuses_bad(x):
    with pytest.raises(MixinError):
        as_2d(x)


def test_check_finite():
    x = np.zeros((100, 3), np.float32)
    check_finite(x, "ok")
    x[7, 2] = np.nan
    x[50, 0] = np.inf
    x[60, 1] = np.nan
    with pytest.raises(MixinError) as e:
        check_finite(x, "song.wav")
    msg = str(e.value)
    assert msg.startswith("song.wav") and "3 " in msg and "sample 7" in msg and "channel 2" in msg
    assert "NaN" in msg and "Inf" in msg
    with pytest.raises(MixinError) as e:
        check_finite(np.array([0.0, 0.0, -np.inf]), "mono")
    assert "sample 2" in str(e.value) and "channel" not in str(e.value)


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------

# Largest read-back error for each output sample format (x in [-0.99, 0.99]).
TOLERANCE = {"float32": 0.0, "pcm16": 1.0 / 32768, "pcm24": 1.0 / 2 ** 23}


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("fmt", sorted(SUBTYPES))
def test_wav_round_trip(tmp_path, channels, fmt):
    x = noise(3001, channels)
    p = tmp_path / "out.wav"
    write_audio(p, x, 44100, subtype=SUBTYPES[fmt])
    info = probe(p)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, channels, 3001,
                                                                          SUBTYPES[fmt])
    y, sr = read_audio(p)
    assert sr == 44100 and y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= TOLERANCE[fmt]
    assert no_temp_files(tmp_path) == []


def test_subtype_keys_accepted(tmp_path):
    write_audio(tmp_path / "a.wav", noise(100, 1), 44100, subtype="pcm16")
    assert probe(tmp_path / "a.wav").subtype == "PCM_16"


def test_mono_1d_and_one_frame_stereo(tmp_path):
    x = noise(500, 1)[:, 0]
    write_audio(tmp_path / "m.wav", x, 44100)
    y, _ = read_audio(tmp_path / "m.wav")
    assert y.shape == (500, 1) and np.array_equal(y[:, 0], x)
    one = np.array([[0.25, -0.5]], np.float32)        # a single stereo frame
    write_audio(tmp_path / "one.wav", one, 44100)
    y, _ = read_audio(tmp_path / "one.wav")
    assert np.array_equal(y, one)


@pytest.mark.parametrize("sr,subtype,channels", [(48000, "PCM_24", 2), (48000, "PCM_16", 1),
                                                 (8000, "PCM_16", 1), (96000, "PCM_24", 2)])
def test_flac_and_rates_round_trip(tmp_path, sr, subtype, channels):
    x = noise(sr // 10 + 3, channels)
    for ext in ("flac", "wav"):
        p = tmp_path / f"a.{ext}"
        write_audio(p, x, sr, subtype=subtype)
        info = probe(p)
        assert info.format == ext.upper() and info.samplerate == sr and info.frames == len(x)
        y, r = read_audio(p)
        assert r == sr and y.shape == x.shape
        assert np.max(np.abs(y - x)) <= TOLERANCE["pcm16" if subtype == "PCM_16" else "pcm24"]


def snr_db(ref, est):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((est - ref).astype(np.float64) ** 2))


def tones(n, sr, channels=2, freqs=(220.0, 440.0, 1000.0, 3000.0)):
    t = np.arange(n) / sr
    x = np.stack([sum(np.sin(2 * np.pi * f * (1 + 0.01 * c) * t + c) for f in freqs)
                  for c in range(channels)], axis=1)
    return (0.5 * x / len(freqs)).astype(np.float32)


def test_ogg_vorbis_round_trip(tmp_path):
    x = tones(44100, 44100)
    p = tmp_path / "a.ogg"
    write_audio(p, x, 44100, subtype=None)           # the container's default codec: Vorbis
    info = probe(p)
    assert (info.format, info.subtype, info.frames, info.channels) == ("OGG", "VORBIS", 44100, 2)
    y, _ = read_audio(p)
    assert y.shape == x.shape and snr_db(x, y) > 20


@pytest.mark.skipif(not mp3_writable(), reason="this libsndfile cannot write MP3")
def test_mp3_round_trip(tmp_path):
    x = tones(44100, 44100)
    p = tmp_path / "a.mp3"
    write_audio(p, x, 44100, subtype=None)
    info = probe(p)
    assert (info.format, info.frames, info.channels) == ("MP3", 44100, 2)
    y, _ = read_audio(p)
    assert y.shape == x.shape and snr_db(x, y) > 15   # lossy, but gapless: no offset


def test_pcm_clips_instead_of_wrapping(tmp_path):
    x = np.array([[1.5], [1.0], [0.5], [-1.0], [-1.7], [3.0]], np.float32)
    for st, lsb in (("PCM_16", 1 / 32768), ("PCM_24", 1 / 2 ** 23)):
        p = tmp_path / f"clip_{st}.wav"
        with AtomicWriter(p, 44100, 1, subtype=st) as w:
            w.write(x)
        assert w.clipped == 3
        y, _ = read_audio(p)
        np.testing.assert_allclose(y[:, 0], np.clip(x[:, 0], -1, 1), atol=lsb)
        assert y[0, 0] > 0.99 and y[4, 0] == -1.0 and y[5, 0] > 0.99     # no sign flip
    p = tmp_path / "float.wav"
    write_audio(p, x, 44100, subtype="FLOAT")                            # float keeps overs
    assert np.array_equal(read_audio(p)[0], x)


def test_iter_blocks(tmp_path):
    x = noise(10007, 3)
    p = sf_write(tmp_path / "a.wav", x)
    blocks = list(iter_blocks(p, 1000))
    assert [len(b) for b in blocks] == [1000] * 10 + [7]
    assert all(b.dtype == np.float32 and b.shape[1] == 3 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), x)
    for bad in (0, -1, 1.5, None, True):
        with pytest.raises(ValueError):
            iter_blocks(p, bad)


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------

RATE_PAIRS = [(44100, 48000), (48000, 44100), (8000, 44100), (44100, 8000), (96000, 44100),
              (44100, 96000), (22050, 44100), (11025, 44100), (32000, 44100), (44100, 44100)]


def test_resampled_length():
    assert resampled_length(44100, 44100, 48000) == 48000
    assert resampled_length(1, 44100, 48000) == 1
    assert resampled_length(1, 48000, 8000) == 0
    assert resampled_length(3, 48000, 8000) == 1                  # 0.5 rounds up
    assert resampled_length(100000, 96000, 44100) == 45938        # 45937.5 rounds up
    assert resampled_length(0, 8000, 44100) == 0
    for bad in ((-1, 44100, 48000), (10, 0, 48000), (10, 44100, -1), (1.5, 1, 1), (10, float("nan"), 1)):
        with pytest.raises(ValueError):
            resampled_length(*bad)


@pytest.mark.parametrize("in_rate,out_rate", RATE_PAIRS)
@pytest.mark.parametrize("n", [1, 2, 3, 999, 4096, 44101])
def test_resampler_exact_length(in_rate, out_rate, n):
    x = noise(n, 2)
    m = resampled_length(n, in_rate, out_rate)
    r = Resampler(in_rate, out_rate, 2, m)
    out = [r.process(x[i:i + 1000]) for i in range(0, n, 1000)]
    out.append(r.process(np.zeros((0, 2), np.float32), last=True))
    y = np.concatenate(out)
    assert y.shape == (m, 2) and y.dtype == np.float32 and np.isfinite(y).all()
    assert r.padded <= 2                                       # the length rule matches soxr's
    back = resample(y, out_rate, in_rate, out_frames=n)        # and the return trip restores n
    assert back.shape == (n, 2)


def test_resampler_trims_and_pads_to_out_frames():
    x = noise(1000, 1)
    for m in (0, 1, 500, 1088, 3000):
        r = Resampler(44100, 48000, 1, m)
        y = np.concatenate([r.process(x[:400]), r.process(x[400:], last=True)])
        assert y.shape == (m, 1)
        if m == 3000:
            assert r.padded > 1000 and not y[-r.padded:].any()
        assert r.finished
    with pytest.raises(ValueError):
        r.process(x)                            # after last=True


def test_resampler_zero_input_frames():
    """One sample at 96 kHz is 0 frames at 44.1 kHz; the way back must still give 1 frame."""
    assert resampled_length(1, 96000, 44100) == 0
    r = Resampler(44100, 96000, 2, 1)
    assert not r.finished
    y = r.process(np.zeros((0, 2), np.float32), last=True)
    assert y.shape == (1, 2) and r.finished


def test_resampler_rejects_bad_blocks():
    r = Resampler(44100, 48000, 2, 100)
    with pytest.raises(ValueError):
        r.process(np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError):
        r.process(np.zeros(10, np.float32))      # 1-D only when channels == 1
    for bad in ((0, 48000, 2, 10), (44100, 48000, 0, 10), (44100, 48000, 2, -1)):
        with pytest.raises(ValueError):
            Resampler(*bad)


@pytest.mark.parametrize("in_rate,out_rate", [(44100, 48000), (48000, 44100), (8000, 44100), (96000, 44100)])
def test_streaming_equals_whole_array(in_rate, out_rate):
    n = in_rate // 2 + 17
    x = noise(n, 2)
    whole = resample(x, in_rate, out_rate)
    ref = soxr.resample(x, in_rate, out_rate, quality="HQ")         # soxr's own one-shot call
    k = min(len(ref), len(whole))
    assert abs(len(ref) - len(whole)) <= 1
    np.testing.assert_allclose(whole[:k], ref[:k], atol=1e-6)
    for bs in (1, 777, 4096):
        nn = n if bs > 1 else 3000               # block size 1 on a short piece only
        m = resampled_length(nn, in_rate, out_rate)
        r = Resampler(in_rate, out_rate, 2, m)
        parts = [r.process(x[i:i + bs]) for i in range(0, nn, bs)]
        parts.append(r.process(x[:0], last=True))
        y = np.concatenate(parts)
        assert y.shape == (m, 2)
        np.testing.assert_allclose(y, resample(x[:nn], in_rate, out_rate), atol=1e-6)


def test_resample_round_trip_snr():
    """44.1k -> 48k -> 44.1k of a band-limited signal (tones up to 18 kHz)."""
    sr, n = 44100, 44100 * 2
    x = tones(n, sr, freqs=(110.0, 440.0, 1234.5, 5000.0, 9876.0, 15000.0, 18000.0))
    y = resample(resample(x, sr, 48000), 48000, sr, out_frames=n)
    assert y.shape == x.shape
    inner = slice(200, n - 200)               # the abrupt start/end of the tones is not band-limited
    assert snr_db(x[inner], y[inner]) > 70    # measured 74.7 dB
    assert snr_db(x, y) > 50                  # measured 57.7 dB including the edges


def test_resample_identity_is_pass_through():
    x = noise(1000, 2)
    r = Resampler(44100, 44100, 2, 1000)
    y = r.process(x[:600])
    assert np.shares_memory(y, x)              # no copy
    y2 = r.process(x[600:], last=True)
    assert np.array_equal(np.concatenate([y, y2]), x)
    y = resample(x[:, 0], 44100, 44100)
    assert y.shape == (1000,) and np.array_equal(y, x[:, 0])


def test_resample_six_channels_independent():
    x = noise(5000, 6)
    y = resample(x, 48000, 44100)
    for c in range(6):
        np.testing.assert_allclose(y[:, c], resample(x[:, c], 48000, 44100), atol=1e-6)


# --------------------------------------------------------------------------------------------
# Atomic writing
# --------------------------------------------------------------------------------------------

def test_atomic_writer_no_file_on_exception(tmp_path):
    p = tmp_path / "out.wav"
    with pytest.raises(RuntimeError, match="boom"):
        with AtomicWriter(p, 44100, 2) as w:
            w.write(noise(1000, 2))
            assert len(no_temp_files(tmp_path)) == 1      # the hidden temp file exists meanwhile
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_writer_keeps_existing_file_on_exception(tmp_path):
    p = tmp_path / "out.wav"
    old = noise(100, 1)
    write_audio(p, old, 44100)
    with pytest.raises(KeyboardInterrupt):
        with AtomicWriter(p, 44100, 1) as w:
            w.write(noise(5000, 1))
            raise KeyboardInterrupt
    assert np.array_equal(read_audio(p)[0], old)
    assert os.listdir(tmp_path) == ["out.wav"]


def test_atomic_writer_success_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "out.flac"
    with AtomicWriter(p, 48000, 2, subtype="pcm24") as w:
        assert not p.exists()                   # nothing at the final path until the end
        for i in range(5):
            w.write(noise(1000, 2))
    assert os.listdir(tmp_path) == ["out.flac"]
    assert probe(p).frames == 5000 and w.frames_written == 5000


def test_atomic_writer_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_audio(tmp_path / "a.wav", noise(10, 1), 44100)
    finally:
        os.umask(old)
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o644


def test_float_in_flac_refused(tmp_path):
    p = tmp_path / "a.flac"
    with pytest.raises(MixinError) as e:
        AtomicWriter(p, 44100, 2, subtype="FLOAT")
    assert_error(e, p, "FLAC", "FLOAT", "pcm16", "pcm24")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["a.xyz", "noext"])
def test_unknown_extension_refused(tmp_path, name):
    with pytest.raises(MixinError) as e:
        write_audio(tmp_path / name, noise(10, 1), 44100)
    assert_error(e, tmp_path / name, "extension")
    assert os.listdir(tmp_path) == []


def test_writer_bad_destination(tmp_path):
    with pytest.raises(MixinError) as e:
        write_audio(tmp_path / "missing" / "a.wav", noise(10, 1), 44100)
    assert_error(e, tmp_path / "missing", "does not exist")
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(MixinError) as e:
        write_audio(tmp_path / "d.wav", noise(10, 1), 44100)
    assert_error(e, tmp_path / "d.wav", "directory")


def test_writer_rejects_wrong_block_shape(tmp_path):
    with AtomicWriter(tmp_path / "a.wav", 44100, 2) as w:
        with pytest.raises(ValueError):
            w.write(np.zeros((10, 3), np.float32))
        w.write(np.zeros((10, 2), np.float32))
    assert probe(tmp_path / "a.wav").frames == 10


def test_wav_size_limit(tmp_path, monkeypatch):
    """Past the WAV size limit: RF64 when the length is known, else a clear error (never a corrupt WAV)."""
    monkeypatch.setattr(audio_write, "_WAV_MAX_DATA_BYTES", 8000)
    x = noise(2000, 2)                                   # 16000 bytes of float32
    p = tmp_path / "big.wav"
    write_audio(p, x, 44100)                             # write_audio passes frames=len(x)
    assert probe(p).format == "RF64" and np.array_equal(read_audio(p)[0], x)
    q = tmp_path / "big2.wav"
    with pytest.raises(MixinError) as e:
        with AtomicWriter(q, 44100, 2) as w:
            w.write(x[:500])
            w.write(x[500:])
    assert_error(e, q, "4 GiB")
    assert not q.exists() and no_temp_files(tmp_path) == []
    write_audio(tmp_path / "small.wav", x[:100], 44100)
    assert probe(tmp_path / "small.wav").format == "WAV"


# --------------------------------------------------------------------------------------------
# Output directory
# --------------------------------------------------------------------------------------------

def test_check_output_dir(tmp_path):
    check_output_dir(tmp_path)
    assert os.listdir(tmp_path) == []                    # the write test leaves nothing behind
    with pytest.raises(MixinError) as e:
        check_output_dir(tmp_path / "missing")
    assert_error(e, tmp_path / "missing", "does not exist")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(MixinError) as e:
        check_output_dir(f)
    assert_error(e, f, "not a directory")
    with pytest.raises(MixinError):
        check_output_dir(f / "sub")                       # a path under a regular file


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="running as root: chmod does not stop root from writing")
def test_check_output_dir_not_writable_chmod(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(MixinError) as e:
            check_output_dir(d)
        assert_error(e, d, "not writable")
    finally:
        d.chmod(0o700)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_check_output_dir_not_writable_even_for_root():
    """/proc is a directory nobody (root included) can create files in."""
    with pytest.raises(MixinError) as e:
        check_output_dir("/proc")
    assert_error(e, "/proc", "not writable")


# --------------------------------------------------------------------------------------------
# Bounded memory
# --------------------------------------------------------------------------------------------

def test_streaming_memory_is_bounded_by_block_size(tmp_path):
    """iter_blocks -> Resampler -> AtomicWriter never holds more than a few blocks (tracemalloc
    sees numpy's buffers): peak well under the 3.5 MB the 10 s file would take in memory."""
    import tracemalloc

    n = 10 * 44100
    p = tmp_path / "long.wav"
    with AtomicWriter(p, 44100, 2) as w:
        for i in range(0, n, 44100):
            w.write(noise(44100, 2))
    whole_bytes = n * 2 * 4
    m = resampled_length(n, 44100, 48000)
    tracemalloc.start()
    try:
        r = Resampler(44100, 48000, 2, m)
        total = 0
        with AtomicWriter(tmp_path / "out.wav", 48000, 2) as w:
            for b in iter_blocks(p, 4096):
                y = r.process(b)
                total += len(y)
                w.write(y)
            y = r.process(np.zeros((0, 2), np.float32), last=True)
            total += len(y)
            w.write(y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == m and probe(tmp_path / "out.wav").frames == m
    assert peak < whole_bytes / 8, f"peak {peak} bytes for a {whole_bytes}-byte file"


# --------------------------------------------------------------------------------------------
# Output formats, and inputs through ffmpeg
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt, want", [
    ("a.wav", None, "FLOAT"), ("a.WAV", "pcm16", "PCM_16"), ("a.flac", None, "PCM_24"),
    ("a.flac", "pcm16", "PCM_16"), ("a.aiff", None, "FLOAT"), ("a.w64", "pcm24", "PCM_24"),
    ("a.rf64", None, "FLOAT"), ("a.caf", None, "FLOAT"),
])
def test_output_subtype(name, fmt, want):
    assert audio.output_subtype(name, fmt) == want


@pytest.mark.parametrize("name, fmt, words", [
    ("a.flac", "float32", ("FLAC", "pcm16, pcm24")), ("a.mp3", None, ("cannot write .mp3",)),
    ("a.ogg", None, ("lossless",)), ("a.m4a", None, (".m4a",)), ("a", None, ("extension",)),
])
def test_output_subtype_refused(name, fmt, words):
    with pytest.raises(MixinError) as e:
        audio.output_subtype(name, fmt)
    assert_error(e, name, *words)


def test_decoded_is_the_file_itself_for_libsndfile(good_wav):
    assert audio.check_input(good_wav) == "sndfile"
    with audio.decoded(good_wav) as p:
        assert p == str(good_wav)


def test_unreadable_without_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_read, "ffmpeg_executable", lambda: None)
    p = tmp_path / "x.wma"
    p.write_bytes(b"0&\xb2u\x8ef\xcf\x11" + bytes(100))
    for f in (lambda: audio.check_input(p), lambda: audio.decoded(p).__enter__()):
        with pytest.raises(MixinError) as e:
            f()
        assert_error(e, p, "ffmpeg", "not on PATH")


@pytest.mark.skipif(audio.ffmpeg_executable() is None, reason="ffmpeg is not installed")
def test_decoded_through_ffmpeg_and_cleaned_up(tmp_path):
    import subprocess

    p = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=1000:sample_rate=22050:duration=0.5", "-ac", "1",
                    "-c:a", "aac", "-y", str(p)], check=True)
    assert audio.check_input(p) == "ffmpeg"
    temp = tmp_path / "tmp"
    temp.mkdir()
    with audio.decoded(p, tmpdir=temp) as q:
        info = probe(q)
        assert q != str(p) and os.path.dirname(q) == str(temp)
        assert info.samplerate == 22050 and info.channels == 1 and info.subtype == "FLOAT"
        x, _ = read_audio(q)
        assert 0.1 < np.abs(x).max() <= 1.0
    assert os.listdir(temp) == []
    with pytest.raises(MixinError) as e:  # errors about the copy name the input
        with audio.decoded(p, tmpdir=temp) as q:
            raise MixinError(f"{q}: 1 NaN sample")
    assert_error(e, p, "NaN")
    assert os.listdir(temp) == []
