"""Tests of the --train stage (mixin.training.train): a few steps on tiny synthetic data."""

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from mixin.errors import MixinError
from mixin.training.train import (TrainConfig, batch_indices, checkpoint_paths, make_dataset,
                                  plot_history, read_state, train)

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(epochs=2, batch_size=4, steps_per_epoch=2, eval_batches=1)


def cfg(data, model_dir, logdir, **kw):
    """A TrainConfig of the vocal network only, fast unless ``kw`` says otherwise."""
    return TrainConfig(data_dir=data, model_dir=model_dir, logdir=logdir,
                       **{"sources": ("vocal",), **FAST, **kw})


@pytest.fixture(scope="module")
def data(vocal_hdf5):
    return vocal_hdf5


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _png(path):
    return Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_batch_indices_cover_every_example_once_per_pass():
    n, bs = 10, 4
    for p in range(3):
        got = np.concatenate([batch_indices(n, bs, 7, p * 3 + k) for k in range(3)])
        assert sorted(got.tolist()) == list(range(n))
    for b in range(6):
        idx = batch_indices(n, bs, 7, b)
        assert np.all(np.diff(idx) > 0)  # sorted, unique: one HDF5 read per example
        np.testing.assert_array_equal(idx, batch_indices(n, bs, 7, b))  # deterministic
    assert not all(np.array_equal(batch_indices(n, bs, 7, k), batch_indices(n, bs, 7, k + 3))
                   for k in range(3))  # a new order every pass
    np.testing.assert_array_equal(batch_indices(n, bs, 7, 1, shuffle=False), [4, 5, 6, 7])


