"""Training the three CDAEs together on examples mixed on the fly, chosen by separation quality.

:func:`train_mix` is the ``train_util.py --train-mix`` stage. Unlike ``--train`` (one network at a
time, from HDF5, early stopping on each network's own loss), it

- draws examples from stem folders on the fly (:mod:`mixin.training.mixing`): hours of material
  without an HDF5 copy, cross-song remixes, random gains, EQ, speed and silence;
- trains the three networks in one step on the same examples (each network still has its own
  loss and its own weights; Adam scales every parameter's step by its own gradient statistics, so
  summing the three losses trains each network exactly as alone);
- every ``steps_per_round`` batches, *separates* the validation songs with the three networks'
  soft masks (the real separator, default overlap) and scores the result: SDR per 1 s window
  (windows where the target is active), median per song, median over songs, per target. The
  checkpoint kept is the one with the best mean over the three targets on the **selection** songs
  (held-out real songs named by ``validation_songs``); ``monitor_dirs`` songs (e.g. rendered songs
  with held-out kits and instruments) are scored and recorded but never used to choose.

Files::

    logdir/joint.last.keras        the three networks + optimizer after the last round (resume)
    logdir/joint.state.json        rounds and batches done, best round, settings, history
                                   ("finished" once early stopping has stopped the run)
    logdir/best/model_{s}.h5       the best round's networks
    logdir/rounds/NNN/model_{s}.h5 every round's networks (600 KB a round: later choices, ablations)
    logdir/history_mix.csv         one row per round (losses, examples/s, SDR per target and set)
    logdir/catalogue.json          the training songs and their activity (a cache)
    model/model_{s}.h5             the best round's networks (written at the end)
    model/history_mix.csv, model/validation_sdr.png

Resuming: re-running (with the same or a larger ``rounds``) continues from ``joint.last.keras``
at the recorded batch, unless early stopping ended the run: the example
stream is indexed globally, so a resumed run sees the same examples as an uninterrupted one.
Settings that change the data or the networks must match the state's (else an error says which).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import fileio, params
from ..errors import MixinError
from .train import DEFAULT_LOSSES
from .mixing import BatchStream, MixConfig, Mixer, build_catalogue

if TYPE_CHECKING:
    import keras

    from ..separation.separate import Separator

log = logging.getLogger("mixin")

STATE_VERSION = 1



@dataclass
class MixTrainConfig:
    """Settings of :func:`train_mix` (validated by :meth:`check`)."""

    stem_dirs: list
    validation_songs: list
    monitor_dirs: list = field(default_factory=list)
    model_dir: str = "model"
    logdir: str = "logdir"
    mix: MixConfig = field(default_factory=MixConfig)
    seed: int = 0
    #: seed of the networks' initial weights (None: ``seed``); ``seed`` alone then sets the
    #: stream of training examples, so the two sources of run-to-run spread can be told apart
    init_seed: int | None = None
    batch_size: int = 16
    steps_per_round: int = 200
    rounds: int = 30
    patience: int | None = None
    learning_rate: float = 1e-4
    losses: dict = field(default_factory=lambda: dict(DEFAULT_LOSSES))
    workers: int = 1
    validation_duration: float = 30.0
    init_model_dir: str | None = None
    ema: float = 0.0
    #: weight of the separation loss: the soft masks of the three estimates applied to the
    #: mixture magnitude, against the true sources' magnitudes (0: off, each network alone)
    mask_weight: float = 0.0
    mask_loss: str = "mae"
    #: the networks' own losses weigh errors in the ``low_bands`` lowest Bark bands by
    #: ``low_band_weight`` against 1 elsewhere (normalised to a mean weight of 1; 1: off)
    low_band_weight: float = 1.0
    low_bands: int = 5
    overwrite: bool = False
    plot: bool = True

    def check(self) -> MixTrainConfig:
        """Raise :class:`MixinError` naming the first bad setting; return self."""
        if not self.stem_dirs:
            raise MixinError("--train-mix needs --stem-dirs DIR [DIR ...]")
        if not self.validation_songs:
            raise MixinError("--train-mix needs --validation-songs NAME ... (held-out real songs "
                             "in the stem dirs that choose the checkpoint)")
        for d in list(self.stem_dirs) + list(self.monitor_dirs):
            if not os.path.isdir(d):
                raise MixinError(f"stem directory not found: {d}")
        for name, v, lo in (("batch size", self.batch_size, 1), ("steps per round", self.steps_per_round, 1),
                            ("rounds", self.rounds, 1), ("workers", self.workers, 0),
                            ("init seed", self.seed if self.init_seed is None else self.init_seed, 0)):
            if int(v) != v or v < lo:
                raise MixinError(f"{name} must be an integer >= {lo}, got {v}")
        if not (0 < self.learning_rate < 1):
            raise MixinError(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if not (0.0 <= self.ema < 1.0):
            raise MixinError(f"EMA momentum must be in [0, 1), got {self.ema}")
        if not (self.mask_weight >= 0.0 and math.isfinite(self.mask_weight)):
            raise MixinError(f"mask loss weight must be >= 0, got {self.mask_weight}")
        if not (self.low_band_weight > 0.0 and math.isfinite(self.low_band_weight)):
            raise MixinError(f"low-band weight must be > 0, got {self.low_band_weight}")
        if int(self.low_bands) != self.low_bands or not 1 <= self.low_bands < params.N_BANDS:
            raise MixinError(f"low bands must be an integer 1-{params.N_BANDS - 1}, got {self.low_bands}")
        if self.mask_loss not in ("mae", "mse"):
            raise MixinError(f"mask loss must be mae or mse, got {self.mask_loss}")
        if not (2.0 <= self.validation_duration <= 600.0):
            raise MixinError(f"validation duration must be 2-600 s, got {self.validation_duration}")
        for s, l in self.losses.items():
            if s not in params.SOURCES or l not in ("mae", "mse"):
                raise MixinError(f"loss for {s} must be mae or mse, got {l}")
        if self.mix.dir_weights is not None and len(self.mix.dir_weights) != len(self.stem_dirs):
            raise MixinError(f"--mix-dir-weights needs one weight per stem dir "
                             f"({len(self.stem_dirs)}), got {len(self.mix.dir_weights)}")
        self.mix.check()
        return self

    def identity(self) -> dict[str, Any]:
        """What must not change when resuming (data, networks, losses, batch)."""
        ident = dict(stem_dirs=[str(Path(d).resolve()) for d in self.stem_dirs],
                     validation_songs=sorted(self.validation_songs), mix=self.mix.to_json(),
                     seed=self.seed, batch_size=self.batch_size, losses=dict(self.losses),
                     learning_rate=self.learning_rate, init_model_dir=self.init_model_dir)
        if self.init_seed is not None and self.init_seed != self.seed:  # absent when it is the seed
            ident["init_seed"] = self.init_seed
        if self.ema:  # absent when off, so that logdirs from before the option still resume
            ident["ema"] = self.ema
        if self.mask_weight:  # likewise
            ident["mask"] = dict(weight=self.mask_weight, loss=self.mask_loss)
        if self.low_band_weight != 1.0:  # likewise
            ident["low_bands"] = dict(weight=self.low_band_weight, bands=self.low_bands)
        return ident


# --------------------------------------------------------------------------------------------
# validation songs and scores
# --------------------------------------------------------------------------------------------

@dataclass
class ValSong:
    name: str
    mixture: np.ndarray      # [shape=(n, ch)]
    refs: dict               # source -> [shape=(n, ch)]
    start: float


def load_validation_song(folder: str | os.PathLike, duration: float) -> ValSong:
    """The ``duration`` s excerpt of a song folder where its sources are most active.

    Returns :class:`ValSong` (targets missing in the folder are silent). Raises
    :class:`MixinError` for a folder without stems, an unreadable stem or one not at 44.1 kHz."""
    from ..audio import read_audio
    from ..audio import active_windows
    from .mixing import _song_files

    folder = Path(folder)
    files = _song_files(folder, [p.name for p in folder.iterdir() if p.is_file()])
    stems, n, ch = {}, None, None
    for s in params.SOURCES:
        parts = []
        for f in files[s]:
            x, sr = read_audio(f)
            if sr != params.SAMPLE_RATE:
                raise MixinError(f"validation stem {f} is at {sr} Hz; need {params.SAMPLE_RATE} Hz")
            parts.append(x)
        if parts:
            m = min(len(p) for p in parts)
            stems[s] = np.sum([p[:m] for p in parts], axis=0, dtype=np.float32)
            n = m if n is None else min(n, m)
            ch = stems[s].shape[1]
    if not stems:
        raise MixinError(f"no stems in validation song {folder}")
    refs = {s: (stems[s][:n] if s in stems else np.zeros((n, ch), np.float32)) for s in params.SOURCES}
    present = [s for s in params.SOURCES if s in stems and np.any(refs[s])]
    act = np.logical_and.reduce([active_windows(refs[s], params.SAMPLE_RATE) for s in present])
    d = int(math.ceil(duration))
    start = 0
    if act.size > d:
        start = int(np.argmax(np.convolve(act.astype(int), np.ones(d, int), mode="valid")))
    a, b = start * params.SAMPLE_RATE, min(n, (start + d) * params.SAMPLE_RATE)
    refs = {s: np.ascontiguousarray(r[a:b]) for s, r in refs.items()}
    mixture = np.sum(list(refs.values()), axis=0, dtype=np.float32)
    return ValSong(name=folder.name, mixture=mixture, refs=refs, start=float(start))


def window_sdr(ref: np.ndarray, est: np.ndarray, win: int = params.SAMPLE_RATE) -> float:
    """Median over active ``win``-sample windows of 10·log10(Σref² / Σ(ref−est)²) (dB), or NaN
    when the reference is never active. ``ref``, ``est``: [shape=(n, ch)]."""
    n = (len(ref) // win) * win
    if n == 0:
        return float("nan")
    r = ref[:n].reshape(-1, win * ref.shape[1]).astype(np.float64)
    e = est[:n].reshape(-1, win * ref.shape[1]).astype(np.float64)
    num = np.sum(r * r, axis=1)
    den = np.sum((r - e) ** 2, axis=1)
    active = num / (win * ref.shape[1]) > params.ACTIVE_RMS ** 2
    if not np.any(active):
        return float("nan")
    sdr = 10.0 * np.log10((num[active] + 1e-12) / (den[active] + 1e-12))
    return float(np.median(sdr))


def score_songs(separator: Separator, songs: Iterable[ValSong]) -> dict[str, dict[str, float]]:
    """Separate each song and score it: {song: {source: SDR dB}}."""
    out = {}
    for song in songs:
        est = separator.separate(song.mixture, params.SAMPLE_RATE)
        out[song.name] = {s: window_sdr(song.refs[s], est[s]) for s in params.SOURCES}
    return out


def summarise(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Median over songs per source (NaNs left out) and their mean (the selection score)."""
    med = {}
    for s in params.SOURCES:
        v = [sc[s] for sc in scores.values() if np.isfinite(sc[s])]
        med[s] = float(np.median(v)) if v else float("nan")
    finite = [v for v in med.values() if np.isfinite(v)]
    med["mean"] = float(np.mean(finite)) if finite else float("nan")
    return med


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------

