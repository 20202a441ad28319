"""Tests of the --prepare-stems stage (mixin.training.stems) on small synthetic stem folders."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from scipy import signal

from mixin import layout
from mixin.errors import MixinError
from mixin.layout import SEGMENT_FILES, read_songs
from mixin.training.stems import LENGTH_TOLERANCE, classify, prepare_stems, split_songs
from mixin.training.render.synth import make_song, write_stem_folders

SR = 44100
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _write_song(folder, stems, sr=SR, subtype="PCM_16"):
    """Write {name: array [shape=(n, channels)]} as folder/name.wav."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in stems.items():
        sf.write(folder / f"{name}.wav", x, sr, subtype=subtype)
    return folder


def _read(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == SR
    return x


def _segment_dirs(data):
    return sorted(p.name for p in Path(data).iterdir() if p.is_dir())


def _check_sums(data):
    """In every segment folder: mix == harmonic + percussive (+ vocal); same lengths."""
    n = 0
    for d in _segment_dirs(data):
        kind = layout.parse_segment_folder(d).kind
        files = {f: _read(Path(data) / d / f) for f in SEGMENT_FILES[kind]}
        assert sorted(p.name for p in (Path(data) / d).iterdir()) == sorted(SEGMENT_FILES[kind])
        expected = files["harmonic.wav"] + files["percussive.wav"]
        if kind == "v":
            expected = expected + files["vocal.wav"]
        np.testing.assert_allclose(files["mix.wav"], expected, atol=1e-6, err_msg=d)
        n += len(files)
    return n


@pytest.fixture(scope="module")
def synth35(tmp_path_factory):
    """Two synthetic songs of 35 s (MUSDB18-HQ layout: drums, bass, other, vocals)."""
    root = tmp_path_factory.mktemp("synth35")
    write_stem_folders(root / "stems", 2, 35.0, seed=0)
    return root / "stems"


def test_e2e_example_8_folders_28_files(synth35, tmp_path):
    data = tmp_path / "data"
    summary = prepare_stems([synth35], data, segment_duration=10, segment_offset=1,
                            segment_limit=3, track_limit=2)
    dirs = _segment_dirs(data)
    # literal names: the on-disk layout that existing data dirs have (mixin.layout builds them)
    assert dirs == ["0000001nov", "0000001v", "0000002nov", "0000002v",
                    "0010001nov", "0010001v", "0010002nov", "0010002v"]
    assert (summary["songs"], summary["segments"], summary["folders"], summary["files"]) == (2, 4, 8, 28)
    n_files = 0
    for d in dirs:
        for f in (data / d).iterdir():
            info = sf.info(f)
            assert (info.samplerate, info.frames, info.channels, info.subtype) == (SR, 10 * SR, 2, "FLOAT")
            n_files += 1
    assert n_files == 28
    assert _check_sums(data) == 28

    # the segment content is the right slice of the right stems: bass + other -> harmonic
    song = {s: _read(synth35 / "song_001" / f"{s}.wav") for s in ("drums", "bass", "other", "vocals")}
    sl = slice(2 * 10 * SR, 3 * 10 * SR)  # segment 2
    np.testing.assert_allclose(_read(data / "0010002v" / "percussive.wav"), song["drums"][sl], atol=1e-6)
    np.testing.assert_allclose(_read(data / "0010002v" / "vocal.wav"), song["vocals"][sl], atol=1e-6)
    np.testing.assert_allclose(_read(data / "0010002nov" / "harmonic.wav"),
                               song["bass"][sl] + song["other"][sl], atol=1e-6)

    doc = read_songs(data)
    assert [s["n_segments"] for s in doc["songs"]] == [2, 2]
    assert [s["segments"] for s in doc["songs"]] == [[1, 2], [1, 2]]
    assert [s["duration"] for s in doc["songs"]] == [35.0, 35.0]
    assert [Path(s["source"]).name for s in doc["songs"]] == ["song_000", "song_001"]
    assert not any(s["augmented"] for s in doc["songs"])
    assert doc["songs"][0]["files"]["harmonic"] == ["bass.wav", "other.wav"]
    assert doc["split"] == split_songs(2, 0)


def test_last_full_segment_included_partial_dropped(tmp_path):
    stems = make_song(3.5, seed=1)
    _write_song(tmp_path / "stems" / "a", stems)
    summary = prepare_stems(tmp_path / "stems", tmp_path / "data", segment_duration=1.0)
    # 3 full segments (0, 1, 2; the original stopped at 1); the last 0.5 s is dropped
    assert summary["segments"] == 3
    assert _segment_dirs(tmp_path / "data") == [layout.segment_name(0, i, k) for i in range(3)
                                                for k in ("nov", "v")]
    np.testing.assert_allclose(_read(tmp_path / "data" / "0000002v" / "percussive.wav"),
                               _read(tmp_path / "stems" / "a" / "drums.wav")[2 * SR: 3 * SR], atol=1e-6)


def test_classification_rules():
    assert classify("drums.wav") == "percussive"
    assert classify("Drum_Overheads.FLAC") == "percussive"
    assert classify("drum_mix.wav") == "percussive"     # "drum" is decided first
    assert classify("lead vocals.wav") == "vocal"
    assert classify("mixture.wav") == "ignore"
    assert classify("bass.wav") == "harmonic"
    assert classify("other.flac") == "harmonic"
    assert classify(Path("Drummer Boy") / "bass.wav") == "harmonic"  # the name only, not the folder


def test_mixture_ignored_missing_vocals_skipped_numbering(tmp_path, caplog):
    stems = tmp_path / "stems"
    a = make_song(2.0, seed=1)
    b = make_song(2.0, seed=2)
    # song "a": a loud unrelated mixture.wav that must be ignored
    _write_song(stems / "a", {**a, "mixture": np.full_like(a["drums"], 0.5)})
    _write_song(stems / "b_novocals", {k: v for k, v in b.items() if k != "vocals"})
    _write_song(stems / "c", {**b, "bass": a["bass"]})
    with caplog.at_level(logging.WARNING, logger="mixin"):
        summary = prepare_stems([stems], tmp_path / "data", segment_duration=1.0)
    assert any("b_novocals" in r.getMessage() and "vocal" in r.getMessage() for r in caplog.records)
    assert summary["skipped"] == [str(stems / "b_novocals")]
    assert summary["songs"] == 2
    # songs numbered among the usable ones: a -> 000, c -> 001
    assert _segment_dirs(tmp_path / "data") == [layout.segment_name(s, i, k) for s in (0, 1)
                                                for i in (0, 1) for k in ("nov", "v")]
    mix = _read(tmp_path / "data" / "0000001v" / "mix.wav")
    expected = sum(x[SR: 2 * SR] for x in (a["drums"], a["bass"], a["other"], a["vocals"]))
    np.testing.assert_allclose(mix, expected, atol=2e-4)  # 16-bit stems vs float synth
    assert _check_sums(tmp_path / "data") == 4 * 7
    assert [Path(s["source"]).name for s in read_songs(tmp_path / "data")["songs"]] == ["a", "c"]


def test_no_usable_song_missing_and_empty_dirs(tmp_path):
    a = make_song(1.0, seed=1)
    _write_song(tmp_path / "stems" / "x", {"drums": a["drums"], "other": a["other"]})
    with pytest.raises(MixinError, match="no usable song"):
        prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=0.5)
    with pytest.raises(MixinError, match="not found"):
        prepare_stems([tmp_path / "nope"], tmp_path / "data")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no audio")
    with pytest.raises(MixinError, match="no audio files"):
        prepare_stems([tmp_path / "empty"], tmp_path / "data")
    with pytest.raises(MixinError, match="stem"):
        prepare_stems([], tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_unreadable_audio_names_the_file(tmp_path):
    a = make_song(1.0, seed=1)
    song = _write_song(tmp_path / "stems" / "s", a)
    (song / "vocals.wav").write_bytes(b"RIFF garbage, not audio")
    with pytest.raises(MixinError, match="vocals.wav"):
        prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=0.5)
    assert not any((tmp_path / "data").glob("0*"))


