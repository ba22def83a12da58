"""Where m6rec-bench keeps its cache: ``$M6BENCH_HOME`` or the platform's user cache dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path:
    """Root of every cache (datasets, embeddings). ``M6BENCH_HOME`` overrides the default."""
    env = os.environ.get("M6BENCH_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("m6rec-bench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(kind: str) -> Path:
    """A sub-directory of :func:`home` for one kind of cached thing (``datasets``, ``embeddings``…)."""
    path = home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
