"""Jobs of ``mixin-serve``: an SQLite store, one worker process, and the queue between them.

Layout under the work folder::

    WORKDIR/jobs.sqlite            job metadata (stdlib sqlite3)
    WORKDIR/jobs/<id>/input/NAME   the upload (sanitised name)
    WORKDIR/jobs/<id>/out/...      the stems, written by mixin.separation.separate_file (atomic)
    WORKDIR/jobs/<id>/peaks.json   waveform peaks of the mixture and each stem (atomic)
    WORKDIR/jobs/<id>/spec_*.png   NSGT spectrograms, made on demand (atomic)

One worker process (``spawn``, so TensorFlow is never forked) separates one job at a time with
the same calls as ``xtract-mixin`` (:class:`mixin.separation.separate.Separator`,
:func:`~mixin.separation.separate.separate_file`); it keeps its separators (the loaded models)
between jobs. The :class:`JobManager` in the server process sends it the next job only when the
previous one has finished, relays its progress to listeners (the page's server-sent events) and
records every state change in SQLite. After a restart, finished jobs are listed as they were;
a job that was separating is marked failed (its partial outputs are removed), queued jobs are
queued again.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import queue
import re
import secrets
import shutil
import sqlite3
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable

from .. import params
from ..errors import MixinError

log = logging.getLogger("mixin")

#: Job states.
QUEUED, SEPARATING, DONE, FAILED = "queued", "separating", "done", "failed"

#: Output formats a job can choose: extension -> libsndfile subtype (as xtract-mixin's defaults:
#: float32 WAV, 24-bit FLAC).
FORMATS = {"wav": "FLOAT", "flac": "PCM_24"}

#: The message of a job a restart (or a lost worker) interrupted.
INTERRUPTED = "interrupted: the server stopped while this job was separating"

#: Separators kept by the worker (one per model set, instrumental, overlap and HPSS anchor).
MAX_SEPARATORS = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    model TEXT NOT NULL,
    instrumental INTEGER NOT NULL,
    overlap REAL NOT NULL,
    format TEXT NOT NULL,
    size INTEGER NOT NULL,
    finished REAL,
    seconds REAL,
    hpss_anchor REAL NOT NULL DEFAULT 0,
    input_sha256 TEXT NOT NULL DEFAULT ''
)
"""

_COLUMNS = ("id", "name", "created", "state", "error", "model", "instrumental", "overlap",
            "format", "size", "finished", "seconds", "hpss_anchor", "input_sha256")

#: Columns added after the first schema, with their definition: :meth:`JobStore.__init__` adds
#: those a work folder's older ``jobs.sqlite`` lacks (``ALTER TABLE ... ADD COLUMN``), so the jobs
#: it lists stay listed and playable.
#:
#: ``hpss_anchor`` (the anchor the job was separated with, :class:`mixin.separation.separate.
#: Separator`): a row from before the column gets 0, which is what those jobs were separated with
#: but for one case (checked against the git history). The anchor entered the code in commit
#: 0fef82a; before it every set separated with the published masks (anchor 0). The first set whose
#: model.json names a non-zero anchor is ``mixin-hpss`` (0.25), since 91c28e9. From 91c28e9 until
#: this column was added, the worker passed no anchor, so the separator used the set's value: a
#: ``mixin-hpss`` job (or one of a ``--model DIR`` whose model.json names an anchor) separated by
#: such a development snapshot (version 0.1.0 throughout, no release) used 0.25 and its row says 0.
#:
#: ``input_sha256`` (hex SHA-256 of the uploaded bytes, computed while the upload streams to disk):
#: the page offers jobs of the same song for an A/B comparison in its player. A row from before
#: the column gets '' (unknown), which never matches another job.
_ADDED_COLUMNS = {"hpss_anchor": "REAL NOT NULL DEFAULT 0",
                  "input_sha256": "TEXT NOT NULL DEFAULT ''"}

#: Values :meth:`JobStore.add` stores for a column the job dict lacks (else NULL).
_DEFAULTS = {"input_sha256": ""}