def test_resampling_48k_and_mixed_rates(tmp_path):
    a = make_song(2.2, sr=48000, seed=3)
    _write_song(tmp_path / "stems" / "s48", a, sr=48000, subtype="FLOAT")
    # a song with one stem at 48 kHz and the others at 44.1 kHz
    b = make_song(2.2, seed=4)
    _write_song(tmp_path / "stems" / "t_mixed", {k: v for k, v in b.items() if k != "drums"})
    sf.write(tmp_path / "stems" / "t_mixed" / "drums.wav", soxr.resample(b["drums"], SR, 48000),
             48000, subtype="FLOAT")
    summary = prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=1.0)
    assert summary["segments"] == 4
    perc = _read(tmp_path / "data" / "0000001v" / "percussive.wav")
    assert perc.shape == (SR, 2)
    expected = soxr.resample(a["drums"], 48000, SR)[SR: 2 * SR]
    np.testing.assert_allclose(perc, expected, atol=1e-5)
    # the 48 kHz drums of the mixed song, back at 44.1 kHz, match the original closely
    perc_b = _read(tmp_path / "data" / "0010001v" / "percussive.wav")
    lp = signal.butter(8, 16000, fs=SR, output="sos")  # the round trip drops > 20 kHz
    d = signal.sosfiltfilt(lp, perc_b - b["drums"][SR: 2 * SR], axis=0)
    err = np.sqrt(np.mean(d ** 2) / np.mean(signal.sosfiltfilt(lp, perc_b, axis=0) ** 2))
    assert err < 0.01, err
    assert _check_sums(tmp_path / "data") == 4 * 7