def build_joint(losses: Mapping[str, str], learning_rate: float,
                init_model_dir: str | os.PathLike | None = None, ema: float = 0.0,
                mask_weight: float = 0.0, mask_loss: str = "mae", low_band_weight: float = 1.0,
                low_bands: int = 5) -> keras.Model:
    """The three CDAEs as one Keras model (input: mixture magnitude; outputs: harmonic,
    percussive, vocal), compiled with one loss per output and Adam (keeping an exponential moving
    average of the weights with momentum ``ema`` when it is > 0).

    With ``mask_weight`` > 0 a fourth output, ``masked_estimates`` [shape=(B, 96, 1948, 3)],
    holds the separation the user hears: the soft masks of the three estimates
    (:func:`mixin.masks.soft_masks`, same formula and guard) times the mixture magnitude, one
    channel per source; its loss (``mask_loss`` against the three true magnitudes) is added with
    that weight, so each network also learns from what the other two estimate.

    With ``low_band_weight`` != 1 each network's own loss weighs its errors in the ``low_bands``
    lowest bands by that factor (:func:`band_weighted_loss`).
    """
    import keras

    from ..model import build_cdae, input_shape, load_models

    nets = {s: build_cdae(name=f"cdae_{s}") for s in params.SOURCES}
    if init_model_dir:
        for s, m in load_models(init_model_dir).items():
            nets[s].set_weights(m.get_weights())
    inp = keras.Input(shape=input_shape())
    outs = [nets[s](inp) for s in params.SOURCES]
    if low_band_weight != 1.0:
        cls = band_weighted_loss()
        loss = [cls(kind=losses[s], bands=low_bands, weight=low_band_weight) for s in params.SOURCES]
    else:
        loss = [losses[s] for s in params.SOURCES]
    weights = [1.0] * len(params.SOURCES)
    if mask_weight:
        outs.append(masked_estimates_layer()(name="masked_estimates")([inp] + outs))
        loss.append(mask_loss)
        weights.append(float(mask_weight))
    joint = keras.Model(inp, outs, name="mixin_joint")
    opt = keras.optimizers.Adam(learning_rate=learning_rate, use_ema=bool(ema),
                                ema_momentum=float(ema) if ema else 0.99)
    joint.compile(optimizer=opt, loss=loss, loss_weights=weights)
    return joint


