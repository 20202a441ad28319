"""Training the three CDAEs from the HDF5 datasets, resumable and reproducible.

:func:`train` trains, for each source, the published CDAE (:func:`mixin.model.build_cdae`, Adam)
on ``data/data_{source}.hdf5`` and saves ``model/model_{source}.h5`` in the format that
``xtract_mixin.py --pretrained-model-dir`` loads. Its settings are a :class:`TrainConfig`.

Data: batches stream from HDF5 through ``tf.data`` (a Python generator reading one batch of
examples at a time, prefetched while the previous batch trains), so memory does not depend on the
size of the dataset. The training examples are reshuffled every epoch from ``(seed, pass)``; the
batch stream is indexed globally, so a resumed run sees exactly the batches it would have seen.
Validation and test batches are read in file order.

Files (``{s}`` = source)::

    logdir/model_{s}.best.h5        best model so far (lowest validation loss), loadable as a model
    logdir/model_{s}.last.keras     model + optimizer state after the last finished epoch (resume)
    logdir/model_{s}.state.json     epochs done, early-stopping state, settings, final metrics
    logdir/history_{s}.csv          one row per epoch (loss, mae, val_loss, val_mae, examples/s)
    model/model_{s}.h5              the final model (the best epoch's weights)
    model/history_{s}.csv           a copy of the history
    model/{s}_train_loss.png, model/{s}_train_mae.png   with ``plot=True`` (Agg backend)

Every file but the Keras CSV history is written atomically (:mod:`mixin.fileio`).

Resuming: re-running continues each source from ``last.keras`` (weights and optimizer state) at
the epoch recorded in the state file, with the same batches an uninterrupted run would have seen;
sources already finished are skipped (a run that stopped early is finished; one that reached
``epochs`` continues if given more). The loss and batch size must match the checkpoint's. Nothing is deleted: an existing ``model_{s}.h5`` that
this logdir did not produce is refused unless ``overwrite=True``, which also restarts from scratch.

Early stopping: on validation loss with ``patience`` (the original: 2), the best epoch's weights
restored at the end. Without validation examples (fewer than 2 songs) it monitors the training
loss and says so.

Reproducibility: :func:`keras.utils.set_random_seed` seeds Python, NumPy and TensorFlow, so the
initial weights and the batch order are the same on every run. TensorFlow's CPU kernels
(oneDNN convolutions with several threads) may sum in a different order from run to run, so
losses can differ in the last digits; ``deterministic=True`` calls
``tf.config.experimental.enable_op_determinism()`` (slower, and every op must support it).

Devices: with more than one GPU visible, or more than one logical CPU device configured, training
runs under ``tf.distribute.MirroredStrategy`` (``batch_size`` is the global batch, split across
the replicas). For several machines, set ``TF_CONFIG`` on each (the standard
``{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": i}}``)
and run the same command on every machine: with more than one worker in ``TF_CONFIG`` training runs
under ``tf.distribute.MultiWorkerMirroredStrategy``; each worker needs the HDF5 files, and only the
chief (worker 0) writes ``logdir/`` and ``model/`` (the others write to a temporary folder).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import layout, params
from ..io import files as fileio
from ..errors import MixinError
from .hdf5 import SPLITS, check_hdf5, dataset_name

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger("mixin")

#: Loss functions accepted by :func:`train` (the published models: MAE).
LOSSES = ("mae", "mse")

#: The measured best loss per network (README, "Settings tried"): MAE for harmonic and percussive,
#: MSE for vocal (with MAE the vocal network's ReLU output collapses to zero). The original: MAE.
DEFAULT_LOSSES = {"harmonic": "mae", "percussive": "mae", "vocal": "mse"}

#: The measured best learning rate (the original's, Keras' default 1e-3, measured much worse).
DEFAULT_LEARNING_RATE = 1e-4

#: Batches prefetched while the current one trains.
PREFETCH = 2

STATE_VERSION = 1


@dataclass
class TrainConfig:
    """Settings of :func:`train`, validated once by :meth:`check` (which :func:`train` calls).

    Defaults are the command's (``train_util.py --train``): the measured best learning rate and
    losses; the original MiXiN trained with ``learning_rate=1e-3, loss="mae"``.
    """

    data_dir: str | os.PathLike = "data"       #: holds data_{source}.hdf5 (--create-hdf5)
    model_dir: str | os.PathLike = "model"     #: final models, histories, plots
    logdir: str | os.PathLike = "logdir"       #: checkpoints, state, history (for resuming)
    sources: tuple[str, ...] = params.SOURCES  #: networks to train, in this order
    epochs: int = 100                          #: at most this many (early stopping ends sooner)
    batch_size: int = 64                       #: examples per batch (global, when distributed)
    patience: int = 2                          #: epochs without a lower validation loss
    seed: int = 0                              #: initial weights and batch order
    steps_per_epoch: int | None = None         #: batches per epoch (None: one pass)
    #: "mae" or "mse" for every network, or a dict source -> loss (:data:`DEFAULT_LOSSES`)
    loss: str | dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LOSSES))
    learning_rate: float = DEFAULT_LEARNING_RATE  #: Adam's, in (0, 1)
    #: batches of training data scored for the final training MAE (None: all; validation and
    #: test are always scored in full)
    eval_batches: int | None = None
    plot: bool = False                         #: loss/MAE curves as PNG beside the models
    overwrite: bool = False                    #: start afresh, replacing checkpoints and models
    deterministic: bool = False                #: TensorFlow op determinism (slower)

    def check(self) -> TrainConfig:
        """Raise :class:`MixinError` naming the first bad setting and its value; return self."""
        def integer(name: str, v: object, lo: int, optional: bool = False) -> None:
            if optional and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise MixinError(f"{name} must be an integer >= {lo}, got {v!r}")

        integer("--epochs", self.epochs, 1)
        integer("--batch-size", self.batch_size, 1)
        integer("--patience", self.patience, 0)
        integer("--seed", self.seed, 0)
        integer("--steps-per-epoch", self.steps_per_epoch, 1, optional=True)
        integer("--eval-batches", self.eval_batches, 1, optional=True)
        if isinstance(self.sources, str):
            raise MixinError(f"sources must be a list of source names, got {self.sources!r}")
        bad = [s for s in self.sources if s not in params.SOURCES]
        if bad or not self.sources or len(set(self.sources)) != len(self.sources):
            raise MixinError(f"unknown, repeated or no sources {list(self.sources)!r}; choose "
                             f"from {', '.join(params.SOURCES)}")
        if isinstance(self.loss, dict):
            missing = [s for s in self.sources if s not in self.loss]
            if missing:
                raise MixinError(f"no loss given for {', '.join(missing)} (loss {self.loss!r})")
        for s in self.sources:
            if self.loss_of(s) not in LOSSES:
                raise MixinError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss_of(s)!r} "
                                 f"for {s}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) \
                or not math.isfinite(lr) or not 0 < lr < 1:
            raise MixinError(f"--learning-rate must be in (0, 1), got {lr!r}")
        return self

    def loss_of(self, source: str) -> str:
        """The loss of ``source``'s network."""
        return self.loss[source] if isinstance(self.loss, dict) else self.loss


