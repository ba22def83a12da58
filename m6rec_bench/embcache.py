"""A content-addressed cache of arrays (KG and text embeddings) shared between plugins.

The key is a dict (dataset checksum, model, config, …) hashed to a file name; values are ``.npz``
archives loaded with ``allow_pickle=False``. Writes are atomic, so a killed run never leaves a
half-written cache entry, and two plugins asking for the same key reuse one computation.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from m6rec_bench.io import atomic_path, atomic_write_json
from m6rec_bench.paths import cache_dir


def key_hash(key: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able key."""
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def entry_path(kind: str, key: dict[str, Any]) -> Path:
    """Where the entry for ``key`` lives (it may not exist yet)."""
    return cache_dir("embeddings") / kind / f"{key_hash(key)}.npz"


def load_or_compute(
    kind: str, key: dict[str, Any], compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Return the cached arrays for ``key``, computing and storing them on a miss."""
    path = entry_path(kind, key)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # corrupt entry: recompute
    arrays = compute()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    atomic_write_json(path.with_suffix(".json"), key)
    return arrays
