"""Where m6rec-bench keeps its cache: ``$M6BENCH_HOME`` or the platform's user cache dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from m6rec_bench.errors import UsageError


def home_location() -> Path:
    """Where :func:`home` is, without creating it (``m6bench run --dry-run`` creates nothing)."""
    env = os.environ.get("M6BENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("m6rec-bench"))


def home() -> Path:
    """Root of every cache (datasets, embeddings). ``M6BENCH_HOME`` overrides the default."""
    root = home_location()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a file" if root.is_file() else exc.strerror
        raise UsageError(f"cache folder {root} cannot be used ({why}) — set M6BENCH_HOME to a writable folder") from None
    return root


def cache_dir(kind: str) -> Path:
    """A sub-directory of :func:`home` for one kind of cached thing (``datasets``, ``embeddings``…)."""
    path = home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
