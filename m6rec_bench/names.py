"""Which strings may become a path component, and whether a built path stayed under its root.

Names arrive as data — a record's ``dataset``/``protocol``/``cell_id``, a ``datasets.yaml`` entry,
``--name``/``--protocol`` options — and end up as folders: ``<runs>/<dataset>/<protocol>/…``,
``<out>/<dataset>/<protocol>/records/<cell_id>.json``. One rule decides which of them may:

* a **slug**: ASCII letters, digits, ``-``, ``_`` and ``.``; starting with a letter, digit or ``_``
  (so never ``..``, never hidden, never an option ``-x``), at most :data:`MAX_LEN` characters. No ``/``, no ``\\``, no spaces, no glob
  characters (names are also used in ``glob`` patterns).

Each name is checked once where it enters (pydantic validators on :class:`~m6rec_bench.results.record.Record`
and the ``datasets.yaml`` schema, the CLI options); :func:`contained` is the second line of defence
where a path is finally built, so a name that slipped past the first check still cannot leave its root.
"""

from __future__ import annotations

import re
from pathlib import Path

from m6rec_bench.errors import M6BenchError, UsageError

#: Longest name accepted as one path component (file systems allow 255 bytes; ids and suffixes are added).
MAX_LEN = 128

_SLUG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

#: What the rule says, for messages.
RULE = "must start with a letter, digit or '_' and hold only letters, digits, '-', '_' and '.'"


def slug_problem(value: object) -> str | None:
    """Why ``value`` cannot be a path component, or None when it can."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if not _SLUG_RE.fullmatch(value):
        return RULE
    if len(value) > MAX_LEN:
        return f"is {len(value)} characters long (at most {MAX_LEN})"
    return None


def is_slug(value: object) -> bool:
    """True when ``value`` may be used as a path component."""
    return slug_problem(value) is None


def slug(value: str, what: str = "name") -> str:
    """``value`` unchanged, or ValueError saying why not — for pydantic validators (``what`` names the field)."""
    problem = slug_problem(value)
    if problem:
        raise ValueError(f"{what} {value!r} {problem}")
    return value


def check_slug(value: str, what: str, *, hint: str = "", error: type[M6BenchError] = UsageError) -> str:
    """``value`` unchanged, or ``error`` (UsageError by default) naming ``what`` (``--protocol``) and the rule."""
    problem = slug_problem(value)
    if problem:
        raise error(f"{what} {value!r} {problem}" + (f" — {hint}" if hint else ""))
    return value


def label_slug(label: str) -> str:
    """A row label as a folder name: ``"M6-Fusion w/o KG"`` → ``"M6-Fusion_w-o_KG"``.

    The mapping keeps ASCII letters, digits and ``-_.``, turns ``/`` into ``-`` and anything else
    into ``_``; the result must still be a slug (a label ``..`` or ``.x`` is refused by :class:`Record`).
    """
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else ("-" if c == "/" else "_") for c in label)


def contained(root: str | Path, path: str | Path, *, what: str, error: type[M6BenchError] = UsageError) -> Path:
    """``path`` when, resolved, it lies under ``root`` (resolved); otherwise ``error`` naming ``what``.

    Symbolic links are followed, so a link inside ``root`` that points elsewhere is refused too.
    Returns ``path`` as given (not resolved), so callers keep the paths users see.
    """
    base = Path(root).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    if target != base and base not in target.parents:
        raise error(f"{what} would put {path} outside {root} — names of folders {RULE}")
    return Path(path)