def test_length_mismatch_error_and_tolerance(tmp_path):
    a = make_song(2.0, seed=1)
    bad = dict(a, vocals=a["vocals"][: -SR // 2])
    _write_song(tmp_path / "bad" / "song", bad)
    with pytest.raises(MixinError, match=r"song.*differ in length.*vocals.wav 66150"):
        prepare_stems([tmp_path / "bad"], tmp_path / "data", segment_duration=0.5)
    assert not any((tmp_path / "data").glob("0*"))

    # within the tolerance: accepted, the short stem zero-padded
    ok = dict(a, vocals=a["vocals"][:-LENGTH_TOLERANCE])
    _write_song(tmp_path / "ok" / "song", ok)
    prepare_stems([tmp_path / "ok"], tmp_path / "data", segment_duration=1.0)
    v = _read(tmp_path / "data" / "0000001v" / "vocal.wav")
    assert v.shape == (SR, 2)
    assert np.all(v[-LENGTH_TOLERANCE:] == 0)


def test_mono_and_mixed_channels(tmp_path):
    a = make_song(1.0, seed=1, channels=1)
    _write_song(tmp_path / "mono" / "s", a)
    prepare_stems([tmp_path / "mono"], tmp_path / "d1", segment_duration=1.0)
    assert sf.info(tmp_path / "d1" / "0000000v" / "mix.wav").channels == 1
    b = make_song(1.0, seed=2)
    _write_song(tmp_path / "mixed" / "s", {**b, "vocals": a["vocals"]})  # mono vocals, stereo rest
    prepare_stems([tmp_path / "mixed"], tmp_path / "d2", segment_duration=1.0)
    v = _read(tmp_path / "d2" / "0000000v" / "vocal.wav")
    assert v.shape == (SR, 2)
    np.testing.assert_allclose(v[:, 0], v[:, 1])


def test_no_overwrite_without_flag_and_stale_removal(tmp_path):
    _write_song(tmp_path / "stems" / "s", make_song(3.0, seed=1))
    data = tmp_path / "data"
    prepare_stems([tmp_path / "stems"], data, segment_duration=1.0)
    assert len(_segment_dirs(data)) == 6
    (data / "notes.txt").write_text("mine")
    before = (data / "0000000v" / "mix.wav").read_bytes()
    with pytest.raises(MixinError, match="--overwrite"):
        prepare_stems([tmp_path / "stems"], data, segment_duration=1.0)
    with pytest.raises(MixinError, match="--overwrite"):  # different segments, same data dir
        prepare_stems([tmp_path / "stems"], data, segment_duration=1.0, segment_offset=2)
    assert (data / "0000000v" / "mix.wav").read_bytes() == before
    # with the flag: replaced; folders of the old preparation it does not write are removed
    prepare_stems([tmp_path / "stems"], data, segment_duration=0.5, segment_limit=2, overwrite=True)
    assert _segment_dirs(data) == ["0000000nov", "0000000v", "0000001nov", "0000001v"]
    assert sf.info(data / "0000000v" / "mix.wav").frames == SR // 2
    assert (data / "notes.txt").read_text() == "mine"
    assert read_songs(data)["segment_samples"] == SR // 2
    assert not list(data.glob(".tmp*"))


def test_data_dir_inside_stem_dir_is_not_a_song(tmp_path):
    _write_song(tmp_path / "s", make_song(1.0, seed=1))
    prepare_stems([tmp_path], tmp_path / "data", segment_duration=1.0)
    prepare_stems([tmp_path], tmp_path / "data", segment_duration=0.5, overwrite=True)
    assert [Path(s["source"]).name for s in read_songs(tmp_path / "data")["songs"]] == ["s"]


def test_track_limit_and_order(tmp_path):
    for name, seed in (("b", 2), ("a", 1), ("c", 3)):
        _write_song(tmp_path / "stems" / name, make_song(1.0, seed=seed))
    prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=1.0, track_limit=2)
    songs = read_songs(tmp_path / "data")["songs"]
    assert [Path(s["source"]).name for s in songs] == ["a", "b"]
    assert _segment_dirs(tmp_path / "data") == ["0000000nov", "0000000v", "0010000nov", "0010000v"]


@pytest.mark.parametrize("kwargs", [
    {"segment_duration": 0}, {"segment_duration": -1}, {"segment_duration": "x"},
    {"segment_offset": -1}, {"segment_offset": 2, "segment_limit": 2}, {"track_limit": 0},
    {"track_limit": -2}, {"augment": -1}, {"segment_limit": 1.5},
])
def test_bad_arguments(tmp_path, kwargs):
    _write_song(tmp_path / "stems" / "s", make_song(1.0, seed=1))
    with pytest.raises(MixinError):
        prepare_stems([tmp_path / "stems"], tmp_path / "data", **kwargs)
    assert not (tmp_path / "data").exists()


def test_too_short_songs(tmp_path, caplog):
    _write_song(tmp_path / "stems" / "s", make_song(1.0, seed=1))
    with pytest.raises(MixinError, match="no segment"):
        prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=2.0)
    assert not (tmp_path / "data").exists()
    # a song too short for any segment is skipped before numbering: the next one is song 000
    _write_song(tmp_path / "stems" / "t", make_song(2.0, seed=2))
    with caplog.at_level(logging.WARNING, logger="mixin"):
        summary = prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=2.0)
    assert any("too short" in r.getMessage() and "stems/s" in r.getMessage() for r in caplog.records)
    assert summary["skipped"] == [str(tmp_path / "stems" / "s")]
    assert _segment_dirs(tmp_path / "data") == ["0000000nov", "0000000v"]


