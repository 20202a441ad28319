"""The ``--create-hdf5`` stage: NSGT magnitudes of the prepared segments, split by song, in HDF5.

:func:`create_hdf5` reads the segment folders of ``--prepare-stems`` and writes
``data/data_{harmonic,percussive,vocal}.hdf5``, each with the original's six datasets
``data-{x,y}-{train,validation,test}`` [shape=(N, 96, 1948, 1)]: x the mixture's NSGT magnitude,
y the source's, per chunk of ``CHUNK_SIZE`` samples of one channel (``mono``: the channels'
mean), every chunk of a segment (the last zero-padded). Harmonic and percussive take the ``v``
and ``nov`` folders, vocal the ``v`` folders. The split is the one in ``songs.json``, by song.
``index/{split}`` [shape=(N, 4)] int32 rows (song, segment, chunk, channel; -1 = mono) name each
example's origin; the ``storage`` attribute the dtype and filters (:data:`STORAGE`). Work is
spread over ``n_pool`` processes with results written in order (identical files for any
``n_pool``, memory bounded by ``2 * n_pool`` tasks in flight); files are written under a
temporary name and renamed when complete. Details and measurements: docs/training.md.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import io, layout, params
from ..errors import MixinError

log = logging.getLogger("mixin")

#: The three splits, in file order.
SPLITS = ("train", "validation", "test")

#: Storage options: numpy dtype and HDF5 filter keyword arguments for ``create_dataset``.
STORAGE = {
    "float32": dict(dtype="float32"),
    "float32-lzf": dict(dtype="float32", compression="lzf", shuffle=True),
    "float32-gzip": dict(dtype="float32", compression="gzip", compression_opts=4, shuffle=True),
    "float16": dict(dtype="float16"),
    "float16-lzf": dict(dtype="float16", compression="lzf", shuffle=True),
    "float16-gzip": dict(dtype="float16", compression="gzip", compression_opts=4, shuffle=True),
}

#: Chosen by measurement on real stems (README, "--create-hdf5"): float16 halves the size
#: and the read bandwidth with no measurable change in validation loss; compression saves little
#: more on NSGT magnitudes and costs CPU that training needs.
DEFAULT_STORAGE = "float16"

#: Chunks computed per worker task (bounds the memory of one task and of the results in flight).
CHUNKS_PER_TASK = 4


def hdf5_paths(data_dir: str | os.PathLike,
               sources: Iterable[str] = params.SOURCES) -> dict[str, str]:
    """Paths (str) of the dataset files for ``sources`` inside ``data_dir`` (a dict keyed by
    source): :func:`mixin.layout.hdf5_path`."""
    return {s: str(layout.hdf5_path(data_dir, s)) for s in sources}


def dataset_name(xy: str, split: str) -> str:
    """Name of a dataset in the original layout, e.g. ``data-x-train``."""
    return f"data-{xy}-{split}"


def find_segments(data_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The prepared segment folders in ``data_dir``, sorted by (song, segment, kind: v first).

    Returns a list of dicts (name, path: str, song, segment, vocal: bool). Raises
    :class:`MixinError` if ``data_dir`` is missing or holds none.
    """
    data_dir = str(data_dir)
    if not os.path.isdir(data_dir):
        raise MixinError(f"data directory not found: {data_dir} (run --prepare-stems first)")
    found = []
    for entry in os.scandir(data_dir):
        seg = layout.parse_segment_folder(entry.name)
        if seg and entry.is_dir():
            found.append(dict(name=entry.name, path=entry.path, song=seg.song,
                              segment=seg.segment, vocal=seg.kind == "v"))
    if not found:
        raise MixinError(f"no prepared segments in {data_dir} (run --prepare-stems first)")
    found.sort(key=lambda f: (f["song"], f["segment"], not f["vocal"]))
    return found


