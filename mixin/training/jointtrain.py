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

from .. import params
from ..io import files as fileio
from ..errors import MixinError
from ..metrics import auto_offset, window_sdr  # noqa: F401  (window_sdr: also imported from here)
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
    overwrite: bool = False
    plot: bool = True
    #: network architecture (:data:`mixin.model.ARCHITECTURES`; "mixin" = the published CDAE)
    arch: str = "mixin"
    #: folders of rendered held-out songs that join the validation songs in the panel: the round
    #: kept is then the one with the best panel score (median over every song and target of the
    #: SDR minus HPSS's, :mod:`mixin.evaluation.panel`) instead of the validation songs' mean
    panel_dirs: list = field(default_factory=list)

    def check(self) -> MixTrainConfig:
        """Raise :class:`MixinError` naming the first bad setting; return self."""
        if not self.stem_dirs:
            raise MixinError("--train-mix needs --stem-dirs DIR [DIR ...]")
        if not self.validation_songs:
            raise MixinError("--train-mix needs --validation-songs NAME ... (held-out real songs "
                             "in the stem dirs that choose the checkpoint)")
        from ..model import check_arch

        check_arch(self.arch)
        if self.init_model_dir and self.arch != "mixin":
            raise MixinError("--init-model-dir starts from published-architecture models; "
                             f"it does not combine with --arch {self.arch}")
        for d in list(self.stem_dirs) + list(self.monitor_dirs) + list(self.panel_dirs):
            if not os.path.isdir(d):
                raise MixinError(f"stem directory not found: {d}")
        for name, v, lo in (("batch size", self.batch_size, 1), ("steps per round", self.steps_per_round, 1),
                            ("rounds", self.rounds, 1), ("workers", self.workers, 0),
                            ("init seed", self.seed if self.init_seed is None else self.init_seed, 0)):
            if int(v) != v or v < lo:
                raise MixinError(f"{name} must be an integer >= {lo}, got {v}")
        if not (0 < self.learning_rate < 1):
            raise MixinError(f"learning rate must be in (0, 1), got {self.learning_rate}")
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
        if self.arch != "mixin":  # absent for the published architecture (older runs resume)
            ident["arch"] = self.arch
        if self.panel_dirs:
            ident["panel_dirs"] = [str(Path(d).resolve()) for d in self.panel_dirs]
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
    """The ``duration`` s excerpt of a song folder where its sources are most active
    (:func:`mixin.metrics.auto_offset`).

    Returns :class:`ValSong` (targets missing in the folder are silent). Raises
    :class:`MixinError` for a folder without stems, an unreadable stem or one not at 44.1 kHz."""
    from ..songs import Song, read_sources, song_files

    folder = Path(folder)
    refs, sr = read_sources(Song(folder.name, str(folder), song_files(folder)))
    if sr != params.SAMPLE_RATE:
        raise MixinError(f"validation song {folder} is at {sr} Hz; need {params.SAMPLE_RATE} Hz")
    start = auto_offset(refs, sr, duration)
    a, b = start * sr, start * sr + int(math.ceil(duration)) * sr
    refs = {s: np.ascontiguousarray(r[a:b]) for s, r in refs.items()}
    mixture = np.sum(list(refs.values()), axis=0, dtype=np.float32)
    return ValSong(name=folder.name, mixture=mixture, refs=refs, start=float(start))


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
                init_model_dir: str | os.PathLike | None = None, arch: str = "mixin") -> keras.Model:
    """The three networks of architecture ``arch`` as one Keras model (input: the networks' input
    [shape=(B, 96, 1948, C)]; outputs: harmonic, percussive, vocal estimates [shape=(B, 96, 1948, 1)]),
    compiled with one loss per output and Adam; the networks start from ``init_model_dir``'s models
    when given."""
    import keras

    from ..model import build_model, load_models

    nets = {s: build_model(arch, name=f"cdae_{s}") for s in params.SOURCES}
    if init_model_dir:
        for s, m in load_models(init_model_dir).items():
            nets[s].set_weights(m.get_weights())
    inp = keras.Input(shape=nets["harmonic"].input_shape[1:])
    joint = keras.Model(inp, [nets[s](inp) for s in params.SOURCES], name="mixin_joint")
    joint.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss=[losses[s] for s in params.SOURCES])
    return joint


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
                  + [f"loss_{s}" for s in params.SOURCES]
                  + [f"{k}_{s}" for k in ("select", "monitor") for s in params.SOURCES + ("mean",)]
                  + ["panel", "panel_real", "panel_rendered"])


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
    from ..model import import_tensorflow, model_spec, write_model_spec
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
    panel = None
    if cfg.panel_dirs:  # the validation songs and the rendered panel, each against HPSS
        from ..evaluation.panel import load_panel

        panel = load_panel(real=cfg.stem_dirs, real_names=sorted(found), rendered=cfg.panel_dirs,
                           duration=cfg.validation_duration, cache=Path(cfg.logdir) / "panel_hpss.json")
        log.info("panel: %d real + %d rendered songs, scored against HPSS",
                 sum(p.kind == "real" for p in panel), sum(p.kind == "rendered" for p in panel))
    select = [] if panel else [load_validation_song(f, cfg.validation_duration) for f in select_folders]
    monitor = [load_validation_song(f, cfg.validation_duration) for f in monitor_folders]

    tf = import_tensorflow()
    import keras

    # the initial weights come from the Keras seed; the examples only from the Mixer's own seed
    keras.utils.set_random_seed(cfg.seed if cfg.init_seed is None else cfg.init_seed)
    if state is not None and p["last"].exists():
        joint = keras.models.load_model(p["last"])
        log.info("resuming from %s at round %d (%d batches)", p["last"], state["rounds"], state["batches"])
    else:
        joint = build_joint(cfg.losses, cfg.learning_rate, cfg.init_model_dir, cfg.arch)
        state = dict(version=STATE_VERSION, identity=cfg.identity(), rounds=0, batches=0,
                     best=None, history=[], finished=False, mix=cfg.mix.to_json())
    nets = networks(joint)
    inputs = model_spec(cfg.arch)["inputs"]
    mixer = Mixer(songs, cfg.mix, seed=cfg.seed, inputs=inputs)
    sep = Separator(models=nets, inputs=inputs)
    patience = cfg.patience

    def validate() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, float]]:
        """(selection songs' scores, monitor songs' scores, panel scores: {} without a panel)."""
        t = time.perf_counter()
        pan = {}
        if panel:
            from ..evaluation.panel import score as score_panel

            res = score_panel(sep, panel)
            sel = {n: {s: r[s] for s in params.SOURCES} for n, r in res["songs"].items() if r["kind"] == "real"}
            pan = {"panel": res["selection"], "panel_real": res["real"]["vs_hpss"],
                   "panel_rendered": res["rendered"]["vs_hpss"], "songs_panel": res["songs"]}
        else:
            sel = score_songs(sep, select)
        mon = score_songs(sep, monitor) if monitor else {}
        log.debug("validation took %.1f s", time.perf_counter() - t)
        return sel, mon, pan

    def better(row, best) -> bool:
        key = "panel" if panel else "select_mean"
        return best is None or row[key] > best[key]

    if state["rounds"] == 0 and not state["history"]:
        sel, mon, pan = validate()
        row = dict(round=0, batches=0, examples=0, seconds=0.0, examples_per_s=float("nan"),
                   songs_select=sel, songs_monitor=mon, **pan)
        row.update({f"select_{k}": v for k, v in summarise(sel).items()})
        row.update({f"monitor_{k}": v for k, v in summarise(mon).items()} if mon else {})
        state["history"].append(row)
        log.info("round 0 (initial): selection SDR %s", _fmt(row, "select"))
        if cfg.init_model_dir:  # starting from trained networks: they are a candidate too
            _save_best(nets, p["best"], state, row, cfg.arch)

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
            sums = np.zeros(len(params.SOURCES))
            for _ in range(cfg.steps_per_round):
                x, ys = stream.get()
                out = joint.train_on_batch(x, list(ys), return_dict=True)
                sums += _per_source_losses(out)
                if bar is not None:
                    bar.update(1)
            train_s = time.perf_counter() - t0
            state["batches"] += cfg.steps_per_round
            state["rounds"] += 1
            sel, mon, pan = validate()
            row = dict(round=state["rounds"], batches=state["batches"],
                       examples=state["batches"] * cfg.batch_size, seconds=train_s,
                       examples_per_s=cfg.steps_per_round * cfg.batch_size / train_s,
                       songs_select=sel, songs_monitor=mon, **pan)
            row.update({f"loss_{s}": float(v / cfg.steps_per_round)
                        for s, v in zip(params.SOURCES, sums)})
            row.update({f"select_{k}": v for k, v in summarise(sel).items()})
            if mon:
                row.update({f"monitor_{k}": v for k, v in summarise(mon).items()})
            state["history"].append(row)
            _save_models(nets, p["rounds"] / f"{state['rounds']:03d}", cfg.arch)
            if better(row, state["best"]):
                _save_best(nets, p["best"], state, row, cfg.arch)
            msg = (f"round {state['rounds']}/{cfg.rounds} ({state['batches']} batches, "
                   f"{row['examples_per_s']:.1f} examples/s): selection SDR {_fmt(row, 'select')}")
            if mon:
                msg += f"; monitor {_fmt(row, 'monitor')}"
            if panel:
                msg += (f"; panel vs HPSS {row['panel']:+.2f} dB (real {row['panel_real']:+.2f}, "
                        f"rendered {row['panel_rendered']:+.2f})")
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
    if cfg.arch != "mixin":
        write_model_spec(cfg.model_dir, cfg.arch)
    export_after_save(final.values())  # model_{s}.onnx beside them, for the onnx backend
    _write_history(p["model_history"], state["history"])
    if cfg.plot:
        plot_validation(state["history"], p["plot"])
    log.info("%s; best round %d (%d batches): selection SDR %s; models in %s", stop_reason,
             state["best"]["round"], state["best"]["batches"], _fmt(state["best"], "select"),
             cfg.model_dir)
    return state


def _save_models(nets, folder, arch="mixin"):
    """The networks as a model folder (with its ``model.json`` for another architecture)."""
    from ..model import save_cdae, write_model_spec

    folder.mkdir(parents=True, exist_ok=True)
    for s, m in nets.items():
        save_cdae(m, folder / params.MODEL_FILES[s])
    if arch != "mixin":
        write_model_spec(folder, arch)


def _save_best(nets, folder, state, row, arch="mixin"):
    _save_models(nets, folder, arch)
    state["best"] = {k: row[k] for k in row if not k.startswith("songs_")}


def _per_source_losses(out):
    """Per-network losses from a train_on_batch dict (Keras names them by output layer)."""
    vals = []
    for s in params.SOURCES:
        key = next((k for k in out if s in k and "loss" in k), None)
        vals.append(float(out[key]) if key is not None else float("nan"))
    return np.array(vals)


def _fmt(row, prefix):
    return " / ".join(f"{row.get(f'{prefix}_{s}', float('nan')):.2f}" for s in params.SOURCES) + \
        f" (mean {row.get(f'{prefix}_mean', float('nan')):.2f})"