@pytest.mark.parametrize("n", range(1, 13))
def test_split_songs(n):
    s = split_songs(n, seed=0)
    assert s == split_songs(n, seed=0)
    all_ = s["train"] + s["validation"] + s["test"]
    assert sorted(all_) == list(range(n))  # a partition by song
    assert len(s["train"]) >= 1
    if n >= 3:
        assert len(s["validation"]) >= 1 and len(s["test"]) >= 1
    if n >= 5:
        assert len(s["train"]) >= 0.6 * n
    if n == 2:
        assert len(s["validation"]) == 1
    if n >= 10:
        assert {split_songs(n, seed=k)["test"][0] for k in range(6)} != {s["test"][0]}


def test_split_songs_bad():
    with pytest.raises(MixinError):
        split_songs(0)


@pytest.fixture(scope="module")
def five_songs(tmp_path_factory):
    """Five short songs whose stems carry distinct material."""
    root = tmp_path_factory.mktemp("five")
    for i in range(5):
        _write_song(root / "stems" / f"song{i}", make_song(2.0 + 0.25 * i, seed=10 + i), subtype="FLOAT")
    return root / "stems"


def test_augmentation_uses_training_songs_and_is_deterministic(five_songs, tmp_path):
    kw = dict(segment_duration=0.5, augment=4, seed=3)
    summary = prepare_stems([five_songs], tmp_path / "d1", **kw)
    assert summary["augmented"] == 4 and summary["songs"] == 5
    doc = read_songs(tmp_path / "d1")
    songs = doc["songs"]
    assert len(songs) == 9
    real_split = split_songs(5, 3)
    assert doc["split"]["validation"] == real_split["validation"]
    assert doc["split"]["test"] == real_split["test"]
    assert doc["split"]["train"] == real_split["train"] + [5, 6, 7, 8]
    for s in songs[5:]:
        assert s["augmented"] and s["split"] == "train" and s["source"] is None
        used = [s["remix"][r]["song"] for r in ("percussive", "vocal", "harmonic")]
        assert set(used) <= set(real_split["train"])
        assert len(set(used)) == 3  # three training songs: three different ones
        assert all(abs(s["remix"][r]["gain_db"]) <= 6 for r in s["remix"])
        assert s["n_segments"] == len(s["segments"]) > 0
    # the audio is what songs.json says: source stem, rolled by the offset, with the gain
    s = songs[5]
    p = s["remix"]["percussive"]
    drums = _read(five_songs / f"song{p['song']}" / "drums.wav")
    rolled = np.roll(drums, -p["offset"], axis=0) * 10 ** (p["gain_db"] / 20)
    seg = _read(tmp_path / "d1" / "0050000v" / "percussive.wav")
    seam = len(drums) - p["offset"]
    ok = np.abs(np.arange(len(seg)) - seam) > 0.02 * SR  # away from the faded wrap point
    np.testing.assert_allclose(seg[ok], rolled[: len(seg)][ok], atol=1e-5)
    assert _check_sums(tmp_path / "d1") == 7 * summary["segments"]

    # deterministic from the seed; another seed remixes differently
    prepare_stems([five_songs], tmp_path / "d2", **kw)
    assert read_songs(tmp_path / "d2")["songs"][5:] == songs[5:]
    np.testing.assert_array_equal(_read(tmp_path / "d1" / "0070000v" / "mix.wav"),
                                  _read(tmp_path / "d2" / "0070000v" / "mix.wav"))
    prepare_stems([five_songs], tmp_path / "d3", **dict(kw, seed=4))
    assert [s.get("remix") for s in read_songs(tmp_path / "d3")["songs"][5:]] != [s["remix"] for s in songs[5:]]


