"""Atomic writes of non-audio files (JSON, CSV, text, PNG, models, copies).

Every function here writes a hidden temporary file in the destination's folder, fsyncs it and
renames it over the destination with :func:`os.replace`. So the destination is either the old
file (or absent) or the complete new one, never a partial file; on any error (KeyboardInterrupt
included) the temporary file is removed and the error propagates. Files get the usual permissions
(``0o666`` minus the umask). Audio is written by :mod:`mixin.audio` (``AtomicWriter``,
``write_audio``), not here. :func:`atomic_folder` does the same for a whole folder of files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
import tempfile
from typing import IO, Any

__all__ = ["temp_path", "atomic_path", "atomic_open", "write_bytes", "write_text", "write_json",
           "copy_file"]


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path`` that keeps its extension (Keras picks the format by
    it): ``dir/.NAME.<random>.tmp.EXT``. Nothing is created."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """For writers that take a file name (Keras ``save``, h5py, ``shutil.copyfile``).

    Yields a temporary path (:func:`temp_path`) that the block must create. When the block ends
    without error, the file is fsynced and renamed to ``path``; on error it is removed. Raises
    :class:`FileNotFoundError` if the block did not create the file.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing (``mode`` "w" or "wb"), atomically: the file object
    writes a temporary file that replaces ``path`` when the block ends without error."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', got {mode!r}")
    kw = {} if mode == "wb" else dict(encoding=encoding, newline=newline)
    with atomic_path(path) as tmp:
        with open(tmp, mode.replace("w", "x"), **kw) as f:
            yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1, sort_keys: bool = False,
               default: Any = None) -> None:
    """Write ``obj`` as JSON (``indent``, then a newline) to ``path`` atomically. ``default`` is
    :func:`json.dumps`' hook for objects it cannot serialise (TypeError without it)."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n")


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the contents of ``src`` to ``dst`` atomically (``dst`` is replaced if it exists)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False, tmp_prefix: str = ".tmp-",
                  option: str = "--overwrite") -> Iterator[Path]:
    """Build a folder under a hidden temporary name beside ``path``; rename it to ``path`` when the
    block ends without error, remove it on any error (KeyboardInterrupt included).

    The block writes its files into the yielded folder (usual permissions: ``0o777`` minus the umask).
    An existing ``path`` is replaced only with ``replace``; otherwise :class:`MixinError` naming
    ``option`` is raised after the block (the folder may have appeared meanwhile).
    """
    from .errors import MixinError

    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"{tmp_prefix}{path.name}-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        yield tmp
        if path.exists():
            if not replace:
                raise MixinError(f"{path} already exists; use {option} to replace it")
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
