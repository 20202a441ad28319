"""Tests of the --create-hdf5 stage (mixin.training.hdf5) on tiny prepared synthetic songs."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from mixin import layout, params
from mixin.errors import MixinError
from mixin.training.hdf5 import (SPLITS, check_hdf5, create_hdf5, find_segments, hdf5_paths,
                                 to_float16)
from mixin.nsgt import coef_shape, get_nsgt
from mixin.training.stems import prepare_stems
from mixin.training.render.synth import write_stem_folders

L = params.CHUNK_SIZE
SEG = 3.0  # seconds per segment: 132300 samples = 3 full chunks + a partial one of 204 samples
N_CHUNKS = -(-int(SEG * params.SAMPLE_RATE) // L)  # 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Three synthetic stereo songs of 6.5 s, prepared as 3 s segments (2 per song)."""
    root = tmp_path_factory.mktemp("hdf5")
    write_stem_folders(root / "stems", 3, 6.5, seed=3)
    prepare_stems([root / "stems"], data_dir=root / "data", segment_duration=SEG)
    return root / "data"


def _copy(prepared, tmp_path):
    """A private copy of the prepared segments (without HDF5 files)."""
    dst = tmp_path / "data"
    shutil.copytree(prepared, dst, ignore=shutil.ignore_patterns("*.hdf5"))
    return dst


@pytest.fixture(scope="module")
def built(prepared, tmp_path_factory):
    """The three HDF5 files of ``prepared`` (default storage, one process)."""
    data = tmp_path_factory.mktemp("built") / "data"
    shutil.copytree(prepared, data)
    summary = create_hdf5(data, n_pool=1)
    return data, summary


def _split(data):
    return layout.read_songs(data)["split"]


def test_shapes_counts_and_split_by_song(built):
    data, summary = built
    split = _split(data)
    assert all(split[k] for k in SPLITS), split  # 3 songs: one per split
    shape = coef_shape() + (1,)
    for s, path in hdf5_paths(data).items():
        with h5py.File(path, "r") as hf:
            assert hf.attrs["storage"] == "float16" and hf.attrs["complete"]
            songs = {}
            for k in SPLITS:
                # 2 segments per song; v + nov folders for harmonic/percussive; 2 channels
                n = len(split[k]) * 2 * (1 if s == "vocal" else 2) * N_CHUNKS * 2
                assert hf[f"data-x-{k}"].shape == (n,) + shape
                assert hf[f"data-y-{k}"].shape == (n,) + shape
                assert hf[f"data-x-{k}"].dtype == np.float16
                idx = hf[f"index/{k}"][:]
                assert idx.shape == (n, 4)
                songs[k] = set(idx[:, 0].tolist())
                assert songs[k] == set(split[k])
                # every chunk of every segment, both channels, the last partial chunk included
                assert set(idx[:, 2].tolist()) == set(range(N_CHUNKS))
                assert set(idx[:, 3].tolist()) == {0, 1}
            assert not (songs["train"] & songs["validation"]) and not (songs["train"] & songs["test"])
            assert not (songs["validation"] & songs["test"])
        assert summary["counts"][s] == check_hdf5(data)[s]


def _mag(path, chunk, channel):
    x, _ = sf.read(path, dtype="float32", always_2d=True)
    x = np.pad(x[:, channel], (0, N_CHUNKS * L - len(x)))
    return np.abs(get_nsgt().forward(x[chunk * L:(chunk + 1) * L]))


@pytest.mark.parametrize("chunk", [0, N_CHUNKS - 1])
def test_x_and_y_are_nsgt_magnitudes(built, chunk):
    """x == |NSGT(mix)|, y == |NSGT(source)| for a known chunk, including the zero-padded last."""
    data, _ = built
    song = _split(data)["validation"][0]
    for s in params.SOURCES:
        with h5py.File(hdf5_paths(data)[s], "r") as hf:
            idx = hf["index/validation"][:]
            # segment 1 of the song, channel 1, from the 'v' folder (listed before 'nov')
            rows = np.flatnonzero((idx[:, 0] == song) & (idx[:, 1] == 1) & (idx[:, 2] == chunk)
                                  & (idx[:, 3] == 1))
            row = rows[0]
            x = hf["data-x-validation"][row, ..., 0].astype(np.float32)
            y = hf["data-y-validation"][row, ..., 0].astype(np.float32)
        folder = layout.segment_folder(data, song, 1, "v")
        want_x = _mag(layout.segment_file(folder, "mix"), chunk, 1)
        want_y = _mag(layout.segment_file(folder, s), chunk, 1)
        np.testing.assert_allclose(x, want_x, rtol=1e-3, atol=1e-7)
        np.testing.assert_allclose(y, want_y, rtol=1e-3, atol=1e-7)
        assert want_x.max() > 1e-3  # a real signal, not silence
        if s != "vocal":
            # the next rows of the same chunk come from the 'nov' folder: mixture without vocals
            assert len(rows) == 2
            with h5py.File(hdf5_paths(data)[s], "r") as hf:
                x_nov = hf["data-x-validation"][rows[1], ..., 0].astype(np.float32)
            nov = layout.segment_file(layout.segment_folder(data, song, 1, "nov"), "mix")
            np.testing.assert_allclose(x_nov, _mag(nov, chunk, 1), rtol=1e-3, atol=1e-7)


def test_harmonic_and_percussive_share_x(built):
    data, _ = built
    paths = hdf5_paths(data)
    with h5py.File(paths["harmonic"], "r") as h, h5py.File(paths["percussive"], "r") as p:
        np.testing.assert_array_equal(h["data-x-test"][:3], p["data-x-test"][:3])
        assert not np.array_equal(h["data-y-test"][:3], p["data-y-test"][:3])


