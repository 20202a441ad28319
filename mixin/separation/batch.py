"""Separating many songs: input lists, resumable batches with a manifest, several processes.

The unit of work is a *task*: one input and its output paths (dict source -> path) and sample
format. :func:`separate_one` does one task wherever it runs (this process, a ``--jobs`` worker
process, a Dask worker): it removes the stale part files of the task's own outputs
(:func:`mixin.io.remove_stale_parts`: only parts no live writer holds), creates the output
folders and separates with :func:`mixin.separation.separate.separate_file` (outputs written
atomically). It returns a *row*: dict input, outputs, status (``done`` / ``failed``), seconds and
the one-line error. A failing input never stops the batch.

Runners: :func:`run_serial` (one :class:`~mixin.separation.separate.Separator` here),
:func:`run_jobs` (N spawned processes, each loading the models once with 1/N of the cores) and
:func:`run_dask` (a Dask distributed cluster, :mod:`mixin.separation.cluster`). Each calls
``on_result(row)`` in this process as each task finishes, which is where the :class:`Manifest`
row is appended.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..errors import MixinError

log = logging.getLogger("mixin")

#: Extensions a folder input is searched for when no ``--pattern`` is given.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff", ".w64", ".rf64",
                    ".caf", ".m4a", ".aac", ".wma")

#: Columns of the manifest CSV.
MANIFEST_FIELDS = ("input", "outputs", "status", "seconds", "error")

#: Separator between the output paths in the manifest's ``outputs`` column.
OUTPUT_SEP = ";"

#: Environment variables of the thread pools of NumPy's BLAS, OpenMP and TensorFlow.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------

def read_input_list(path: str | os.PathLike) -> list[str]:
    """The inputs named in a list file: one path per line; blank lines and lines starting with
    ``#`` are skipped; relative paths are relative to the list file's folder."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise MixinError(f"--input-list {p}: cannot read it ({reason})") from None
    base = os.path.dirname(os.path.abspath(p))
    out = []
    for line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        out.append(s if os.path.isabs(s) else os.path.normpath(os.path.join(base, s)))
    if not out:
        raise MixinError(f"--input-list {p}: names no input")
    return out


