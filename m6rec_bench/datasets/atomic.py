"""RecBole atomic files: read their headers, check them, write them, checksum them.

An atomic file is tab-separated UTF-8 whose header names every column as ``name:type``
(``token``, ``token_seq``, ``float``, ``float_seq``), e.g. ``user_id:token	item_id:token``.
RecBole reads them with ``pandas.read_csv(engine="python")`` and default quoting, so a field that
starts with ``"`` would be taken as quoted: :func:`clean` keeps text fields safe.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from m6rec_bench.errors import DataError
from m6rec_bench.io import atomic_path, atomic_write_json
from m6rec_bench.paths import cache_dir

SUFFIXES = ("inter", "item", "user", "kg", "link", "net")
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
REQUIRED: dict[str, tuple[str, ...]] = {
    "inter": ("user_id", "item_id"),
    "item": ("item_id",),
    "user": ("user_id",),
    "kg": ("head_id", "relation_id", "tail_id"),
    "link": ("item_id", "entity_id"),
}
_WS = re.compile(r"[\t\r\n]+")


def clean(value: object) -> str:
    """A text value made safe for an atomic file: no tabs/newlines, no double quotes, trimmed."""
    if value is None:
        return ""
    return _WS.sub(" ", str(value)).replace('"', "'").strip()


def atomic_files(folder: Path, name: str) -> list[Path]:
    """The atomic files ``<folder>/<name>.<suffix>`` that exist, sorted by file name."""
    return sorted((folder / f"{name}.{s}" for s in SUFFIXES if (folder / f"{name}.{s}").is_file()), key=lambda p: p.name)


def split_column(raw: str) -> tuple[str, str]:
    """One header column ``name:type`` as ``(name, type)``: the name is what precedes the first ``:``
    (``"user_id:token"`` → ``("user_id", "token")``; no ``:`` → ``(raw, "")``). The one rule of every
    header read in m6rec-bench; RecBole itself needs exactly one ``:``, which :func:`read_header` checks."""
    name, _, ftype = raw.partition(":")
    return name, ftype


def header_names(line: str) -> list[str]:
    """Column names of an atomic file's header line, types stripped (``user_id:token\titem_id:token``
    → ``["user_id", "item_id"]``); for files already checked by :func:`read_header` / :func:`validate_folder`."""
    return [split_column(raw)[0] for raw in line.rstrip("\r\n").split("\t")]


def read_header(path: Path) -> list[tuple[str, str]]:
    """The ``(name, type)`` columns of an atomic file; DataError when the header is not ``name:type``."""
    try:
        with open(path, encoding="utf-8") as fh:
            line = fh.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text — RecBole atomic files must be UTF-8") from None
    if line.startswith("\ufeff"):
        raise DataError(f"{path} starts with a UTF-8 byte-order mark (BOM) — RecBole would read its first column as "
                        f"'\\ufeff{line[1:].partition(':')[0]}'; save the file as UTF-8 without BOM")
    if not line:
        raise DataError(f"{path}: empty file — an atomic file starts with a header like 'user_id:token\\titem_id:token'")
    columns = []
    for raw in line.split("\t"):
        col, ftype = split_column(raw)
        if not col or ftype not in FIELD_TYPES:  # RecBole splits on ':' exactly once
            raise DataError(
                f"{path}: header column {raw!r} is not 'name:type' with type one of {', '.join(FIELD_TYPES)} "
                f"(header: {line!r}; columns are tab-separated)"
            )
        if any(col == seen for seen, _ in columns):
            raise DataError(f"{path}: column '{col}' appears twice in the header ({line!r}) — RecBole would keep "
                            "only one of them; rename or drop the other")
        columns.append((col, ftype))
    return columns


def validate_folder(folder: Path, name: str, *, content: bool = False) -> dict[str, list[tuple[str, str]]]:
    """Check the atomic files of ``name`` in ``folder``; return each file's columns by suffix.

    ``<name>.inter`` must exist, have ``user_id`` and ``item_id`` columns and at least one data row;
    every other atomic file present must have a parseable header with its id columns. With
    ``content``, every row of ``.inter`` is checked too (:func:`check_interactions`) — done once
    where data enters: a local folder, or a freshly converted dataset before it is cached.
    """
    inter = folder / f"{name}.inter"
    if not inter.is_file():
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        listing = ", ".join(found[:12]) + (" …" if len(found) > 12 else "") if found else "nothing"
        raise DataError(
            f"{inter} not found (the folder holds: {listing}) — a dataset folder <name>/ needs <name>.inter"
        )
    out: dict[str, list[tuple[str, str]]] = {}
    for path in atomic_files(folder, name):
        suffix = path.suffix.lstrip(".")
        columns = read_header(path)
        names = [c for c, _ in columns]
        missing = [c for c in REQUIRED.get(suffix, ()) if c not in names]
        if missing:
            found_cols = ", ".join(f"{c}:{t}" for c, t in columns)
            raise DataError(
                f"{path}: missing column {', '.join(missing)} (found: {found_cols}) — "
                f"a .{suffix} file needs {', '.join(f'{c}:token' for c in REQUIRED[suffix])}"
            )
        out[suffix] = columns
    path = inter
    try:
        with open(inter, encoding="utf-8") as fh:
            fh.readline()
            if not any(line.strip() for line in fh):
                raise DataError(f"{inter}: no interactions (only a header) — add at least one row")
        if content:
            for path in atomic_files(folder, name):
                if not _content_checked(path):
                    if path == inter:
                        check_interactions(inter, out["inter"])
                    else:
                        check_fields(path)
                    _remember_checked(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text — RecBole atomic files must be UTF-8; save it as UTF-8") from None
    return out


#: Bump when the row checks change, so files checked by older rules are checked again.
CHECKS_VERSION = 2


def _checked_memo(inter: Path) -> tuple[Path, dict[str, object]]:
    """Where the "rows checked" memo of ``inter`` lives, and the key it must match (path, size, mtime)."""
    path = inter.resolve()
    st = path.stat()
    key = {"file": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "checks": CHECKS_VERSION}
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    return cache_dir("datasets") / ".checksums" / f"rows-{digest}.json", key


def _content_checked(inter: Path) -> bool:
    """True when every row of this very ``.inter`` (same size and mtime) was checked before.

    :func:`check_interactions` reads every row in Python (~45 s at 20M rows); a local folder is
    resolved on every run, so a passed check is remembered like the checksum.
    """
    try:
        memo, key = _checked_memo(inter)
        return json.loads(memo.read_text(encoding="utf-8")) == key
    except (OSError, ValueError):
        return False


def _remember_checked(inter: Path) -> None:
    try:
        memo, key = _checked_memo(inter)
        atomic_write_json(memo, key)
    except OSError:
        pass  # a read-only cache only costs a re-check next time


#: Fewest distinct users and items a dataset needs: a split and a ranking need something to rank.
MIN_USERS = MIN_ITEMS = 2


def check_interactions(inter: Path, columns: list[tuple[str, str]]) -> None:
    """Check every row of an ``.inter`` file before RecBole reads it (DataError naming the line).

    Each row has one field per header column, non-empty ``user_id`` and ``item_id``, and a finite
    number in every ``float`` column (RecBole would silently fill a NaN or empty rating with the
    column mean, and crash on text); the file holds at least 2 users and 2 items.
    """
    names = [c for c, _ in columns]
    limit = csv.field_size_limit()
    uid, iid = names.index("user_id"), names.index("item_id")
    floats = [(i, c) for i, (c, t) in enumerate(columns) if t == "float"]
    users: set[str] = set()
    items: set[str] = set()
    with open(inter, encoding="utf-8") as fh:
        fh.readline()
        for lineno, line in enumerate(fh, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(names):
                raise DataError(f"{inter} line {lineno}: {len(fields)} tab-separated fields, the header has {len(names)} — fix that row")
            for i, col in ((uid, "user_id"), (iid, "item_id")):
                if not fields[i].strip():
                    raise DataError(f"{inter} line {lineno}: empty {col} — every interaction needs a user and an item")
            for value, col in zip(fields, names):
                _check_field(inter, lineno, col, value, limit)
            for i, col in floats:
                try:
                    ok = math.isfinite(float(fields[i]))
                except ValueError:
                    ok = False
                if not ok:
                    raise DataError(
                        f"{inter} line {lineno}: {col} is {fields[i]!r}, not a number — a '{col}:float' column "
                        "needs a finite number in every row (fix or drop those rows)"
                    )
            users.add(fields[uid])
            items.add(fields[iid])
    if len(users) < MIN_USERS or len(items) < MIN_ITEMS:
        raise DataError(
            f"{inter}: {len(users)} user(s) and {len(items)} item(s) — a benchmark needs at least "
            f"{MIN_USERS} users and {MIN_ITEMS} items to split and rank"
        )


def _check_field(path: Path, lineno: int, col: str, value: str, limit: int) -> None:
    """One field as RecBole's reader (pandas, default quoting) would see it: not quoted, not too long."""
    if value.startswith('"'):
        raise DataError(
            f"{path} line {lineno}: {col} is {value[:40]!r}, which starts with a double quote — RecBole's reader "
            "would strip the quotes or swallow the following lines; remove the quotes"
        )
    if len(value) > limit:
        raise DataError(
            f"{path} line {lineno}: {col} is {len(value):,} characters long, over the {limit:,} RecBole's reader "
            "(pandas' csv engine) accepts in one field — shorten or drop it"
        )


