"""Shared fixtures: the reference material in ../shared (skipped when absent) and test models."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def shared_path(*parts):
    """A path inside ../shared, or skip the test (users' checkouts do not have it)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found (../shared is only available to developers and CI)")
    return p


@pytest.fixture(scope="session")
def original_models():
    """Directory of the original published MiXiN models (skips without ../shared)."""
    return shared_path("mixin-original-models")


def _save_models(d, factory):
    from mixin.model import save_cdae

    d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(("harmonic", "percussive", "vocal")):
        save_cdae(factory(i), d / f"model_{s}.h5")
    return d


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    """The published architecture with seeded random weights, saved as .h5 (slow-ish to run)."""
    import keras

    from mixin.model import build_cdae

    def make(i):
        keras.utils.set_random_seed(100 + i)
        return build_cdae()

    return _save_models(tmp_path_factory.mktemp("random-models"), make)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Cheap models with MiXiN's input/output shape: a per-source 1x1 convolution (fast tests)."""
    import keras

    from mixin.model import input_shape

    def make(i):
        m = keras.Sequential([keras.Input(shape=input_shape()),
                              keras.layers.Conv2D(1, 1, activation="relu")])
        m.set_weights([np.full((1, 1, 1, 1), 0.5 + 0.25 * i, np.float32), np.zeros(1, np.float32)])
        return m

    return _save_models(tmp_path_factory.mktemp("tiny-models"), make)


@pytest.fixture(scope="session")
def identity_models(tmp_path_factory):
    """Models that return their input: every mask is 1/3, so each output is a third of the input."""
    import keras

    from mixin.model import input_shape

    def make(i):
        return keras.Sequential([keras.Input(shape=input_shape()),
                                 keras.layers.Activation("linear")])

    return _save_models(tmp_path_factory.mktemp("identity-models"), make)


@pytest.fixture(scope="module")
def vocal_hdf5(tmp_path_factory):
    """Two synthetic songs, one 3 s segment each: 8 vocal examples per split (train, validation)."""
    from mixin.training.hdf5 import create_hdf5
    from mixin.training.render.synth import write_stem_folders
    from mixin.training.stems import prepare_stems

    root = tmp_path_factory.mktemp("vocal_hdf5")
    write_stem_folders(root / "stems", 2, 3.5, seed=5)
    prepare_stems([root / "stems"], data_dir=root / "data", segment_duration=3.0)
    create_hdf5(root / "data", n_pool=1, sources=("vocal",))
    return root / "data"
