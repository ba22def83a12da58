"""A smaller copy of a dataset: ``n_users`` sampled users with all their interactions.

Used for fast tests and smoke runs. Lines are copied byte for byte (headers unchanged); ``.item``,
``.user`` and ``.link`` keep only ids that survive, ``.kg`` only triples whose head entity is
linked to a kept item. The slice gets its own name (``<name>-<n>u-s<seed>``): RecBole forces
``data_path`` to its bundled copy for a dataset *called* ``ml-100k``, so a slice must not be.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from m6rec_bench.datasets.atomic import checksum_of, has_kg, header_names, validate_folder
from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.errors import UsageError
from m6rec_bench.io import atomic_path

MARKER = "slice.json"


def _column(header: str, column: str) -> int:
    return header_names(header).index(column)


def _filter(src: Path, dst: Path, column: str, keep: Callable[[str], bool]) -> set[str]:
    """Copy ``src`` to ``dst`` keeping rows whose ``column`` passes ``keep``; return the kept rows' lines."""
    kept: list[str] = []
    with open(src, encoding="utf-8", newline="") as fh:
        header = fh.readline()
        idx = _column(header, column)
        for line in fh:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) > idx and keep(fields[idx]):
                kept.append(line)
    with atomic_path(dst) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            out.write(header)
            out.writelines(kept)
    return set(kept)


def _values(lines: set[str], header_path: Path, column: str) -> set[str]:
    with open(header_path, encoding="utf-8") as fh:
        idx = _column(fh.readline(), column)
    return {line.rstrip("\r\n").split("\t")[idx] for line in lines}


def _users(inter: Path) -> list[str]:
    with open(inter, encoding="utf-8") as fh:
        idx = _column(fh.readline(), "user_id")
        seen = dict.fromkeys(line.rstrip("\r\n").split("\t")[idx] for line in fh if line.strip())
    return sorted(seen)


def _write_slice(ds: PreparedDataset, folder: Path, name: str, n_users: int, seed: int) -> None:
    users = _users(ds.atomic_file("inter"))
    chosen = set(users if n_users >= len(users) else random.Random(seed).sample(users, n_users))
    out = lambda suffix: folder / f"{name}.{suffix}"  # noqa: E731
    rows = _filter(ds.atomic_file("inter"), out("inter"), "user_id", chosen.__contains__)
    items = _values(rows, ds.atomic_file("inter"), "item_id")
    if ds.atomic_file("item").is_file():
        _filter(ds.atomic_file("item"), out("item"), "item_id", items.__contains__)
    if ds.atomic_file("user").is_file():
        _filter(ds.atomic_file("user"), out("user"), "user_id", chosen.__contains__)
    if ds.atomic_file("link").is_file():
        links = _filter(ds.atomic_file("link"), out("link"), "item_id", items.__contains__)
        if ds.atomic_file("kg").is_file():
            entities = _values(links, ds.atomic_file("link"), "entity_id")
            _filter(ds.atomic_file("kg"), out("kg"), "head_id", entities.__contains__)


def slice_dataset(
    ds: PreparedDataset, out_root: Path, n_users: int, seed: int = 0, *, name: str | None = None
) -> PreparedDataset:
    """Write ``<out_root>/<name>/<name>.*`` holding ``n_users`` users of ``ds`` (sampled with ``seed``).

    A slice already there with the same source checksum, size and seed is reused.
    """
    if n_users < 1:
        raise UsageError(f"n_users must be at least 1 (got {n_users})")
    name = name or f"{ds.name}-{n_users}u-s{seed}"
    out_root = Path(out_root)
    folder = out_root / name
    meta = {"source": ds.name, "source_checksum": ds.checksum, "n_users": n_users, "seed": seed}
    marker = folder / MARKER
    if not (marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == meta):
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.slice-", dir=out_root))
        try:
            _write_slice(ds, tmp, name, n_users, seed)
            validate_folder(tmp, name)
            (tmp / MARKER).write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            try:
                os.replace(tmp, folder)
            except OSError:  # a concurrent writer got there first
                if not (marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == meta):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    features = DatasetFeatures(item_text=ds.features.item_text, kg=ds.features.kg and has_kg(folder, name))
    return PreparedDataset(
        name=name,
        root=out_root,
        checksum=checksum_of(folder, name),
        features=features,
        source=f"slice of {ds.name} ({ds.checksum[:19]}): {n_users} users, seed {seed}",
    )