_MASKED_LAYER = None
_BAND_LOSS = None


def band_weighted_loss() -> type:
    """The Keras loss class ``BandWeightedLoss(kind, bands, weight)``: MAE or MSE over
    [shape=(B, rows, cols, 1)] with rows ``< bands`` weighted by ``weight`` and the others by 1,
    the weights scaled to a mean of 1 (so weight 1 is the plain loss). Defined on first use and
    registered, like :func:`masked_estimates_layer`."""
    global _BAND_LOSS
    if _BAND_LOSS is None:
        import keras

        @keras.saving.register_keras_serializable(package="mixin", name="BandWeightedLoss")
        class BandWeightedLoss(keras.losses.Loss):
            def __init__(self, kind="mae", bands=5, weight=1.0, name=None,
                         reduction="sum_over_batch_size", dtype=None):
                super().__init__(name=name or f"band_weighted_{kind}", reduction=reduction,
                                 dtype=dtype)
                if kind not in ("mae", "mse"):
                    raise MixinError(f"loss must be mae or mse, got {kind}")
                self.kind, self.bands, self.weight = kind, int(bands), float(weight)

            def call(self, y_true, y_pred):
                ops = keras.ops
                d = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
                err = ops.abs(d) if self.kind == "mae" else ops.square(d)
                rows = err.shape[1]
                w = np.where(np.arange(rows) < self.bands, self.weight, 1.0).astype(np.float32)
                w = ops.convert_to_tensor((w / w.mean()).reshape(1, rows, 1, 1))
                return ops.mean(err * w, axis=(1, 2, 3))

            def get_config(self):
                return dict(super().get_config(), kind=self.kind, bands=self.bands,
                            weight=self.weight)

        _BAND_LOSS = BandWeightedLoss
    return _BAND_LOSS