def check_fields(path: Path) -> None:
    """Every field of a side file (``.item``, ``.user``, …): not quoted, not over the reader's limit."""
    columns = [c for c, _ in read_header(path)]
    limit = csv.field_size_limit()
    with open(path, encoding="utf-8") as fh:
        fh.readline()
        for lineno, line in enumerate(fh, 2):
            if '"' not in line and len(line) <= limit:
                continue  # the common case, checked without splitting
            for value, col in zip(line.rstrip("\r\n").split("\t"), columns):
                _check_field(path, lineno, col, value, limit)


def item_text_columns(columns: dict[str, list[tuple[str, str]]]) -> tuple[str, ...]:
    """The ``.item`` text columns (``token``/``token_seq``) other than ``item_id``."""
    return tuple(c for c, t in columns.get("item", []) if c != "item_id" and t in ("token", "token_seq"))


def has_kg(folder: Path, name: str) -> bool:
    """True when both ``<name>.kg`` and ``<name>.link`` exist."""
    return (folder / f"{name}.kg").is_file() and (folder / f"{name}.link").is_file()


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write an atomic file (header + tab-separated rows) atomically; return the row count."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\t".join(header) + "\n")
            for row in rows:
                fh.write("\t".join("" if v is None else str(v) for v in row) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
    return n


def _stat_key(files: list[Path]) -> dict[str, list[int]]:
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def checksum_of(folder: str | os.PathLike[str], name: str) -> str:
    """``sha256:<hex>`` over the atomic files of ``name`` in ``folder`` (sorted file names + bytes).

    The result is cached in ``cache_dir("datasets")/.checksums/`` keyed by the folder and each
    file's size and mtime, so a large dataset is hashed once.
    """
    folder = Path(folder).resolve()
    files = atomic_files(folder, name)
    if not files:
        raise DataError(f"no atomic files {name}.* in {folder} — nothing to checksum")
    key = _stat_key(files)
    memo = cache_dir("datasets") / ".checksums" / (hashlib.sha256(f"{folder}\0{name}".encode()).hexdigest()[:24] + ".json")
    try:
        cached = json.loads(memo.read_text(encoding="utf-8"))
        if cached.get("folder") == str(folder) and cached.get("files") == key:
            return str(cached["checksum"])
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode("utf-8") + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    checksum = f"sha256:{h.hexdigest()}"
    try:
        atomic_write_json(memo, {"folder": str(folder), "name": name, "files": key, "checksum": checksum})
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return checksum
