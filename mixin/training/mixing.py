"""``--train-mix`` (docs/training.md): :class:`Mixer` mixes examples on the fly from stem folders
(44.1 kHz; a song may lack vocals), :class:`MixSource` trains the three networks on them through
:func:`mixin.training.engine.fit`, :func:`train_mix` is the stage. Example ``i`` depends only on
(catalogue, config, seed, i) and batch ``b`` holds examples ``b*B .. (b+1)*B-1``, so a resumed run
sees the examples an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import params
from ..io import files as fileio
from ..errors import MixinError
from ..metrics import auto_offset, window_sdr
from .engine import MixConfig, TrainConfig, end_epoch, fit, plot_curves, write_history

if TYPE_CHECKING:
    import keras

    from ..separation.separate import Separator

log = logging.getLogger("mixin")

ACTIVITY_WINDOW = params.SAMPLE_RATE  #: activity is measured per second
CATALOGUE_VERSION = 1
STATE_VERSION = 1

#: Energy of a chunk's NSGT coefficients per unit of signal energy (measured: 8.7 for white noise,
#: 7.3-9.8 for music chunks, 5.7-11 for pure tones), used to set an example's level in dBFS.
COEF_ENERGY = 8.7


@dataclass
class StemSong:
    """A song folder: ``files`` maps source -> list of stem paths; ``active`` source -> list of
    0/1 per second (1 = RMS above :data:`mixin.params.ACTIVE_RMS`)."""

    name: str
    folder: str
    group: int
    files: dict
    frames: int
    channels: int
    active: dict = field(default_factory=dict)


def _activity(paths, frames):
    """0/1 per second: is the sum of ``paths`` active there."""
    from ..io import sound_file

    n_win = -(-frames // ACTIVITY_WINDOW)
    energy = np.zeros(n_win)
    for p in paths:
        pos = 0
        with sound_file(p) as f:
            for block in f.blocks(blocksize=ACTIVITY_WINDOW * 30, dtype="float32", always_2d=True):
                m = block.mean(axis=1)
                k = (np.arange(len(m)) + pos) // ACTIVITY_WINDOW
                # energies of the files add (an approximation of the sum's energy: uncorrelated parts)
                energy += np.bincount(np.minimum(k, n_win - 1), weights=m.astype(np.float64) ** 2,
                                      minlength=n_win)[:n_win]
                pos += len(m)
    rms = np.sqrt(energy / ACTIVITY_WINDOW)
    return [int(v > params.ACTIVE_RMS) for v in rms]


def _probe_song(args):
    folder, names, group = args
    from ..io import sound_info
    from ..songs import song_files

    files = song_files(folder)
    if not files["harmonic"] and not files["percussive"]:
        return None
    frames, channels, sr = [], set(), set()
    for ps in files.values():
        for p in ps:
            try:
                info = sound_info(p)
            except Exception as e:  # libsndfile raises several types
                raise MixinError(f"cannot read stem {p}: {' '.join(str(e).split())}") from None
            frames.append(info.frames)
            channels.add(info.channels)
            sr.add(info.samplerate)
    if sr != {params.SAMPLE_RATE}:
        raise MixinError(f"stems of {folder} are at {sorted(sr)} Hz; on-the-fly training needs "
                         f"{params.SAMPLE_RATE} Hz (use --prepare-stems, which resamples)")
    if len(channels) != 1 or min(channels) > 2:
        raise MixinError(f"stems of {folder} have {sorted(channels)} channels; need all mono or all stereo")
    n = min(frames)
    if n < params.CHUNK_SIZE:
        return None
    active = {s: _activity(files[s], n) for s in params.SOURCES}
    return StemSong(name=Path(folder).name, folder=str(folder), group=group, files=files,
                    frames=int(n), channels=int(min(channels)), active=active)


def build_catalogue(stem_dirs: Sequence[str | os.PathLike], exclude: Iterable[str] | None = (),
                    jobs: int = 1, cache: str | os.PathLike | None = None) -> list[StemSong]:
    """The songs under ``stem_dirs`` (recursively; grouped by stem dir) but ``exclude`` (folder names) as
    :class:`StemSong` in stem-dir then path order, activity measured by ``jobs`` processes; ``cache``: a
    JSON file reused while the files' sizes and times are unchanged. :class:`MixinError` when no song is
    usable, a stem is unreadable or not at 44.1 kHz, or a song's stems are not all mono or all stereo."""
    from .stems import find_song_folders

    exclude = set(exclude or ())
    tasks = [(str(folder), [f.name for f in files], g) for g, d in enumerate(stem_dirs)
             for folder, files in find_song_folders([d]) if folder.name not in exclude]
    if not tasks:
        raise MixinError(f"no training songs under {', '.join(map(str, stem_dirs))}")
    key = [[t[0], t[2], sorted((n, os.path.getsize(os.path.join(t[0], n)),
                                int(os.path.getmtime(os.path.join(t[0], n)))) for n in t[1])]
           for t in tasks]
    if cache and os.path.exists(cache):
        try:
            c = json.loads(Path(cache).read_text())
            if c.get("version") == CATALOGUE_VERSION and c.get("key") == key:
                return [StemSong(**s) for s in c["songs"]]
        except (OSError, ValueError, TypeError):
            pass
    from .hdf5 import ordered_map

    songs = list(ordered_map(_probe_song, tasks, jobs if jobs > 1 and len(tasks) > 1 else 0))
    for t in (t for t, s in zip(tasks, songs) if s is None):
        log.warning("skipped %s: no drums or harmonic stems, or shorter than one chunk", t[0])
    songs = [s for s in songs if s is not None]
    if not songs:
        raise MixinError("no usable training songs (each needs drums or harmonic stems, >= 1 s)")
    if cache:
        fileio.write_json(cache, {"version": CATALOGUE_VERSION, "key": key,
                                  "songs": [dataclasses.asdict(s) for s in songs]}, indent=None)
    return songs