def test_augmentation_needs_two_training_songs(five_songs, tmp_path):
    with pytest.raises(MixinError, match="at least 2 training songs"):
        prepare_stems([five_songs], tmp_path / "d", segment_duration=0.5, track_limit=3, augment=1)
    assert not (tmp_path / "d").exists()


def test_named_split_wider_gains_short_remixes(five_songs, tmp_path):
    summary = prepare_stems([five_songs], tmp_path / "d", segment_duration=0.5, augment=6, seed=1,
                            validation_songs=["song2"], augment_gain_db=15, augment_segments=1)
    doc = read_songs(tmp_path / "d")
    assert doc["split"] == {"train": [0, 1, 3, 4, 5, 6, 7, 8, 9, 10], "validation": [2], "test": []}
    assert doc["augment_gain_db"] == 15 and doc["augment_segments"] == 1
    remixes = doc["songs"][5:]
    gains = [p["gain_db"] for s in remixes for p in s["remix"].values()]
    assert max(abs(g) for g in gains) <= 15 and max(abs(g) for g in gains) > 6  # wider than default
    for s in remixes:
        assert s["n_segments"] == 1  # real songs of 2-3 s would give 4-6 segments of 0.5 s
        assert 2 not in [p["song"] for p in s["remix"].values()]  # held-out song never remixed
    assert all(s["n_segments"] >= 4 for s in doc["songs"][:5])
    assert _check_sums(tmp_path / "d") == 7 * summary["segments"]
    # named test songs too; names are checked before anything is written
    prepare_stems([five_songs], tmp_path / "e", segment_duration=1.0, segment_limit=1,
                  validation_songs=["song0"], test_songs=["song4", "song3"])
    assert read_songs(tmp_path / "e")["split"] == {"train": [1, 2], "validation": [0], "test": [3, 4]}