def assign_splits(data_dir: str | os.PathLike, song_ids: Iterable[int],
                  seed: int = 0) -> dict[str, list[int]]:
    """{split: sorted song indices} of the prepared segments' songs ``song_ids``: the split in
    ``songs.json`` (or, if it records none, :func:`mixin.training.stems.split_songs` of its real
    songs with ``seed``, remixes training). :class:`MixinError` if a song is not in the table."""
    from .stems import split_songs

    doc = layout.read_songs(data_dir)
    song_ids = sorted(set(int(s) for s in song_ids))
    split = doc.get("split")
    if not split:
        table = doc["songs"]
        real = [int(e["index"]) for e in table if not e.get("augmented")]
        aug = [int(e["index"]) for e in table if e.get("augmented")]
        parts = split_songs(len(real), seed=seed)
        split = {k: [real[i] for i in parts.get(k, [])] for k in SPLITS}
        split["train"] = split["train"] + aug
    try:
        split = {k: sorted(int(i) for i in split.get(k, [])) for k in SPLITS}
    except (TypeError, ValueError, AttributeError):
        raise MixinError(f"{layout.songs_json(data_dir)}: unreadable split {split!r}") from None
    listed = [i for k in SPLITS for i in split[k]]
    if len(listed) != len(set(listed)):
        raise MixinError(f"{layout.songs_json(data_dir)}: a song is in two splits: {split}")
    missing = sorted(set(song_ids) - set(listed))
    if missing:
        raise MixinError(f"{data_dir}: segment folders of songs {missing} are not in "
                         f"{layout.SONGS_JSON}; re-run --prepare-stems --overwrite")
    keep = set(song_ids)
    return {k: [i for i in v if i in keep] for k, v in split.items()}


def _checked(fn, path, *args):
    """``fn(path, *args)`` (a :mod:`mixin.io` reader); :class:`MixinError` naming the file if it fails."""
    try:
        return fn(path, *args)
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/OSError
        raise MixinError(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else e}") from None


def _segment_length(folder):
    """(frames, channels) of the segment's mix.wav (after checking it is 44.1 kHz)."""
    path = str(layout.segment_file(folder["path"], "mix"))
    info = _checked(io.sound_info, path)
    if info.samplerate != params.SAMPLE_RATE:
        raise MixinError(f"{path}: sample rate {info.samplerate} Hz, expected {params.SAMPLE_RATE}")
    return info.frames, info.channels


def _read_range(path, start, stop, mono, n_frames):
    """Samples [start, min(stop, n_frames)) of a wav of ``n_frames`` samples as float32
    [shape=(n_channels, min(stop, n_frames) - start)]."""
    x, sr = _checked(io.read_range, path, start, min(stop, n_frames))
    if sr != params.SAMPLE_RATE:
        raise MixinError(f"{path}: sample rate {sr} Hz, expected {params.SAMPLE_RATE}")
    if x.shape[0] != min(stop, n_frames) - start:
        raise MixinError(f"{path}: truncated (read {x.shape[0]} samples from {start}, expected "
                         f"{min(stop, n_frames) - start})")
    if not np.all(np.isfinite(x)):
        raise MixinError(f"{path}: non-finite samples")
    x = x.T
    if mono:
        x = x.mean(axis=0, keepdims=True)
    return x


def to_float16(a: np.ndarray) -> np.ndarray:
    """Non-negative float32 values to float16 of the same shape, rounded to nearest even: the
    result of ``a.astype(float16)``, faster. Values below 2**-14 (float16 subnormals) are
    rounded directly to their bit patterns, round(a * 2**24), which is exact.
    """
    # NumPy converts values that become float16 subnormals (about a third of NSGT magnitudes)
    # in a slow scalar path (~45 ns per value, against ~3 ns for normal values).
    a = np.asarray(a, dtype=np.float32)
    tiny = np.float32(2.0 ** -14)  # smallest normal float16
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.maximum(a, tiny).astype(np.float16)
        sub = np.minimum(a, tiny)
        sub *= np.float32(2.0 ** 24)
        np.rint(sub, out=sub)
        np.copyto(out.view(np.uint16), sub.astype(np.uint16), where=a < tiny)
    return out


