"""Helpers shared by the MovieLens converters: find raw files, split titles, decode text."""

from __future__ import annotations

import re
from pathlib import Path

from m6rec_bench.datasets.atomic import clean
from m6rec_bench.errors import DataError

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
ITEM_HEADER = ("item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq")
USER_HEADER = ("user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token")

_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")


def find_file(raw_dir: Path, filename: str, *, required: bool = True) -> Path | None:
    """The shallowest ``filename`` under ``raw_dir`` (archives nest files in a folder)."""
    hits = sorted(raw_dir.rglob(filename), key=lambda p: (len(p.parts), str(p)))
    hits = [p for p in hits if p.is_file()]
    if hits:
        return hits[0]
    if not required:
        return None
    found = sorted(p.relative_to(raw_dir).as_posix() for p in raw_dir.rglob("*") if p.is_file())
    listing = ", ".join(found[:12]) + (" …" if len(found) > 12 else "") if found else "nothing"
    raise DataError(f"{filename} not found under {raw_dir} (found: {listing}) — is this the right archive for the converter?")


def split_title(title: str) -> tuple[str, str]:
    """``"Toy Story (1995)"`` → ``("Toy Story", "1995")``; no year → ``(title, "")``."""
    title = clean(title)
    match = _YEAR.search(title)
    if not match:
        return title, ""
    return title[: match.start()].strip(), match.group(1)


def genres(raw: str) -> str:
    """``"Animation|Children's"`` → ``"Animation Children's"``; none listed → ``"unknown"``.

    "unknown" is what the bundled ml-100k uses for a movie without genres.
    """
    parts = [clean(g).replace(" ", "-") for g in raw.split("|") if g.strip() and g.strip() != "(no genres listed)"]
    return " ".join(parts) if parts else "unknown"


def read_text(path: Path) -> str:
    """A raw file's text: UTF-8 when it decodes, else latin-1 (the older MovieLens releases)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def bad_line(path: Path, lineno: int, line: str, expected: str) -> DataError:
    """A DataError naming the file, line and expected layout."""
    return DataError(
        f"{path} line {lineno}: expected {expected}, got {line.strip()[:80]!r} — "
        "the raw file is damaged; delete the cache and fetch again"
    )