def new_job_id() -> str:
    """An unguessable job id (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def valid_job_id(job_id: str) -> bool:
    """Whether ``job_id`` has the form of :func:`new_job_id` (so it is safe as a folder name)."""
    return bool(_ID_RE.match(job_id or ""))


def safe_filename(name: str, default: str = "upload") -> str:
    """A file name that is safe in one folder, from a name a browser sent.

    Keeps the last path component (``/`` and ``\\`` both split), normalises Unicode (NFKC),
    replaces anything but letters, digits, ``. _ -`` and space by ``_``, strips leading and
    trailing dots and spaces (no ``..``, no hidden files), and limits the stem to 100 and the
    extension to 10 characters. An empty result becomes ``default``.
    """
    name = unicodedata.normalize("NFKC", str(name or "")).replace("\\", "/").split("/")[-1]
    name = re.sub(r"[^\w.\- ]", "_", name).strip(" .")
    stem, ext = os.path.splitext(name)
    stem = stem.strip(" .")[:100] or default
    ext = ext[:10] if re.fullmatch(r"\.\w+", ext[:10] or ".") else ""
    return stem + ext


def stems_of(instrumental: bool) -> tuple[str, ...]:
    """The sources a job writes."""
    return params.SOURCES[:2] if instrumental else params.SOURCES


# ------------------------------------------------------------------------------------------------
# Store
# ------------------------------------------------------------------------------------------------

class JobStore:
    """Job metadata in ``WORKDIR/jobs.sqlite`` and the job folders in ``WORKDIR/jobs/``
    (thread-safe: one connection behind a lock)."""

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.jobs_dir = os.path.join(self.workdir, "jobs")
        os.makedirs(self.jobs_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(os.path.join(self.workdir, "jobs.sqlite"),
                                   check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for col, decl in _ADDED_COLUMNS.items():
            if col not in have:
                log.info("%s: adding the column %s to the jobs table", self.workdir, col)
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {col} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # paths ----------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> str:
        if not valid_job_id(job_id):
            raise MixinError(f"bad job id {job_id!r}")
        return os.path.join(self.jobs_dir, job_id)

    def input_path(self, job: dict) -> str:
        return os.path.join(self.job_dir(job["id"]), "input", job["name"])

    def output_paths(self, job: dict) -> dict[str, str]:
        """Stem -> output file, named as xtract-mixin names them (``NAME_STEM.EXT``)."""
        base = os.path.splitext(job["name"])[0]
        out = os.path.join(self.job_dir(job["id"]), "out")
        return {s: os.path.join(out, f"{base}_{s}.{job['format']}")
                for s in stems_of(job["instrumental"])}

    def peaks_path(self, job: dict) -> str:
        return os.path.join(self.job_dir(job["id"]), "peaks.json")

    # rows -----------------------------------------------------------------------------------
    def add(self, job: dict) -> None:
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({','.join(_COLUMNS)}) VALUES "
                             f"({','.join('?' * len(_COLUMNS))})",
                             [job.get(c, _DEFAULTS.get(c)) for c in _COLUMNS])

    def update(self, job_id: str, **fields) -> None:
        bad = set(fields) - set(_COLUMNS[1:])
        if bad:
            raise ValueError(f"unknown job fields {sorted(bad)}")
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?",
                             [*fields.values(), job_id])

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE id=?",
                                   (job_id,)).fetchone()
        return self._row(row) if row else None

    def all(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs "
                                    "ORDER BY created").fetchall()
        return [self._row(r) for r in rows]

    def remove(self, job_id: str) -> None:
        """Delete a job's row and folder."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    @staticmethod
    def _row(row) -> dict:
        job = dict(zip(_COLUMNS, row))
        job["instrumental"] = bool(job["instrumental"])
        return job

    def recover(self) -> list[str]:
        """After a (re)start: a job left separating is marked failed and its partial outputs are
        removed; job folders without a row are removed. Returns the ids still queued, oldest
        first."""
        queued = []
        for job in self.all():
            if job["state"] == SEPARATING:
                shutil.rmtree(os.path.join(self.job_dir(job["id"]), "out"), ignore_errors=True)
                self.update(job["id"], state=FAILED, error=INTERRUPTED, finished=time.time())
            elif job["state"] == QUEUED:
                queued.append(job["id"])
        known = {j["id"] for j in self.all()}
        for d in os.listdir(self.jobs_dir):
            if d not in known:
                shutil.rmtree(os.path.join(self.jobs_dir, d), ignore_errors=True)
        return queued


# ------------------------------------------------------------------------------------------------
# Worker process
# ------------------------------------------------------------------------------------------------

