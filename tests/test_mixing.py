"""On-the-fly mixing (mixin.training.mixing) and joint training chosen by separation quality
(mixin.training.jointtrain)."""

import json

import numpy as np
import pytest

from mixin import params
from mixin.errors import MixinError
from mixin.training.mixing import BatchStream, MixConfig, Mixer, build_catalogue

PLAIN = dict(remix=0.0, gain_db=0.0, level_db=None, eq_db=0.0, shift=0.0, silence=0.0,
             variants=1)


@pytest.fixture(scope="module")
def stem_root(tmp_path_factory):
    """Three synthetic songs (12 s, stereo) in the MUSDB18-HQ layout; one has no vocals."""
    from mixin.training.render.synth import write_stem_folders

    root = tmp_path_factory.mktemp("mixstems")
    write_stem_folders(root, 3, 12.0, seed=3)
    songs = sorted(p for p in root.iterdir() if p.is_dir())
    for f in songs[2].iterdir():
        if "vocal" in f.name:
            f.unlink()
    return root


def test_catalogue_finds_songs_and_activity(stem_root, tmp_path):
    cache = tmp_path / "cat.json"
    songs = build_catalogue([stem_root], cache=cache)
    assert len(songs) == 3
    assert all(s.channels == 2 and s.frames >= 12 * params.SAMPLE_RATE - 10 for s in songs)
    assert not songs[2].files["vocal"] and songs[0].files["vocal"]
    assert all(len(s.active["percussive"]) == -(-s.frames // params.SAMPLE_RATE) for s in songs)
    assert sum(songs[0].active["percussive"]) > 0
    assert json.loads(cache.read_text())["songs"][0]["name"] == songs[0].name
    again = build_catalogue([stem_root], cache=cache)  # from the cache
    assert [s.name for s in again] == [s.name for s in songs]
    held = build_catalogue([stem_root], exclude=[songs[0].name])
    assert songs[0].name not in [s.name for s in held]


def test_plain_example_is_the_transform_of_the_stems(stem_root):
    """With no augmentation an example is exactly |NSGT| of one channel of the stems at the
    planned offset, and the mixture is the transform of their sum (the HDF5 path's values)."""
    import soundfile as sf

    from mixin.nsgt import get_nsgt

    songs = build_catalogue([stem_root])
    mixer = Mixer(songs, MixConfig(**PLAIN), seed=5)
    x, ys = mixer.batch(0, 3)
    assert x.shape == (3,) + get_nsgt().shape + (1,) and x.dtype == np.float32
    assert all(y.shape == x.shape and y.dtype == np.float32 for y in ys)
    for k in range(3):
        plan = mixer.plan(k)
        song = songs[plan["songs"]["harmonic"]]
        sig = []
        for s in params.SOURCES:
            part = np.zeros(params.CHUNK_SIZE, np.float32)
            for f in song.files[s]:
                a, _ = sf.read(f, start=plan["offsets"][s], frames=params.CHUNK_SIZE,
                               dtype="float32", always_2d=True)
                ch = plan["channels"][s]
                a = a.mean(axis=1) if ch < 0 else a[:, ch]
                part[:len(a)] += a
            sig.append(part)
        nsgt = get_nsgt()
        for j, s in enumerate(params.SOURCES):
            np.testing.assert_allclose(ys[j][k, ..., 0], np.abs(nsgt.forward(sig[j])), atol=2e-5)
        np.testing.assert_allclose(x[k, ..., 0], np.abs(nsgt.forward(np.sum(sig, axis=0))),
                                   atol=5e-5)


def test_level_sets_the_mixture_rms(stem_root):
    """With level_db the mixture is scaled to the drawn RMS level (within the coefficient-energy
    approximation, +-1.5 dB), sources by the same factor."""
    from mixin.nsgt import get_nsgt

    songs = build_catalogue([stem_root])
    plain = Mixer(songs, MixConfig(**PLAIN), seed=7)
    levelled = Mixer(songs, MixConfig(**dict(PLAIN, level_db=(-30.0, -8.0))), seed=7)
    x0, y0 = plain.batch(0, 4)
    x1, y1 = levelled.batch(0, 4)
    for k in range(4):
        if not x0[k].any():
            continue
        a = float(np.sum(x1[k] * x0[k]) / np.sum(x0[k] * x0[k]))
        np.testing.assert_allclose(x1[k], a * x0[k], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(y1[1][k], a * y0[1][k], rtol=1e-3, atol=1e-6)
        plan = plain.plan(k)
        song = songs[plan["songs"]["harmonic"]]
        # the plain example's signal level, times a: the target
        import soundfile as sf
        sig = np.zeros(params.CHUNK_SIZE)
        for s in params.SOURCES:
            for f in song.files[s]:
                z, _ = sf.read(f, start=plan["offsets"][s], frames=params.CHUNK_SIZE, always_2d=True)
                ch = plan["channels"][s]
                z = z.mean(axis=1) if ch < 0 else z[:, ch]
                sig[:len(z)] += z
        level = 10 * np.log10(np.mean(sig ** 2) * a * a)
        assert abs(level - levelled.plan(k)["level"]) < 1.5


def test_augmented_batches_deterministic_and_consistent(stem_root):
    songs = build_catalogue([stem_root])
    mixer = Mixer(songs, MixConfig(silence=0.3, variants=2), seed=1)
    x, ys = mixer.batch(2, 4)
    x2, ys2 = Mixer(songs, MixConfig(silence=0.3, variants=2), seed=1).batch(2, 4)
    assert np.array_equal(x, x2) and all(np.array_equal(a, b) for a, b in zip(ys, ys2))
    x3, _ = Mixer(songs, MixConfig(silence=0.3, variants=2), seed=2).batch(2, 4)
    assert not np.array_equal(x, x3)
    assert np.isfinite(x).all() and all(np.isfinite(y).all() and (y >= 0).all() for y in ys)
    # the mixture's magnitude never exceeds the sum of the sources' (triangle inequality)
    assert np.all(x <= ys[0] + ys[1] + ys[2] + 1e-4)
    # examples 2k and 2k+1 share their audio draw, not their gains
    assert mixer.plan(8)["songs"] == mixer.plan(9)["songs"]
    assert mixer.plan(8)["gains"] != mixer.plan(9)["gains"]
    # a silenced source has an all-zero target
    for k in range(4):
        plan = mixer.plan(8 + k)
        for j, s in enumerate(params.SOURCES):
            if plan["silent"][s]:
                assert not ys[j][k].any()


def test_song_without_vocals_gives_silent_vocal(stem_root):
    songs = build_catalogue([stem_root])
    only = [s for s in songs if not s.files["vocal"]]
    mixer = Mixer(only, MixConfig(**dict(PLAIN, remix=0.0)), seed=0)
    _, ys = mixer.batch(0, 2)
    assert not ys[2].any() and ys[1].any()


def test_stream_workers_match_in_process_and_resume(stem_root):
    songs = build_catalogue([stem_root])
    mixer = Mixer(songs, MixConfig(), seed=4)
    with BatchStream(mixer, 2, start=0, workers=0) as s0:
        ref = [s0.get() for _ in range(3)]
    with BatchStream(mixer, 2, start=1, workers=1) as s1:
        got = [s1.get() for _ in range(2)]
    for (xa, ya), (xb, yb) in zip(ref[1:], got):
        # workers send float16: equal within its precision
        np.testing.assert_allclose(xa, xb, rtol=2e-3, atol=1e-6)
        np.testing.assert_allclose(ya[1], yb[1], rtol=2e-3, atol=1e-6)


def test_dir_weights_choose_the_stem_dir(stem_root, tmp_path):
    import shutil

    other = tmp_path / "other"
    first = sorted(p for p in stem_root.iterdir() if p.is_dir())[0]
    shutil.copytree(first, other / "copy-song")
    songs = build_catalogue([stem_root, other])
    mixer = Mixer(songs, MixConfig(remix=0.0, dir_weights=(0.0, 1.0)), seed=0)
    assert all(songs[mixer.draw(d)["songs"]["harmonic"]].group == 1 for d in range(20))


@pytest.mark.parametrize("bad", [dict(remix=1.5), dict(gain_db=-1), dict(level_db=(3, -3)),
                                 dict(variants=0), dict(dir_weights=(0.0,)),
                                 dict(level_db=None, dir_weights=(-1.0, 2.0))])
def test_bad_config(bad):
    with pytest.raises(MixinError):
        MixConfig(**bad).check()


def test_window_sdr():
    from mixin.training.mixing import summarise, window_sdr

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3 * params.SAMPLE_RATE, 2)).astype(np.float32) * 0.1
    assert window_sdr(ref, ref) > 100
    assert abs(window_sdr(ref, np.zeros_like(ref))) < 1e-6
    assert abs(window_sdr(ref, ref * 0.5) - 10 * np.log10(4)) < 1e-3
    assert np.isnan(window_sdr(np.zeros_like(ref), ref))
    m = summarise({"a": dict(harmonic=1.0, percussive=2.0, vocal=np.nan),
                   "b": dict(harmonic=3.0, percussive=4.0, vocal=5.0)})
    assert m == dict(harmonic=2.0, percussive=3.0, vocal=5.0, mean=pytest.approx(10 / 3))


@pytest.mark.slow
def test_train_mix_end_to_end_and_resume(stem_root, tmp_path):
    import train_util

    from mixin.model import load_models

    names = sorted(p.name for p in stem_root.iterdir() if p.is_dir())
    args = ["--train-mix", "--stem-dirs", str(stem_root), "--validation-songs", names[0],
            "--batch-size", "2", "--round-batches", "2", "--validation-duration", "4",
            "--model-dir", str(tmp_path / "model"), "--logdir", str(tmp_path / "logdir"), "-q"]
    assert train_util.main(args + ["--rounds", "1"]) == 0
    state = json.loads((tmp_path / "logdir" / "joint.state.json").read_text())
    assert state["rounds"] == 1 and state["batches"] == 2
    assert [r["round"] for r in state["history"]] == [0, 1]
    assert np.isfinite(state["history"][1]["select_percussive"])
    assert names[0] not in json.loads((tmp_path / "logdir" / "catalogue.json").read_text())["key"].__repr__()
    models = load_models(tmp_path / "model")
    assert set(models) == set(params.SOURCES)
    from mixin.backends import choose

    assert choose("auto", tmp_path / "model") == "onnx"  # exported after training
    assert (tmp_path / "model" / "validation_sdr.png").exists()
    assert set(load_models(tmp_path / "logdir" / "rounds" / "001")) == set(params.SOURCES)
    # resume: one more round continues at batch 2
    assert train_util.main(args + ["--rounds", "2"]) == 0
    state = json.loads((tmp_path / "logdir" / "joint.state.json").read_text())
    assert state["rounds"] == 2 and state["batches"] == 4
    # other data settings cannot resume
    assert train_util.main(args + ["--rounds", "3", "--mix-gain-db", "3"]) == 1


def test_train_mix_argument_errors(stem_root, tmp_path, capsys):
    import train_util

    assert train_util.main(["--train-mix", "--stem-dirs", str(stem_root), "--validation-songs",
                            "nope", "--logdir", str(tmp_path / "l"), "--model-dir",
                            str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    with pytest.raises(SystemExit) as e:
        train_util.main(["--train-mix", "--stem-dirs", str(stem_root)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        train_util.main(["--train-mix", "--stem-dirs", str(stem_root), "--validation-songs", "x",
                         "--mix-remix", "2"])


def _train_mix_args(stem_root, tmp_path, *extra):
    """A tiny --train-mix command on the synthetic stems (first song held out) plus ``extra``."""
    names = sorted(p.name for p in stem_root.iterdir() if p.is_dir())
    return ["--train-mix", "--stem-dirs", str(stem_root), "--validation-songs", names[0],
            "--batch-size", "2", "--round-batches", "2", "--validation-duration", "4", *extra,
            "--model-dir", str(tmp_path / "model"), "--logdir", str(tmp_path / "logdir"), "-q"]


def test_train_mix_init_seed_sets_weights_not_examples(stem_root, tmp_path):
    """--init-seed changes the initial weights only: the examples come from --seed alone, and
    --init-seed equal to --seed is the same run (and the same resume identity) as leaving it out."""
    import keras
    import train_util

    from mixin.model import load_models
    from mixin.training.engine import TrainConfig as MixTrainConfig

    songs = build_catalogue([stem_root])
    cfg = MixConfig(**PLAIN)
    batches = []
    for k in (1, 2):
        keras.utils.set_random_seed(k)  # what --init-seed sets must not reach the mixer
        x, ys = Mixer(songs, cfg, seed=0).batch(0, 2)
        batches.append(x)
    assert np.array_equal(batches[0], batches[1])

    base = MixTrainConfig(stem_dirs=[str(stem_root)], validation_songs=["x"], seed=3)
    assert base.identity() == MixTrainConfig(stem_dirs=[str(stem_root)], validation_songs=["x"],
                                             seed=3, init_seed=3).identity()
    assert MixTrainConfig(stem_dirs=[str(stem_root)], validation_songs=["x"], seed=3,
                          init_seed=4).identity()["init_seed"] == 4
    with pytest.raises(MixinError, match="init seed"):
        MixTrainConfig(stem_dirs=[str(stem_root)], validation_songs=["x"], init_seed=-1).check()

    weights = {}
    for name, extra in (("a", []), ("c", ["--init-seed", "7"])):
        d = tmp_path / name
        assert train_util.main(_train_mix_args(stem_root, d, *extra) + ["--rounds", "1"]) == 0
        weights[name] = load_models(d / "logdir" / "rounds" / "001")["harmonic"].get_weights()
    assert not all(np.allclose(u, v) for u, v in zip(weights["a"], weights["c"]))
    # --init-seed equal to --seed (0) is run "a" itself: it resumes it (another identity is refused)
    assert train_util.main(_train_mix_args(stem_root, tmp_path / "a", "--init-seed", "0")
                           + ["--rounds", "1"]) == 0
    # the init seed is part of the resume identity
    assert train_util.main(_train_mix_args(stem_root, tmp_path / "c", "--init-seed", "8")
                           + ["--rounds", "2"]) == 1


def test_train_mix_arch_and_panel(stem_root, tmp_path, monkeypatch, capsys):
    """--arch mixin-hpss trains networks fed the HPSS channels, writes model.json beside them (the
    separator then feeds them the same channels), chooses the round by the panel (model minus
    HPSS over the validation song and the rendered panel songs), and cannot resume another --arch."""
    import train_util

    from mixin.evaluation import panel as panel_mod
    from mixin.model import read_model_spec
    from mixin.separation.separate import Separator

    monkeypatch.setattr(panel_mod, "_baseline_scores",  # HPSS at 0 dB: the panel is the model's SDR
                        lambda mixture, refs: {s: (0.0 if np.any(refs[s]) else float("nan"))
                                               for s in params.SOURCES})
    names = sorted(p.name for p in stem_root.iterdir() if p.is_dir())
    args = _train_mix_args(stem_root, tmp_path, "--arch", "mixin-hpss",
                           "--panel-dirs", str(stem_root / names[2]))
    assert train_util.main(args + ["--rounds", "1"]) == 0
    spec = read_model_spec(tmp_path / "model")
    assert spec["architecture"] == "mixin-hpss" and len(spec["inputs"]) == 3
    assert read_model_spec(tmp_path / "logdir" / "rounds" / "001")["architecture"] == "mixin-hpss"
    state = json.loads((tmp_path / "logdir" / "joint.state.json").read_text())
    row = state["history"][1]
    assert np.isfinite(row["panel"]) and np.isfinite(row["panel_rendered"])
    assert set(row["songs_panel"]) == {names[0], names[2]}
    assert state["identity"]["arch"] == "mixin-hpss"
    assert (tmp_path / "logdir" / "panel_hpss.json").is_file()
    sep = Separator(tmp_path / "model")
    assert sep.inputs == ("mag", "hpss_harmonic", "hpss_percussive")
    out = sep.separate(np.random.default_rng(0).standard_normal((44100, 2)).astype(np.float32) * 0.1)
    assert out["vocal"].shape == (44100, 2)
    capsys.readouterr()
    assert train_util.main(_train_mix_args(stem_root, tmp_path, "--arch", "mixin-context",
                                           "--panel-dirs", str(stem_root / names[2]))
                           + ["--rounds", "2"]) == 1
    assert "arch" in capsys.readouterr().err