def masked_estimates_layer() -> type:
    """The Keras layer class of the ``masked_estimates`` output (defined on first use, so that
    importing this module does not import Keras; registered so ``joint.last.keras`` loads)."""
    global _MASKED_LAYER
    if _MASKED_LAYER is None:
        import keras

        @keras.saving.register_keras_serializable(package="mixin", name="MaskedEstimates")
        class MaskedEstimates(keras.layers.Layer):
            """[mixture, est_1, ..., est_k] (each (B, rows, cols, 1)) -> (B, rows, cols, k):
            mixture * est_s**2 / (sum_j est_j**2 + MASK_EPS)."""

            def call(self, inputs):
                ops = keras.ops
                mix, ests = inputs[0], inputs[1:]
                powers = ops.concatenate([ops.square(e) for e in ests], axis=-1)
                den = ops.sum(powers, axis=-1, keepdims=True) + params.MASK_EPS
                return mix * powers / den

            def compute_output_shape(self, input_shapes):
                return tuple(input_shapes[0][:-1]) + (len(input_shapes) - 1,)

        _MASKED_LAYER = MaskedEstimates
    return _MASKED_LAYER


def networks(joint: keras.Model) -> dict[str, keras.Model]:
    """The three CDAEs inside a joint model, keyed by source."""
    return {s: joint.get_layer(f"cdae_{s}") for s in params.SOURCES}


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

