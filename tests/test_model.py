"""The CDAE: architecture, parameter count, loading legacy models, and clear errors."""

import numpy as np
import pytest

from mixin.errors import MixinError
from mixin.model import N_LAYERS, N_PARAMS, build_cdae, input_shape, load_cdae, load_models, save_cdae


@pytest.fixture(scope="module")
def cdae():
    return build_cdae()


def test_architecture(cdae):
    assert input_shape() == (96, 1948, 1)
    assert len(cdae.layers) - 1 == N_LAYERS == 13  # the Input layer aside
    assert cdae.count_params() == N_PARAMS == 37005
    assert cdae.output_shape[1:] == cdae.input_shape[1:] == input_shape()
    kinds = [type(layer).__name__ for layer in cdae.layers[1:]]
    assert kinds.count("Conv2D") == 8 and kinds[-1] == "Cropping2D"
    out = cdae(np.random.rand(2, 96, 1948, 1).astype(np.float32)).numpy()
    assert out.shape == (2, 96, 1948, 1) and (out >= 0).all()  # ReLU output


def test_builds_for_other_sizes():
    m = build_cdae((24, 401, 1))
    assert m.output_shape[1:] == (24, 401, 1)


def test_loads_original_legacy_models(original_models, cdae):
    models = load_models(original_models)
    assert set(models) == {"harmonic", "percussive", "vocal"}
    for m in models.values():
        assert m.count_params() == N_PARAMS
    # the weights are interchangeable with our builder's
    cdae.set_weights(models["vocal"].get_weights())
    x = np.random.rand(1, 96, 1948, 1).astype(np.float32)
    assert np.array_equal(cdae(x).numpy(), models["vocal"](x).numpy())


def test_save_load_round_trip(tmp_path, cdae):
    p = tmp_path / "model_harmonic.h5"
    save_cdae(cdae, p)
    assert not list(tmp_path.glob("*.tmp*"))
    m = load_cdae(p)
    x = np.random.rand(1, 96, 1948, 1).astype(np.float32)
    assert np.allclose(m(x).numpy(), cdae(x).numpy())


def test_save_is_quiet_unless_debug(tmp_path, cdae, caplog):
    """Keras warns "HDF5 ... legacy" on every .h5 save (six lines per --train-mix round): the
    published format is chosen on purpose, so the notice only shows with --verbose (DEBUG)."""
    import logging

    absl_level = logging.getLogger("absl").level
    with caplog.at_level(logging.INFO, logger="mixin"):
        save_cdae(cdae, tmp_path / "a.h5")
    assert not [r for r in caplog.records if "legacy" in r.getMessage()]
    assert logging.getLogger("absl").level == absl_level  # restored
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mixin"):
        save_cdae(cdae, tmp_path / "b.h5")
    assert [r for r in caplog.records if r.name == "absl" and "legacy" in r.getMessage()]


def test_missing_model_is_named(tmp_path):
    with pytest.raises(MixinError, match="model_percussive.h5"):
        save_cdae(build_cdae(), tmp_path / "model_harmonic.h5")
        load_models(tmp_path)
    with pytest.raises(MixinError, match="not found"):
        load_cdae(tmp_path / "nope.h5")
    with pytest.raises(MixinError, match="model directory not found"):
        load_models(tmp_path / "nowhere")


def test_corrupt_model(tmp_path):
    p = tmp_path / "model_vocal.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(MixinError, match="cannot load model"):
        load_cdae(p)
    p.write_text("not a model")
    with pytest.raises(MixinError, match=str(p)):
        load_cdae(p)


def test_wrong_shape_model(tmp_path):
    import keras

    m = keras.Sequential([keras.Input(shape=(64, 64, 1)), keras.layers.Conv2D(1, 1)])
    p = tmp_path / "model_harmonic.h5"
    m.save(p)
    with pytest.raises(MixinError, match="MiXiN needs"):
        load_cdae(p)
