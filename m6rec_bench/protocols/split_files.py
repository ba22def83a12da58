"""Derived split folders: what the protocols that write their own RecBole atomic files share.

The cold-item and user-group protocols both read a dataset's ``.inter``, write seeded derived files
(with the side files hard-linked beside them) into a folder named for the split, and publish that
folder atomically with a marker JSON that says which dataset checksum and seed it was made from. A
folder is reused when its marker matches; two processes writing it at once never leave a half one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from m6rec_bench.datasets.atomic import header_names
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.io import atomic_path



#: Column names of a header line (:func:`m6rec_bench.datasets.atomic.header_names`, the one header rule).
columns = header_names


def read_inter(ds: PreparedDataset) -> tuple[str, list[str]]:
    """The ``.inter`` header line and its non-blank data lines, each ending with a newline."""
    with open(ds.atomic_file("inter"), encoding="utf-8", newline="") as fh:
        header = fh.readline()
        lines = [line if line.endswith("\n") else line + "\n" for line in fh if line.strip()]
    return header, lines


def write_rows(path: Path, header: str, rows: Iterable[str]) -> None:
    """Write an atomic file: ``header`` then ``rows`` (lines as read), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            out.write(header)
            out.writelines(rows)


def link_side_files(ds: PreparedDataset, folder: Path, name: str, suffixes: Iterable[str]) -> None:
    """Hard-link (or copy) the dataset's side files with these suffixes into ``folder`` as ``<name>.<suffix>``."""
    for suffix in suffixes:
        src = ds.atomic_file(suffix)
        if not src.is_file():
            continue
        dst = folder / f"{name}.{suffix}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def materialize(ds: PreparedDataset, seed: int, root: Path, name: str, marker: str,
                write: Callable[[Path], Any]) -> Path:
    """``root/name``, written by ``write(folder)`` unless its ``marker`` matches ``ds`` and ``seed``.

    ``write`` fills a temporary folder beside the final one (and writes the marker, with
    ``source_checksum`` and ``seed``); the folder then replaces any stale one in one rename.
    """
    folder = root / name

    def _ready() -> bool:
        try:
            meta = json.loads((folder / marker).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return meta.get("source_checksum") == ds.checksum and meta.get("seed") == seed

    if not _ready():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.split-", dir=root))
        try:
            write(tmp)
            if folder.exists():
                shutil.rmtree(folder)
            try:
                os.replace(tmp, folder)
            except OSError:  # a concurrent writer got there first
                if not _ready():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


__all__ = ["columns", "link_side_files", "materialize", "read_inter", "write_rows"]
