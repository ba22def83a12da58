"""MovieLens 100K raw files (``u.data``, ``u.item``, ``u.user``) → RecBole atomic files.

- ``u.data``: tab-separated ``user item rating timestamp``.
- ``u.item``: pipe-separated latin-1 ``id|title|release date|video release date|IMDb URL|19 genre
  flags`` (genre order from ``u.genre`` when present).
- ``u.user``: pipe-separated ``id|age|gender|occupation|zip``.

Output columns match RecBole's bundled ``ml-100k`` (title without the year, ``release_year`` from
the release date or else the title, genres space-separated).
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
    read_text,
    split_title,
)

CONVERTER_VERSION = 1

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)


def _inter(path: Path) -> Iterator[list[str]]:
    with open(path, encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 4:
                raise bad_line(path, lineno, line, "4 tab-separated fields: user item rating timestamp")
            yield parts


def _genre_names(raw_dir: Path) -> tuple[str, ...]:
    path = find_file(raw_dir, "u.genre", required=False)
    if path is None:
        return GENRES
    names = [line.split("|")[0] for line in read_text(path).splitlines() if "|" in line]
    return tuple(names) if len(names) == len(GENRES) else GENRES


def _items(path: Path, genre_names: tuple[str, ...]) -> Iterator[list[str]]:
    for lineno, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(genre_names):
            raise bad_line(path, lineno, line, f"{5 + len(genre_names)} '|'-separated fields")
        title, title_year = split_title(parts[1])
        date = parts[2].strip()
        year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else title_year
        flags = parts[5:]
        classes = [g for g, f in zip(genre_names, flags, strict=True) if f.strip() == "1"] or ["unknown"]
        yield [parts[0].strip(), title, year, " ".join(classes)]


def _users(path: Path) -> Iterator[list[str]]:
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5:
            raise bad_line(path, lineno, line, "5 '|'-separated fields: id|age|gender|occupation|zip")
        yield [clean(p) for p in parts]


def convert(raw_dir: Path, out_dir: Path, name: str) -> None:
    """Write ``<out_dir>/<name>.inter``, ``.item`` and (when ``u.user`` exists) ``.user``."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    inter = find_file(raw_dir, "u.data")
    item = find_file(raw_dir, "u.item")
    assert inter is not None and item is not None
    write_table(out_dir / f"{name}.inter", INTER_HEADER, _inter(inter))
    write_table(out_dir / f"{name}.item", ITEM_HEADER, _items(item, _genre_names(raw_dir)))
    user = find_file(raw_dir, "u.user", required=False)
    if user is not None:
        write_table(out_dir / f"{name}.user", USER_HEADER, _users(user))