def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def worker_main(tasks, results) -> None:
    """The worker process: separate the tasks from ``tasks`` one at a time until ``None``.

    A task is a dict with ``id``, ``input``, ``outputs`` (stem -> path), ``subtype``,
    ``model_dir``, ``instrumental``, ``overlap``, ``hpss_anchor`` (a number: the job's, already
    resolved), ``peaks``, ``name``. Messages put on
    ``results``: ``("progress", id, done, total)``, ``("done", id, seconds)``,
    ``("failed", id, message)``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..io import decoded, write_json
    from ..separation.separate import Separator, separate_file
    from .render import peaks

    separators: collections.OrderedDict = collections.OrderedDict()
    while True:
        task = tasks.get()
        if task is None:
            return
        jid = task["id"]
        t0 = time.perf_counter()
        try:
            key = (task["model_dir"], task["instrumental"], task["overlap"], task["hpss_anchor"])
            sep = separators.pop(key, None)
            if sep is None:
                sep = Separator(task["model_dir"], instrumental=task["instrumental"],
                                overlap=task["overlap"], hpss_anchor=task["hpss_anchor"])
            separators[key] = sep
            while len(separators) > MAX_SEPARATORS:
                separators.popitem(last=False)
            last = [0.0]

            def progress(done, total, jid=jid, last=last):
                now = time.perf_counter()
                if done in (0, total) or now - last[0] >= 0.2:
                    last[0] = now
                    results.put(("progress", jid, done, total))

            os.makedirs(os.path.dirname(next(iter(task["outputs"].values()))), exist_ok=True)
            separate_file(sep, task["input"], task["outputs"], subtype=task["subtype"],
                          progress=progress)
            with decoded(task["input"]) as src:
                pk = {"mixture": peaks(src)}
            for s, p in task["outputs"].items():
                pk[s] = peaks(p)
            write_json(task["peaks"], pk, indent=None)
            results.put(("done", jid, time.perf_counter() - t0))
        except MixinError as e:
            msg = _one_line(e).replace(os.path.dirname(task["input"]) + os.sep, "")
            results.put(("failed", jid, msg))
        except Exception as e:  # a bug: keep the traceback in the server's log
            results.put(("failed", jid, f"internal error: {_one_line(e)}",
                         traceback.format_exc()))


# ------------------------------------------------------------------------------------------------
# Manager (server side)
# ------------------------------------------------------------------------------------------------

class JobManager:
    """The queue of jobs, the worker process and the listeners of job events.

    ``listeners`` are callables taking an event dict (``{"type": "job", "job": {...}}`` or
    ``{"type": "deleted", "id": ...}``); they are called from the manager's thread and must not
    block (the server hands them to its event loop).
    """

    def __init__(self, store: JobStore, model_dirs: dict[str, str]):
        self.store = store
        self.model_dirs = dict(model_dirs)
        self.pending: collections.deque[str] = collections.deque()
        self.current: str | None = None
        self.progress: dict[str, float] = {}
        self.listeners: list[Callable[[dict], object]] = []
        self._lock = threading.RLock()
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._tasks = self._results = None
        self._stop = threading.Event()
        self._thread = None
        self.worker_pid: int | None = None

    # life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Recover the store, start the worker and the thread reading its messages."""
        self.pending.extend(self.store.recover())
        self._start_worker()
        self._stop.clear()
        self._thread = threading.Thread(target=self._read_results, name="mixin-jobs", daemon=True)
        self._thread.start()
        self._dispatch()

    def stop(self) -> None:
        """Stop the worker (a job it was separating stays 'separating' in the store, so the
        next start marks it interrupted) and the reader thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._stop_worker()

    def _start_worker(self) -> None:
        self._tasks = self._ctx.Queue()
        self._results = self._ctx.Queue()
        self._proc = self._ctx.Process(target=worker_main, args=(self._tasks, self._results),
                                       name="mixin-worker", daemon=True)
        self._proc.start()
        self.worker_pid = self._proc.pid

    def _stop_worker(self, kill: bool = False) -> None:
        p = self._proc
        if p is None:
            return
        if kill:
            p.kill()
        else:
            try:
                self._tasks.put(None)
            except (ValueError, OSError):
                pass
            p.join(timeout=3)
            if p.is_alive():
                p.terminate()
        p.join(timeout=5)
        for q in (self._tasks, self._results):
            q.close()
            q.cancel_join_thread()
        self._proc = None
        self.worker_pid = None

    # jobs ---------------------------------------------------------------------------------------
    def public(self, job: dict) -> dict:
        """A job as the page sees it (with live progress and its stems)."""
        j = dict(job)
        j["progress"] = (1.0 if job["state"] == DONE
                         else self.progress.get(job["id"], 0.0) if job["state"] == SEPARATING
                         else 0.0)
        j["stems"] = list(stems_of(job["instrumental"]))
        j["position"] = (list(self.pending).index(job["id"]) + 1
                         if job["state"] == QUEUED and job["id"] in self.pending else None)
        return j

    def submit(self, job: dict) -> dict:
        """Record a new job (its input already in place) and queue it."""
        job = dict(job, state=QUEUED, error=None, finished=None, seconds=None)
        self.store.add(job)
        with self._lock:
            self.pending.append(job["id"])
        self._emit(job["id"])
        self._dispatch()
        return self.store.get(job["id"])

    def delete(self, job_id: str) -> bool:
        """Remove a job and its files; a job being separated is stopped (the worker restarts)."""
        with self._lock:
            if self.store.get(job_id) is None:
                return False
            if job_id in self.pending:
                self.pending.remove(job_id)
            if self.current == job_id:
                self._stop_worker(kill=True)
                self.current = None
                self._start_worker()
            self.store.remove(job_id)
            self.progress.pop(job_id, None)
        self._notify({"type": "deleted", "id": job_id})
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        """Send the next queued job to the worker if it is idle."""
        with self._lock:
            while self.current is None and self.pending and self._proc is not None:
                jid = self.pending.popleft()
                job = self.store.get(jid)
                if job is None or job["state"] != QUEUED:
                    continue
                model_dir = self.model_dirs.get(job["model"])
                if model_dir is None:
                    self._finish(jid, FAILED, f"model set {job['model']!r} is not served "
                                              f"(served: {', '.join(self.model_dirs)})")
                    continue
                self.current = jid
                self.progress[jid] = 0.0
                self.store.update(jid, state=SEPARATING)
                self._tasks.put({
                    "id": jid, "name": job["name"], "input": self.store.input_path(job),
                    "outputs": self.store.output_paths(job), "subtype": FORMATS[job["format"]],
                    "model_dir": model_dir, "instrumental": job["instrumental"],
                    "overlap": job["overlap"], "hpss_anchor": job["hpss_anchor"],
                    "peaks": self.store.peaks_path(job)})
                self._emit(jid)
                for q in self.pending:  # queue positions changed
                    self._emit(q)

    def _finish(self, jid: str, state: str, error: str | None = None,
                seconds: float | None = None) -> None:
        if state == FAILED:
            shutil.rmtree(os.path.join(self.store.job_dir(jid), "out"), ignore_errors=True)
        self.store.update(jid, state=state, error=error, finished=time.time(), seconds=seconds)
        self.progress.pop(jid, None)
        self._emit(jid)

    def _read_results(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._results.get(timeout=0.25)
            except queue.Empty:
                with self._lock:
                    p = self._proc
                    if p is not None and not p.is_alive() and not self._stop.is_set():
                        log.error("the worker process stopped (exit code %s); restarting it",
                                  p.exitcode)
                        jid = self.current
                        self._stop_worker(kill=True)
                        self.current = None
                        if jid is not None:
                            self._finish(jid, FAILED, f"the worker process stopped (exit code "
                                                      f"{p.exitcode}; out of memory?)")
                        self._start_worker()
                self._dispatch()
                continue
            except (OSError, ValueError, EOFError):  # queue closed while the worker restarts
                time.sleep(0.05)
                continue
            kind, jid = msg[0], msg[1]
            with self._lock:
                if jid != self.current:  # a deleted job's late message
                    continue
                if kind == "progress":
                    done, total = msg[2], msg[3]
                    self.progress[jid] = done / total if total else 0.0
                    self._emit(jid)
                    continue
                self.current = None
                if kind == "done":
                    self._finish(jid, DONE, seconds=round(msg[2], 2))
                else:
                    if len(msg) > 3:
                        log.error("job %s: %s", jid, msg[3])
                    self._finish(jid, FAILED, msg[2])
            self._dispatch()

    # events -------------------------------------------------------------------------------------
    def _emit(self, jid: str) -> None:
        job = self.store.get(jid)
        if job is not None:
            self._notify({"type": "job", "job": self.public(job)})

    def _notify(self, event: dict) -> None:
        for f in list(self.listeners):
            try:
                f(event)
            except Exception:  # a closed listener must not stop the others
                log.debug("listener failed", exc_info=True)
