"""A board folder is the union of what it holds and what a run adds; rows leave it only by ``prune``.

A board folder, ``<out>/<dataset>/<protocol>[-tuned]/``, holds ``leaderboard.{md,csv,json}`` and
the records of its rows (``records/<cell_id>.json``, without their per-user arrays). Writing a
board into a folder that already holds one (``m6bench run``, ``m6bench leaderboard build``) never
drops a row:

* The folder's records are read back and merged with the new ones. A record of the same cell id
  is replaced by the new one (the same configuration and seed, run again).
* A row (same dataset, protocol, variant and label) that the new records bring in *another
  configuration* — other settings, overrides, epochs, device or code version,
  i.e. everything the cell id hashes except the seed — is replaced as a whole by the new
  configuration: one row never mixes seeds of two configurations, and the newer run is what the
  user asked for. The replaced records' files are removed, and the board's header names the row,
  its old seeds and cells and when they were replaced (kept while the row is on the board).
  A row of the same configuration gains the new seeds beside its old ones.
* Only finished (``ok``) records replace or supersede finished ones: a failed or skipped record
  joins the board only where it takes no finished record's place (a new row, a new seed), so a
  failed rerun never costs a published result (the run itself reports the failure and exits 1).
* Rows the new records do not mention stay as they are, with their record files; a new row is
  added. A row leaves the board only by ``m6bench leaderboard prune`` (:func:`prune`).
* Records on another dataset checksum than the board's are refused: rows computed on different
  data are not ranked in one table.
* A record is published as ``records/<cell_id>.json`` without its per-user arrays, which go beside
  it as ``records/<cell_id>.per_user.npz`` (users as strings, each metric as float64, read back
  with ``allow_pickle=False``; an unreadable or malformed file is ignored, never trusted). Kept in
  the JSON they would quadruple a board's records (≈30 kB of per-user JSON per ml-100k record
  against ≈8 kB for the record; the compressed npz is ≈8 kB and round-trips the values exactly),
  which is why they were stripped. With them, the board's seed-level tests (from the records' test
  means) and per-user tests are recomputed from the published records alone: ``m6bench leaderboard
  build --runs-dir <board>/records`` reproduces every published p-value and interval.
* For a board published before the per-user files, a row's secondary per-user test is carried
  from its ``leaderboard.json`` while the row and the reference are the very same cells with the
  same results (``stats.Published``); the seed-level tests and Holm's correction are recomputed.

Read, merge and write of one folder happen under an exclusive ``fcntl.flock`` on ``<dir>/.lock``,
so two suites writing one board at once end with both suites' rows; every file is written
atomically (:mod:`m6rec_bench.io`), so a reader never sees half a file. A folder that holds no
board is written exactly as before: the same records give the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from m6rec_bench.errors import DataError, M6BenchError, UsageError
from m6rec_bench.io import atomic_write_bytes, atomic_write_text, file_lock, sweep_stale_parts
from m6rec_bench.leaderboard.aggregate import Leaderboard, aggregate, board_slug, variant_of
from m6rec_bench.leaderboard.stats import Published, UserTest
from m6rec_bench.leaderboard.writers import WRITERS, board_dir
from m6rec_bench.results.portable import portable_record
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import load_record

#: Config keys that do not change a cell's identity (engine.cell._VOLATILE) plus the seed, and the
#: post-training method older records carried in config (now ``Record.run``; constant within a row):
#: what is left is one row's configuration.
_NOT_CONFIGURATION = {"seed", "data_path", "checkpoint_dir", "show_progress", "benchmark_filename",
                      "m6_compress", "m6_rerank"}
#: Versions recorded for the reader but not hashed into a cell id (engine.cell.cell_id).
_ENVIRONMENT_ONLY = {"python", "numpy", "scipy", "pandas"}
#: Beside ``records/<cell_id>.json``: that record's per-user test metrics.
PER_USER_SUFFIX = ".per_user.npz"


def per_user_bytes(per_user: dict[str, list[Any]]) -> bytes:
    """A record's per-user metrics as a compressed npz: ``users`` (str) and one float64 array per metric."""
    users = np.array([str(u) for u in per_user["users"]], dtype=str)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in per_user.items() if k != "users"}
    buf = io.BytesIO()
    np.savez_compressed(buf, users=users, **arrays)
    return buf.getvalue()


