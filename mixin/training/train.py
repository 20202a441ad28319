"""The ``--train`` stage: each CDAE trained on its HDF5 dataset by the training engine.

:func:`train` trains, for each source, the published CDAE (:func:`mixin.model.build_cdae`, Adam)
on ``data/data_{source}.hdf5`` through :class:`HDF5Source` and :func:`mixin.training.engine.fit`,
and saves ``model/model_{source}.h5``; files, resuming and early stopping in docs/training.md
(``--train``). Settings: a :class:`~mixin.training.engine.TrainConfig`.

Batches stream from HDF5 through ``tf.data`` (one batch read at a time, prefetched), so memory
does not depend on the size of the dataset; training batch ``b`` depends only on (examples,
batch size, seed, b), so a resumed run sees the batches an uninterrupted one would. TensorFlow's
CPU kernels may sum in another order from run to run (losses differ in the last digits);
``deterministic=True`` enables op determinism. With several GPUs or logical CPUs, training runs
under ``MirroredStrategy``; with several workers in ``TF_CONFIG`` under
``MultiWorkerMirroredStrategy``, only the chief (worker 0) writing ``logdir/`` and ``model/``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import tempfile
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import layout, params
from ..io import files as fileio
from ..errors import MixinError
from .engine import (DEFAULT_LEARNING_RATE, DEFAULT_LOSSES, LOSSES, TrainConfig,  # noqa: F401
                     fit, plot_curves, read_history, read_rows, read_state)
from .hdf5 import SPLITS, check_hdf5, dataset_name

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger("mixin")

#: Batches prefetched while the current one trains.
PREFETCH = 2

STATE_VERSION = 1


def checkpoint_paths(model_dir: str | os.PathLike, logdir: str | os.PathLike,
                     source: str) -> dict[str, str]:
    """Every file :func:`train` writes for ``source`` (a dict of str: best, last, state, history,
    model, model_history, plot_loss, plot_mae)."""
    model_dir, logdir = str(model_dir), str(logdir)
    return dict(
        best=os.path.join(logdir, f"model_{source}.best.h5"),
        last=os.path.join(logdir, f"model_{source}.last.keras"),
        state=os.path.join(logdir, f"model_{source}.state.json"),
        history=os.path.join(logdir, f"history_{source}.csv"),
        model=os.path.join(model_dir, params.MODEL_FILES[source]),
        model_history=os.path.join(model_dir, f"history_{source}.csv"),
        plot_loss=os.path.join(model_dir, f"{source}_train_loss.png"),
        plot_mae=os.path.join(model_dir, f"{source}_train_mae.png"),
    )


def _n_batches(n, batch_size):
    return -(-n // batch_size)


def batch_indices(n: int, batch_size: int, seed: int, batch: int,
                  shuffle: bool = True) -> np.ndarray:
    """Sorted example indices (int array, at most ``batch_size``) of global batch number ``batch``
    of a shuffled stream.

    The stream is a sequence of passes over the ``n`` examples; pass ``p`` uses the permutation
    drawn from ``(seed, p)``. So batch ``b`` depends only on (n, batch_size, seed, b).
    """
    nb = _n_batches(n, batch_size)
    p, k = divmod(batch, nb)
    if shuffle:
        order = np.random.default_rng([int(seed), int(p)]).permutation(n)
    else:
        order = np.arange(n)
    return np.sort(order[k * batch_size:(k + 1) * batch_size])


def _h5_batches(path, split, batch_size, seed, start, stop, shuffle):
    """Generator of (x, y) batches [shape=(b, rows, cols, 1)] for global batches [start, stop).

    ``stop=None`` runs forever (training); the file is opened once per iteration.
    """
    import h5py

    with h5py.File(path, "r") as hf:
        x = hf[dataset_name("x", split)]
        y = hf[dataset_name("y", split)]
        n = x.shape[0]
        b = start
        while stop is None or b < stop:
            idx = batch_indices(n, batch_size, seed, b, shuffle=shuffle)
            # one read_direct per example (h5py's fancy indexing is much slower)
            xb = np.empty((len(idx),) + x.shape[1:], dtype=x.dtype)
            yb = np.empty_like(xb)
            for j, i in enumerate(idx):
                x.read_direct(xb, np.s_[i:i + 1], np.s_[j:j + 1])
                y.read_direct(yb, np.s_[i:i + 1], np.s_[j:j + 1])
            yield xb, yb
            b += 1


def make_dataset(path: str | os.PathLike, split: str, batch_size: int, seed: int = 0,
                 start_batch: int = 0, n_batches: int | None = None, shuffle: bool = True,
                 infinite: bool = False) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of (x, y) float32 batches [shape=(b, 96, 1948, 1)] streamed from one
    split of an HDF5 file (:class:`MixinError` if the split has no examples).

    ``infinite=True``: shuffled batches from global batch ``start_batch`` on, forever (give
    ``steps_per_epoch`` to ``fit``). Otherwise ``n_batches`` batches (default: one pass).
    """
    import h5py
    import tensorflow as tf

    with h5py.File(path, "r") as hf:
        d = hf[dataset_name("x", split)]
        n, shape, dtype = d.shape[0], d.shape[1:], d.dtype
    if n == 0:
        raise MixinError(f"{path}: no {split} examples")
    stop = None if infinite else start_batch + (n_batches or _n_batches(n, batch_size))
    gen = functools.partial(_h5_batches, path, split, batch_size, seed, start_batch, stop, shuffle)
    spec = tf.TensorSpec((None,) + tuple(shape), tf.as_dtype(dtype))
    ds = tf.data.Dataset.from_generator(gen, output_signature=(spec, spec))
    if not infinite:
        ds = ds.apply(tf.data.experimental.assert_cardinality(stop - start_batch))
    if dtype != np.float32:
        ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), tf.cast(b, tf.float32)))
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts).prefetch(PREFETCH)


