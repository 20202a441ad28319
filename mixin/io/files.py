"""The one atomic mechanism for every output file (audio, JSON, CSV, PNG, HDF5, models) and folder.

A file is written to a hidden part file beside it (:class:`Part`: ``0o666`` minus the umask, held
under an exclusive ``flock``), fsynced and renamed over the destination: that is the old file (or
absent) or the complete new one. On any error (KeyboardInterrupt included) the part is removed; a
killed writer's part is removed by :func:`remove_stale_parts` once no live writer holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import MixinError

PART_SUFFIX = ".part"


def one_line(text) -> str:
    """Collapse whitespace so that a library or OS message fits on one line."""
    return " ".join(str(text).split())


def lock_part(fd: int, path: str) -> bool:
    """Take an exclusive, non-blocking ``flock`` on the open part file ``fd``: True when held and
    ``path`` still names that file; True without a lock where there is no ``fcntl`` (Windows). The
    lock belongs to the open file, so it also excludes threads; on NFS it holds across machines
    only with server-side locks (NFSv4, or v3 with lockd; not ``local_lock``/``nolock`` mounts)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


class Part(contextlib.AbstractContextManager):
    """A hidden part file ``.NAME.XXXXXXXX.part`` (``+ .EXT`` with ``keep_ext``) that becomes ``dest``:
    :meth:`commit` (fsync, rename) or :meth:`discard`, as a context manager by how the block ends.
    Without ``lock`` only a fresh name is chosen, for writers that create the file themselves (HDF5
    locks its files). :class:`MixinError` naming ``dest`` if it cannot be created."""

    def __init__(self, dest: str | os.PathLike, keep_ext: bool = False, lock: bool = True):
        self.dest, self.fd = os.fspath(dest), None
        d, base = os.path.split(os.path.abspath(self.dest))
        ext = os.path.splitext(base)[1] if keep_ext else ""
        for _ in range(100):
            self.path = os.path.join(d, f".{base}.{secrets.token_hex(4)}{PART_SUFFIX}{ext}")
            if not lock:
                if os.path.lexists(self.path):
                    continue
                return
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as e:
                if isinstance(e, FileNotFoundError) and not os.path.isdir(d):
                    raise  # a missing folder stays FileNotFoundError for callers that expect it
                raise MixinError(f"{os.path.join(d, base)}: cannot create a file in {d} "
                                 f"({one_line(e.strerror or e)})") from None
            if lock_part(self.fd, self.path):
                return
            os.close(self.fd)  # removed by a sweeper between creation and lock: retry
        raise MixinError(f"{os.path.join(d, base)}: cannot create a temporary file in {d}")

    def _unlock(self):
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __exit__(self, exc_type, exc, tb):
        self.commit() if exc_type is None else self.discard()

    def commit(self) -> None:
        """fsync the part and rename it to ``dest`` (on an error it is discarded; the error propagates)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.path, self.dest)
        except BaseException:
            self.discard()
            raise
        self._unlock()

    def discard(self) -> None:
        """Delete the part (``dest`` untouched); safe to repeat."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._unlock()


def part_files(path: str | os.PathLike) -> list[str]:
    """The part files of ``path`` that exist now (``.NAME.XXXXXXXX.part`` beside it, ``+ EXT`` for
    :func:`atomic_path`; other files never match)."""
    d, base = os.path.split(os.path.abspath(os.fspath(path)))
    ext = re.escape(os.path.splitext(base)[1])
    pat = re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{8}}{re.escape(PART_SUFFIX)}({ext})?\Z")
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return sorted(os.path.join(d, n) for n in names if pat.match(n))


def remove_stale_parts(path: str | os.PathLike) -> list[str]:
    """Remove the part files of ``path`` that no live writer (of any process or machine sharing the
    folder) holds locked, i.e. left by writers that died; returns the paths removed."""
    removed = []
    for part in part_files(path):
        try:
            fd = os.open(part, os.O_RDONLY)
        except OSError:
            continue  # gone meanwhile, or not ours to open
        try:
            if lock_part(fd, part):
                with contextlib.suppress(OSError):
                    os.unlink(part)
                    removed.append(part)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """For writers that take a file name (Keras ``save``, h5py, ONNX): yields a fresh part name
    (unlocked, keeping ``path``'s extension) that the block must create (FileNotFoundError if it
    does not); it becomes ``path`` when the block ends without error."""
    with Part(path, keep_ext=True, lock=False) as part:
        yield Path(part.path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing (``mode`` "w" or "wb") to a locked part file that becomes
    ``path`` when the block ends without error."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', got {mode!r}")
    kw = {} if mode == "wb" else dict(encoding=encoding, newline=newline)
    with Part(path, keep_ext=True) as part, open(part.path, mode, **kw) as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """(No newline translation.)"""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1, sort_keys: bool = False,
               default: Any = None) -> None:
    """Write ``obj`` as JSON (``indent``, then a newline) atomically; ``default`` is
    :func:`json.dumps`' hook for objects it cannot serialise (TypeError without it)."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n")


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the contents of ``src`` to ``dst`` atomically (``dst`` is replaced if it exists)."""
    with open(src, "rb") as f, atomic_open(dst, "wb") as out:
        shutil.copyfileobj(f, out)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False, tmp_prefix: str = ".tmp-",
                  option: str = "--overwrite") -> Iterator[Path]:
    """Build a folder under a hidden name beside ``path`` (``0o777`` minus the umask), renamed to
    ``path`` when the block ends without error and removed on any error. An existing ``path`` is
    replaced only with ``replace``; otherwise :class:`MixinError` naming ``option`` is raised after
    the block (the folder may have appeared meanwhile)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"{tmp_prefix}{path.name}-", dir=path.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it private
        yield tmp
        if path.exists():
            if not replace:
                raise MixinError(f"{path} already exists; use {option} to replace it")
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