def _matches(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return name.lower().endswith(AUDIO_EXTENSIONS)
    return fnmatch.fnmatch(name, pattern)


def expand_folder(folder: str, recursive: bool = False, pattern: str | None = None) -> list[str]:
    """Audio files in ``folder`` (sorted; with ``recursive`` in its subfolders too; hidden files
    and folders skipped): names matching the glob ``pattern``, or with an
    :data:`AUDIO_EXTENSIONS` extension when ``pattern`` is None."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in files
                  if not f.startswith(".") and _matches(f, pattern)]
        if not recursive:
            break
    return sorted(found)


def collect_inputs(inputs: Sequence[str], input_list: str | None = None, recursive: bool = False,
                   pattern: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """All inputs of a call: ``inputs`` (a folder among them is replaced by its audio files, see
    :func:`expand_folder`) followed by those of the ``input_list`` file.

    Returns (inputs, failures): failures = (folder, message) for each folder with no matching
    file. Raises :class:`MixinError` for an unreadable or empty list file.
    """
    out, failures = [], []
    for inp in inputs:
        if os.path.isdir(inp):
            files = expand_folder(inp, recursive, pattern)
            if not files:
                what = f"matching {pattern!r}" if pattern else "with an audio extension"
                failures.append((inp, f"{inp}: is a directory holding no file {what}"
                                 + ("" if recursive else " (--recursive includes its subfolders)")))
            out += files
        else:
            out.append(inp)
    if input_list is not None:
        out += read_input_list(input_list)
    return out, failures


def outputs_complete(outs: Mapping[str, str]) -> bool:
    """True when every output exists as a file: an output gets its name only by the atomic
    rename of a complete file (:class:`mixin.io.AtomicWriter`)."""
    return all(os.path.isfile(o) for o in outs.values())


# ------------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------------

class Manifest:
    """The batch's record: a CSV file with one row per input (:data:`MANIFEST_FIELDS`).

    On :meth:`open` the rows of the inputs this run will process again are dropped (the file is
    rewritten atomically), so that the file keeps one row per input; then each :meth:`write`
    appends a row and flushes it to disk, so a killed batch leaves every finished row behind.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._f = None
        self._w = None

    def check(self) -> None:
        """Raise :class:`MixinError` if the manifest is a folder or an existing file that is not a
        manifest (whether its folder can be created and written is the caller's check)."""
        if os.path.isdir(self.path):
            raise MixinError(f"--manifest {self.path} is a directory")
        self.rows()

    def rows(self) -> dict[str, dict]:
        """The existing rows, by input (the last row of an input wins); {} if there is no file."""
        if not os.path.exists(self.path):
            return {}
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                r = csv.DictReader(f)
                if r.fieldnames is None:
                    return {}
                if tuple(r.fieldnames) != MANIFEST_FIELDS:
                    raise MixinError(f"--manifest {self.path} is not a MiXiN manifest (its header "
                                     f"is {','.join(r.fieldnames)}; expected "
                                     f"{','.join(MANIFEST_FIELDS)})")
                return {row["input"]: row for row in r if row.get("input")}
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise MixinError(f"--manifest {self.path}: cannot read it ({e})") from None

    def open(self, redo: Iterable[str]) -> dict[str, dict]:
        """Drop the rows of the inputs ``redo``, keep the others; open for appending. Returns
        the rows kept."""
        from ..io import atomic_open

        redo = set(redo)
        make_folders(os.path.dirname(os.path.abspath(self.path)))
        keep = {k: v for k, v in self.rows().items() if k not in redo}
        with atomic_open(self.path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, MANIFEST_FIELDS, lineterminator="\n")
            w.writeheader()
            for row in keep.values():
                w.writerow({k: row.get(k, "") for k in MANIFEST_FIELDS})
        self._f = open(self.path, "a", newline="", encoding="utf-8")
        self._w = csv.DictWriter(self._f, MANIFEST_FIELDS, lineterminator="\n")
        return keep

    def write(self, row: Mapping) -> None:
        """Append one row and push it to disk."""
        out = dict(row)
        if isinstance(out.get("outputs"), Mapping):
            out["outputs"] = OUTPUT_SEP.join(out["outputs"].values())
        if isinstance(out.get("seconds"), float):
            out["seconds"] = f"{out['seconds']:.2f}"
        self._w.writerow({k: out.get(k, "") for k in MANIFEST_FIELDS})
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


# ------------------------------------------------------------------------------------------------
# One task
# ------------------------------------------------------------------------------------------------

def make_task(inp: str, outs: Mapping[str, str], subtype: str | None) -> dict:
    """A task: ``input`` (as the user gave it, for the manifest and messages), ``path`` and
    ``outputs`` made absolute (so that they mean the same on any worker whatever its current
    folder), ``shown`` (the outputs as planned) and ``subtype``."""
    return {"input": inp, "path": os.path.abspath(inp),
            "outputs": {s: os.path.abspath(o) for s, o in outs.items()},
            "shown": dict(outs), "subtype": subtype}


def make_folders(d: str) -> list:
    """Create folder ``d`` and missing parents; return the folders created (deepest last)."""
    d = os.path.abspath(d)
    missing = []
    while not os.path.isdir(d):
        missing.append(d)
        up = os.path.dirname(d)
        if up == d:
            break
        d = up
    created = []
    for m in reversed(missing):
        try:
            os.mkdir(m)
        except FileExistsError:
            continue
        except OSError as e:
            remove_folders(created)
            raise MixinError(f"cannot create folder {m}: {e.strerror}") from None
        created.append(m)
    return created


def remove_folders(created: list) -> None:
    """Remove the folders :func:`make_folders` created, if they are still empty."""
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass


def separate_one(sep, task: Mapping, progress: bool = False) -> dict:
    """Do one task with Separator ``sep``: remove stale parts of its outputs, create the output
    folders, separate. Returns its row (status ``done`` or ``failed`` with the one-line error);
    raises only for bugs and KeyboardInterrupt."""
    from ..io import remove_stale_parts
    from .separate import separate_file

    t0 = time.perf_counter()
    row = {"input": task["input"], "outputs": task["shown"], "status": "done", "error": ""}
    created = []
    try:
        for o in task["outputs"].values():
            for part in remove_stale_parts(o):
                log.debug("removed stale part file %s", part)
        for d in sorted({os.path.dirname(o) for o in task["outputs"].values()}):
            created += make_folders(d)
        separate_file(sep, task["path"], task["outputs"], subtype=task["subtype"], progress=progress)
    except MixinError as e:
        remove_folders(created)
        row.update(status="failed", error=" ".join(str(e).split()))
    except BaseException:
        remove_folders(created)
        raise
    row["seconds"] = time.perf_counter() - t0
    return row


# ------------------------------------------------------------------------------------------------
# Runners
# ------------------------------------------------------------------------------------------------

def run_serial(sep, tasks: Sequence[Mapping], on_result: Callable[[dict], object],
               progress: bool = False) -> None:
    """Do the tasks one after the other in this process."""
    for task in tasks:
        on_result(separate_one(sep, task, progress=progress))


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def limit_threads(threads: int, tensorflow: bool = True) -> None:
    """Make this process use ``threads`` threads in the FFTs (scipy), NumPy's BLAS/OpenMP, ONNX
    Runtime (the backends made afterwards: networks at once and threads per session) and
    TensorFlow when it is installed. Call before TensorFlow runs anything (it fixes its pools at
    start)."""
    from .. import backends, nsgt

    for v in THREAD_VARS:
        os.environ[v] = str(threads)
    nsgt.FFT_WORKERS = threads
    backends.ORT_CPUS = threads

    if not (tensorflow and backends.installed("tensorflow")):
        return
    from ..model import import_tensorflow

    tf = import_tensorflow()
    with contextlib.suppress(RuntimeError):  # already initialised: keep what it has
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))


