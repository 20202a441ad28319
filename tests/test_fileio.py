"""Tests of mixin.io.files: atomic writes of non-audio files."""

import json
import os

import pytest

from mixin.io import files as fileio


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_writes_text_bytes_json_and_copies(tmp_path):
    fileio.write_text(tmp_path / "a.csv", "x,y\r\n1,2\n")
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\r\n1,2\n"  # no newline translation
    fileio.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    fileio.write_json(tmp_path / "c.json", {"b": 1, "a": [1.5, None]}, sort_keys=True)
    assert (tmp_path / "c.json").read_text() == '{\n "a": [\n  1.5,\n  null\n ],\n "b": 1\n}\n'
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": [1.5, None], "b": 1}
    fileio.copy_file(tmp_path / "b.bin", tmp_path / "d.bin")
    assert (tmp_path / "d.bin").read_bytes() == b"\x00\x01"
    fileio.write_text(tmp_path / "a.csv", "replaced")
    assert (tmp_path / "a.csv").read_text() == "replaced"
    assert _names(tmp_path) == ["a.csv", "b.bin", "c.json", "d.bin"]  # no temporary file left


def test_error_leaves_no_temp_file_and_the_old_destination(tmp_path):
    dst = tmp_path / "state.json"
    dst.write_text("old")
    with pytest.raises(RuntimeError, match="half way"):
        with fileio.atomic_open(dst) as f:
            f.write("partial new cont")
            f.flush()
            raise RuntimeError("half way")
    assert dst.read_text() == "old"
    assert _names(tmp_path) == ["state.json"]
    with pytest.raises(TypeError):  # json.dumps fails before anything is written
        fileio.write_json(dst, {"x": object()})
    assert dst.read_text() == "old" and _names(tmp_path) == ["state.json"]
    with pytest.raises(KeyboardInterrupt):  # interrupted writers clean up too
        with fileio.atomic_path(tmp_path / "model.h5") as tmp:
            tmp.write_bytes(b"half a model")
            raise KeyboardInterrupt
    assert _names(tmp_path) == ["state.json"]  # no destination, no temporary file


def test_error_without_an_old_destination_creates_none(tmp_path):
    with pytest.raises(ValueError):
        with fileio.atomic_open(tmp_path / "new.png", "wb") as f:
            f.write(b"\x89PNG")
            raise ValueError
    assert _names(tmp_path) == []
    with pytest.raises(FileNotFoundError):  # the writer never created its file
        with fileio.atomic_path(tmp_path / "nothing.keras"):
            pass
    assert _names(tmp_path) == []
    with pytest.raises(FileNotFoundError):  # missing folder: nothing is created anywhere
        fileio.write_text(tmp_path / "no" / "x.txt", "x")
    assert _names(tmp_path) == []


def test_temp_path_is_hidden_beside_with_the_extension(tmp_path):
    seen = set()
    for _ in range(20):
        with fileio.atomic_path(tmp_path / "model_vocal.h5") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".model_vocal.h5.")
            assert tmp.suffix == ".h5" and not tmp.exists()
            seen.add(tmp.name)
            tmp.write_bytes(b"m")
    assert len(seen) == 20
    assert _names(tmp_path) == ["model_vocal.h5"]
    stale = tmp_path / ".model_vocal.h5.0123abcd.part.h5"  # left by a killed writer
    stale.write_bytes(b"half")
    with fileio.atomic_open(tmp_path / "model_vocal.h5", "wb") as f:
        live = [p for p in fileio.part_files(tmp_path / "model_vocal.h5") if p != str(stale)]
        assert len(live) == 1 and live[0].endswith(".part.h5")
        assert fileio.remove_stale_parts(tmp_path / "model_vocal.h5") == [str(stale)]  # live one locked
        f.write(b"n")
    assert _names(tmp_path) == ["model_vocal.h5"] and (tmp_path / "model_vocal.h5").read_bytes() == b"n"
    with pytest.raises(ValueError, match="mode"):
        with fileio.atomic_open(tmp_path / "x", "a"):
            pass


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fileio.write_text(tmp_path / "a.txt", "x")
        with fileio.atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o640


def test_atomic_folder_renames_when_complete_and_cleans_up_on_error(tmp_path):
    import pytest

    from mixin.errors import MixinError
    from mixin.io import atomic_folder

    dest = tmp_path / "song"
    with atomic_folder(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-song-") and not dest.exists()
        (tmp / "a.txt").write_text("1")
    assert (dest / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "other"):
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]  # no temp folder, nothing half-made
    with pytest.raises(MixinError, match="already exists; use --force"):
        with atomic_folder(dest, option="--force") as tmp:
            (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]  # the old folder is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]
    with atomic_folder(dest, replace=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]
