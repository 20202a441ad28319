"""Tests of mixin.layout: the names of segment folders, songs.json and the HDF5 files."""

from pathlib import Path

import pytest

from mixin import layout
from mixin.errors import MixinError


def test_segment_names_round_trip():
    for song in (0, 7, 42, 999, 1000, 12345):
        for segment in (0, 1, 10, 9999):
            for kind in layout.KINDS:
                name = layout.segment_name(song, segment, kind)
                assert layout.parse_segment_folder(name) == (song, segment, kind)
                folder = layout.segment_folder("data", song, segment, kind)
                assert folder == Path("data", name)
                assert layout.parse_segment_folder(folder) == (song, segment, kind)


def test_names_on_disk_are_unchanged():
    """The layout of existing data dirs (the original MiXiN's names): must not change."""
    assert layout.segment_name(1, 2, "v") == "0010002v"
    assert layout.segment_name(0, 0, "nov") == "0000000nov"
    assert layout.parse_segment_folder("0120034nov") == layout.SegmentName(12, 34, "nov")
    assert layout.segment_file("data/0010002v", "mix") == Path("data/0010002v/mix.wav")
    assert layout.SEGMENT_FILES == {"v": ("mix.wav", "harmonic.wav", "percussive.wav", "vocal.wav"),
                                    "nov": ("mix.wav", "harmonic.wav", "percussive.wav")}
    assert layout.songs_json("data") == Path("data/songs.json")
    assert layout.hdf5_path("data", "vocal") == Path("data/data_vocal.hdf5")
    assert Path("data_vocal.hdf5").match(layout.HDF5_GLOB)


@pytest.mark.parametrize("name", ["0010002", "001002v", "0010002x", "0010002vv", "a0010002v",
                                  "0010002v.tmp", ".tmp-0010002v-abc", "songs.json", ""])
def test_other_names_are_not_segments(name):
    assert layout.parse_segment_folder(name) is None


@pytest.mark.parametrize("args", [(0, 10000, "v"), (-1, 0, "v"), (0, -1, "nov"), (0, 0, "x")])
def test_unnameable_segments_are_refused(args):
    with pytest.raises(ValueError):
        layout.segment_name(*args)


def test_read_songs(tmp_path):
    with pytest.raises(MixinError, match="songs.json missing.*--prepare-stems"):
        layout.read_songs(tmp_path)
    layout.songs_json(tmp_path).write_text("{not json")
    with pytest.raises(MixinError, match="cannot read"):
        layout.read_songs(tmp_path)
    layout.songs_json(tmp_path).write_text('{"songs": []}')
    with pytest.raises(MixinError, match="split"):
        layout.read_songs(tmp_path)
    layout.songs_json(tmp_path).write_text('{"songs": [], "split": {"train": []}}')
    assert layout.read_songs(tmp_path)["split"] == {"train": []}
