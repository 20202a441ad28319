"""The --calibrate stage: output gains fitted for the soft masks and folded into the models."""

import json
import shutil

import numpy as np
import pytest

from mixin import params
from mixin.training.calibrate import UNCALIBRATED, calibrate, fit_gains, mask_error, scale_output
from mixin.errors import MixinError


def test_scale_output_is_exact_for_the_published_architecture(random_models):
    from mixin.model import load_cdae

    m = load_cdae(random_models / "model_percussive.h5")
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((1,) + tuple(m.input_shape[1:]))).astype(np.float32)
    before = np.asarray(m(x, training=False))
    assert before.max() > 0
    after = np.asarray(scale_output(m, 10 ** (7.5 / 20))(x, training=False))
    np.testing.assert_allclose(after, before * 10 ** (7.5 / 20), rtol=1e-5, atol=1e-7)
    with pytest.raises(MixinError, match="positive"):
        scale_output(m, 0.0)


def _problem(seed=0, shape=(6, 12, 40)):
    """Random non-negative source magnitudes, their mixture (random phases) and noisy estimates."""
    rng = np.random.default_rng(seed)
    t = {s: (rng.gamma(0.5, 1.0, shape) * w).astype(np.float32)
         for s, w in zip(params.SOURCES, (1.0, 0.6, 0.4))}
    mix = np.abs(sum(v * np.exp(2j * np.pi * rng.random(shape)) for v in t.values())).astype(np.float32)
    est = {s: v * rng.uniform(0.7, 1.3, shape).astype(np.float32) for s, v in t.items()}
    return {s: e ** 2 for s, e in est.items()}, mix, t


def test_fit_reduces_the_error_and_undoes_a_known_bias():
    powers, mix, t = _problem()
    g0, before, after = fit_gains(powers, mix, t)
    assert g0["harmonic"] == 0.0 and after <= before
    # an estimate 5 dB too loud (and one 9 dB too quiet) is compensated by exactly that gain
    biased = dict(powers, percussive=powers["percussive"] * np.float32(10 ** (5 / 10)),
                  vocal=powers["vocal"] * np.float32(10 ** (-9 / 10)))
    g1, b1, a1 = fit_gains(biased, mix, t)
    assert g1["percussive"] == pytest.approx(g0["percussive"] - 5, abs=1e-9)
    assert g1["vocal"] == pytest.approx(g0["vocal"] + 9, abs=1e-9)
    assert a1 == pytest.approx(after, rel=1e-4) and b1 > a1
    # the fitted gains are what mask_error scores best among its neighbours on the 1 dB grid
    best = mask_error(biased, mix, t, {s: 10 ** (g / 20) for s, g in g1.items()})
    for d in (-1, 1):
        worse = dict(g1, percussive=g1["percussive"] + d)
        assert mask_error(biased, mix, t, {s: 10 ** (g / 20) for s, g in worse.items()}) >= best


@pytest.fixture
def prepared(tmp_path, tiny_models):
    """Three synthetic songs cut into 1 s segments, and a copy of the tiny models."""
    from mixin.training.stems import prepare_stems
    from mixin.training.render.synth import write_stem_folders

    write_stem_folders(tmp_path / "stems", 3, 3.2, seed=5)
    prepare_stems([tmp_path / "stems"], tmp_path / "data", segment_duration=1.0,
                  validation_songs=["song_002"])
    shutil.copytree(tiny_models, tmp_path / "model")
    return tmp_path


