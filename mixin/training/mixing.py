"""On-the-fly training examples: random mixing of stems from many songs (no HDF5 on disk).

Hours of material do not fit the HDF5 path (about 270 MB per stereo minute for the three sources),
so this path reads the stem files themselves and computes every example when it is needed, as
Open-Unmix and Demucs train: each example draws one 44032-sample chunk per source — from one song,
or with probability ``remix`` from three different songs —, applies random per-source gains, an EQ
curve, an optional speed change (pitch and tempo together) and silence, sums the sources and
returns the NSGT magnitudes of the mixture and of each source. Disk use is the stems' own (FLAC).

Songs
    Folders of stem files in the MUSDB18-HQ layout (``drums``, ``vocals``, ``bass``, ``other``,
    ...), classed by file name as :func:`mixin.songs.classify` (drum -> percussive,
    vocal -> vocal, mix -> ignored, anything else -> harmonic, summed). A song may lack vocals
    (rendered backings): its vocal part is silent. Stems must be at 44.1 kHz.

Determinism
    Example ``i`` of a stream depends only on (catalogue, config, seed, i): batch ``b`` holds
    examples ``b*B .. (b+1)*B-1``. So a resumed run sees exactly the examples an uninterrupted
    one would, whatever the number of worker processes.

Arrays
    A batch is ``x`` float32 [shape=(B, 96, 1948, 1)] (mixture magnitude) and a tuple of three
    float32 [shape=(B, 96, 1948, 1)] (harmonic, percussive, vocal magnitudes).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import params
from ..io import files as fileio
from ..errors import MixinError

log = logging.getLogger("mixin")

#: Activity is measured on windows of this many samples (one second).
ACTIVITY_WINDOW = params.SAMPLE_RATE


CATALOGUE_VERSION = 1

#: Energy of a chunk's NSGT coefficients per unit of signal energy (measured: 8.7 for white noise,
#: 7.3-9.8 for music chunks, 5.7-11 for pure tones), used to set an example's level in dBFS.
COEF_ENERGY = 8.7


@dataclass
class MixConfig:
    """How examples are drawn (every field is recorded with the training state).

    remix: probability that the three sources come from three different songs.
    gain_db: each source gets a gain uniform in +-gain_db.
    level_db: the whole example is scaled so that its mixture's RMS level is uniform in
        [level_db[0], level_db[1]] dBFS (real songs range from quiet unmastered stems to loud
        masters; the networks see absolute magnitudes); None keeps the stems' own level.
    eq_db: each source gets a random smooth EQ curve over the bands (tilt + two bumps, +-eq_db).
    shift: probability of a speed change (pitch and tempo) of up to +-shift_semitones.
    silence: probability that a source is silenced (teaches the networks silence).
    active: probability that a remixed source's chunk is drawn among its active seconds.
    dir_weights: probability of drawing a song from each stem dir (None: by duration).
    variants: consecutive examples that share one draw of audio (with their own gains, EQ,
        silences and level, applied to the coefficients: a draw's transform serves them all).
    """

    remix: float = 0.5
    gain_db: float = 6.0
    level_db: tuple = (-30.0, -8.0)
    eq_db: float = 6.0
    shift: float = 0.3
    shift_semitones: float = 1.0
    silence: float = 0.05
    active: float = 0.9
    dir_weights: tuple | None = None
    variants: int = 2

    def check(self) -> MixConfig:
        """Raise :class:`MixinError` naming the first bad setting; return self."""
        def prob(name: str) -> None:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise MixinError(f"{name} must be a probability in [0, 1], got {v}")

        for n in ("remix", "shift", "silence", "active"):
            prob(n)
        for n in ("gain_db", "eq_db", "shift_semitones"):
            if not 0.0 <= getattr(self, n) <= 40.0:
                raise MixinError(f"{n} must be in [0, 40] dB/semitones, got {getattr(self, n)}")
        if int(self.variants) != self.variants or not 1 <= self.variants <= 64:
            raise MixinError(f"variants must be an integer in 1..64, got {self.variants}")
        if self.level_db is not None:
            lo, hi = self.level_db
            if not -80.0 <= lo <= hi <= 0.0:
                raise MixinError(f"level_db must be (low, high) dBFS with -80 <= low <= high <= 0, "
                                 f"got {list(self.level_db)}")
        if self.dir_weights is not None and (min(self.dir_weights) < 0 or sum(self.dir_weights) <= 0):
            raise MixinError(f"dir weights must be >= 0 and not all 0, got {list(self.dir_weights)}")
        return self

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["level_db"] = None if self.level_db is None else list(self.level_db)
        d["dir_weights"] = None if self.dir_weights is None else list(self.dir_weights)
        return d


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


# --------------------------------------------------------------------------------------------
# catalogue
# --------------------------------------------------------------------------------------------

def _song_files(folder, names=None):
    """Stem files of a song folder by source (:func:`mixin.songs.song_files`)."""
    from ..songs import song_files

    return song_files(folder)


def _activity(paths, frames):
    """0/1 per second: is the sum of ``paths`` active there."""
    from ..io import sound_file

    n_win = -(-frames // ACTIVITY_WINDOW)
    if not paths:
        return [0] * n_win
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

    files = _song_files(folder, names)
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
    """Find the songs under ``stem_dirs`` (recursively) and measure their activity.

    Parameters
    ----------
    stem_dirs : list of paths; songs are grouped by the stem dir they were found in.
    exclude : song folder names to leave out (held-out songs).
    jobs : processes for reading (activity needs one pass over every stem).
    cache : path of a JSON cache (reused when the files' sizes and times are unchanged).

    Returns
    -------
    list of :class:`StemSong`, in stem-dir order then path order. Raises :class:`MixinError` when
    no song is usable, a stem is unreadable or not at 44.1 kHz, or a song's stems are not all mono
    or all stereo.
    """
    from .stems import find_song_folders

    exclude = set(exclude or ())
    tasks = []
    for g, d in enumerate(stem_dirs):
        for folder, files in find_song_folders([d]):
            if folder.name in exclude:
                continue
            tasks.append((str(folder), [f.name for f in files], g))
    if not tasks:
        raise MixinError(f"no training songs under {', '.join(map(str, stem_dirs))}")
    key = [[t[0], t[2], sorted((n, os.path.getsize(os.path.join(t[0], n)),
                                int(os.path.getmtime(os.path.join(t[0], n)))) for n in t[1])]
           for t in tasks]
    if cache and os.path.exists(cache):
        try:
            with open(cache) as f:
                c = json.load(f)
            if c.get("version") == CATALOGUE_VERSION and c.get("key") == key:
                return [StemSong(**s) for s in c["songs"]]
        except (OSError, ValueError, TypeError):
            pass
    if jobs > 1 and len(tasks) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            songs = pool.map(_probe_song, tasks, chunksize=4)
    else:
        songs = [_probe_song(t) for t in tasks]
    skipped = [t[0] for t, s in zip(tasks, songs) if s is None]
    for s in skipped:
        log.warning("skipped %s: no drums or harmonic stems, or shorter than one chunk", s)
    songs = [s for s in songs if s is not None]
    if not songs:
        raise MixinError("no usable training songs (each needs drums or harmonic stems, >= 1 s)")
    if cache:
        fileio.write_json(cache, {"version": CATALOGUE_VERSION, "key": key,
                                  "songs": [dataclasses.asdict(s) for s in songs]}, indent=None)
    return songs


# --------------------------------------------------------------------------------------------
# examples
# --------------------------------------------------------------------------------------------

class Mixer:
    """Draws examples from a catalogue (picklable: workers build their own NSGT)."""

    def __init__(self, songs, config, seed=0, inputs=("mag",)):
        self.songs = list(songs)
        self.config = config.check()
        self.seed = int(seed)
        #: the networks' input channels (a model spec's ``inputs``, :func:`mixin.model.network_input`)
        self.inputs = tuple(inputs)
        groups = sorted({s.group for s in self.songs})
        dur = {g: sum(s.frames for s in self.songs if s.group == g) for g in groups}
        if config.dir_weights is not None:
            w = np.zeros(max(groups) + 1)
            for g in groups:
                w[g] = config.dir_weights[g] if g < len(config.dir_weights) else 0.0
            w = w[groups]
            if w.sum() <= 0:
                raise MixinError("every stem dir with songs has weight 0")
        else:
            w = np.array([dur[g] for g in groups], float)
        self.groups = groups
        self.group_p = w / w.sum()
        self.group_songs = {g: [i for i, s in enumerate(self.songs) if s.group == g] for g in groups}
        self.group_song_p = {g: np.array([self.songs[i].frames for i in idx], float)
                             for g, idx in self.group_songs.items()}
        for g in groups:
            self.group_song_p[g] /= self.group_song_p[g].sum()
        self._nsgt = None
        self._files = {}

    def __getstate__(self):  # open files stay in their process
        d = dict(self.__dict__)
        d["_files"], d["_nsgt"] = {}, None
        return d

    # ---------------------------------------------------------------- drawing
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
        act = song.active.get(source) if source else None
        if source is None:
            act = np.max([song.active[s] for s in params.SOURCES], axis=0)
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
        speed = 1.0
        if rng.random() < c.shift:
            speed = float(2.0 ** (rng.uniform(-c.shift_semitones, c.shift_semitones) / 12.0))
        length = int(math.ceil(params.CHUNK_SIZE * speed)) + 64
        offsets, chans = {}, {}
        if not remix:
            one = self._draw_song(rng)
            song_ids = {s: one for s in params.SOURCES}
            song = self.songs[one]
            off = self._draw_offset(rng, song, None, length)
            ch = int(rng.integers(song.channels)) if rng.random() < 0.8 else -1
            offsets = {s: off for s in params.SOURCES}
            chans = {s: ch for s in params.SOURCES}
        else:
            song_ids = {s: self._draw_song(rng, s) for s in params.SOURCES}
            for s in params.SOURCES:
                song = self.songs[song_ids[s]]
                offsets[s] = self._draw_offset(rng, song, s, length)
                chans[s] = int(rng.integers(song.channels)) if rng.random() < 0.8 else -1
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
        eq = {s: self._eq_params(rng) for s in params.SOURCES}
        level = None if c.level_db is None else float(rng.uniform(*c.level_db))
        return dict(index=int(index), gains=gains, silent=silent, eq=eq, level=level)

    def plan(self, index: int) -> dict[str, Any]:
        """Every random choice of example ``index`` (its draw is ``index // variants``)."""
        return dict(self.draw(int(index) // self.config.variants), **self.variant(index))

    def _eq_params(self, rng):
        d = self.config.eq_db
        if d <= 0:
            return None
        return dict(tilt=float(rng.uniform(-d, d)),
                    bumps=[(float(rng.uniform(0, 1)), float(rng.uniform(0.03, 0.2)),
                            float(rng.uniform(-d, d))) for _ in range(2)])

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

    # ---------------------------------------------------------------- reading
    def _open(self, path):
        """An open SoundFile for ``path``, kept open (at most 64 per process)."""
        from ..io import sound_file

        f = self._files.pop(path, None)
        if f is None:
            if len(self._files) >= 64:
                self._files.pop(next(iter(self._files))).close()
            f = sound_file(path)
        self._files[path] = f  # most recently used last
        return f

    def _read(self, song, source, offset, length, channel):
        out = np.zeros(length, np.float32)
        for p in song.files[source]:
            f = self._open(p)
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
        n = min(len(x), params.CHUNK_SIZE)
        y[:n] = x[:n]
        return y

    def batch(self, b: int, batch_size: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Batch ``b``: (x, (y_harmonic, y_percussive, y_vocal)), float32; x [shape=(B, 96, 1948, C)]
        with the C channels of ``inputs`` (1: the mixture's magnitude), the targets [shape=(B, 96, 1948, 1)].

        Examples ``b*B .. (b+1)*B-1``. Each draw of audio serves ``config.variants`` consecutive
        examples with different gains, EQ, silences and level: the transform is linear, so these
        are applied to the sources' coefficients (the mixture is the sum of the sources' scaled
        coefficients, exactly as if the scaled signals had been transformed).
        """
        if self._nsgt is None:
            from ..nsgt import get_nsgt

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
                g *= np.float32(10.0 ** ((var["level"] - 10.0 * np.log10(ms)) / 20.0))
                power *= np.float32(10.0 ** ((var["level"] - 10.0 * np.log10(ms)) / 10.0))
            np.multiply(mags[d], g[:, :, None], out=src[k])
            np.sqrt(power, out=mix[k])
        from ..model import network_input

        return (network_input(mix, self.inputs),
                tuple(src[:, j, ..., None] for j in range(len(params.SOURCES))))


# --------------------------------------------------------------------------------------------
# parallel stream
# --------------------------------------------------------------------------------------------

_WORKER = {}


def _init(mixer, n_workers):
    from .hdf5 import _init_worker

    _init_worker(n_workers)
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
        self.mixer, self.batch_size, self.next = mixer, int(batch_size), int(start)
        self.workers = int(workers)
        self.pool = None
        self._it = None

    def __enter__(self):
        if self.workers > 0:
            import multiprocessing as mp

            self.pool = mp.get_context("spawn").Pool(self.workers, initializer=_init,
                                                     initargs=(self.mixer, self.workers))
            import collections

            self._it = collections.deque()
            for _ in range(2 * self.workers):
                self._submit()
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def _submit(self):
        b = self.next + len(self._it)
        self._it.append(self.pool.apply_async(_work, ((b, self.batch_size),)))

    def get(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The next batch (x, (y_h, y_p, y_v)) as float32."""
        if self.pool is None:
            x, ys = self.mixer.batch(self.next, self.batch_size)
        else:
            x, ys = self._it.popleft().get()
            self._submit()
            x, ys = x.astype(np.float32), tuple(y.astype(np.float32) for y in ys)
        self.next += 1
        return x, ys
