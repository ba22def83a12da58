"""Atomic file writes: every result, cache entry and leaderboard goes through here.

A file is written to a temporary sibling and moved into place with :func:`os.replace`, so a reader
(or a process killed mid-write) never sees half a file. The sibling is named
``.<name>.<pid>.<random>.part``: readers never match it, and a process killed mid-write (``kill -9``)
leaves one behind that :func:`sweep_stale_parts` removes once its writer is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


PART_SUFFIX = ".part"

try:  # POSIX; elsewhere locks are no-ops and concurrent writers rely on atomic renames alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
#: A temporary file without a writer pid (older m6rec-bench) counts as stale after this long.
_UNOWNED_STALE_S = 3600.0
#: Temporary files this process is writing right now (a pid can recur, e.g. in containers).
_ACTIVE: set[Path] = set()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=PART_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    key = tmp_path.resolve()
    _ACTIVE.add(key)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        _ACTIVE.discard(key)
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` as a whole.

    Readers see the old folder or the complete new one (one rename after removing the old one, so
    a reader between the two sees none); on any exception the temporary folder is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=PART_SUFFIX, dir=target.parent))
    key = tmp_path.resolve()
    _ACTIVE.add(key)
    try:
        yield tmp_path
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp_path, target)
    finally:
        _ACTIVE.discard(key)
        if tmp_path.exists():
            shutil.rmtree(tmp_path, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created if missing) inside the block.

    For work several processes may start at once (the first fetch of a dataset, a leaderboard
    rewrite): the second waits for the first and then finds its result. The lock file is kept
    (removing it would let a third process lock a different file).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsynced before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _writer_alive(part: Path) -> bool:
    """Whether the process that is writing ``part`` (``.<name>.<pid>.<random>.part``) still runs."""
    fields = part.name[: -len(PART_SUFFIX)].rsplit(".", 2)
    if len(fields) == 3 and fields[1].isdigit():
        pid = int(fields[1])
        if pid == os.getpid():
            return part.resolve() in _ACTIVE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's live process
        return True
    try:
        return time.time() - part.stat().st_mtime < _UNOWNED_STALE_S
    except OSError:
        return True


def sweep_stale_parts(root: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Remove temporary ``.*.part`` files (and folders) under ``root`` left by writers that were killed mid-write.

    A file whose writer is still running (another ``m6bench`` process) is left alone, so this is
    safe to call while other processes write to the same directory. Returns the removed paths.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    removed = []
    for part in (base.rglob if recursive else base.glob)(f".*{PART_SUFFIX}"):
        if not (part.is_file() or part.is_dir()) or _writer_alive(part):
            continue
        try:
            if part.is_dir():  # a folder written whole and renamed into place (an artifact)
                shutil.rmtree(part)
            else:
                part.unlink()
        except FileNotFoundError:
            continue
        removed.append(part)
    return removed