def _tf_config_workers():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0, True
    try:
        cfg = json.loads(raw)
        workers = cfg.get("cluster", {}).get("worker", [])
        chief = cfg.get("cluster", {}).get("chief", [])
        task = cfg.get("task", {})
    except (ValueError, AttributeError):
        raise MixinError("TF_CONFIG is not valid JSON of the form {\"cluster\": ..., \"task\": ...}") from None
    n = len(workers) + len(chief)
    is_chief = task.get("type") == "chief" or (not chief and task.get("type", "worker") == "worker"
                                                and int(task.get("index", 0)) == 0)
    return n, is_chief


def get_strategy() -> tuple[tf.distribute.Strategy, bool]:
    """The distribution strategy for the visible devices; returns (strategy, is_chief).

    MultiWorkerMirroredStrategy if ``TF_CONFIG`` names more than one worker; MirroredStrategy over
    the GPUs if more than one, or over the logical CPU devices if more than one; else the default.
    """
    import tensorflow as tf

    n_workers, is_chief = _tf_config_workers()
    if n_workers > 1:
        log.info("TF_CONFIG: %d workers, MultiWorkerMirroredStrategy (chief: %s)", n_workers, is_chief)
        return tf.distribute.MultiWorkerMirroredStrategy(), is_chief
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs: MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy([d.name for d in gpus]), True
    cpus = tf.config.list_logical_devices("CPU")
    if not gpus and len(cpus) > 1:
        log.info("%d logical CPU devices: MirroredStrategy", len(cpus))
        return tf.distribute.MirroredStrategy(
            [d.name for d in cpus], cross_device_ops=tf.distribute.ReductionToOneDevice()), True
    return tf.distribute.get_strategy(), True


def _save_h5(model, path):
    """Save the weights of ``model`` as an uncompiled CDAE in ``.h5`` (what xtract_mixin.py loads;
    Keras' legacy HDF5 writer would remove the optimizer from a compiled model's config)."""
    import keras

    from ..model import save_cdae

    with keras.device("/cpu:0"):
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    save_cdae(copy, path)


