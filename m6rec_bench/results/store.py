"""Record storage: one JSON file per cell under a runs directory, written atomically.

Layout: ``<root>/<dataset>/<protocol>/<model>/seed<seed>-<cell_id>.json``. A record that exists for a
cell id is a finished cell: the suite never recomputes it (resume). An unreadable file is ignored
(the cell is computed again) and never deleted: a new record moves it aside to ``<name>.corrupt``.
A file that is not a valid record — including one whose names would lead outside the runs folder —
is skipped; :meth:`RecordStore.records` tells an ``on_skip`` callback which file and why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import ValidationError

from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.io import atomic_write_text, sweep_stale_parts
from m6rec_bench.names import check_slug, contained, label_slug
from m6rec_bench.results.record import Record
from m6rec_bench.untrusted import UntrustedInputError, loads_json, validation_summary

#: Called with a skipped file and the reason it was skipped (one line).
OnSkip = Callable[[Path, str], None]


class RecordError(DataError):
    """A file that is not a usable record; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str, detail: str | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        #: ``reason`` says what is wrong in a listing ("not a valid record — seed: …"); ``detail`` alone
        #: follows "<file> is not a readable m6rec-bench record:" in a command's error.
        self.path, self.reason, self.detail = Path(path), reason, detail or reason


class RecordStore:
    """Read and write records under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, record: Record) -> Path:
        """Where ``record`` lives; its names were checked when it was parsed, and the path is checked again."""
        path = self.root / record.dataset / record.protocol / label_slug(record.label or record.model) / f"seed{record.seed}-{record.cell_id}.json"
        return contained(self.root, path, what=f"record {record.cell_id}", error=DataError)

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
        for path in self.root.glob(f"*/*/*/seed*-{check_slug(cell_id, 'cell id')}.json"):
            record = load_record(path)
            if record is not None:
                return record
        return None

    def records(self, dataset: str | None = None, protocol: str | None = None, *,
                on_skip: OnSkip | None = None) -> Iterator[Record]:
        """Every readable record, optionally for one dataset and protocol.

        A file that is not a usable record is skipped; ``on_skip(path, reason)`` hears of each one.
        """
        for what, name in (("--dataset", dataset), ("--protocol", protocol)):
            if name is not None:
                check_slug(name, what)
        pattern = f"{dataset or '*'}/{protocol or '*'}/*/seed*.json"
        for path in sorted(self.root.glob(pattern)):
            try:
                yield parse_record(path)
            except RecordError as exc:
                if on_skip is not None:
                    on_skip(path, str(exc))


def parse_record(path: str | Path) -> Record:
    """Read one record a user may have handed us; :class:`RecordError` (one line: the file and why)
    when it is not a usable record.

    The JSON is read depth-safely (a record nested 100 000 levels deep is refused, not a
    ``RecursionError``), schema errors come as one line (``seed: Input should be a valid integer``),
    and names that would become path components are checked by :class:`Record` itself.
    """
    try:
        data = loads_json(Path(path).read_bytes())
    except OSError as exc:
        raise RecordError(path, f"cannot be read ({exc.strerror or exc})") from None
    except UntrustedInputError as exc:
        raise RecordError(path, str(exc)) from None
    if not isinstance(data, dict):
        raise RecordError(path, f"a record is a JSON object, this is a {type(data).__name__}")
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        summary = validation_summary(exc)
        raise RecordError(path, f"not a valid record — {summary}", summary) from None


def read_record(path: str | Path) -> Record:
    """:func:`parse_record` for a command given one file: UsageError saying why it is unusable."""
    try:
        return parse_record(path)
    except RecordError as exc:
        raise UsageError(f"{path} is not a readable m6rec-bench record: {exc.detail}") from None


def load_record(path: str | Path) -> Record | None:
    """Read one record; an unreadable or foreign file yields None (it is never deleted)."""
    try:
        return parse_record(path)
    except RecordError:
        return None