def _compute_task(task):
    """Worker: NSGT magnitudes of chunks [c0, c1) of the folders of one segment (hard chunks of
    :func:`mixin.chunks.cut`, the segment's last one zero-padded).

    The ``v`` and ``nov`` folders of a segment hold the same harmonic and percussive stems (only
    the mixture differs), so when their samples are equal their magnitudes are computed once.

    Returns (task, [{name: array [shape=(n_chunks * n_channels, n_rows, n_cols)] of ``dtype``}
    per folder]), examples ordered chunk-major then channel.
    """
    from ..chunks import cut
    from ..nsgt import get_nsgt

    nsgt = get_nsgt()
    L = params.CHUNK_SIZE
    start, stop = task["c0"] * L, task["c1"] * L
    cache = []  # (samples, magnitudes) of stems already transformed in this task
    results = []
    for folder in task["folders"]:
        out = {}
        n_ch = None
        for name in folder["files"]:
            path = str(layout.segment_file(folder["path"], name))
            x = _read_range(path, start, stop, task["mono"], folder["n_frames"])  # (ch, n)
            if n_ch is None:
                n_ch = x.shape[0]
            elif x.shape[0] != n_ch:
                raise MixinError(f"{path}: {x.shape[0]} channels, but mix.wav has {n_ch}")
            mag = None
            if name != "mix":
                mag = next((m for xs, m in cache if xs.shape == x.shape and np.array_equal(xs, x)),
                           None)
            if mag is None:
                mag = np.abs(nsgt.forward(cut(x, L)))  # (n_chunks, ch, rows, cols)
                mag = mag.reshape((-1,) + mag.shape[2:])
                mag = to_float16(mag) if task["dtype"] == "<f2" else mag.astype(task["dtype"])
                if name != "mix":
                    cache.append((x, mag))
            out[name] = mag
        results.append(out)
    return task, results


def _check_folder(folder, n_frames):
    """Every wav the folder needs exists and has the mix's length; returns the list of names."""
    names = list(layout.SEGMENT_PARTS["v" if folder["vocal"] else "nov"])
    for name in names[1:]:
        path = str(layout.segment_file(folder["path"], name))
        if not os.path.isfile(path):
            raise MixinError(f"missing {path} (re-run --prepare-stems)")
        frames = _checked(io.sound_info, path).frames
        if frames != n_frames:
            raise MixinError(f"{path}: {frames} samples, but mix.wav has {n_frames}")
    return names


def _make_tasks(folders, mono, dtype):
    """Tasks of at most CHUNKS_PER_TASK chunks of one segment (its v and nov folders together)."""
    from ..chunks import n_chunks

    groups = {}
    for f in folders:
        n_frames, n_ch = _segment_length(f)
        if n_frames == 0:
            log.warning("skipping empty segment %s", f["path"])
            continue
        f = dict(f, files=_check_folder(f, n_frames), n_frames=n_frames, n_channels=1 if mono else n_ch)
        groups.setdefault((f["song"], f["segment"], n_frames), []).append(f)
    tasks = []
    for (song, segment, n_frames), group in sorted(groups.items()):
        count = n_chunks(n_frames, params.CHUNK_SIZE)
        for c0 in range(0, count, CHUNKS_PER_TASK):
            tasks.append(dict(song=song, segment=segment, folders=group, c0=c0,
                              c1=min(c0 + CHUNKS_PER_TASK, count), mono=mono, dtype=dtype))
    return tasks


def _init_worker(n_pool):
    """Share the CPUs between the workers: the transform's FFTs use all CPUs by default
    (``workers=-1``), which oversubscribes them when several processes run."""
    try:
        from scipy.fft._pocketfft import helper

        helper._cpu_count = max(1, (os.cpu_count() or 1) // n_pool)
    except (ImportError, AttributeError):  # private scipy detail: only an optimisation
        pass


def _init_pool(n_pool, init, initargs):
    _init_worker(n_pool)
    if init is not None:
        init(*initargs)


def ordered_map(func: Callable[[Any], Any], args: Iterable[Any], n_pool: int,
                init: Callable[..., None] | None = None, initargs: tuple = ()) -> Iterator[Any]:
    """Yield ``func(a)`` for every ``a`` of ``args`` (an infinite iterable too), in order, computed
    by ``n_pool`` processes with ``2 * n_pool`` in flight (0: in this process); each worker runs
    :func:`_init_worker` then ``init(*initargs)`` first. Closing the generator ends the pool."""
    if n_pool < 1:
        yield from map(func, args)
        return
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in
                                      multiprocessing.get_all_start_methods() else "spawn")
    with ctx.Pool(n_pool, initializer=_init_pool, initargs=(n_pool, init, initargs)) as pool:
        it = iter(args)
        pending = collections.deque(pool.apply_async(func, (a,)) for a in itertools.islice(it, 2 * n_pool))
        while pending:
            res = pending.popleft().get()
            pending.extend(pool.apply_async(func, (a,)) for a in itertools.islice(it, 1))
            yield res


