"""Training trains: a few optimizer steps lower the loss and change the weights.

Through :func:`mixin.model.compile_cdae` (the optimizer of ``train_util.py --train``) on a small
batch, and through the two training entry points, :func:`mixin.training.train.train` (``--train``,
HDF5 datasets) and ``train_util.py --train-mix`` (examples mixed on the fly). A learning rate of
zero, or an optimizer that ignores the rate it is given, makes these fail.
"""

import json

import numpy as np
import pytest

SHAPE = (12, 40, 1)  # a small input: the architecture builds for any size


def _batch(seed=0, n=4):
    """Positive 'mixture magnitudes' and a learnable target: half of the input."""
    x = np.random.default_rng(seed).random((n,) + SHAPE).astype(np.float32)
    return x, 0.5 * x


@pytest.mark.parametrize("loss,rate", [("mae", None), ("mse", 3e-4)])
def test_compile_cdae_then_fit_lowers_the_loss_and_changes_the_weights(loss, rate):
    import keras

    from mixin.model import build_cdae, compile_cdae

    keras.utils.set_random_seed(1)
    model = build_cdae(SHAPE)
    kw = {} if rate is None else {"learning_rate": rate}
    compile_cdae(model, loss, **kw)
    want = 1e-3 if rate is None else rate  # the published default: Adam's 1e-3
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(want)
    x, y = _batch()
    w0 = [w.copy() for w in model.get_weights()]
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, batch_size=len(x), epochs=20, verbose=0, shuffle=False)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert after < 0.8 * before, (before, after)
    changed = [not np.array_equal(a, b) for a, b in zip(w0, model.get_weights())]
    assert all(changed), changed  # every kernel and bias moved


# ------------------------------------------------------------------------------------------------
# the entry points


def _loss(kind, y, e):
    d = np.asarray(e, np.float64) - np.asarray(y, np.float64)
    return float(np.mean(np.abs(d) if kind == "mae" else d * d))


def test_train_lowers_the_training_loss_and_changes_the_weights(vocal_hdf5, tmp_path):
    """--train: the weights after one epoch and after three more differ, and the later ones have
    the lower loss on the training examples (the loss of every epoch goes down)."""
    import h5py
    import keras

    from mixin.training.train import TrainConfig, checkpoint_paths, read_history, train

    def run(epochs):
        cfg = TrainConfig(data_dir=vocal_hdf5, model_dir=tmp_path / "model", logdir=tmp_path / "logdir",
                          sources=("vocal",), epochs=epochs, batch_size=4, eval_batches=1,
                          learning_rate=1e-3)
        train(cfg)
        return keras.models.load_model(checkpoint_paths(cfg.model_dir, cfg.logdir, "vocal")["last"])

    with h5py.File(vocal_hdf5 / "data_vocal.hdf5", "r") as f:
        x = f["data-x-train"][:].astype(np.float32)
        y = f["data-y-train"][:].astype(np.float32)
    one = run(1)
    w1 = one.get_weights()
    loss1 = _loss("mse", y, one.predict(x, verbose=0))  # the vocal network's loss: MSE
    four = run(4)
    assert all(not np.array_equal(a, b) for a, b in zip(w1, four.get_weights()))
    loss4 = _loss("mse", y, four.predict(x, verbose=0))
    assert loss4 < 0.9 * loss1, (loss1, loss4)
    hist = read_history(checkpoint_paths(tmp_path / "model", tmp_path / "logdir", "vocal")["history"])
    assert np.all(np.diff(hist["loss"]) < 0), hist["loss"]


def test_train_mix_lowers_the_loss_on_its_batches_and_changes_the_weights(random_models, tmp_path):
    """--train-mix from given networks: after one round of three batches every network has moved
    and has a lower loss (MAE, the one trained) on the batches it was trained on."""
    import train_util

    from mixin import params
    from mixin.model import load_models
    from mixin.training.mixing import MixConfig, Mixer, build_catalogue
    from mixin.training.render.synth import write_stem_folders

    stems = tmp_path / "stems"
    write_stem_folders(stems, 3, 8.0, seed=3)
    names = sorted(p.name for p in stems.iterdir() if p.is_dir())
    args = ["--train-mix", "--stem-dirs", str(stems), "--validation-songs", names[0],
            "--batch-size", "2", "--round-batches", "3", "--rounds", "1", "--validation-duration", "2",
            "--mix-workers", "0",
            "--learning-rate", "1e-3", "--loss", "mae", "--init-model-dir", str(random_models),
            "--model-dir", str(tmp_path / "model"), "--logdir", str(tmp_path / "logdir"), "-q"]
    assert train_util.main(args) == 0
    state = json.loads((tmp_path / "logdir" / "joint.state.json").read_text())
    assert state["batches"] == 3 and state["mix"] == MixConfig().to_json()
    before = load_models(random_models)
    after = load_models(tmp_path / "logdir" / "rounds" / "001")
    # the batches of the round: batch k of the mixer over the training songs (seed 0)
    mixer = Mixer(build_catalogue([stems], exclude={names[0]}), MixConfig(), seed=0)
    batches = [mixer.batch(k, 2) for k in range(3)]
    for i, s in enumerate(params.SOURCES):
        assert all(not np.array_equal(a, b) for a, b in
                   zip(before[s].get_weights(), after[s].get_weights())), s
        loss = {k: np.mean([_loss("mae", ys[i], m[s].predict(x, verbose=0))
                            for x, ys in batches]) for k, m in (("before", before), ("after", after))}
        assert loss["after"] < 0.98 * loss["before"], (s, loss)