@pytest.mark.parametrize("kwargs, match", [
    (dict(validation_songs=["nosuch"]), "no song folder named 'nosuch'"),
    (dict(validation_songs=["song1"], test_songs=["song1"]), "both validation and test"),
    (dict(validation_songs=["song0", "song1", "song2"], test_songs=["song3", "song4"]), "none is left"),
    (dict(augment=1, augment_gain_db=-1), "between 0 and 40 dB"),
    (dict(augment=1, augment_gain_db=float("nan")), "between 0 and 40 dB"),
    (dict(augment=1, augment_segments=0), "augment segments"),
])
def test_named_split_and_augment_bad(five_songs, tmp_path, kwargs, match):
    with pytest.raises(MixinError, match=match):
        prepare_stems([five_songs], tmp_path / "d", segment_duration=1.0, **kwargs)
    assert not (tmp_path / "d").exists()


def test_songs_json_is_valid_json_with_split_per_song(five_songs, tmp_path):
    prepare_stems([five_songs], tmp_path / "d", segment_duration=1.0, segment_limit=1)
    doc = json.loads(layout.songs_json(tmp_path / "d").read_text())
    for name, idx in doc["split"].items():
        for i in idx:
            assert doc["songs"][i]["split"] == name
    assert all(s["folders"] == [layout.segment_name(s["index"], 0, k) for k in ("v", "nov")]
               for s in doc["songs"])


def test_read_songs_missing(tmp_path):
    with pytest.raises(MixinError, match="prepare-stems"):
        read_songs(tmp_path)


@pytest.fixture
def shared_stems():
    d = SHARED / "stems"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


def test_shared_stems_one_segment(shared_stems, tmp_path):
    summary = prepare_stems([shared_stems], tmp_path / "data", track_limit=1, segment_limit=1,
                            segment_duration=5)
    assert summary["songs"] == 1 and summary["segments"] == 1
    assert _segment_dirs(tmp_path / "data") == ["0000000nov", "0000000v"]
    for f in (tmp_path / "data" / "0000000v").iterdir():
        info = sf.info(f)
        assert (info.samplerate, info.frames, info.channels) == (SR, 5 * SR, 2)
    assert _check_sums(tmp_path / "data") == 7
    song = read_songs(tmp_path / "data")["songs"][0]
    assert Path(song["source"]).parent == shared_stems.resolve()
    assert song["duration"] > 60