def test_calibrate_folds_gains_keeps_originals_and_refuses_twice(prepared):
    from mixin.model import load_cdae

    d = prepared
    orig = {s: (d / "model" / f"model_{s}.h5").read_bytes() for s in params.SOURCES}
    rec = calibrate(d / "data", d / "model", n_chunks=6, seed=1)
    assert json.loads((d / "model" / "calibration.json").read_text()) == rec
    assert rec["songs"] == [0, 1] and rec["n_chunks"] == 6  # validation song 2 never used
    assert rec["gains_db"]["harmonic"] == 0.0
    assert rec["mask_error"]["calibrated"] <= rec["mask_error"]["uncalibrated"]
    x = np.full((1, 96, 1948, 1), 0.3, np.float32)
    for s in params.SOURCES:
        unc = d / "model" / UNCALIBRATED.format(s)
        assert unc.read_bytes() == orig[s]  # the uncalibrated model is kept as it was
        a = np.asarray(load_cdae(unc)(x))
        b = np.asarray(load_cdae(d / "model" / f"model_{s}.h5")(x))
        np.testing.assert_allclose(b, a * 10 ** (rec["gains_db"][s] / 20), rtol=1e-5)

    from mixin.backends import sha256
    from mixin.onnxexport import recorded_hash

    for s in params.SOURCES:  # the .onnx files follow the calibrated models
        assert recorded_hash(d / "model" / f"model_{s}.onnx") == sha256(d / "model" / f"model_{s}.h5")
    with pytest.raises(MixinError, match="already calibrated"):
        calibrate(d / "data", d / "model", n_chunks=6, seed=1)
    again = calibrate(d / "data", d / "model", n_chunks=6, seed=1, overwrite=True)
    assert again["gains_db"] == rec["gains_db"]  # from the kept uncalibrated models, deterministic
    for s in params.SOURCES:
        assert (d / "model" / UNCALIBRATED.format(s)).read_bytes() == orig[s]


def test_calibrate_bad_input(prepared):
    d = prepared
    with pytest.raises(MixinError, match="positive integer"):
        calibrate(d / "data", d / "model", n_chunks=0)
    with pytest.raises(MixinError, match="prepare-stems"):
        calibrate(d / "nodata", d / "model")
    (d / "model" / "model_vocal.h5").unlink()
    with pytest.raises(MixinError, match="model_vocal.h5"):
        calibrate(d / "data", d / "model")
    assert not (d / "model" / "calibration.json").exists()
    assert not list((d / "model").glob("*.uncalibrated.h5"))


def test_calibrate_on_the_mixers_examples(prepared):
    """--calibrate with --stem-dirs (no --prepare-stems): chunks mixed from the stem folders as
    --train-mix mixes them (its data flags recorded), the validation songs held out; the fit
    lowers the error, is deterministic, and the same gains fold into the models."""
    import train_util

    from mixin.model import load_cdae
    from mixin.training.engine import MixConfig, TrainConfig

    d = prepared
    cfg = TrainConfig(stem_dirs=[str(d / "stems")], validation_songs=["song_002"],
                      mix=MixConfig(gain_db=3.0))
    x = np.full((1, 96, 1948, 1), 0.3, np.float32)
    before = {s: np.asarray(load_cdae(d / "model" / f"model_{s}.h5")(x)) for s in params.SOURCES}
    rec = calibrate(cfg, d / "model", n_chunks=5, seed=2)
    assert rec["n_chunks"] == 5 and rec["songs"] == ["song_000", "song_001"]  # song_002 held out
    assert rec["stem_dirs"] == [str(d / "stems")] and rec["mix"]["gain_db"] == 3.0
    assert "data_dir" not in rec
    assert rec["mask_error"]["calibrated"] <= rec["mask_error"]["uncalibrated"]
    assert rec["gains_db"] != {s: 0.0 for s in params.SOURCES}  # the tiny models' levels are off
    for s in params.SOURCES:
        after = np.asarray(load_cdae(d / "model" / f"model_{s}.h5")(x))
        np.testing.assert_allclose(after, before[s] * 10 ** (rec["gains_db"][s] / 20), rtol=1e-5)
    again = calibrate(cfg, d / "model", n_chunks=5, seed=2, overwrite=True)
    assert again["gains_db"] == rec["gains_db"] and again["mask_error"] == rec["mask_error"]
    # the command: --stem-dirs picks the mixer, with its flags; the prepared data dir is not read
    args = ["--calibrate", "--stem-dirs", str(d / "stems"), "--validation-songs", "song_002",
            "--mix-gain-db", "3", "--calibration-chunks", "5", "--seed", "2", "--model-dir",
            str(d / "model"), "--data-dir", str(d / "nodata"), "--overwrite", "-q"]
    assert train_util.main(args) == 0
    assert json.loads((d / "model" / "calibration.json").read_text())["gains_db"] == rec["gains_db"]
    with pytest.raises(MixinError, match="stem directory not found"):
        calibrate(TrainConfig(stem_dirs=[str(d / "nope")], validation_songs=["x"]), d / "model",
                  n_chunks=2, overwrite=True)