def _open_files(files, tmp, storage, opts, dtype, mono, seed, splits):
    """Open the HDF5 files being written into ``files`` ({source: h5py.File}), their datasets
    empty and resizable."""
    import h5py

    from ..nsgt import coef_shape

    shape = coef_shape() + (1,)
    for s, path in tmp.items():
        hf = files[s] = h5py.File(path, "w")
        for split in SPLITS:
            for xy in "xy":
                hf.create_dataset(dataset_name(xy, split), shape=(0,) + shape, maxshape=(None,) + shape,
                                  chunks=(1,) + shape, dtype=dtype, **opts)
            hf.create_dataset(f"index/{split}", shape=(0, 4), maxshape=(None, 4), chunks=(1024, 4),
                              dtype="int32")
        hf.attrs.update(dict(
            source=s, storage=storage, dtype=dtype.name, compression=str(opts.get("compression")),
            mono=bool(mono), split_seed=int(seed), sample_rate=params.SAMPLE_RATE,
            chunk_size=params.CHUNK_SIZE, coef_shape=list(coef_shape()), splits=json.dumps(splits),
            folders="v+nov" if s != "vocal" else "v", mixin_version=_version(), complete=False))


def _append(d, arr):
    n0 = d.shape[0]
    d.resize(n0 + len(arr), axis=0)
    d[n0:] = arr