def test_parallel_equals_serial_and_float32_storage(prepared, built, tmp_path):
    data, _ = built
    other = _copy(prepared, tmp_path)
    create_hdf5(other, n_pool=2, sources=("vocal",))
    with h5py.File(hdf5_paths(data)["vocal"], "r") as a, h5py.File(hdf5_paths(other)["vocal"], "r") as b:
        for k in SPLITS:
            np.testing.assert_array_equal(a[f"data-x-{k}"][:], b[f"data-x-{k}"][:])
            np.testing.assert_array_equal(a[f"data-y-{k}"][:], b[f"data-y-{k}"][:])
            np.testing.assert_array_equal(a[f"index/{k}"][:], b[f"index/{k}"][:])
    create_hdf5(other, n_pool=1, sources=("vocal",), storage="float32-lzf", overwrite=True)
    with h5py.File(hdf5_paths(data)["vocal"], "r") as a, h5py.File(hdf5_paths(other)["vocal"], "r") as b:
        x32 = b["data-x-train"]
        assert x32.dtype == np.float32 and x32.compression == "lzf" and b.attrs["storage"] == "float32-lzf"
        assert x32.chunks == (1,) + coef_shape() + (1,)
        np.testing.assert_array_equal(a["data-x-train"][:4], to_float16(x32[:4]))


def test_mono_downmix(prepared, tmp_path):
    data = _copy(prepared, tmp_path)
    create_hdf5(data, n_pool=1, mono=True, sources=("vocal",))
    split = _split(data)
    with h5py.File(hdf5_paths(data)["vocal"], "r") as hf:
        assert hf.attrs["mono"]
        idx = hf["index/test"][:]
        assert hf["data-x-test"].shape[0] == len(split["test"]) * 2 * N_CHUNKS
        assert set(idx[:, 3].tolist()) == {-1}
        row = np.flatnonzero((idx[:, 1] == 0) & (idx[:, 2] == 1))[0]
        x = hf["data-x-test"][row, ..., 0].astype(np.float32)
    mix, _ = sf.read(layout.segment_file(layout.segment_folder(data, split["test"][0], 0, "v"), "mix"),
                     dtype="float32")
    want = np.abs(get_nsgt().forward(mix.mean(axis=1)[L:2 * L]))
    np.testing.assert_allclose(x, want, rtol=1e-3, atol=1e-7)


def test_refuses_to_overwrite(built):
    data, _ = built
    before = {p: Path(p).stat().st_mtime_ns for p in hdf5_paths(data).values()}
    with pytest.raises(MixinError, match="exists; use --overwrite"):
        create_hdf5(data, n_pool=1)
    assert before == {p: Path(p).stat().st_mtime_ns for p in hdf5_paths(data).values()}


def test_nothing_prepared(tmp_path):
    with pytest.raises(MixinError, match="not found"):
        create_hdf5(tmp_path / "missing", n_pool=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixinError, match="no prepared segments"):
        create_hdf5(tmp_path / "empty", n_pool=1)
    with pytest.raises(MixinError, match="no prepared segments"):
        find_segments(tmp_path / "empty")


def test_bad_inputs(prepared, tmp_path):
    data = _copy(prepared, tmp_path)
    with pytest.raises(MixinError, match="n-pool"):
        create_hdf5(data, n_pool=0)
    with pytest.raises(MixinError, match="unknown storage"):
        create_hdf5(data, storage="float8")
    # segments without songs.json: an interrupted preparation
    songs = layout.songs_json(data)
    songs.rename(data / "songs.json.bak")
    with pytest.raises(MixinError, match=layout.SONGS_JSON):
        create_hdf5(data, n_pool=1)
    (data / "songs.json.bak").rename(songs)
    # a vocal file missing, then a stem shorter than the mixture
    folder = sorted(p for p in data.iterdir() if layout.parse_segment_folder(p) == (2, 1, "v"))[-1]
    vocal = folder / "vocal.wav"
    x, sr = sf.read(vocal, dtype="float32")
    vocal.unlink()
    with pytest.raises(MixinError, match="missing .*vocal.wav"):
        create_hdf5(data, n_pool=1)
    sf.write(vocal, x[:-100], sr, subtype="FLOAT")
    with pytest.raises(MixinError, match="samples, but mix.wav has"):
        create_hdf5(data, n_pool=1)
    # nothing half-written is left behind
    assert not list(data.glob("*.hdf5*"))


def test_failure_in_a_worker_leaves_no_file(prepared, tmp_path):
    data = _copy(prepared, tmp_path)
    last = sorted(p for p in data.iterdir() if p.is_dir())[-1] / "harmonic.wav"
    x, sr = sf.read(last, dtype="float32")
    x[-10] = np.nan  # the header is fine: only the worker reading the last chunk finds out
    sf.write(last, x, sr, subtype="FLOAT")
    with pytest.raises(MixinError, match="harmonic.wav: non-finite"):
        create_hdf5(data, n_pool=2)
    assert not list(data.glob("*.hdf5*"))


def test_to_float16_matches_numpy():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 1e-4, 10000), rng.uniform(0, 3, 10000),
                        10 ** rng.uniform(-12, 5, 10000),
                        [0, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1.5 * 2 ** -24, 65504, 65520, 1e9]])
    a = a.astype(np.float32)
    with np.errstate(over="ignore"):
        want = a.astype(np.float16)
    np.testing.assert_array_equal(to_float16(a).view(np.uint16), want.view(np.uint16))