def _f(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def plot_history(history_csv: str | os.PathLike, source: str, loss_png: str | os.PathLike,
                 mae_png: str | os.PathLike, loss_name: str = "mae") -> None:
    """Loss and MAE curves (train vs validation) per epoch as two PNG files (Agg backend).
    ``loss_name`` only labels the loss plot."""
    h = read_history(history_csv)
    epochs = [int(e) + 1 for e in h.get("epoch", [])]
    for png, key, title in ((loss_png, "loss", f"{source} model loss ({loss_name})"),
                            (mae_png, "mae", f"{source} model mae")):
        series = [(label, h[k], dict(marker="o")) for k, label in ((key, "train"), ("val_" + key, "validation"))
                  if k in h]
        plot_curves(png, epochs, series, "epoch", key, title)


class HDF5Source:
    """One network trained on one HDF5 dataset: the data source of ``--train`` for
    :func:`mixin.training.engine.fit` (epochs of ``steps`` batches, validated by the loss on the
    validation examples, lower is better)."""

    higher = False
    fmt = staticmethod(repr)

    def __init__(self, cfg: TrainConfig, source: str, paths: dict[str, str], config: dict[str, Any]):
        self.name, self.paths, self.config, self.cfg = source, paths, config, cfg
        self.counts, self.bs, self.h5 = config["counts"], config["batch_size"], config["hdf5"]
        self.steps = config["steps_per_epoch"] or _n_batches(self.counts["train"], self.bs)
        has_val = self.counts["validation"] > 0
        self.monitor = "val_loss" if has_val else "loss"
        self.fields = ["epoch", "examples_per_s", "loss", "mae"] + ["val_loss", "val_mae"] * has_val
        if not has_val:
            log.warning("%s: no validation examples; early stopping and the best checkpoint follow the "
                        "training loss", source)
        self.val_ds = make_dataset(self.h5, "validation", self.bs, shuffle=False) if has_val else None
        self.disk: dict[str, Any] = {}

    def train_epoch(self, model: Any, state: dict[str, Any]) -> dict[str, Any]:
        """One epoch: ``steps`` batches from global batch ``epoch * steps`` on."""
        e = state["rounds"]
        ds = make_dataset(self.h5, "train", self.bs, seed=self.config["seed"], start_batch=e * self.steps,
                          n_batches=self.steps)
        t0 = time.perf_counter()
        h = model.fit(ds, epochs=1, steps_per_epoch=self.steps, shuffle=False, verbose=0)
        seconds = time.perf_counter() - t0  # the first epoch of a run includes tracing
        return dict(epoch=e, examples_per_s=self.steps * self.bs / seconds,
                    **{k: float(v[-1]) for k, v in h.history.items()})

    def validate(self, model: Any) -> dict[str, float]:
        if self.val_ds is None:
            return {}
        r = model.evaluate(self.val_ds, verbose=0, return_dict=True)
        return {"val_loss": float(r["loss"]), "val_mae": float(r["mae"])}

    def save(self, model: Any, row: dict[str, Any], improved: bool) -> None:
        if improved:
            _save_h5(model, self.paths["best"])

    def report(self, row: dict[str, Any], improved: bool) -> None:
        log.info("%s: epoch %d/%d: %s (%.1f examples/s)%s", self.name, row["round"], self.cfg.epochs,
                 ", ".join(f"{k} {row[k]:.6f}" for k in self.fields[2:]), row["examples_per_s"],
                 " *" if improved else "")

    def load_state(self, disk: dict[str, Any]) -> dict[str, Any]:
        """The engine's state from the state file (and the history CSV) of a run to resume."""
        self.disk = dict(disk, config=self.config, finished=False, stopped_early=False)
        rows = [dict(r, round=int(r["epoch"]) + 1) for r in read_rows(self.paths["history"])
                if int(r["epoch"]) < int(disk.get("epoch", 0))]  # rows of the epochs the state records
        for r in rows:
            r.update({k: float(v) for k, v in r.items() if k not in ("epoch", "round") and v != ""})
        best = None if disk.get("best") is None else {"round": disk.get("best_epoch", 0) + 1,
                                                      self.monitor: disk["best"]}
        return dict(rounds=int(disk.get("epoch", 0)), best=best, history=rows, stopped=False)

    def save_state(self, state: dict[str, Any]) -> None:
        best = state["best"] or {"round": 0, self.monitor: None}
        last = state["history"][-1] if state["history"] else {}
        self.disk.update(epoch=state["rounds"], best=_f(best[self.monitor]), best_epoch=max(best["round"] - 1, 0),
                         wait=state["rounds"] - best["round"], stopped_early=state["stopped"],
                         last_logs={k: _f(last[k]) for k in self.fields[1:] if k in last})
        fileio.write_json(self.paths["state"], self.disk, sort_keys=True)

    def run(self, keras: Any, strategy: Any, action: str, disk: dict[str, Any] | None) -> dict[str, Any]:
        """Train (fresh or resumed) or finalize, then write the model and the metrics."""
        from ..model import build_cdae, compile_cdae, load_cdae

        cfg, config, paths = self.cfg, self.config, self.paths
        keras.utils.set_random_seed(config["seed"])
        model = None
        if action == "resume":
            with strategy.scope():
                try:
                    model = keras.models.load_model(paths["last"], compile=True)
                except Exception as e:
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise MixinError(f"cannot resume from {paths['last']}: {msg[:200]}; "
                                     f"use --overwrite to start again") from None
            log.info("%s: resuming from %s at epoch %d", self.name, paths["last"], disk.get("epoch", 0))
        elif action == "fresh":
            with strategy.scope():
                model = compile_cdae(build_cdae(name=f"mixin_{self.name}"), config["loss"],
                                     config["learning_rate"])
            disk = dict(version=STATE_VERSION, epoch=0, best=None, wait=0, best_epoch=0)
        state = self.load_state(disk)
        if action == "fresh":
            state["history"] = []
            self.save_state(state)
        t0 = time.perf_counter()
        if model is not None and state["rounds"] < cfg.epochs:
            log.info("%s: training on %d examples (%d batches of %d per epoch), validating on %d, "
                     "epochs %d..%d", self.name, self.counts["train"], self.steps, self.bs,
                     self.counts["validation"], state["rounds"] + 1, cfg.epochs)
            fit(self, model, state, cfg.epochs, cfg.patience)
        elif model is None:  # finalize: a finished run whose model was not yet written
            model = compile_cdae(load_cdae(paths["best"]), config["loss"], config["learning_rate"])
            state["stopped"] = bool(disk.get("stopped_early"))
        return self.finish(model, state, time.perf_counter() - t0, strategy)

    def finish(self, model: Any, state: dict[str, Any], seconds: float, strategy: Any) -> dict[str, Any]:
        """The best epoch's weights as ``model/model_{s}.h5`` (+ ONNX), history, plots, metrics."""
        from ..model import load_cdae
        from ..onnxexport import export_after_save

        paths = self.paths
        if os.path.exists(paths["best"]):
            with strategy.scope():
                best = load_cdae(paths["best"])
            model.set_weights(best.get_weights())
        _save_h5(model, paths["model"])
        export_after_save([paths["model"]])  # model_{s}.onnx beside it, for the onnx backend
        if os.path.exists(paths["history"]):
            fileio.copy_file(paths["history"], paths["model_history"])
            if self.cfg.plot:
                plot_history(paths["history"], self.name, paths["plot_loss"], paths["plot_mae"],
                             self.config["loss"])
        metrics = self.metrics(model)
        disk = read_state(paths["state"]) or self.disk
        disk.update(finished=True, stopped_early=state["stopped"], metrics=metrics,
                    train_seconds=round(seconds, 1), model=os.path.abspath(paths["model"]))
        fileio.write_json(paths["state"], disk, sort_keys=True)
        return dict(metrics, epochs=disk.get("epoch"), best_epoch=disk.get("best_epoch", 0) + 1,
                    stopped_early=state["stopped"], model=paths["model"], seconds=seconds)

    def metrics(self, model: Any) -> dict[str, float | None]:
        """MAE per split (training: ``eval_batches`` shuffled batches, or all) and the fraction of
        positive outputs (0: a "dead" ReLU output, which gets no gradient and never recovers)."""
        counts, bs, nb = self.counts, self.bs, self.cfg.eval_batches
        metrics = {}
        for split in SPLITS:
            n = nb if split == "train" else None
            metrics[split] = None if counts[split] == 0 else float(model.evaluate(make_dataset(
                self.h5, split, bs, seed=self.config["seed"],
                n_batches=n and min(n, _n_batches(counts[split], bs)),
                shuffle=split == "train" and n is not None), verbose=0, return_dict=True)["mae"])
        check = "validation" if counts["validation"] else "train"
        ds = make_dataset(self.h5, check, bs, n_batches=min(2, _n_batches(counts[check], bs)), shuffle=False)
        metrics["positive_fraction"] = float(np.mean(model.predict(ds, verbose=0) > 0))
        if metrics["positive_fraction"] == 0:
            log.warning("%s: the network outputs zero for every %s example (a dead ReLU output: it "
                        "will not learn further); try --loss mse, a lower --learning-rate, or more data",
                        self.name, check)
        return metrics


def _plan(source, paths, config, overwrite):
    """Decide what to do for one source: 'fresh', 'resume', 'finalize' (a finished run whose best
    model is not yet copied to the model dir) or 'done'; returns (action, state)."""
    if overwrite:
        return "fresh", None
    state = read_state(paths["state"])
    if state is None:
        if os.path.exists(paths["model"]):
            raise MixinError(f"{paths['model']} exists and {paths['state']} does not say this run made "
                             f"it; use --overwrite to replace it")
        for key in ("best", "last"):
            if os.path.exists(paths[key]):
                raise MixinError(f"{paths[key]} exists without {paths['state']}; use --overwrite to "
                                 f"start again")
        return "fresh", None
    old = state.get("config", {})
    for key in ("loss", "batch_size", "mono_data"):
        if key in old and old[key] != config[key]:
            raise MixinError(f"{paths['state']}: the checkpoint was trained with {key}={old[key]!r}, "
                             f"now {config[key]!r}; use the same setting or --overwrite")
    if old.get("counts") and old["counts"] != config["counts"]:
        log.warning("%s: the HDF5 data changed since the checkpoint (%s, now %s); resuming anyway",
                    source, old["counts"], config["counts"])
    if state.get("stopped_early") or (state.get("finished") and state.get("epoch", 0) >= config["epochs"]):
        if os.path.exists(paths["model"]):
            return "done", state
        if os.path.exists(paths["best"]):
            return "finalize", state
    if not os.path.exists(paths["last"]):
        if state.get("epoch", 0) > 0:
            raise MixinError(f"{paths['last']} is missing but {paths['state']} records "
                             f"{state['epoch']} epochs; use --overwrite to start again")
        return "fresh", None
    return "resume", state


def _config(source, data_dir, counts, cfg):
    """The settings of one source's run, as recorded in its state file (compared on resume)."""
    import h5py

    path = str(layout.hdf5_path(data_dir, source))
    with h5py.File(path, "r") as hf:
        storage = str(hf.attrs.get("storage", "unknown"))
        mono = bool(hf.attrs.get("mono", False))
    return dict(source=source, hdf5=os.path.abspath(path), counts=counts, storage=storage,
                mono_data=mono, epochs=int(cfg.epochs), batch_size=int(cfg.batch_size),
                patience=int(cfg.patience), seed=int(cfg.seed),
                steps_per_epoch=None if cfg.steps_per_epoch is None else int(cfg.steps_per_epoch),
                loss=cfg.loss_of(source), learning_rate=float(cfg.learning_rate))


def train(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """Train (or resume) the CDAEs of ``cfg.sources`` on ``cfg.data_dir/data_{source}.hdf5``.

    ``cfg`` is checked first. Raises :class:`MixinError` for a bad setting, missing or incomplete
    HDF5 files or a split without training examples, an existing model or checkpoint this logdir
    did not make (without ``overwrite``), or a checkpoint trained with another loss, batch size or
    channel layout. Returns {source: {"train", "validation", "test": MAE or None,
    "positive_fraction", "epochs", "best_epoch", "stopped_early", "model", "seconds"}} (for a
    source already trained, its recorded metrics).
    """
    from ..model import import_tensorflow

    cfg.check()
    if cfg.data_source != "hdf5":
        raise MixinError("train() trains from HDF5 datasets; --train-mix is mixing.train_mix()")
    sources = tuple(cfg.sources)
    data_dir, model_dir, logdir = str(cfg.data_dir), str(cfg.model_dir), str(cfg.logdir)
    counts = check_hdf5(data_dir, sources)
    for s, c in counts.items():
        if c["train"] == 0:
            raise MixinError(f"{layout.hdf5_path(data_dir, s)}: no training examples")
    _, is_chief = _tf_config_workers()
    if not is_chief:  # non-chief workers of a multi-worker run write to a scratch folder
        scratch = tempfile.mkdtemp(prefix="mixin-worker-")
        model_dir, logdir = os.path.join(scratch, "model"), os.path.join(scratch, "logdir")
    plans = {}
    for s in sources:
        paths = checkpoint_paths(model_dir, logdir, s)
        config = _config(s, data_dir, counts[s], cfg)
        plans[s] = (paths, config) + _plan(s, paths, config, cfg.overwrite)

    tf = import_tensorflow(log.isEnabledFor(logging.DEBUG))
    import keras

    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy, _ = get_strategy()
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(logdir, exist_ok=True)
    results = {}
    for s in sources:
        paths, config, action, state = plans[s]
        if action == "done":
            log.info("%s: already trained (%s); --overwrite to train again", s, paths["state"])
            results[s] = state.get("metrics", {})
        else:
            results[s] = HDF5Source(cfg, s, paths, config).run(keras, strategy, action, state)
        m = results[s]
        print(f"{s}: MAE train {_fmt(m.get('train'))}, validation {_fmt(m.get('validation'))}, "
              f"test {_fmt(m.get('test'))}  ({paths['model']})", flush=True)
    return results


def _fmt(v):
    return "n/a" if v is None else f"{v:.6f}"