@contextlib.contextmanager
def _environ(values: Mapping[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_PROCESS_SEPARATOR = None


def _init_process(sep_kwargs: dict, threads: int) -> None:
    """Initializer of a ``--jobs`` worker process: its thread share, then the models, once."""
    global _PROCESS_SEPARATOR
    logging.getLogger("mixin").setLevel(logging.WARNING)
    limit_threads(threads, tensorflow=sep_kwargs.get("backend", "auto") != "onnx")
    from .separate import Separator

    _PROCESS_SEPARATOR = Separator(**sep_kwargs)


def _process_task(task: Mapping) -> dict:
    return separate_one(_PROCESS_SEPARATOR, task)


def run_jobs(jobs: int, sep_kwargs: Mapping, tasks: Sequence[Mapping],
             on_result: Callable[[dict], object], threads: int | None = None) -> None:
    """Do the tasks in ``jobs`` separator processes on this machine.

    Each process (started with ``spawn``: TensorFlow is not fork-safe) gets ``threads`` threads
    (default: this machine's cores divided by ``jobs``, at least one) and builds its
    :class:`~mixin.separation.separate.Separator` from ``sep_kwargs`` once. Rows come back here
    in the order the tasks finish. A process that dies (killed, out of memory) fails the tasks
    it had not finished, with a one-line error.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if threads is None:
        threads = max(1, cpu_count() // jobs)
    ctx = multiprocessing.get_context("spawn")
    env = {v: str(threads) for v in THREAD_VARS}
    with _environ(env), ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_process,
                                            initargs=(dict(sep_kwargs), threads)) as pool:
        futures = {pool.submit(_process_task, t): t for t in tasks}
        try:
            for fut in as_completed(futures):
                task = futures[fut]
                try:
                    row = fut.result()
                except BrokenProcessPool:
                    row = {"input": task["input"], "outputs": task["shown"], "status": "failed",
                           "seconds": 0.0,
                           "error": "the separator process died (killed or out of memory?)"}
                on_result(row)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    sweep_parts(tasks)  # a process that died left its part files


def run_dask(address, sep_kwargs: Mapping, tasks: Sequence[Mapping],
             on_result: Callable[[dict], object], retries: int = 2) -> None:
    """Do the tasks on a Dask distributed cluster (see :mod:`mixin.separation.cluster`).

    ``address`` is a scheduler address (``tcp://host:8786``) or a ``distributed.Client``.
    Raises :class:`MixinError` naming the ``[dask]`` extra when Dask is not installed.
    """
    try:
        from . import cluster
    except ImportError as e:
        if getattr(e, "name", "") and e.name.split(".")[0] in ("dask", "distributed"):
            raise MixinError("--scheduler needs Dask distributed: pip install \".[dask]\" "
                             "(or pip install \"mixin[dask]\")") from None
        raise
    try:
        cluster.run(address, sep_kwargs, tasks, on_result, retries=retries)
    finally:
        sweep_parts(tasks)


def sweep_parts(tasks: Sequence[Mapping]) -> list[str]:
    """After a batch: remove the part files of the tasks' outputs that no live writer holds (left
    by a worker that died while another finished its song). Returns the paths removed."""
    from ..io import remove_stale_parts

    removed = []
    for task in tasks:
        for o in task["outputs"].values():
            removed += remove_stale_parts(o)
    for part in removed:
        log.debug("removed stale part file %s", part)
    return removed
