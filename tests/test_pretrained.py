"""The shipped models in pretrained-models/: present, the published architecture, documented, usable."""

import json

import numpy as np
import pytest

import mixin
from conftest import ROOT
from mixin import params
from mixin.model import N_PARAMS, load_models

MODEL_DIR = ROOT / "pretrained-models"


def test_shipped_models_load_with_the_published_architecture():
    models = load_models(MODEL_DIR)
    assert set(models) == set(params.SOURCES)
    for m in models.values():
        assert m.count_params() == N_PARAMS


def test_training_record_beside_the_models():
    rec = json.loads((MODEL_DIR / "training.json").read_text())
    for key in ("project_version", "training_data", "commands", "sources", "validation_scores"):
        assert key in rec, key
    assert rec["project_version"] == mixin.__version__
    for s in params.SOURCES:
        info = rec["sources"][s]
        assert info["loss"] in ("mae", "mse")
        if rec.get("stage") == "train-mix":  # trained together, chosen by separation SDR
            assert info["batches"] >= 1 and info["seconds"] > 0
            assert np.isfinite(rec["selection"]["select_mean"])
        else:
            assert info["epochs"] >= 1 and info["seconds"] > 0
            assert np.isfinite(info["final_validation_loss"])


def test_held_out_songs_are_not_in_the_training_data():
    """Songs reported as held out are in no training split (nor in the rendered songs' vocals)."""
    rec = json.loads((MODEL_DIR / "training.json").read_text())
    split = rec["training_data"]["split_by_song"]
    held = set(split.get("validation", [])) | set(split.get("test", []))
    assert held and not held & set(split["train"])
    for render in rec["training_data"].get("rendered", {}).values():
        if render.get("split") == "train":
            assert not held & set(render.get("vocal_songs", [])), render


def test_shipped_models_are_not_dead_and_separate_a_synthetic_mix():
    """Each network answers a real mix (no all-zero ReLU output) and the masks share the song out."""
    from mixin.separation.separate import Separator
    from mixin.training.render.synth import make_song

    stems = make_song(6.0, seed=123, channels=1)
    mix = sum(stems.values())[:, 0]
    sep = Separator(MODEL_DIR)
    out = sep.separate(mix)
    for s in params.SOURCES:
        assert out[s].shape == mix.shape and np.isfinite(out[s]).all()
        assert np.sqrt(np.mean(out[s] ** 2)) > 1e-3 * np.sqrt(np.mean(mix ** 2)), s
    resid = mix - sum(out.values())
    assert 10 * np.log10(np.sum(mix ** 2) / np.sum(resid ** 2)) > 30


def test_calibration_record_matches_the_training_record():
    """Calibration is an optional stage: shipped models carry calibration.json exactly when the
    training record lists the --calibrate command, and then the two agree."""
    rec = json.loads((MODEL_DIR / "training.json").read_text())
    calibrated = "./train_util.py --calibrate" in rec["commands"]
    assert (MODEL_DIR / "calibration.json").exists() == calibrated
    assert ("calibration" in rec) == calibrated
    if calibrated:
        cal = json.loads((MODEL_DIR / "calibration.json").read_text())
        assert cal["gains_db"] == rec["calibration"]["gains_db"]
        assert cal["gains_db"]["harmonic"] == 0.0
        assert cal["mask_error"]["calibrated"] <= cal["mask_error"]["uncalibrated"]