def read_per_user(path: Path) -> dict[str, list[Any]] | None:
    """The per-user metrics in ``path`` (:func:`per_user_bytes`), or None when absent or malformed.

    Never unpickles (``allow_pickle=False``): only a string ``users`` array and float arrays of the
    same length are accepted.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            users = npz["users"]
            if users.ndim != 1 or users.dtype.kind != "U":
                return None
            out: dict[str, list[Any]] = {"users": users.tolist()}
            for key in npz.files:
                if key == "users":
                    continue
                values = npz[key]
                if values.shape != users.shape or values.dtype.kind != "f":
                    return None
                out[key] = values.tolist()
            return out
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def load_published(path: Path) -> Record | None:
    """A record of a board's ``records/`` folder, with its per-user metrics when their file is beside it."""
    rec = load_record(path)
    if rec is not None and not rec.per_user:
        pu = read_per_user(path.with_name(path.stem + PER_USER_SUFFIX))
        if pu is not None:
            rec.per_user = pu
    return rec


def published_records(folder: Path) -> list[Record]:
    """Every readable record of a board's ``records/`` folder (``<cell_id>.json``, with per-user metrics)."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        rec = load_published(path)
        if rec is not None and path.stem == rec.cell_id:
            out.append(rec)
    return out


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``directory/.lock`` for a read-merge-write of the board there."""
    with file_lock(Path(directory) / ".lock"):
        yield


def row_label(rec: Record) -> str:
    return rec.label or rec.model