def _paths(model_dir, logdir, source):
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


def checkpoint_paths(model_dir: str | os.PathLike, logdir: str | os.PathLike,
                     source: str) -> dict[str, str]:
    """Every file :func:`train` writes for ``source`` (a dict of str: best, last, state, history,
    model, model_history, plot_loss, plot_mae; see the module documentation)."""
    return _paths(str(model_dir), str(logdir), source)


def read_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON state file of one source, or None if absent; :class:`MixinError` if unreadable."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise MixinError(f"cannot read training state {path}: {e}; use --overwrite to start again") from None


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# devices
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# callbacks
# ------------------------------------------------------------------------------------------------

def _callbacks(keras, paths, state, patience, monitor, batch_size):
    """EarlyStopping (resumable), throughput, CSV history and checkpoint/state writer."""

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping that starts from a saved (best, wait, best_epoch, best_weights)."""

        def __init__(self, initial, best_weights, **kw):
            super().__init__(**kw)
            self._initial = initial
            self._initial_weights = best_weights

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            super().on_train_begin(logs)
            if self._initial.get("best") is not None:
                self.best = self._initial["best"]
                self.wait = self._initial.get("wait", 0)
                self.best_epoch = self._initial.get("best_epoch", 0)
                self.best_weights = self._initial_weights

    class Throughput(keras.callbacks.Callback):
        """Adds ``examples_per_s`` (training batches only) to the epoch logs."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._t = None
            self._n = 0
            self._elapsed = 0.0

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self._t is not None:
                self._elapsed += time.perf_counter() - self._t
                self._n += 1

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is not None and self._elapsed > 0:
                # first batch of a run includes tracing; it is counted (honest, slightly low)
                logs["examples_per_s"] = self._n * batch_size / self._elapsed

    class Checkpointer(keras.callbacks.Callback):
        """After each epoch: best model (if improved), last model + optimizer, then the state."""

        def __init__(self, es):
            super().__init__()
            self.es = es

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            if self.es.best_epoch == epoch and self.es.best is not None:
                _save_h5(self.model, paths["best"])
            with fileio.atomic_path(paths["last"]) as tmp:  # keeps the .keras extension
                self.model.save(str(tmp))
            state.update(epoch=epoch + 1, best=_f(self.es.best), best_epoch=int(self.es.best_epoch),
                         wait=int(self.es.wait),
                         last_logs={k: _f(v) for k, v in logs.items()})
            fileio.write_json(paths["state"], state, sort_keys=True)

    best_weights = None
    if state.get("best") is not None and os.path.exists(paths["best"]):
        from ..model import load_cdae

        best_weights = load_cdae(paths["best"]).get_weights()
    es = ResumableEarlyStopping(
        dict(best=state.get("best"), wait=state.get("wait", 0), best_epoch=state.get("best_epoch", 0)),
        best_weights, monitor=monitor, patience=patience, mode="min", restore_best_weights=True,
        verbose=1 if log.isEnabledFor(logging.INFO) else 0)
    csv_logger = keras.callbacks.CSVLogger(paths["history"], append=state.get("epoch", 0) > 0)
    # order matters: throughput adds to logs before the CSV row; es updates before the checkpoint
    return [Throughput(), es, csv_logger, Checkpointer(es)], es


