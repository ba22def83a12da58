"""MovieLens CSV releases (ml-20m, ml-25m, ml-latest) → RecBole atomic files.

- ``ratings.csv``: ``userId,movieId,rating,timestamp`` with a header row.
- ``movies.csv``: ``movieId,title,genres`` (UTF-8, titles quoted when they hold commas).

These releases have no user attributes, so no ``.user`` file is written.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from m6rec_bench.datasets.atomic import write_table
from m6rec_bench.datasets.convert.common import INTER_HEADER, ITEM_HEADER, bad_line, find_file, genres, split_title
from m6rec_bench.errors import DataError

CONVERTER_VERSION = 1


def _check_header(path: Path, got: list[str], expected: list[str]) -> None:
    if [c.strip().lstrip("\ufeff") for c in got[: len(expected)]] != expected:
        raise DataError(f"{path}: header {','.join(got)!r} is not {','.join(expected)!r} — is this a MovieLens CSV release?")


def _inter(path: Path) -> Iterator[list[str]]:
    with open(path, encoding="utf-8") as fh:
        _check_header(path, fh.readline().rstrip("\r\n").split(","), ["userId", "movieId", "rating", "timestamp"])
        for lineno, line in enumerate(fh, 2):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split(",")
            if len(parts) != 4:
                raise bad_line(path, lineno, line, "userId,movieId,rating,timestamp")
            yield parts


def _items(path: Path) -> Iterator[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        _check_header(path, next(reader, []), ["movieId", "title", "genres"])
        for row in reader:
            if not row:
                continue
            if len(row) != 3:
                raise bad_line(path, reader.line_num, ",".join(row), "movieId,title,genres")
            title, year = split_title(row[1])
            yield [row[0].strip(), title, year, genres(row[2])]


def convert(raw_dir: Path, out_dir: Path, name: str) -> None:
    """Write ``<out_dir>/<name>.inter`` and ``<out_dir>/<name>.item``."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    ratings = find_file(raw_dir, "ratings.csv")
    movies = find_file(raw_dir, "movies.csv")
    assert ratings is not None and movies is not None
    write_table(out_dir / f"{name}.inter", INTER_HEADER, _inter(ratings))
    write_table(out_dir / f"{name}.item", ITEM_HEADER, _items(movies))