def configuration(rec: Record) -> str:
    """A hash of what a cell id hashes except the seed: records of one row and one configuration share it."""
    payload = {
        "model": rec.model,
        "protocol": rec.protocol,
        "dataset_checksum": rec.dataset_checksum,
        "device": rec.spec.get("device"),
        "config": {k: v for k, v in rec.config.items() if k not in _NOT_CONFIGURATION},
        "versions": {k: v for k, v in rec.versions.items() if k not in _ENVIRONMENT_ONLY},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Held:
    """What a board folder holds: its readable records of this board and what its JSON published."""

    records: list[Record] = field(default_factory=list)
    published: Published | None = None
    superseded: list[dict[str, Any]] = field(default_factory=list)


def read_board(directory: Path, dataset: str, protocol: str, variant: str) -> Held:
    """The records of the board in ``directory``, and what its ``leaderboard.json`` published.

    The JSON is the authority on which rows the board has: a record file it does not list (left by
    a writer killed between writing records and the board, or between the board and removing
    replaced records) is ignored, as is an unreadable one or one of another board; none is deleted.
    Without a readable JSON, every readable record of this board in ``records/`` counts.
    """
    held = Held()
    try:
        data = json.loads((directory / "leaderboard.json").read_text())
    except (OSError, ValueError):
        data = None
    listed: set[str] | None = None
    if isinstance(data, dict):
        held.published = _published(data)
        notes = data.get("superseded")
        held.superseded = [n for n in map(_note, notes) if n] if isinstance(notes, list) else []
        listed = _listed(data)
    for path in sorted((directory / "records").glob("*.json")):
        if listed is not None and path.stem not in listed:
            continue
        rec = load_published(path)
        if rec is not None and path.stem == rec.cell_id and (rec.dataset, rec.protocol, variant_of(rec)) == (dataset, protocol, variant):
            held.records.append(rec)
    return held


def _listed(data: dict[str, Any]) -> set[str] | None:
    """The cell ids a ``leaderboard.json`` lists (rows[].reproduce.cell_ids), or None if it lists none readably."""
    try:
        return {str(cid) for row in data["rows"] for cid in row["reproduce"]["cell_ids"]}
    except (KeyError, TypeError):
        return None


def _note(raw: Any) -> dict[str, Any] | None:
    """One replacement note of a ``leaderboard.json`` in its written shape, or None if it is not one."""
    if not isinstance(raw, dict):
        return None
    label, seeds, cells, when = raw.get("label"), raw.get("seeds"), raw.get("cell_ids"), raw.get("replaced_at")
    if not (isinstance(label, str) and isinstance(seeds, list) and all(isinstance(x, int) for x in seeds)
            and isinstance(cells, list) and all(isinstance(x, str) for x in cells) and isinstance(when, str)):
        return None
    return {"label": label, "seeds": seeds, "cell_ids": cells, "replaced_at": when}


def _published(data: dict[str, Any]) -> Published | None:
    """The per-user tests of a ``leaderboard.json``, keyed by the cells each was computed on.

    A board of the seed-level method publishes them under ``significance.users``; an older board's
    ``significance`` *was* the per-user Wilcoxon test (``n_users``, ``delta``, ``p_value``).
    """
    try:
        cells = {row["label"]: frozenset(row["reproduce"]["cell_ids"]) for row in data["rows"]}
        reference = data["reference"]
        if reference not in cells:
            return None
        rows: dict[str, tuple[frozenset[str], UserTest]] = {}
        metrics = set()
        for row in data["rows"]:
            sig = row.get("significance")
            if not isinstance(sig, dict):
                continue
            metrics.add(str(sig["metric"]))
            users = sig.get("users") if "method" in sig else sig
            if isinstance(users, dict):
                rows[row["label"]] = (cells[row["label"]], UserTest(int(users["n_users"]), float(users["delta"]),
                                                                     float(users["p_value"])))
        if len(metrics) > 1:
            return None
        return Published(reference, cells[reference], rows, metrics.pop() if metrics else "ndcg@10")
    except (KeyError, TypeError, ValueError):
        return None  # an older or hand-edited board: its rows are kept, their per-user tests not carried


def merge(held: Iterable[Record], new: Iterable[Record]) -> list[Record]:
    """The board's records after adding ``new`` to ``held`` (the rules of the module docstring).

    Per row: the configurations that stay are those of the new finished (``ok``) records; without
    any, those of the held finished records; without either, the new records'. A record of another
    configuration leaves (superseded) or, if new, is not taken. Of two records of one cell the new
    one stays, unless it is unfinished and the held one finished: a failed rerun never costs the
    board a published result (the run reports the failure itself).
    """
    held, new = list(held), list(new)
    labels = {row_label(r): None for r in held + new}
    keep: list[Record] = []
    take: list[Record] = []
    for label in labels:
        old = [r for r in held if row_label(r) == label]
        add = [r for r in new if row_label(r) == label]
        stays = ({configuration(r) for r in add if r.status == "ok"} or {configuration(r) for r in old if r.status == "ok"}
                 or {configuration(r) for r in add} or {configuration(r) for r in old})
        old = [r for r in old if configuration(r) in stays]
        add = [r for r in add if configuration(r) in stays]
        finished = {r.cell_id for r in old if r.status == "ok"}
        add = [r for r in add if r.status == "ok" or r.cell_id not in finished]
        replaced = {r.cell_id for r in add}
        keep += [r for r in old if r.cell_id not in replaced]
        take += add
    kept, taken = {id(r) for r in keep}, {id(r) for r in take}
    return [r for r in held if id(r) in kept] + [r for r in new if id(r) in taken]


def _check_same_data(directory: Path, held: list[Record], new: list[Record]) -> None:
    have = {r.dataset_checksum for r in held if r.dataset_checksum}
    got = {r.dataset_checksum for r in new if r.dataset_checksum}
    if have and got and not have & got:
        raise DataError(
            f"the board at {directory} holds rows computed on dataset checksum {', '.join(sorted(have))}, "
            f"but the new records are on {', '.join(sorted(got))}: rows on different data are not ranked together "
            f"— write to another --out, or move that board folder away first")


def _still_published(held: Held, merged: list[Record]) -> Published | None:
    """The board's published per-user tests minus those of rows where a rerun of a cell changed its results.

    A test is carried only for the very same cells (``Published.users``); a cell run again with the
    same id but other numbers (a nondeterministic device) makes its row's published test stale.
    """
    if held.published is None:
        return None
    before = {r.cell_id: (r.status, r.test) for r in held.records}
    changed = {row_label(r) for r in merged if r.cell_id in before and before[r.cell_id] != (r.status, r.test)}
    return held.published.excluding(changed)


def _one_board(records: list[Record], published: Published | None) -> Leaderboard:
    [lb] = aggregate(records, published)
    return lb


def _notes(lb: Leaderboard, earlier: list[dict[str, Any]], gone: list[Record], when: str) -> list[dict[str, Any]]:
    """Replacement notes of rows still on ``lb``: the earlier ones plus one per row that lost records now."""
    on_board = {row.label for row in lb.rows}
    notes = [n for n in earlier if n["label"] in on_board]
    by_label: dict[str, list[Record]] = defaultdict(list)
    for rec in gone:
        by_label[row_label(rec)].append(rec)
    for label, recs in sorted(by_label.items()):
        recs.sort(key=lambda r: (r.seed, r.cell_id))
        notes.append({"label": label, "seeds": [r.seed for r in recs], "cell_ids": [r.cell_id for r in recs],
                      "replaced_at": when})
    return notes


def _write_files(directory: Path, lb: Leaderboard, records: Iterable[Record], gone: Iterable[Record]) -> dict[str, Path]:
    """Write ``records`` (slim) and every format of ``lb`` into ``directory``; remove the files of ``gone``."""
    rec_dir = directory / "records"
    for rec in records:
        slim = portable_record(rec).model_copy(update={"per_user": {}})  # no path of this machine
        if rec.per_user.get("users"):  # before the record that names it: a reader finds both or the old pair
            atomic_write_bytes(rec_dir / f"{rec.cell_id}{PER_USER_SUFFIX}", per_user_bytes(rec.per_user))
        atomic_write_text(rec_dir / f"{rec.cell_id}.json", slim.model_dump_json(indent=2) + "\n")
    paths = {}
    for suffix, writer in WRITERS.items():
        if writer.with_board:
            path = directory / writer.filename
            atomic_write_text(path, writer.render(lb))
            paths[suffix] = path
    for rec in gone:  # after the board that no longer lists them is in place
        (rec_dir / f"{rec.cell_id}.json").unlink(missing_ok=True)
        (rec_dir / f"{rec.cell_id}{PER_USER_SUFFIX}").unlink(missing_ok=True)
    return paths


def write(lb: Leaderboard, out: Path, records: Iterable[Record] = ()) -> dict[str, Path]:
    """Write ``lb`` into its folder under ``out``, merged with the board already there; return the paths by suffix.

    ``records`` are (at least) the records of ``lb``'s rows: they go to ``records/<cell_id>.json``
    (their per-user arrays to ``records/<cell_id>.per_user.npz``), so every published row links the exact settings, versions,
    dataset checksum, hardware and command that produced it (``m6bench reproduce`` reruns one).
    Where the folder already holds a board, the board written is the merge of both (module docstring).
    """
    directory = board_dir(out, lb.dataset, lb.slug)
    wanted = {cid for row in lb.rows for cid in row.reproduce.get("cell_ids", [])}
    new = [rec for rec in records if rec.cell_id in wanted]
    with locked(directory):
        sweep_stale_parts(directory)  # left by a writer killed mid-write
        held = read_board(directory, lb.dataset, lb.protocol, lb.variant)
        gone: list[Record] = []
        if held.records:
            if {r.cell_id for r in new} != wanted:
                raise M6BenchError(f"cannot merge the leaderboard into the board at {directory} without the "
                                   "records of its rows: pass them to write()")
            _check_same_data(directory, held.records, new)
            merged = merge(held.records, new)
            partial = lb.partial
            lb = _one_board(merged, _still_published(held, merged))
            lb.partial = partial  # a board written mid-suite stays titled partial after the merge
            on_board = {cid for row in lb.rows for cid in row.reproduce.get("cell_ids", [])}
            fresh = {id(r) for r in new}
            new = [r for r in merged if id(r) in fresh and r.cell_id in on_board]
            gone = [r for r in held.records if r.cell_id not in on_board]
            lb.superseded = _notes(lb, held.superseded, gone, lb.created_at)
        return _write_files(directory, lb, new, gone)


@dataclass
class Selection:
    """Which records ``prune`` removes: those matching every given criterion (any value of each)."""

    labels: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    cell_ids: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.labels or self.models or self.seeds or self.cell_ids)

    def __call__(self, rec: Record) -> bool:
        return ((not self.labels or row_label(rec) in self.labels) and (not self.models or rec.model in self.models)
                and (not self.seeds or rec.seed in self.seeds) and (not self.cell_ids or rec.cell_id in self.cell_ids))

    def describe(self) -> str:
        parts = [f"{name} {', '.join(map(str, values))}" for name, values in
                 (("label", self.labels), ("model", self.models), ("seed", self.seeds), ("cell id", self.cell_ids)) if values]
        return " and ".join(parts)


