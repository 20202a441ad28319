"""The training engine (docs/training.md): :class:`TrainConfig`, every setting of ``--train`` and
``--train-mix``, and :func:`fit`, the loop of both data sources (:class:`mixin.training.train.HDF5Source`,
:class:`mixin.training.mixing.MixSource`): validation after each epoch, the best kept, early stopping,
a checkpoint and the state after each (so a re-run resumes), the history as CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import params
from ..io import files as fileio
from ..errors import MixinError

log = logging.getLogger("mixin")

LOSSES = ("mae", "mse")  #: loss functions a network can train with (the published models: MAE)

#: The measured best loss per network (docs/models.md): MAE for harmonic and percussive, MSE for
#: vocal (with MAE the vocal network's ReLU output collapses to zero). The original: MAE.
DEFAULT_LOSSES = {"harmonic": "mae", "percussive": "mae", "vocal": "mse"}

DEFAULT_LEARNING_RATE = 1e-4  #: measured best (the original's, Keras' default 1e-3, much worse)


def _check_int(name: str, v: object, lo: int, optional: bool = False) -> None:
    if not (optional and v is None) and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo):
        raise MixinError(f"{name} must be an integer >= {lo}, got {v!r}")


def _check_range(name: str, v: object, lo: float, hi: float) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v) \
            or not lo <= v <= hi:
        raise MixinError(f"{name} must be in [{lo:g}, {hi:g}], got {v!r}")


@dataclass
class MixConfig:
    """How the mixer draws examples (recorded with the training state): the ``--mix-*`` flags
    (docs/training.md; level_db None: the stems' own level) and silence: probability that a source is
    silenced; active: that a chunk is drawn among its source's active seconds; variants: consecutive
    examples sharing one draw of audio (each with its own gains, EQ, silences, level)."""

    remix: float = 0.5
    gain_db: float = 6.0
    level_db: tuple | None = (-30.0, -8.0)
    eq_db: float = 6.0
    shift: float = 0.3
    shift_semitones: float = 1.0
    silence: float = 0.05
    active: float = 0.9
    dir_weights: tuple | None = None
    variants: int = 2

    def check(self) -> MixConfig:
        """Raise :class:`MixinError` naming the first bad setting; return self."""
        for n in ("remix", "shift", "silence", "active"):
            _check_range(n, getattr(self, n), 0.0, 1.0)
        for n in ("gain_db", "eq_db", "shift_semitones"):
            _check_range(n, getattr(self, n), 0.0, 40.0)
        if int(self.variants) != self.variants or not 1 <= self.variants <= 64:
            raise MixinError(f"variants must be an integer in 1..64, got {self.variants}")
        if self.level_db is not None and not -80.0 <= self.level_db[0] <= self.level_db[1] <= 0.0:
            raise MixinError(f"level_db must be (low, high) dBFS with -80 <= low <= high <= 0, "
                             f"got {list(self.level_db)}")
        if self.dir_weights is not None and (min(self.dir_weights) < 0 or sum(self.dir_weights) <= 0):
            raise MixinError(f"dir weights must be >= 0 and not all 0, got {list(self.dir_weights)}")
        return self

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("level_db", "dir_weights"):
            d[k] = None if d[k] is None else list(d[k])
        return d


@dataclass
class TrainConfig:
    """Settings of ``--train`` (``data_source="hdf5"``: the networks of ``sources`` one at a time
    from ``data_dir``'s HDF5 files) and ``--train-mix`` (``"mix"``: the three networks together
    on examples mixed from ``stem_dirs``). ``data_source`` None: "mix" when ``stem_dirs`` is given;
    settings left at None get the source's default (``__post_init__``; None steps: one pass)."""

    data_dir: str | os.PathLike = "data"
    model_dir: str | os.PathLike = "model"
    logdir: str | os.PathLike = "logdir"
    sources: tuple[str, ...] = params.SOURCES  #: HDF5: the networks to train, in this order
    epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None                #: epochs without a better validation (0: mix never)
    seed: int = 0                              #: initial weights and order of the examples
    init_seed: int | None = None               #: mix: seed of the initial weights alone (None: ``seed``)
    steps_per_epoch: int | None = None
    #: "mae" or "mse" for every network, or a dict source -> loss (:data:`DEFAULT_LOSSES`)
    loss: str | dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LOSSES))
    learning_rate: float = DEFAULT_LEARNING_RATE
    eval_batches: int | None = None            #: HDF5: batches scored for the final training MAE
    plot: bool | None = None                   #: curves as PNG beside the models
    overwrite: bool = False                    #: start afresh, replacing checkpoints and models
    deterministic: bool = False                #: TensorFlow op determinism (slower)
    data_source: str | None = None             #: "hdf5" or "mix"
    stem_dirs: list = field(default_factory=list)
    validation_songs: list = field(default_factory=list)  #: mix: held-out songs that choose
    monitor_dirs: list = field(default_factory=list)      #: mix: songs scored, never choosing
    panel_dirs: list = field(default_factory=list)        #: mix: rendered songs of the panel
    mix: MixConfig = field(default_factory=MixConfig)
    workers: int = 1                           #: mix: processes computing examples
    validation_duration: float = 30.0          #: mix: seconds of each validation song
    init_model_dir: str | None = None          #: mix: start from these models
    arch: str = "mixin"                        #: mix: :data:`mixin.model.ARCHITECTURES`

    def __post_init__(self) -> None:
        if self.data_source is None:
            self.data_source = "mix" if self.stem_dirs else "hdf5"
        mix = self.data_source == "mix"
        for name, hdf5, mixed in (("epochs", 100, 30), ("batch_size", 64, 16), ("steps_per_epoch", None, 200),
                                  ("patience", 2, None), ("plot", False, True)):
            if getattr(self, name) is None:
                setattr(self, name, mixed if mix else hdf5)
        if mix and self.patience == 0:
            self.patience = None

    def check(self) -> TrainConfig:
        """Raise :class:`MixinError` naming the first bad setting and its value; return self."""
        if self.data_source not in ("hdf5", "mix"):
            raise MixinError(f"data source must be hdf5 or mix, got {self.data_source!r}")
        for name, v, lo, opt in (("--epochs", self.epochs, 1, False), ("--batch-size", self.batch_size, 1, False),
                                 ("--patience", self.patience, 0, True), ("--seed", self.seed, 0, False),
                                 ("the init seed (--init-seed)", self.init_seed, 0, True),
                                 ("--steps-per-epoch", self.steps_per_epoch, 1, True),
                                 ("--eval-batches", self.eval_batches, 1, True)):
            _check_int(name, v, lo, optional=opt)
        if isinstance(self.sources, str):
            raise MixinError(f"sources must be a list of source names, got {self.sources!r}")
        if any(s not in params.SOURCES for s in self.sources) or not self.sources \
                or len(set(self.sources)) != len(self.sources):
            raise MixinError(f"unknown, repeated or no sources {list(self.sources)!r}; choose "
                             f"from {', '.join(params.SOURCES)}")
        if isinstance(self.loss, dict) and (missing := [s for s in self.sources if s not in self.loss]):
            raise MixinError(f"no loss given for {', '.join(missing)} (loss {self.loss!r})")
        for s in self.sources:
            if self.loss_of(s) not in LOSSES:
                raise MixinError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss_of(s)!r} for {s}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) \
                or not math.isfinite(lr) or not 0 < lr < 1:
            raise MixinError(f"--learning-rate must be in (0, 1), got {lr!r}")
        if self.data_source == "mix":
            self._check_mix()
        return self

    def _check_mix(self) -> None:
        if not self.stem_dirs:
            raise MixinError("--train-mix needs --stem-dirs DIR [DIR ...]")
        if not self.validation_songs:
            raise MixinError("--train-mix needs --validation-songs NAME ... (held-out real songs "
                             "in the stem dirs that choose the checkpoint)")
        from ..model import check_arch

        check_arch(self.arch)
        if self.init_model_dir:
            from ..model import read_model_spec

            if not os.path.isdir(self.init_model_dir):
                raise MixinError(f"--init-model-dir: folder not found: {self.init_model_dir}")
            have = read_model_spec(self.init_model_dir)["architecture"]
            if have != self.arch:
                raise MixinError(f"--init-model-dir {self.init_model_dir} holds {have} networks, "
                                 f"not --arch {self.arch}'s")
        if bad := [d for d in [*self.stem_dirs, *self.monitor_dirs, *self.panel_dirs] if not os.path.isdir(d)]:
            raise MixinError(f"stem directory not found: {bad[0]}")
        _check_int("--mix-workers", self.workers, 0)
        _check_range("--validation-duration", self.validation_duration, 2.0, 600.0)
        if self.mix.dir_weights is not None and len(self.mix.dir_weights) != len(self.stem_dirs):
            raise MixinError(f"--mix-dir-weights needs one weight per stem dir "
                             f"({len(self.stem_dirs)}), got {len(self.mix.dir_weights)}")
        self.mix.check()

    def loss_of(self, source: str) -> str:
        """The loss of ``source``'s network."""
        return self.loss[source] if isinstance(self.loss, dict) else self.loss

    def identity(self) -> dict[str, Any]:
        """The mix settings that must not change when resuming (data, networks, losses, batch)."""
        ident = dict(stem_dirs=[str(Path(d).resolve()) for d in self.stem_dirs],
                     validation_songs=sorted(self.validation_songs), mix=self.mix.to_json(),
                     seed=self.seed, batch_size=self.batch_size,
                     losses={s: self.loss_of(s) for s in params.SOURCES},
                     learning_rate=self.learning_rate, init_model_dir=self.init_model_dir)
        if self.init_seed is not None and self.init_seed != self.seed:  # absent when it is the seed
            ident["init_seed"] = self.init_seed
        if self.arch != "mixin":  # absent for the published architecture (older runs resume)
            ident["arch"] = self.arch
        if self.panel_dirs:
            ident["panel_dirs"] = [str(Path(d).resolve()) for d in self.panel_dirs]
        return json.loads(json.dumps(ident))