def test_make_dataset_streams_float32_batches(data):
    path = data / "data_vocal.hdf5"
    with h5py.File(path, "r") as hf:
        n = hf["data-x-validation"].shape[0]
        first = hf["data-y-validation"][:3].astype(np.float32)
    ds = make_dataset(str(path), "validation", 3, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == -(-n // 3) == int(ds.cardinality())
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (3, 96, 1948, 1)
    np.testing.assert_array_equal(y, first)
    assert sum(b[0].shape[0] for b in batches) == n
    inf = make_dataset(str(path), "train", 4, seed=1, start_batch=5, infinite=True)
    assert len(list(inf.take(7).as_numpy_iterator())) == 7  # runs past one pass


def test_train_checkpoints_history_models_plots_and_resume(data, tmp_path):
    from mixin.model import load_cdae, load_models

    model_dir, logdir = tmp_path / "model", tmp_path / "logdir"
    res = train(cfg(data, model_dir, logdir, plot=True))
    p = checkpoint_paths(model_dir, logdir, "vocal")
    for key in ("best", "last", "state", "history", "model", "model_history", "plot_loss", "plot_mae"):
        assert os.path.isfile(p[key]), key
    assert _png(p["plot_loss"]) and _png(p["plot_mae"])
    rows = _rows(p["history"])
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "mae", "val_loss", "val_mae", "examples_per_s"} <= set(rows[0])
    assert _rows(p["model_history"]) == rows
    state = read_state(p["state"])
    assert state["epoch"] == 2 and state["finished"] and state["config"]["batch_size"] == 4
    assert res["vocal"]["validation"] == pytest.approx(state["metrics"]["validation"])
    assert res["vocal"]["test"] is None  # two songs: no test song
    # the saved model is the best checkpoint, loadable as xtract_mixin.py loads it
    best_val = min(float(r["val_loss"]) for r in rows)
    assert state["best"] == pytest.approx(best_val)
    m = load_cdae(p["model"])
    for a, b in zip(m.get_weights(), load_cdae(p["best"]).get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(MixinError):  # the other two models were not trained
        load_models(model_dir)
    from mixin.backends import sha256
    from mixin.onnxexport import recorded_hash

    # exported for the onnx backend, from this very .h5
    assert recorded_hash(model_dir / "model_vocal.onnx") == sha256(p["model"])

    # resume: one more epoch continues from the checkpoint, history kept
    train(cfg(data, model_dir, logdir, epochs=3))
    rows3 = _rows(p["history"])
    assert [int(r["epoch"]) for r in rows3] == [0, 1, 2]
    assert rows3[:2] == rows
    assert read_state(p["state"])["epoch"] == 3

    # the same run as one uninterrupted training gives the same weights
    straight = tmp_path / "straight"
    train(cfg(data, straight / "model", straight / "logdir", epochs=3))
    a = load_cdae(checkpoint_paths(straight / "model", straight / "logdir", "vocal")["best"])
    for wa, wb in zip(a.get_weights(), load_cdae(p["best"]).get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)

    # finished: re-running does not touch the model
    mtime = os.stat(p["model"]).st_mtime_ns
    again = train(cfg(data, model_dir, logdir, epochs=3))
    assert os.stat(p["model"]).st_mtime_ns == mtime
    assert again["vocal"]["validation"] == pytest.approx(read_state(p["state"])["metrics"]["validation"])


def test_never_replaces_a_foreign_model(data, tmp_path):
    model_dir, logdir = tmp_path / "model", tmp_path / "logdir"
    model_dir.mkdir()
    foreign = model_dir / "model_vocal.h5"
    foreign.write_bytes(b"the user's model")
    with pytest.raises(MixinError, match="--overwrite"):
        train(cfg(data, model_dir, logdir))
    assert foreign.read_bytes() == b"the user's model"
    assert not logdir.exists() or not list(logdir.iterdir())
    train(cfg(data, model_dir, logdir, overwrite=True, epochs=1))
    assert foreign.read_bytes() != b"the user's model"
    # a checkpoint without its state file is refused too
    os.remove(checkpoint_paths(model_dir, logdir, "vocal")["state"])
    os.remove(foreign)
    with pytest.raises(MixinError, match="without .*state.json"):
        train(cfg(data, model_dir, logdir))


def test_config_check_names_the_setting_and_value():
    assert TrainConfig().check().loss_of("vocal") == "mse"  # the measured best, as the command's
    assert TrainConfig(loss="mae").loss_of("vocal") == "mae"
    for kw, msg in ((dict(epochs=0), "--epochs .* got 0"), (dict(batch_size=-1), "--batch-size .* got -1"),
                    (dict(batch_size=2.0), "--batch-size .* got 2.0"),
                    (dict(learning_rate=0.0), r"--learning-rate .* got 0.0"),
                    (dict(learning_rate=float("nan")), "--learning-rate .* got nan"),
                    (dict(loss="hinge"), "loss .* got 'hinge'"),
                    (dict(loss={"harmonic": "mae"}), "no loss given for percussive, vocal"),
                    (dict(steps_per_epoch=0), "--steps-per-epoch .* got 0"),
                    (dict(eval_batches=0), "--eval-batches .* got 0"),
                    (dict(sources=("drums",)), "sources .*'drums'"), (dict(sources=()), "sources"),
                    (dict(sources=("vocal", "vocal")), "repeated"), (dict(sources="vocal"), "sources"),
                    (dict(patience=-1), "--patience .* got -1"), (dict(seed=True), "--seed .* got True")):
        with pytest.raises(MixinError, match=msg):
            TrainConfig(**kw).check()


def test_bad_inputs(data, tmp_path):
    with pytest.raises(MixinError, match="run --create-hdf5 first"):
        train(cfg(tmp_path / "nothing", tmp_path / "m", tmp_path / "l"))
    with pytest.raises(MixinError, match="run --create-hdf5 first"):
        train(TrainConfig(data, tmp_path / "m", tmp_path / "l"))  # no harmonic/percussive files
    for kw, msg in ((dict(epochs=0), "--epochs"), (dict(learning_rate=0.0), "--learning-rate"),
                    (dict(sources=("drums",)), "sources")):
        with pytest.raises(MixinError, match=msg):  # train() checks its config
            train(cfg(data, tmp_path / "m", tmp_path / "l", **kw))
    assert not (tmp_path / "m").exists() and not (tmp_path / "l").exists()
    # a changed loss cannot resume a checkpoint
    train(cfg(data, tmp_path / "m", tmp_path / "l", loss="mae", epochs=1))
    with pytest.raises(MixinError, match="loss"):
        train(cfg(data, tmp_path / "m", tmp_path / "l", loss="mse"))


def test_plot_history_without_validation(tmp_path):
    h = tmp_path / "h.csv"
    h.write_text("epoch,loss,mae\n0,0.5,0.5\n1,0.25,0.25\n")
    plot_history(h, "vocal", tmp_path / "l.png", tmp_path / "m.png")
    assert _png(tmp_path / "l.png") and _png(tmp_path / "m.png")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(data, tmp_path):
    """Two logical CPU devices (configured before TensorFlow initialises, so in a subprocess)."""
    script = textwrap.dedent(f"""
        import logging, sys
        sys.path.insert(0, {str(ROOT)!r})
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        from mixin.training.train import get_strategy, train
        strategy, chief = get_strategy()
        print("REPLICAS", strategy.num_replicas_in_sync, type(strategy).__name__, flush=True)
        from mixin.training.train import TrainConfig
        train(TrainConfig({str(data)!r}, {str(tmp_path / 'model')!r}, {str(tmp_path / 'logdir')!r},
                          sources=("vocal",), epochs=2, batch_size=4, steps_per_epoch=2,
                          eval_batches=1))
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "REPLICAS 2 MirroredStrategy" in p.stdout
    assert "2 logical CPU devices: MirroredStrategy" in p.stderr
    from mixin.model import load_cdae

    load_cdae(tmp_path / "model" / "model_vocal.h5")
    state = json.loads((tmp_path / "logdir" / "model_vocal.state.json").read_text())
    assert state["epoch"] == 2 and state["finished"]
    shutil.rmtree(tmp_path / "model")