def _save_h5(model, path):
    """Save the weights of ``model`` as an uncompiled CDAE in ``.h5`` (what xtract_mixin.py loads).

    An uncompiled copy is saved because Keras' legacy HDF5 writer removes the optimizer from a
    compiled model's compile config, which would make later ``.keras`` checkpoints resume with
    a default optimizer.
    """
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


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------

def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """The CSV history as {column: list of floats} (NaN where a value is not a number)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = {}
    for r in rows:
        for k, v in r.items():
            try:
                cols.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                cols.setdefault(k, []).append(float("nan"))
    return cols


def plot_history(history_csv: str | os.PathLike, source: str, loss_png: str | os.PathLike,
                 mae_png: str | os.PathLike, loss_name: str = "mae") -> None:
    """Loss and MAE curves (train vs validation) per epoch as PNG files, written atomically (Agg
    backend, never a window). ``loss_name`` only labels the loss plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h = read_history(history_csv)
    epochs = [int(e) + 1 for e in h.get("epoch", [])]
    for png, key, title in ((loss_png, "loss", f"{source} model loss ({loss_name})"),
                            (mae_png, "mae", f"{source} model mae")):
        fig = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for k, label in ((key, "train"), ("val_" + key, "validation")):
            if k in h:
                ax.plot(epochs, h[k], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
        with fileio.atomic_open(png, "wb") as f:
            fig.savefig(f, format="png")


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------

def _plan(source, paths, config, overwrite):
    """Decide what to do for one source: 'fresh', 'resume', 'finalize' (a finished run whose best
    model is not yet copied to the model dir) or 'done'; returns (action, state)."""
    state = None if overwrite else read_state(paths["state"])
    if overwrite:
        return "fresh", None
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


def train(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """Train (or resume) the CDAEs of ``cfg.sources`` on ``cfg.data_dir/data_{source}.hdf5``.

    ``cfg`` is checked first (:meth:`TrainConfig.check`). Raises :class:`MixinError` for a bad
    setting, missing or incomplete HDF5 files or a split without training examples, an existing
    model or checkpoint this logdir did not make (without ``overwrite``), or a checkpoint trained
    with another loss, batch size or channel layout.

    Returns
    -------
    dict {source: {"train": mae, "validation": mae or None, "test": mae or None,
    "positive_fraction", "epochs": n, "best_epoch", "stopped_early", "model": path, "seconds"}}
    (for a source already trained, its recorded metrics).
    """
    from ..model import import_tensorflow

    cfg.check()
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
        paths = _paths(model_dir, logdir, s)
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
            results[s] = _train_one(keras, strategy, s, paths, config, action, state, cfg.plot,
                                    cfg.eval_batches)
        m = results[s]
        print(f"{s}: MAE train {_fmt(m.get('train'))}, validation {_fmt(m.get('validation'))}, "
              f"test {_fmt(m.get('test'))}  ({paths['model']})", flush=True)
    return results


def _fmt(v):
    return "n/a" if v is None else f"{v:.6f}"


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


def _train_one(keras, strategy, source, paths, config, action, state, plot, eval_batches):
    from ..model import build_cdae, compile_cdae, load_cdae
    from ..onnxexport import export_after_save

    h5 = config["hdf5"]
    counts = config["counts"]
    bs = config["batch_size"]
    has_val = counts["validation"] > 0
    monitor = "val_loss" if has_val else "loss"
    if not has_val:
        log.warning("%s: no validation examples; early stopping and the best checkpoint follow the "
                    "training loss", source)
    steps = config["steps_per_epoch"] or _n_batches(counts["train"], bs)

    keras.utils.set_random_seed(config["seed"])
    if action == "resume":
        with strategy.scope():
            try:
                model = keras.models.load_model(paths["last"], compile=True)
            except Exception as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise MixinError(f"cannot resume from {paths['last']}: {msg[:200]}; "
                                 f"use --overwrite to start again") from None
        epoch0 = int(state.get("epoch", 0))
        log.info("%s: resuming from %s at epoch %d", source, paths["last"], epoch0)
        state = dict(state, config=config, finished=False, stopped_early=False)
    elif action == "finalize":
        model = None
        epoch0 = int(state.get("epoch", 0))
    else:
        with strategy.scope():
            model = compile_cdae(build_cdae(name=f"mixin_{source}"), config["loss"],
                                 config["learning_rate"])
        epoch0 = 0
        state = dict(version=STATE_VERSION, config=config, epoch=0, best=None, wait=0, best_epoch=0,
                     finished=False, stopped_early=False)
        if os.path.exists(paths["history"]):
            os.remove(paths["history"])  # only reached on a fresh start (no state, or --overwrite)
        fileio.write_json(paths["state"], state, sort_keys=True)

    t0 = time.perf_counter()
    stopped_early = bool(state.get("stopped_early"))
    if model is not None and epoch0 < config["epochs"]:
        train_ds = make_dataset(h5, "train", bs, seed=config["seed"], start_batch=epoch0 * steps,
                                infinite=True)
        val_ds = make_dataset(h5, "validation", bs, shuffle=False) if has_val else None
        cbs, es = _callbacks(keras, paths, state, config["patience"], monitor, bs)
        log.info("%s: training on %d examples (%d batches of %d per epoch), validating on %d, "
                 "epochs %d..%d", source, counts["train"], steps, bs, counts["validation"],
                 epoch0 + 1, config["epochs"])
        model.fit(train_ds, epochs=config["epochs"], initial_epoch=epoch0, steps_per_epoch=steps,
                  validation_data=val_ds, callbacks=cbs, shuffle=False,
                  verbose=2 if log.isEnabledFor(logging.INFO) else 0)
        stopped_early = es.stopped_epoch > 0
    elif model is None:
        model = load_cdae(paths["best"])
        compile_cdae(model, config["loss"], config["learning_rate"])
    seconds = time.perf_counter() - t0

    # the final model is the best epoch's (EarlyStopping restored it; the file is the reference)
    if os.path.exists(paths["best"]):
        with strategy.scope():
            best = load_cdae(paths["best"])
        model.set_weights(best.get_weights())
    _save_h5(model, paths["model"])
    export_after_save([paths["model"]])  # model_{s}.onnx beside it, for the onnx backend
    if os.path.exists(paths["history"]):
        fileio.copy_file(paths["history"], paths["model_history"])
        if plot:
            plot_history(paths["history"], source, paths["plot_loss"], paths["plot_mae"], config["loss"])

    metrics = {}
    for split in SPLITS:
        if counts[split] == 0:
            metrics[split] = None
            continue
        nb = eval_batches if split == "train" else None
        ds = make_dataset(h5, split, bs, seed=config["seed"], n_batches=nb and min(nb, _n_batches(
            counts[split], bs)), shuffle=split == "train" and nb is not None)
        r = model.evaluate(ds, verbose=0, return_dict=True)
        metrics[split] = float(r["mae"])
    # a ReLU output that is zero everywhere gets no gradient and never recovers ("dead" network):
    # with MAE on sparse targets (vocals) the median is often 0, and Adam's first steps can get there
    check = "validation" if counts["validation"] else "train"
    ds = make_dataset(h5, check, bs, n_batches=min(2, _n_batches(counts[check], bs)), shuffle=False)
    pred = model.predict(ds, verbose=0)
    metrics["positive_fraction"] = float(np.mean(pred > 0))
    if metrics["positive_fraction"] == 0:
        log.warning("%s: the network outputs zero for every %s example (a dead ReLU output: it "
                    "will not learn further); try --loss mse, a lower --learning-rate, or more data",
                    source, check)
    state = read_state(paths["state"]) or state
    state.update(finished=True, stopped_early=stopped_early, metrics=metrics,
                 train_seconds=round(seconds, 1), model=os.path.abspath(paths["model"]))
    fileio.write_json(paths["state"], state, sort_keys=True)
    return dict(metrics, epochs=state.get("epoch"), best_epoch=state.get("best_epoch", 0) + 1,
                stopped_early=stopped_early, model=paths["model"], seconds=seconds)