class Mixer:
    """Draws examples from a catalogue (picklable: workers build their own NSGT)."""

    def __init__(self, songs, config, seed=0, inputs=("mag",)):
        self.songs = list(songs)
        self.config = config.check()
        self.seed = int(seed)
        #: the networks' input channels (a model spec's ``inputs``, :func:`mixin.model.network_input`)
        self.inputs = tuple(inputs)
        self.groups = groups = sorted({s.group for s in self.songs})
        dw = config.dir_weights
        w = np.array([(dw[g] if g < len(dw) else 0.0) if dw is not None else
                      sum(s.frames for s in self.songs if s.group == g) for g in groups], float)
        if w.sum() <= 0:
            raise MixinError("every stem dir with songs has weight 0")
        self.group_p = w / w.sum()
        self.group_songs = {g: [i for i, s in enumerate(self.songs) if s.group == g] for g in groups}
        self.group_song_p = {g: (p := np.array([self.songs[i].frames for i in idx], float)) / p.sum()
                             for g, idx in self.group_songs.items()}
        self._nsgt, self._files = None, {}

    def __getstate__(self):  # open files stay in their process
        d = dict(self.__dict__)
        d["_files"], d["_nsgt"] = {}, None
        return d

    def _draw_song(self, rng, source=None):
        g = self.groups[rng.choice(len(self.groups), p=self.group_p)]
        idx = self.group_songs[g]
        if source is not None:
            # a song that has this source at all (vocals may be absent in rendered songs)
            ok = [k for k, i in enumerate(idx) if self.songs[i].files[source]]
            if ok:
                p = self.group_song_p[g][ok]
                return idx[ok[rng.choice(len(ok), p=p / p.sum())]]
        return idx[rng.choice(len(idx), p=self.group_song_p[g])]

    def _draw_offset(self, rng, song, source, length):
        last = song.frames - length
        if last <= 0:
            return 0
        act = song.active.get(source) if source else np.max([song.active[s] for s in params.SOURCES], axis=0)
        if act is not None and rng.random() < self.config.active:
            act = np.asarray(act)
            n_full = max(1, last // ACTIVITY_WINDOW)
            cand = np.flatnonzero(act[:n_full])
            if cand.size:
                start = int(cand[rng.integers(cand.size)]) * ACTIVITY_WINDOW
                return int(min(last, start + rng.integers(ACTIVITY_WINDOW)))
        return int(rng.integers(last + 1))

    def draw(self, d: int) -> dict[str, Any]:
        """The audio choices of draw ``d``: songs, offsets, channels, speed (a JSON-able dict)."""
        c = self.config
        rng = np.random.default_rng([self.seed, int(d)])
        remix = bool(rng.random() < c.remix)
        speed = float(2.0 ** (rng.uniform(-c.shift_semitones, c.shift_semitones) / 12.0)) if rng.random() < c.shift \
            else 1.0
        length = int(math.ceil(params.CHUNK_SIZE * speed)) + 64
        if remix:
            song_ids, keys = {s: self._draw_song(rng, s) for s in params.SOURCES}, params.SOURCES
        else:  # one song, one offset and one channel for every source
            song_ids, keys = dict.fromkeys(params.SOURCES, self._draw_song(rng)), (None,)
        offsets, chans = {}, {}
        for k in keys:
            song = self.songs[song_ids[k or params.SOURCES[0]]]
            offsets[k] = self._draw_offset(rng, song, k, length)
            chans[k] = int(rng.integers(song.channels)) if rng.random() < 0.8 else -1
        if not remix:
            offsets, chans = dict.fromkeys(params.SOURCES, offsets[None]), dict.fromkeys(params.SOURCES, chans[None])
        return dict(draw=int(d), remix=remix, speed=speed, length=length, songs=song_ids,
                    offsets=offsets, channels=chans)

    def variant(self, index: int) -> dict[str, Any]:
        """The level choices of example ``index``: gains, EQ, silence, overall level."""
        c = self.config
        rng = np.random.default_rng([self.seed, int(index), 1])
        gains = {s: float(rng.uniform(-c.gain_db, c.gain_db)) for s in params.SOURCES}
        silent = {s: bool(rng.random() < c.silence) for s in params.SOURCES}
        if all(silent.values()):
            silent[params.SOURCES[int(rng.integers(3))]] = False
        d = c.eq_db  # EQ: a tilt and two bumps (centre, width, gain) per source, or None
        eq = {s: None if d <= 0 else dict(tilt=float(rng.uniform(-d, d)), bumps=[
            (float(rng.uniform(0, 1)), float(rng.uniform(0.03, 0.2)), float(rng.uniform(-d, d))) for _ in range(2)])
            for s in params.SOURCES}
        level = None if c.level_db is None else float(rng.uniform(*c.level_db))
        return dict(index=int(index), gains=gains, silent=silent, eq=eq, level=level)

    def plan(self, index: int) -> dict[str, Any]:
        """Every random choice of example ``index`` (its draw is ``index // variants``)."""
        return dict(self.draw(int(index) // self.config.variants), **self.variant(index))

    @staticmethod
    def eq_curve(eq: dict[str, Any] | None, n_rows: int) -> np.ndarray:
        """Gain per band [shape=(n_rows,)] (linear) of an EQ plan: a tilt over the Bark-spaced
        bands plus two Gaussian bumps."""
        if eq is None:
            return np.ones(n_rows, np.float32)
        u = np.linspace(0.0, 1.0, n_rows)
        db = eq["tilt"] * (u - 0.5)
        for centre, width, gain in eq["bumps"]:
            db = db + gain * np.exp(-0.5 * ((u - centre) / width) ** 2)
        return (10.0 ** (db / 20.0)).astype(np.float32)

    def _read(self, song, source, offset, length, channel):
        """The sum of the source's stems from ``offset``, files kept open (at most 64 per process)."""
        from ..io import sound_file

        out = np.zeros(length, np.float32)
        for p in song.files[source]:
            f = self._files.pop(p, None)
            if f is None:
                if len(self._files) >= 64:
                    self._files.pop(next(iter(self._files))).close()
                f = sound_file(p)
            self._files[p] = f  # most recently used last
            f.seek(min(offset, max(0, f.frames - 1)))
            x = f.read(length, dtype="float32", always_2d=True)
            x = x.mean(axis=1) if channel < 0 or channel >= x.shape[1] else x[:, channel]
            out[:len(x)] += x
        return out

    def _source_signal(self, draw, s):
        """The chunk of source ``s`` of a draw, float32 [shape=(CHUNK_SIZE,)], before gains."""
        song = self.songs[draw["songs"][s]]
        if not song.files[s]:
            return np.zeros(params.CHUNK_SIZE, np.float32)
        x = self._read(song, s, draw["offsets"][s], draw["length"], draw["channels"][s])
        if draw["speed"] != 1.0:
            import soxr

            # play ``speed`` times faster: resample from rate*speed to rate
            x = soxr.resample(x, params.SAMPLE_RATE * draw["speed"], params.SAMPLE_RATE, "HQ")
        y = np.zeros(params.CHUNK_SIZE, np.float32)
        y[:min(len(x), params.CHUNK_SIZE)] = x[:params.CHUNK_SIZE]
        return y

    def batch(self, b: int, batch_size: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Batch ``b`` (examples ``b*B .. (b+1)*B-1``): (x, (y_harmonic, y_percussive, y_vocal)), float32;
        x [shape=(B, 96, 1948, C)] with the C channels of ``inputs`` (1: the mixture's magnitude), the
        targets [shape=(B, 96, 1948, 1)]. A draw of audio serves ``config.variants`` examples; their gains,
        EQ, silences and level scale the sources' coefficients (the transform is linear)."""
        from ..model import network_input
        from ..nsgt import get_nsgt

        if self._nsgt is None:
            self._nsgt = get_nsgt()
        idx = range(b * batch_size, (b + 1) * batch_size)
        v = self.config.variants
        draws = sorted({i // v for i in idx})
        sig = np.stack([[self._source_signal(self.draw(d), s) for s in params.SOURCES] for d in draws])
        coefs = self._nsgt.forward(sig)  # (n_draws, 3, rows, cols) complex64
        rows = coefs.shape[-2]
        pos = {d: k for k, d in enumerate(draws)}
        mix = np.empty((batch_size,) + coefs.shape[-2:], np.float32)
        src = np.empty((batch_size, len(params.SOURCES)) + coefs.shape[-2:], np.float32)
        mags = np.abs(coefs)  # |g * C| = g * |C|: the sources' magnitudes need no new transform
        # per band, the mixture is a weighted sum of the three sources' rows: one batched matmul
        # over (rows, 3, 2*cols) float pairs per draw
        pairs = np.ascontiguousarray(
            coefs.view(np.float32).reshape(coefs.shape[:-1] + (-1,)).transpose(0, 2, 1, 3))
        for k, i in enumerate(idx):
            var = self.variant(i)
            d = pos[i // v]
            g = np.stack([(0.0 if var["silent"][s] else 10.0 ** (var["gains"][s] / 20.0))
                          * self.eq_curve(var["eq"][s], rows) for s in params.SOURCES])
            g = g.astype(np.float32)  # (3, rows)
            m = np.matmul(g.T[:, None, :], pairs[d])[:, 0, :]  # (rows, 2*cols): re, im pairs
            m = m.reshape(rows, -1, 2)
            power = np.einsum("rcj,rcj->rc", m, m)
            # the mixture's level in dBFS, from its coefficients' energy (COEF_ENERGY per unit
            # of signal energy, within about +-1 dB for music): scale everything to the target
            ms = float(power.sum()) / (COEF_ENERGY * params.CHUNK_SIZE)
            if var["level"] is not None and ms > 1e-12:
                db = var["level"] - 10.0 * np.log10(ms)
                g *= np.float32(10.0 ** (db / 20.0))
                power *= np.float32(10.0 ** (db / 10.0))
            np.multiply(mags[d], g[:, :, None], out=src[k])
            np.sqrt(power, out=mix[k])
        return (network_input(mix, self.inputs),
                tuple(src[:, j, ..., None] for j in range(len(params.SOURCES))))


_WORKER = {}


def _init(mixer):
    _WORKER["mixer"] = mixer


def _work(args):
    b, batch_size = args
    x, ys = _WORKER["mixer"].batch(b, batch_size)
    # float16 halves what crosses the pipe; magnitudes of audio in [-1, 1] stay far below its max
    return x.astype(np.float16), tuple(y.astype(np.float16) for y in ys)


class BatchStream:
    """Batches ``start, start+1, ...`` of a :class:`Mixer`, computed by ``workers`` processes
    (0: in this process), in order. Use as a context manager (closes the pool)."""

    def __init__(self, mixer, batch_size, start=0, workers=1):
        self.mixer, self.batch_size, self.next, self.workers = mixer, int(batch_size), int(start), int(workers)
        self._it = None

    def __enter__(self):
        if self.workers > 0:
            from .hdf5 import ordered_map

            batches = ((b, self.batch_size) for b in itertools.count(self.next))
            self._it = ordered_map(_work, batches, self.workers, _init, (self.mixer,))
        return self

    def __exit__(self, *exc):
        if self._it is not None:
            self._it, it = None, self._it
            it.close()

    def get(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The next batch (x, (y_h, y_p, y_v)) as float32."""
        if self._it is None:
            x, ys = self.mixer.batch(self.next, self.batch_size)
        else:
            x, ys = next(self._it)
            x, ys = x.astype(np.float32), tuple(y.astype(np.float32) for y in ys)
        self.next += 1
        return x, ys


@dataclass
class ValSong:
    name: str
    mixture: np.ndarray      # [shape=(n, ch)]
    refs: dict               # source -> [shape=(n, ch)]
    start: float


def load_validation_song(folder: str | os.PathLike, duration: float) -> ValSong:
    """The ``duration`` s excerpt of a song folder where its sources are most active (targets missing
    are silent); :class:`MixinError` for a folder without stems, an unreadable stem or one not at 44.1 kHz."""
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
    """Separate each song and score it: {song: {source: window SDR in dB}}."""
    return {song.name: {s: window_sdr(song.refs[s], est[s]) for s in params.SOURCES}
            for song in songs for est in [separator.separate(song.mixture, params.SAMPLE_RATE)]}


def summarise(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Median over songs per source (NaNs left out) and their mean (the selection score)."""
    def mid(v, f=np.median):
        v = [x for x in v if np.isfinite(x)]
        return float(f(v)) if v else float("nan")

    med = {s: mid(sc[s] for sc in scores.values()) for s in params.SOURCES}
    return dict(med, mean=mid(med.values(), np.mean))


def build_joint(losses: Mapping[str, str], learning_rate: float,
                init_model_dir: str | os.PathLike | None = None, arch: str = "mixin") -> keras.Model:
    """The three networks of ``arch`` as one Keras model (input [shape=(B, 96, 1948, C)]; outputs: harmonic,
    percussive, vocal estimates [shape=(B, 96, 1948, 1)]), compiled with one loss per output and Adam;
    the networks start from ``init_model_dir``'s models if given."""
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


def _save_models(nets, folder, arch="mixin"):
    """The networks as a model folder (with its ``model.json`` for another architecture)."""
    from ..model import save_cdae, write_model_spec

    folder.mkdir(parents=True, exist_ok=True)
    for s, m in nets.items():
        save_cdae(m, folder / params.MODEL_FILES[s])
    if arch != "mixin":
        write_model_spec(folder, arch)


def _per_source_losses(out):
    """Per-network losses from a train_on_batch dict (Keras names them by output layer)."""
    return np.array([float(out[k]) if (k := next((k for k in out if s in k and "loss" in k), None))
                     else float("nan") for s in params.SOURCES])


def _fmt(row, prefix):
    return " / ".join(f"{row.get(f'{prefix}_{s}', float('nan')):.2f}" for s in params.SOURCES) + \
        f" (mean {row.get(f'{prefix}_mean', float('nan')):.2f})"


HISTORY_FIELDS = (["round", "batches", "examples", "seconds", "examples_per_s"]
                  + [f"loss_{s}" for s in params.SOURCES]
                  + [f"{k}_{s}" for k in ("select", "monitor") for s in params.SOURCES + ("mean",)]
                  + ["panel", "panel_real", "panel_rendered"])


def _paths(cfg):
    lg, md = Path(cfg.logdir), Path(cfg.model_dir)
    return dict(last=lg / "joint.last.keras", state=lg / "joint.state.json", best=lg / "best",
                rounds=lg / "rounds", history=lg / "history_mix.csv", catalogue=lg / "catalogue.json",
                model_history=md / "history_mix.csv", plot=md / "validation_sdr.png")


class MixSource:
    """The data source of ``--train-mix`` for :func:`mixin.training.engine.fit`: a round is ``steps_per_epoch``
    batches; validation separates the selection songs (or the panel) and the monitor songs; the round
    kept has the best mean selection SDR (or panel score)."""

    name = "joint"
    higher = True
    fields = HISTORY_FIELDS
    fmt = staticmethod(lambda v: f"{v:.4f}")

    def __init__(self, cfg: TrainConfig, sep: Separator, nets: dict, select: list, monitor: list,
                 panel: list | None):
        self.cfg, self.sep, self.nets, self.paths = cfg, sep, nets, _paths(cfg)
        self.select, self.monitor_songs, self.panel = select, monitor, panel
        self.monitor = "panel" if panel else "select_mean"
        self.stream, self.bar = None, None

    def train_epoch(self, joint: keras.Model, state: dict[str, Any]) -> dict[str, Any]:
        cfg, t0 = self.cfg, time.perf_counter()
        sums = np.zeros(len(params.SOURCES))
        for _ in range(cfg.steps_per_epoch):
            x, ys = self.stream.get()
            sums += _per_source_losses(joint.train_on_batch(x, list(ys), return_dict=True))
            self.bar.update(1)
        state["batches"] += cfg.steps_per_epoch
        return dict(batches=state["batches"], examples=state["batches"] * cfg.batch_size,
                    examples_per_s=cfg.steps_per_epoch * cfg.batch_size / (time.perf_counter() - t0),
                    **{f"loss_{s}": float(v / cfg.steps_per_epoch) for s, v in zip(params.SOURCES, sums)})

    def validate(self, joint: keras.Model) -> dict[str, Any]:
        """Scores per song (``songs_*``), their summaries, and the panel's when there is one."""
        out = {}
        if self.panel:
            from ..evaluation.panel import score as score_panel

            res = score_panel(self.sep, self.panel)
            sel = {n: {s: r[s] for s in params.SOURCES} for n, r in res["songs"].items() if r["kind"] == "real"}
            out = {"panel": res["selection"], "panel_real": res["real"]["vs_hpss"],
                   "panel_rendered": res["rendered"]["vs_hpss"], "songs_panel": res["songs"]}
        else:
            sel = score_songs(self.sep, self.select)
        mon = score_songs(self.sep, self.monitor_songs) if self.monitor_songs else {}
        out.update(songs_select=sel, songs_monitor=mon, **{f"select_{k}": v for k, v in summarise(sel).items()})
        out.update({f"monitor_{k}": v for k, v in summarise(mon).items()} if mon else {})
        return out

    def save(self, joint: keras.Model, row: dict[str, Any], improved: bool) -> None:
        for folder in ([self.paths["rounds"] / f"{row['round']:03d}"] if row["round"] > 0 else []) + \
                ([self.paths["best"]] if improved else []):
            _save_models(self.nets, folder, self.cfg.arch)

    def report(self, row: dict[str, Any], improved: bool) -> None:
        if row["round"] == 0:
            log.info("round 0 (initial): selection SDR %s", _fmt(row, "select"))
            return
        log.info(f"round {row['round']}/{self.cfg.epochs} ({row['batches']} batches, "
                 f"{row['examples_per_s']:.1f} examples/s): selection SDR {_fmt(row, 'select')}"
                 + (f"; monitor {_fmt(row, 'monitor')}" if self.monitor_songs else "")
                 + (f"; panel vs HPSS {row['panel']:+.2f} dB (real {row['panel_real']:+.2f}, "
                    f"rendered {row['panel_rendered']:+.2f})" if self.panel else "") + (" *" if improved else ""))

    def save_state(self, state: dict[str, Any]) -> None:
        fileio.write_json(self.paths["state"], dict({k: v for k, v in state.items() if k != "stopped"},
                                                    finished=state["stopped"]), indent=1, sort_keys=True, default=float)


def plot_validation(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Validation SDR per target against batches (selection and monitor songs), PNG (Agg)."""
    colours = dict(harmonic="tab:green", percussive="tab:red", vocal="tab:blue", mean="black")
    series = []
    for s in params.SOURCES + ("mean",):
        series.append((f"{s} (selection songs)", [r.get(f"select_{s}", np.nan) for r in rows],
                       dict(marker="o", ms=3, color=colours[s])))
        mon = [r.get(f"monitor_{s}", np.nan) for r in rows]
        if np.any(np.isfinite(mon)):
            series.append((f"{s} (monitor songs)", mon, dict(ls="--", color=colours[s], alpha=0.6)))
    plot_curves(path, [r["batches"] for r in rows], series, "batches", "median SDR per 1 s window (dB)")


def _open_state(cfg, p, final):
    """The state to resume (its identity checked) or None; clears the logdir with ``overwrite``."""
    if cfg.overwrite:
        for k in ("last", "state", "history"):
            p[k].unlink(missing_ok=True)
        for k in ("best", "rounds"):
            if p[k].exists():
                shutil.rmtree(p[k])
        return None
    if not p["state"].exists():
        if existing := [str(f) for f in final.values() if f.exists()]:
            raise MixinError(f"{existing[0]} exists and was not made by this logdir; use --overwrite to replace it")
        return None
    state = json.loads(p["state"].read_text())
    if state.get("version") != STATE_VERSION:
        raise MixinError(f"{p['state']} is from another version; use --overwrite to start again")
    ident = cfg.identity()
    if diff := sorted(k for k in set(ident) | set(state["identity"]) if state["identity"].get(k) != ident.get(k)):
        raise MixinError(f"cannot resume {cfg.logdir}: {', '.join(diff)} differ from the "
                         f"checkpoint's; use the same settings, another --logdir, or --overwrite")
    return state


def _validation_sets(cfg, p):
    """(training songs, selection songs, monitor songs, panel or None); held-out songs never in the catalogue."""
    from .stems import find_song_folders

    held = set(cfg.validation_songs)
    select = [folder for folder, _ in find_song_folders(cfg.stem_dirs) if folder.name in held]
    if held - (found := {f.name for f in select}):
        raise MixinError(f"validation song(s) not found in the stem dirs: {', '.join(sorted(held - found))}")
    monitor = [folder for folder, _ in find_song_folders(cfg.monitor_dirs)] if cfg.monitor_dirs else []
    songs = build_catalogue(cfg.stem_dirs, exclude=held, jobs=os.cpu_count() or 1, cache=p["catalogue"])
    log.info("training songs: %d (%.1f h) from %d stem dir(s); selection songs: %s; monitor songs: %d",
             len(songs), sum(s.frames for s in songs) / params.SAMPLE_RATE / 3600,
             len(cfg.stem_dirs), ", ".join(sorted(found)), len(monitor))
    panel = None
    if cfg.panel_dirs:  # the validation songs and the rendered panel, each against HPSS
        from ..evaluation.panel import load_panel

        panel = load_panel(real=cfg.stem_dirs, real_names=sorted(found), rendered=cfg.panel_dirs,
                           duration=cfg.validation_duration, cache=Path(cfg.logdir) / "panel_hpss.json")
        log.info("panel: %d real + %d rendered songs, scored against HPSS",
                 sum(s.kind == "real" for s in panel), sum(s.kind == "rendered" for s in panel))
    select = [] if panel else [load_validation_song(f, cfg.validation_duration) for f in select]
    return songs, select, [load_validation_song(f, cfg.validation_duration) for f in monitor], panel


def train_mix(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the networks of ``--train-mix`` (files, resuming: docs/training.md); returns the state."""
    from ..model import import_tensorflow, model_spec, write_model_spec
    from ..onnxexport import export_after_save
    from ..separation.separate import Separator

    cfg.check()
    p = _paths(cfg)
    for d in (cfg.logdir, cfg.model_dir):
        os.makedirs(d, exist_ok=True)
    final = {s: Path(cfg.model_dir) / params.MODEL_FILES[s] for s in params.SOURCES}
    state = _open_state(cfg, p, final)
    songs, select, monitor, panel = _validation_sets(cfg, p)
    import_tensorflow()
    import keras

    # the initial weights come from the Keras seed; the examples only from the Mixer's own seed
    keras.utils.set_random_seed(cfg.seed if cfg.init_seed is None else cfg.init_seed)
    if state is not None and p["last"].exists():
        joint = keras.models.load_model(p["last"])
        log.info("resuming from %s at round %d (%d batches)", p["last"], state["rounds"], state["batches"])
    else:
        joint = build_joint({s: cfg.loss_of(s) for s in params.SOURCES}, cfg.learning_rate,
                            cfg.init_model_dir, cfg.arch)
        state = dict(version=STATE_VERSION, identity=cfg.identity(), rounds=0, batches=0,
                     best=None, history=[], finished=False, mix=cfg.mix.to_json())
    state["stopped"] = state.pop("finished")
    nets = {s: joint.get_layer(f"cdae_{s}") for s in params.SOURCES}  # the three CDAEs inside
    inputs = model_spec(cfg.arch)["inputs"]
    src = MixSource(cfg, Separator(models=nets, inputs=inputs), nets, select, monitor, panel)
    if state["rounds"] == 0 and not state["history"]:  # the initial networks: a candidate if given
        end_epoch(src, joint, state, dict(round=0, batches=0, examples=0, seconds=0.0,
                                          examples_per_s=float("nan")), candidate=bool(cfg.init_model_dir))
    from tqdm import tqdm

    src.bar = tqdm(total=cfg.epochs * cfg.steps_per_epoch, initial=state["batches"], unit="batch",
                   dynamic_ncols=True, leave=False, disable=not progress)
    mixer = Mixer(songs, cfg.mix, seed=cfg.seed, inputs=inputs)
    with src.bar, BatchStream(mixer, cfg.batch_size, start=state["batches"], workers=cfg.workers) as src.stream:
        fit(src, joint, state, cfg.epochs, cfg.patience)
    if state["best"] is None:
        raise MixinError("no round was trained (rounds done already?)")
    for s in params.SOURCES:
        fileio.copy_file(p["best"] / params.MODEL_FILES[s], final[s])
    if cfg.arch != "mixin":
        write_model_spec(cfg.model_dir, cfg.arch)
    export_after_save(final.values())  # model_{s}.onnx beside them, for the onnx backend
    write_history(p["model_history"], state["history"], HISTORY_FIELDS, MixSource.fmt)
    if cfg.plot:
        plot_validation(state["history"], p["plot"])
    log.info("%s; best round %d (%d batches): selection SDR %s; models in %s",
             "stopped early" if state["stopped"] else "rounds done", state["best"]["round"],
             state["best"]["batches"], _fmt(state["best"], "select"), cfg.model_dir)
    return state