def _write_task(files, counts, split, task, per_folder, mono):
    """Append one task's examples (and their index rows) to the files of their split; returns the
    mixture chunks written."""
    n_chunks = 0
    for folder, mags in zip(task["folders"], per_folder):
        n_chunks += task["c1"] - task["c0"]  # mixture chunks (a v and a nov chunk: 2)
        n_ex, n_ch = mags["mix"].shape[0], folder["n_channels"]
        ex = np.arange(n_ex)
        idx = np.stack([np.full(n_ex, task["song"]), np.full(n_ex, task["segment"]),
                        task["c0"] + ex // n_ch, np.full(n_ex, -1) if mono else ex % n_ch], axis=1)
        for s, hf in files.items():
            if s in mags:  # vocal target only in 'v' folders
                _append(hf[dataset_name("x", split)], mags["mix"][..., None])
                _append(hf[dataset_name("y", split)], mags[s][..., None])
                _append(hf[f"index/{split}"], idx.astype(np.int32))
                counts[s][split] += n_ex
    return n_chunks


def create_hdf5(data_dir: str | os.PathLike = "data", n_pool: int | None = None, mono: bool = False,
                seed: int = 0, overwrite: bool = False, storage: str | None = None,
                sources: Sequence[str] = params.SOURCES) -> dict[str, Any]:
    """Compute the training datasets of the segments that ``--prepare-stems`` wrote in
    ``data_dir``, into it. ``n_pool``: worker processes (default: the CPUs); ``mono``: downmix
    each segment instead of one example per channel; ``seed``: of the song split, only if
    ``songs.json`` records none; ``storage``: a key of :data:`STORAGE` (default
    :data:`DEFAULT_STORAGE`); ``sources``: the files to write.

    Returns a dict: "counts" ({source: {split: examples}}), "chunks", "seconds", "storage",
    "splits" ({split: song indices}), "files" ({source: path}). Raises :class:`MixinError` for
    bad arguments, no prepared segments or ``songs.json``, unreadable segment audio, or existing
    files without ``overwrite``.
    """
    n_pool = (os.cpu_count() or 1) if n_pool is None else n_pool
    if not isinstance(n_pool, (int, np.integer)) or n_pool < 1:
        raise MixinError(f"--n-pool must be a positive integer, got {n_pool}")
    storage = storage or DEFAULT_STORAGE
    if storage not in STORAGE:
        raise MixinError(f"unknown storage {storage!r}; choose from {', '.join(STORAGE)}")
    bad = [s for s in sources if s not in params.SOURCES]
    if bad or not sources:
        raise MixinError(f"unknown sources {bad}; choose from {', '.join(params.SOURCES)}")
    folders = find_segments(data_dir)
    paths = hdf5_paths(data_dir, sources)
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not overwrite:
        raise MixinError(f"{existing[0]} exists; use --overwrite to replace it")
    splits = assign_splits(data_dir, [f["song"] for f in folders], seed=seed)
    split_of = {s: k for k, songs in splits.items() for s in songs}
    log.info("songs by split: %s", {k: v for k, v in splits.items()})
    if not splits["train"]:
        raise MixinError("no song in the training split; prepare more songs")
    if not splits["validation"]:
        log.warning("no validation song (%d songs prepared): training cannot early-stop on "
                    "validation loss", len(split_of))
    opts = dict(STORAGE[storage])
    dtype = np.dtype(opts.pop("dtype"))
    tasks = _make_tasks(folders, mono, dtype.str)
    t0 = time.perf_counter()
    parts = {s: io.Part(p, keep_ext=True, lock=False) for s, p in paths.items()}  # (HDF5 locks its files)
    tmp = {s: part.path for s, part in parts.items()}
    files = {}
    counts = {s: {k: 0 for k in SPLITS} for s in sources}
    n_chunks = 0
    try:
        _open_files(files, tmp, storage, opts, dtype, mono, seed, splits)
        import sys

        from tqdm import tqdm

        progress = tqdm(total=len(tasks), unit="task", desc="create-hdf5", leave=False,
                        disable=not (log.isEnabledFor(logging.INFO) and sys.stderr.isatty()))
        for task, per_folder in ordered_map(_compute_task, tasks, n_pool if n_pool > 1 else 0):
            n_chunks += _write_task(files, counts, split_of[task["song"]], task, per_folder, mono)
            progress.update(1)
        progress.close()
        for s, hf in files.items():
            hf.attrs["complete"] = True
            hf.attrs["counts"] = json.dumps(counts[s])
            hf.close()
        for s in sources:
            parts[s].commit()
    except BaseException:
        for hf in files.values():
            try:
                hf.close()
            except Exception:
                pass
        for part in parts.values():
            part.discard()
        raise
    seconds = time.perf_counter() - t0
    log.info("wrote %s: %d chunks in %.1f s (%.1f chunks/s, n_pool=%d, storage=%s)",
             ", ".join(paths.values()), n_chunks, seconds, n_chunks / max(seconds, 1e-9), n_pool, storage)
    for s in sources:
        log.info("%s examples: %s", s, counts[s])
    return dict(counts=counts, chunks=n_chunks, seconds=seconds, storage=storage, splits=splits,
                files=paths)


def _version():
    from .. import __version__

    return __version__


def check_hdf5(data_dir: str | os.PathLike,
               sources: Iterable[str] = params.SOURCES) -> dict[str, dict[str, int]]:
    """Open and validate the dataset files; returns {source: {split: n_examples}}.

    Raises :class:`MixinError` if a file is missing, incomplete, or has the wrong shape.
    """
    import h5py
    from ..nsgt import coef_shape

    shape = coef_shape() + (1,)
    out = {}
    for s, p in hdf5_paths(data_dir, sources).items():
        if not os.path.isfile(p):
            raise MixinError(f"training data not found: {p} (run --create-hdf5 first)")
        try:
            with h5py.File(p, "r") as hf:
                n = {}
                for split in SPLITS:
                    nx = hf.get(dataset_name("x", split))
                    ny = hf.get(dataset_name("y", split))
                    if nx is None or ny is None:
                        raise MixinError(f"{p}: missing dataset {dataset_name('x', split)} or "
                                         f"{dataset_name('y', split)}")
                    if nx.shape[1:] != shape or ny.shape != nx.shape:
                        raise MixinError(f"{p}: {dataset_name('x', split)} has shape {nx.shape} and "
                                         f"{dataset_name('y', split)} {ny.shape}; expected (N,) + {shape}")
                    n[split] = nx.shape[0]
                if not hf.attrs.get("complete", True):
                    raise MixinError(f"{p} is incomplete; re-run --create-hdf5 --overwrite")
        except OSError as e:
            raise MixinError(f"cannot read {p}: {e}") from None
        out[s] = n
    return out
