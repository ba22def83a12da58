"""MovieLens 1M / 10M raw files (``::``-separated ``.dat``) → RecBole atomic files.

- ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``.
- ``movies.dat``: ``MovieID::Title (Year)::Genre|Genre`` (latin-1 in ml-1m; decoded as UTF-8 when
  it is valid UTF-8).
- ``users.dat`` (ml-1m only): ``UserID::Gender::Age::Occupation::Zip-code``; ``age`` and
  ``occupation`` stay the release's codes (see its README).

ml-10m ships the same layout inside ``ml-10M100K/`` without ``users.dat``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from m6rec_bench.datasets.atomic import clean, write_table
from m6rec_bench.datasets.convert.common import (
    INTER_HEADER,
    ITEM_HEADER,
    USER_HEADER,
    bad_line,
    find_file,
    genres,
    read_text,
    split_title,
)

CONVERTER_VERSION = 1


def _inter(path: Path) -> Iterator[list[str]]:
    with open(path, encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("::")
            if len(parts) != 4:
                raise bad_line(path, lineno, line, "UserID::MovieID::Rating::Timestamp")
            yield parts


def _items(path: Path) -> Iterator[list[str]]:
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise bad_line(path, lineno, line, "MovieID::Title (Year)::Genres")
        title, year = split_title(parts[1])
        yield [parts[0].strip(), title, year, genres(parts[2])]


def _users(path: Path) -> Iterator[list[str]]:
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 5:
            raise bad_line(path, lineno, line, "UserID::Gender::Age::Occupation::Zip-code")
        uid, gender, age, occupation, zip_code = (clean(p) for p in parts)
        yield [uid, age, gender, occupation, zip_code]


def convert(raw_dir: Path, out_dir: Path, name: str) -> None:
    """Write ``<out_dir>/<name>.inter``, ``.item`` and (when ``users.dat`` exists) ``.user``."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    ratings = find_file(raw_dir, "ratings.dat")
    movies = find_file(raw_dir, "movies.dat")
    assert ratings is not None and movies is not None
    write_table(out_dir / f"{name}.inter", INTER_HEADER, _inter(ratings))
    write_table(out_dir / f"{name}.item", ITEM_HEADER, _items(movies))
    users = find_file(raw_dir, "users.dat", required=False)
    if users is not None:
        write_table(out_dir / f"{name}.user", USER_HEADER, _users(users))