@dataclass
class Pruned:
    """What ``prune`` removed (or would remove, ``dry_run``) and the board that is left (None: none)."""

    directory: Path
    removed: list[Record]
    board: Leaderboard | None


def prune(out: Path, dataset: str, protocol: str, variant: str, select: Selection | Callable[[Record], bool],
          dry_run: bool = False) -> Pruned:
    """Remove the selected records (rows, or seeds of rows) from a board and rewrite it from the rest.

    Holds the folder's lock like :func:`write`. With nothing left, the board's files are removed
    (its folder and any records of other boards stay).
    """
    directory = board_dir(out, dataset, board_slug(protocol, variant))
    if not (directory / "leaderboard.json").is_file() and not (directory / "records").is_dir():
        raise UsageError(f"no leaderboard at {directory}; check --out, --dataset, --protocol and --tuned")
    with locked(directory):
        sweep_stale_parts(directory)
        held = read_board(directory, dataset, protocol, variant)
        removed = [r for r in held.records if select(r)]
        if not removed:
            what = select.describe() if isinstance(select, Selection) else "the selection"
            rows = sorted({row_label(r) for r in held.records})
            raise UsageError(f"no record of the board at {directory} matches {what}; its rows: "
                             f"{', '.join(rows) or 'none'} (m6bench leaderboard show)")
        rest = [r for r in held.records if not select(r)]
        lb = _one_board(rest, held.published) if rest else None
        if dry_run:
            return Pruned(directory, removed, lb)
        if lb is None:
            for name in (writer.filename for writer in WRITERS.values()):
                (directory / name).unlink(missing_ok=True)
            for rec in removed:
                (directory / "records" / f"{rec.cell_id}.json").unlink(missing_ok=True)
                (directory / "records" / f"{rec.cell_id}{PER_USER_SUFFIX}").unlink(missing_ok=True)
        else:
            lb.superseded = _notes(lb, held.superseded, [], lb.created_at)
            _write_files(directory, lb, [], removed)
        return Pruned(directory, removed, lb)