def read_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON state file, or None if absent; :class:`MixinError` if unreadable."""
    if not os.path.exists(path):
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise MixinError(f"cannot read training state {path}: {e}; use --overwrite to start again") from None


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """A CSV history as {column: list of floats} (NaN where a value is not a number)."""
    rows = read_rows(path)
    return {k: [_float(r[k]) for r in rows] for k in (rows[0] if rows else {})}


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV history as dicts of strings ([] if the file is absent)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path: str | os.PathLike, rows: Sequence[dict[str, Any]], fields: Sequence[str],
                  fmt: Callable[[float], str] = repr) -> None:
    """Write the rows (columns ``fields``, floats through ``fmt``) as CSV, atomically."""
    with fileio.atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (fmt(float(v)) if isinstance(v, (float, np.floating)) else v)
                        for k, v in r.items()})


def plot_curves(png: str | os.PathLike, x: Sequence[float], series: Sequence[tuple[str, Sequence, dict]],
                xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Curves (label, y values, matplotlib style) against ``x`` as a PNG, written atomically (Agg
    backend, never a window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    many = len(series) > 2
    fig = Figure(figsize=(8, 4.5) if many else (6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, y, style in series:
        ax.plot(x, y, label=label, **style)
    if title:
        ax.set_title(title)
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7 if many else None, ncol=2 if many else 1)
    fig.tight_layout()
    with fileio.atomic_open(png, "wb") as f:
        fig.savefig(f, format="png")


def fit(src: Any, model: Any, state: dict[str, Any], epochs: int, patience: int | None) -> dict[str, Any]:
    """Train ``model`` until ``state["rounds"]`` reaches ``epochs`` or early stopping; returns the state.
    ``state``: ``rounds`` (epochs done), ``best`` (the best row, without per-song details, or
    None), ``history`` (one row per validation), ``stopped`` (early stopping ended the run).
    ``src`` provides ``paths`` (``last``, ``history``), ``monitor`` (the row's key compared),
    ``higher`` (is a larger value better), ``fields`` and ``fmt`` (the CSV history),
    ``train_epoch(model, state) -> row``, ``validate(model) -> dict``,
    ``save(model, row, improved)`` (the round's and best networks), ``report(row, improved)``
    and ``save_state(state)``. Early stopping: after ``max(patience, 1)`` epochs without a better
    row (``patience`` None: never).
    """
    while state["rounds"] < epochs and not state["stopped"]:
        t0 = time.perf_counter()
        row = src.train_epoch(model, state)
        state["rounds"] += 1
        row = dict(round=state["rounds"], seconds=time.perf_counter() - t0, **row)
        end_epoch(src, model, state, row)
        if patience is not None and state["rounds"] - state["best"]["round"] >= max(patience, 1):
            state["stopped"] = True
            log.info("%s: no better %s for %d epochs: stopped", src.name, src.monitor, max(patience, 1))
        with fileio.atomic_path(src.paths["last"]) as tmp:
            model.save(str(tmp))  # keeps the .keras extension
        src.save_state(state)
        write_history(src.paths["history"], state["history"], src.fields, src.fmt)
    return state


def end_epoch(src: Any, model: Any, state: dict[str, Any], row: dict[str, Any],
              candidate: bool = True) -> None:
    """Validate ``model``, add the row to the history, keep it as the best if it is a better
    ``candidate``, and let the source save and report it."""
    row.update(src.validate(model))
    state["history"].append(row)
    best, key = state["best"], src.monitor
    improved = candidate and (best is None or (row[key] > best[key] if src.higher else row[key] < best[key]))
    if improved:
        state["best"] = {k: v for k, v in row.items() if not k.startswith("songs_")}
    src.save(model, row, improved)
    src.report(row, improved)