def _write_json(path, obj):
    fileio.write_json(path, obj, indent=1, sort_keys=True, default=float)


def _paths(cfg):
    lg, md = Path(cfg.logdir), Path(cfg.model_dir)
    return dict(last=lg / "joint.last.keras", state=lg / "joint.state.json", best=lg / "best",
                rounds=lg / "rounds",
                history=lg / "history_mix.csv", catalogue=lg / "catalogue.json",
                model_history=md / "history_mix.csv", plot=md / "validation_sdr.png")


HISTORY_FIELDS = (["round", "batches", "examples", "seconds", "examples_per_s"]
                  + [f"loss_{s}" for s in params.SOURCES + ("masked",)]
                  + [f"{k}_{s}" for k in ("select", "monitor") for s in params.SOURCES + ("mean",)])


def _write_history(path, rows):
    with fileio.atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})


def plot_validation(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Validation SDR per target against batches (selection and monitor songs), PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    b = [r["batches"] for r in rows]
    colours = dict(harmonic="tab:green", percussive="tab:red", vocal="tab:blue", mean="black")
    for s in params.SOURCES + ("mean",):
        ax.plot(b, [r.get(f"select_{s}", np.nan) for r in rows], "-o", ms=3, color=colours[s],
                label=f"{s} (selection songs)")
        if any(np.isfinite(r.get(f"monitor_{s}", np.nan)) for r in rows):
            ax.plot(b, [r.get(f"monitor_{s}", np.nan) for r in rows], "--", color=colours[s],
                    alpha=0.6, label=f"{s} (monitor songs)")
    ax.set_xlabel("batches")
    ax.set_ylabel("median SDR per 1 s window (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with fileio.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def _song_folders(dirs, names=None):
    from .stems import find_song_folders

    out = []
    for folder, _files in find_song_folders(dirs):
        if names is None or folder.name in names:
            out.append(folder)
    return out


def train_mix(cfg: MixTrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the three networks on mixed-on-the-fly examples; returns the state."""
    from ..model import import_tensorflow
    from ..onnxexport import export_after_save
    from ..separation.separate import Separator

    cfg.check()
    p = _paths(cfg)
    os.makedirs(cfg.logdir, exist_ok=True)
    os.makedirs(cfg.model_dir, exist_ok=True)
    final = {s: Path(cfg.model_dir) / params.MODEL_FILES[s] for s in params.SOURCES}
    state = None
    if p["state"].exists() and not cfg.overwrite:
        state = json.loads(p["state"].read_text())
        if state.get("version") != STATE_VERSION:
            raise MixinError(f"{p['state']} is from another version; use --overwrite to start again")
        ident = json.loads(json.dumps(cfg.identity()))
        diff = sorted(k for k in set(ident) | set(state["identity"]) if state["identity"].get(k) != ident.get(k))
        if diff:
            raise MixinError(f"cannot resume {cfg.logdir}: {', '.join(diff)} differ from the "
                             f"checkpoint's; use the same settings, another --logdir, or --overwrite")
    elif not cfg.overwrite:
        existing = [str(f) for f in final.values() if f.exists()]
        if existing:
            raise MixinError(f"{existing[0]} exists and was not made by this logdir; "
                             f"use --overwrite to replace it")
    if cfg.overwrite:
        for k in ("last", "state", "history"):
            if p[k].exists():
                p[k].unlink()
        for k in ("best", "rounds"):
            if p[k].exists():
                shutil.rmtree(p[k])
        state = None

    # held-out songs: never in the catalogue
    held = set(cfg.validation_songs)
    select_folders = _song_folders(cfg.stem_dirs, held)
    found = {f.name for f in select_folders}
    missing = sorted(held - found)
    if missing:
        raise MixinError(f"validation song(s) not found in the stem dirs: {', '.join(missing)}")
    monitor_folders = _song_folders(cfg.monitor_dirs) if cfg.monitor_dirs else []
    # the catalogue reads every stem once (before training: all CPUs)
    songs = build_catalogue(cfg.stem_dirs, exclude=held, jobs=os.cpu_count() or 1,
                            cache=p["catalogue"])
    log.info("training songs: %d (%.1f h) from %d stem dir(s); selection songs: %s; monitor songs: %d",
             len(songs), sum(s.frames for s in songs) / params.SAMPLE_RATE / 3600,
             len(cfg.stem_dirs), ", ".join(sorted(found)), len(monitor_folders))
    select = [load_validation_song(f, cfg.validation_duration) for f in select_folders]
    monitor = [load_validation_song(f, cfg.validation_duration) for f in monitor_folders]

    tf = import_tensorflow()
    import keras

    # the initial weights come from the Keras seed; the examples only from the Mixer's own seed
    keras.utils.set_random_seed(cfg.seed if cfg.init_seed is None else cfg.init_seed)
    if state is not None and p["last"].exists():
        masked_estimates_layer()  # registered before loading a joint model that has them
        band_weighted_loss()
        joint = keras.models.load_model(p["last"])
        log.info("resuming from %s at round %d (%d batches)", p["last"], state["rounds"], state["batches"])
    else:
        joint = build_joint(cfg.losses, cfg.learning_rate, cfg.init_model_dir, cfg.ema,
                            cfg.mask_weight, cfg.mask_loss, cfg.low_band_weight, cfg.low_bands)
        state = dict(version=STATE_VERSION, identity=cfg.identity(), rounds=0, batches=0,
                     best=None, history=[], finished=False, mix=cfg.mix.to_json())
    nets = networks(joint)
    mixer = Mixer(songs, cfg.mix, seed=cfg.seed)
    sep = Separator(models=nets)
    patience = cfg.patience

    def validate() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        t = time.perf_counter()
        sel = score_songs(sep, select)
        mon = score_songs(sep, monitor) if monitor else {}
        log.debug("validation took %.1f s", time.perf_counter() - t)
        return sel, mon

    if state["rounds"] == 0 and not state["history"]:
        sel, mon = validate()
        row = dict(round=0, batches=0, examples=0, seconds=0.0, examples_per_s=float("nan"),
                   songs_select=sel, songs_monitor=mon)
        row.update({f"select_{k}": v for k, v in summarise(sel).items()})
        row.update({f"monitor_{k}": v for k, v in summarise(mon).items()} if mon else {})
        state["history"].append(row)
        log.info("round 0 (initial): selection SDR %s", _fmt(row, "select"))
        if cfg.init_model_dir:  # starting from trained networks: they are a candidate too
            _save_best(nets, p["best"], state, row)

    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=cfg.rounds * cfg.steps_per_round, initial=state["batches"],
                       unit="batch", dynamic_ncols=True, leave=False)
        except ImportError:  # pragma: no cover
            bar = None
    stop_reason = "rounds done"
    with BatchStream(mixer, cfg.batch_size, start=state["batches"], workers=cfg.workers) as stream:
        while state["rounds"] < cfg.rounds and not state["finished"]:
            t0 = time.perf_counter()
            sums = np.zeros(len(params.SOURCES) + 1)
            for _ in range(cfg.steps_per_round):
                x, ys = stream.get()
                targets = list(ys)
                if cfg.mask_weight:
                    targets.append(np.concatenate(ys, axis=-1))
                out = joint.train_on_batch(x, targets, return_dict=True)
                sums += _per_source_losses(out)
                if bar is not None:
                    bar.update(1)
            train_s = time.perf_counter() - t0
            state["batches"] += cfg.steps_per_round
            state["rounds"] += 1
            raw = _swap_in_average(joint) if cfg.ema else None
            sel, mon = validate()
            row = dict(round=state["rounds"], batches=state["batches"],
                       examples=state["batches"] * cfg.batch_size, seconds=train_s,
                       examples_per_s=cfg.steps_per_round * cfg.batch_size / train_s,
                       songs_select=sel, songs_monitor=mon)
            row.update({f"loss_{s}": float(v / cfg.steps_per_round)
                        for s, v in zip(params.SOURCES + ("masked",), sums)})
            row.update({f"select_{k}": v for k, v in summarise(sel).items()})
            if mon:
                row.update({f"monitor_{k}": v for k, v in summarise(mon).items()})
            state["history"].append(row)
            _save_models(nets, p["rounds"] / f"{state['rounds']:03d}")
            best = state["best"]
            if best is None or row["select_mean"] > best["select_mean"]:
                _save_best(nets, p["best"], state, row)
            if raw is not None:  # back to the raw weights to go on training
                for v, w in zip(joint.trainable_variables, raw):
                    v.assign(w)
            msg = (f"round {state['rounds']}/{cfg.rounds} ({state['batches']} batches, "
                   f"{row['examples_per_s']:.1f} examples/s): selection SDR {_fmt(row, 'select')}")
            if mon:
                msg += f"; monitor {_fmt(row, 'monitor')}"
            log.info(msg + (" *" if state["best"]["round"] == row["round"] else ""))
            if patience and state["rounds"] - state["best"]["round"] >= patience:
                state["finished"] = True
                stop_reason = f"no better selection score for {patience} rounds"
            with fileio.atomic_path(p["last"]) as tmp:
                joint.save(str(tmp))  # keeps the .keras extension
            _write_json(p["state"], state)
            _write_history(p["history"], state["history"])
    if bar is not None:
        bar.close()
    if state["best"] is None:
        raise MixinError("no round was trained (rounds done already?)")
    for s in params.SOURCES:
        fileio.copy_file(p["best"] / params.MODEL_FILES[s], final[s])
    export_after_save(final.values())  # model_{s}.onnx beside them, for the onnx backend
    _write_history(p["model_history"], state["history"])
    if cfg.plot:
        plot_validation(state["history"], p["plot"])
    log.info("%s; best round %d (%d batches): selection SDR %s; models in %s", stop_reason,
             state["best"]["round"], state["best"]["batches"], _fmt(state["best"], "select"),
             cfg.model_dir)
    return state


def _swap_in_average(joint):
    """Put the optimizer's moving average of the weights into the networks (to validate and save
    them); returns the raw weights to put back."""
    raw = [v.numpy() for v in joint.trainable_variables]
    joint.optimizer.finalize_variable_values(joint.trainable_variables)
    return raw


def _save_models(nets, folder):
    from ..model import save_cdae

    folder.mkdir(parents=True, exist_ok=True)
    for s, m in nets.items():
        save_cdae(m, folder / params.MODEL_FILES[s])


def _save_best(nets, folder, state, row):
    _save_models(nets, folder)
    state["best"] = {k: row[k] for k in row if not k.startswith("songs_")}


def _per_source_losses(out):
    """Per-network losses from a train_on_batch dict (Keras names them by output layer), then
    the separation loss of the masked estimates (nan without one)."""
    vals = []
    for s in params.SOURCES + ("masked_estimates",):
        key = next((k for k in out if s in k and "loss" in k), None)
        vals.append(float(out[key]) if key is not None else float("nan"))
    return np.array(vals)


def _fmt(row, prefix):
    return " / ".join(f"{row.get(f'{prefix}_{s}', float('nan')):.2f}" for s in params.SOURCES) + \
        f" (mean {row.get(f'{prefix}_mean', float('nan')):.2f})"
