"""What a record says about the code and machine that produced it."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import threading
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions change results; they enter every record (and the cell hash).
TRACKED = ("m6rec-bench", "recbole", "torch", "numpy", "scipy", "pandas")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of python and the tracked distributions."""
    out = {"python": platform.python_version()}
    out.update({dist: _version(dist) for dist in TRACKED})
    return out


def package_folder(module: str) -> Path | None:
    """Where the top-level package of ``module`` lives: its folder (``m6rec_plugins.kg`` →
    ``…/m6rec_plugins``), the file of a single-module one, None when it has no file (built in)."""
    import importlib

    top = importlib.import_module(module.partition(".")[0])
    paths = list(getattr(top, "__path__", None) or [])  # a package (a namespace one has no __file__)
    if paths:
        return Path(paths[0]).resolve()
    file = getattr(top, "__file__", None)
    return Path(file).resolve() if file else None


def code_identity(*folders: Path | None) -> str:
    """Which code ran, finer than a version number (0.1.0 spans many commits): the cell id hashes it.

    For package folders tracked in a git checkout, ``git:<commit>``, plus ``+dirty.<hash>`` (a hash
    of the diff against that commit and of the untracked files) when those folders have changes;
    for others (a wheel in site-packages) ``src:<hash>`` of their files. The first folder (the core)
    is named bare, others by their package (``… m6rec_plugins=src:…``) unless the same checkout
    covers them. Computed once per process and set of folders (a few ``git`` calls, no more per cell).
    """
    return _code_identity(tuple(dict.fromkeys(str(Path(f).resolve()) for f in folders if f is not None)))


@lru_cache(maxsize=None)
def _code_identity(folders: tuple[str, ...]) -> str:
    checkouts: dict[tuple[str, str], list[str]] = {}
    parts: list[str] = []
    for folder in folders:
        found = _git_checkout(folder)
        if found is None:
            parts.append(_named(folder, folders, f"src:{_source_hash(Path(folder))[:16]}"))
        elif found not in checkouts:
            checkouts[found] = [folder]
            parts.append(f"<git {len(checkouts) - 1}>")
        else:
            checkouts[found].append(folder)
    for i, ((top, commit), members) in enumerate(checkouts.items()):
        ident = f"git:{commit[:12]}"
        dirty = _git_dirty_hash(top, [os.path.relpath(m, top) for m in members])
        if dirty:
            ident += f"+dirty.{dirty[:12]}"
        parts[parts.index(f"<git {i}>")] = _named(members[0], folders, ident)
    return " ".join(parts) or "unknown"


def _named(folder: str, folders: tuple[str, ...], ident: str) -> str:
    return ident if folder == folders[0] else f"{Path(folder).name}={ident}"


def _git(cwd: str, *args: str) -> bytes | None:
    try:
        done = subprocess.run(["git", "-C", cwd, *args], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_checkout(folder: str) -> tuple[str, str] | None:
    """(top folder, HEAD commit) of the git checkout that tracks ``folder``; None if none does
    (not a checkout, no git, or an untracked folder inside one: a virtualenv under a repository)."""
    out = _git(folder if os.path.isdir(folder) else os.path.dirname(folder), "rev-parse", "--show-toplevel", "HEAD")
    if out is None:
        return None
    lines = out.decode(errors="replace").split()
    if len(lines) != 2:
        return None
    top, commit = lines
    tracked = _git(top, "ls-files", "-z", "--", os.path.relpath(folder, top))
    return (top, commit) if tracked else None


def _git_dirty_hash(top: str, paths: list[str]) -> str | None:
    """A hash of the uncommitted changes under ``paths`` (diff against HEAD + untracked files), or None."""
    status = _git(top, "status", "--porcelain", "-z", "--untracked-files=all", "--", *paths)
    if not status:
        return None
    h = hashlib.sha256(_git(top, "diff", "HEAD", "--binary", "--", *paths) or b"")
    for entry in sorted(status.split(b"\0")):
        if entry.startswith(b"?? "):
            name = entry[3:].decode(errors="replace")
            h.update(name.encode())
            try:
                h.update(Path(top, name).read_bytes())
            except OSError:
                pass
    return h.hexdigest()


def _source_hash(folder: Path) -> str:
    """A hash of a package's files (names and bytes), compiled caches left out; of the file itself
    for a single-module package."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")) if folder.is_dir() else [folder]:
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            h.update((path.relative_to(folder).as_posix() if path != folder else path.name).encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    """CPU, core count, torch threads and (when present) the GPU."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def command_line() -> str:
    """The command that started this process, as a reader of its records would retype it.

    Portable (:func:`m6rec_bench.results.portable.portable_command`): ``--out``/``--runs-dir``
    and the like are dropped, paths under the current folder are relative, others ``<dir>/<name>``.
    """
    from m6rec_bench.results.portable import portable_command

    return portable_command(sys.argv)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Samples the process's resident memory in a thread; ``peak_mb`` is the maximum seen.

    (``ru_maxrss`` is the peak of the whole process, so it cannot attribute memory to one cell of a
    suite; sampling can.) On CUDA the peak allocated GPU memory is reported separately.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak_mb = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())
