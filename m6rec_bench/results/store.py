"""Record storage: one JSON file per cell under a runs directory, written atomically.

Layout: ``<root>/<dataset>/<protocol>/<model>/seed<seed>-<cell_id>.json``. A record that exists for a
cell id is a finished cell: the suite never recomputes it (resume). An unreadable file is ignored
(the cell is computed again) and never deleted: a new record moves it aside to ``<name>.corrupt``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from m6rec_bench.errors import UsageError
from m6rec_bench.io import atomic_write_text, sweep_stale_parts
from m6rec_bench.results.record import Record
from m6rec_bench.untrusted import UntrustedInputError, loads_json, validation_summary


class RecordStore:
    """Read and write records under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, record: Record) -> Path:
        return self.root / record.dataset / record.protocol / _safe(record.label or record.model) / f"seed{record.seed}-{record.cell_id}.json"

    def put(self, record: Record) -> Path:
        """Write ``record`` atomically and return its path (an unreadable file there is moved aside)."""
        path = self.path_for(record)
        if path.is_file() and load_record(path) is None:
            try:
                os.replace(path, path.with_name(path.name + ".corrupt"))
            except FileNotFoundError:  # another process moved it first
                pass
        atomic_write_text(path, record.model_dump_json(indent=2) + "\n")
        return path

    def sweep(self) -> list[Path]:
        """Remove temporary files left by runs killed mid-write (never those of a live writer)."""
        return sweep_stale_parts(self.root)

    def find(self, cell_id: str) -> Record | None:
        """The record of a finished cell, or None."""
        for path in self.root.glob(f"*/*/*/seed*-{cell_id}.json"):
            record = load_record(path)
            if record is not None:
                return record
        return None

    def records(self, dataset: str | None = None, protocol: str | None = None) -> Iterator[Record]:
        """Every readable record, optionally for one dataset and protocol."""
        pattern = f"{dataset or '*'}/{protocol or '*'}/*/seed*.json"
        for path in sorted(self.root.glob(pattern)):
            record = load_record(path)
            if record is not None:
                yield record


def _safe(name: str) -> str:
    """A row label as a directory name (``"M6-Fusion w/o KG"`` → ``"M6-Fusion_w-o_KG"``)."""
    return "".join(c if c.isalnum() or c in "-_." else ("-" if c == "/" else "_") for c in name)


def read_record(path: str | Path) -> Record:
    """Read one record from a file the user may have handed us; UsageError saying why it is unusable.

    The JSON is read depth-safely (a record nested 100 000 levels deep is refused, not a
    ``RecursionError``) and schema errors come as one line (``seed: Input should be a valid integer``).
    """
    what = f"{path} is not a readable m6rec-bench record"
    try:
        data = loads_json(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"{what} ({exc.strerror})") from None
    except UntrustedInputError as exc:
        raise UsageError(f"{what}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what}: a record is a JSON object, this is a {type(data).__name__}")
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{what}: {validation_summary(exc)}") from None


def load_record(path: str | Path) -> Record | None:
    """Read one record; an unreadable or foreign file yields None (it is never deleted)."""
    try:
        return read_record(path)
    except UsageError:
        return None
