"""Reading what a user hands us: text files, JSON, and pydantic errors turned into one line.

Everything here sits at the edge where a file enters (a suite YAML, ``datasets.yaml``, a record
given to ``reproduce`` or ``leaderboard build``, an artifact's ``meta.json``). Python's own readers
fail on hostile input with exceptions no user can act on — ``UnicodeDecodeError`` on a binary
file, ``RecursionError`` on ``[[[[…]]]]`` nested 100 000 deep (at a depth that moves with the
recursion limit), a YAML file of 550 bytes whose aliases (``*a``) expand to 10⁸ values once the
settings are walked, a many-line ``ValidationError`` — so each function turns them into an error
that names the file and says what to do.
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
#: Deepest YAML nesting accepted (suite files and ``datasets.yaml`` nest 4-5 levels). PyYAML's
#: composer recurses (several frames a level), so the depth is checked from the scanner's tokens first.
MAX_YAML_DEPTH = 64
#: Most values (scalars and collections, aliases counted at each use) a YAML file may expand to:
#: real suite files have a few hundred; a "billion laughs" file is rejected before anything walks it.
MAX_YAML_VALUES = 100_000

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


def yaml_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of collections in YAML ``text``, counted on the scanner's tokens (the
    scanner does not recurse; a block sequence written without indentation under a mapping key adds
    no level here, so the true depth is at most twice this). Scanning stops once the depth passes
    ``stop_above`` (the scanner slows down with depth: 0.35 s for 1,000 ``[``). Raises
    ``yaml.YAMLError`` when the text does not scan."""
    import yaml
    from yaml import tokens as t

    opening = (t.BlockMappingStartToken, t.BlockSequenceStartToken, t.FlowMappingStartToken, t.FlowSequenceStartToken)
    closing = (t.BlockEndToken, t.FlowMappingEndToken, t.FlowSequenceEndToken)
    depth = deepest = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, opening):
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
        elif isinstance(token, closing):
            depth -= 1
    return deepest


def yaml_values(node: Any, cap: int = MAX_YAML_VALUES) -> int:
    """How many values the composed YAML ``node`` holds once its aliases are followed (each alias
    counts its target's values again; counts stop at ``cap + 1``), without
    expanding anything: one memoised pass over the node graph. An alias inside its own anchor
    (``&a [*a]``, a structure that contains itself) raises :class:`UntrustedInputError`."""
    import yaml

    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        else:
            size[key] = 1
            continue
        if done:
            size[key] = min(1 + sum(size[id(c)] for c in children), cap + 1)
            on_path.discard(key)
        elif key in on_path:
            raise UntrustedInputError("YAML whose alias refers to the collection it is in (a structure that "
                                      "contains itself)")
        elif key not in size:
            on_path.add(key)
            stack.append((current, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(node)]


def compose_yaml(text: str, *, max_depth: int = MAX_YAML_DEPTH, max_values: int = MAX_YAML_VALUES) -> tuple[Any, Any]:
    """Safe-load YAML ``text`` from a user: ``(data, node)`` (the node tree names lines in errors).

    Refuses nesting deeper than ``max_depth`` and aliases that expand to more than ``max_values``
    values (:class:`UntrustedInputError`); a malformed file raises ``yaml.YAMLError`` as
    ``yaml.safe_load`` does. Only YAML's plain types are built (``SafeLoader``): no tag runs code.
    """
    import yaml

    if yaml_depth(text, stop_above=max_depth) > max_depth:
        raise UntrustedInputError(f"YAML nested more than {max_depth} levels deep (at most {max_depth} accepted)")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if yaml_values(node, max_values) > max_values:
            raise UntrustedInputError(f"YAML that expands to more than {max_values:,} values through its aliases "
                                      "(*name); write the values out or use fewer aliases")
        return loader.construct_document(node), node
    finally:
        loader.dispose()


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
