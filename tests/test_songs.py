"""The one reader of song folders and its naming rule."""

import numpy as np
import pytest
import soundfile as sf

from mixin import songs
from mixin.errors import MixinError
from mixin.metrics import auto_offset

SR = 44100


def write(folder, names, seconds=2.0, channels=2, sr=SR):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        x = np.full((int(seconds * sr), channels), 0.01 * (i + 1), np.float32)
        sf.write(folder / name, x, sr, subtype="FLOAT")
    return folder


@pytest.mark.parametrize("name, source", [("drums.wav", "percussive"), ("Drums L.flac", "percussive"),
                                          ("vocals.wav", "vocal"), ("lead vocal.wav", "vocal"),
                                          ("mixture.wav", "ignore"), ("bass.wav", "harmonic"),
                                          ("other.flac", "harmonic"), ("Keys.wav", "harmonic")])
def test_one_naming_rule_reads_musdb_and_band_names(name, source):
    assert songs.classify(name) == source


def test_musdb_root_names_need_and_sums(tmp_path):
    root = tmp_path / "musdb"
    write(root / "train" / "A - One", ["drums.wav", "bass.wav", "other.wav", "vocals.wav", "mixture.wav"])
    write(root / "test" / "B - Two", ["drums.wav", "other.wav"])
    found = songs.find_songs([root])
    assert [s.name for s in found] == ["A - One", "B - Two"]
    a = found[0]
    assert [p.rsplit("/", 1)[1] for p in a.files["harmonic"]] == ["bass.wav", "other.wav"]
    refs, sr = songs.read_sources(a)
    assert sr == SR and refs["harmonic"].shape == (2 * SR, 2)
    np.testing.assert_allclose(refs["harmonic"], 0.02 + 0.03, rtol=1e-6)  # bass (i=1) + other (i=2)
    refs_b, _ = songs.read_sources(found[1], mono=True)
    assert refs_b["vocal"].shape == (2 * SR, 1) and not refs_b["vocal"].any()  # absent: silent
    assert [s.name for s in songs.find_songs([root], ["B - Two"])] == ["B - Two"]
    with pytest.raises(MixinError, match="has no vocals stem"):
        songs.find_songs([root], need=("vocal",))
    with pytest.raises(MixinError, match=r"song\(s\) not found: C \(available: A - One, B - Two\)"):
        songs.find_songs([root], ["C"])


def test_bad_folders(tmp_path):
    with pytest.raises(MixinError, match="stems folder not found"):
        songs.find_songs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixinError, match="no songs found"):
        songs.find_songs([tmp_path / "empty"])
    write(tmp_path / "r1" / "S", ["drums.wav"])
    write(tmp_path / "r2" / "S", ["drums.wav"])
    with pytest.raises(MixinError, match="two songs named 'S'"):
        songs.find_songs([tmp_path / "r1", tmp_path / "r2"])
    write(tmp_path / "rates" / "T", ["drums.wav"])
    write(tmp_path / "rates" / "T", ["other.wav"], sr=48000)
    with pytest.raises(MixinError, match="at 48000 Hz"):
        songs.read_sources(songs.find_songs([tmp_path / "rates"])[0])


def test_auto_offset_ignores_a_target_that_is_never_active():
    n = 10 * SR
    drums = np.zeros((n, 1), np.float32)
    drums[6 * SR:] = 0.1
    refs = {"harmonic": np.full((n, 1), 0.1, np.float32), "percussive": drums,
            "vocal": np.zeros((n, 1), np.float32)}
    assert auto_offset(refs, SR, 3.0) == 6
