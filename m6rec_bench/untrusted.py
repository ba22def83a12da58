"""Reading what a user hands us: text files, JSON, and pydantic errors turned into one line.

Everything here sits at the edge where a file enters (a suite YAML, ``datasets.yaml``, a record
given to ``reproduce`` or ``leaderboard build``, an artifact's ``meta.json``). Python's own readers
fail on hostile input with exceptions no user can act on — ``UnicodeDecodeError`` on a binary
file, ``RecursionError`` on ``[[[[…]]]]`` nested 100 000 deep, a many-line ``ValidationError`` —
so each function turns them into an error that names the file and says what to do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from m6rec_bench.errors import UsageError

#: Largest configuration file read (suite YAML, datasets.yaml): real ones are a few KB.
MAX_TEXT_BYTES = 8 << 20
#: Deepest JSON nesting accepted: records and artifact metadata nest 4 levels; the C decoder
#: recurses once per level and overflows the stack around 1000 (``RecursionError``).
MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class UntrustedInputError(ValueError):
    """A user file that cannot be parsed safely; the message names the problem, not the file."""


def read_text(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of the user file ``path`` (``what`` names it in errors, e.g. ``"suite config"``).

    UsageError when it is too large, binary or not UTF-8; a leading UTF-8 BOM is dropped (editors
    on Windows add one). ``OSError`` (missing file, permissions) is left to the caller, which knows
    what to suggest.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise UsageError(f"{what} {path} is {size:,} bytes, more than the {max_bytes:,} a {what} may have — "
                         "is it the right file?")
    data = p.read_bytes()
    if b"\0" in data:
        raise UsageError(f"{what} {path} is a binary file, not text — give the YAML file itself")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}) — "
                         "save it as UTF-8") from None


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` instead of overflowing the stack.

    Raises :class:`UntrustedInputError` (a ``ValueError``, like ``json.JSONDecodeError``).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise UntrustedInputError("not UTF-8 text") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise UntrustedInputError(f"JSON nested {depth} levels deep (at most {max_depth} accepted)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UntrustedInputError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # pragma: no cover - the depth check above comes first
        raise UntrustedInputError("JSON nested too deeply") from None


def validation_summary(exc: ValidationError, *, prefix: str = "", limit: int = 3) -> str:
    """A pydantic error as one line: ``spec.seed: Input should be a valid integer (got 'x'); …``.

    ``prefix`` is put before every field path (``"spec."`` for a record's spec).
    """
    parts = []
    for err in exc.errors()[:limit]:
        loc = prefix + ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict | list) else f" (got {_short(got)})"
        parts.append(f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
