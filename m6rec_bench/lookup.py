"""One way to register things by name and look them up: :class:`Registry`.

Every family of named things — protocols, dataset specs, converters, compression and re-ranking
methods, models, search spaces — is a ``Registry[T]``: names are normalised one way (stripped and
case-folded unless the registry is case-sensitive), aliases resolve to the same entry, an unknown
name is a :class:`~m6rec_bench.errors.UsageError` with a did-you-mean hint, and ``names()`` lists
what is known. Each registry keeps its own message (``unknown=``) so the CLI's wording stays what
users and tests know::

    PROTOCOLS = Registry[Protocol]("protocol", unknown="protocol '{name}' not found{hint}; known: {known}")
    PROTOCOLS.register("default", DEFAULT)
    PROTOCOLS.get("colditem")  # UsageError: protocol 'colditem' not found — did you mean 'cold-item'?; known: …

The module sits at the bottom of the layers (it imports only :mod:`m6rec_bench.errors`), so any
layer may build a registry of its own kind.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from m6rec_bench.errors import CLOSE, UsageError, suggest

T = TypeVar("T")

#: The default message for an unknown name; ``{what}``, ``{name}``, ``{hint}`` and ``{known}`` are filled in.
UNKNOWN = "{what} '{name}' not found{hint}; known: {known}"


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Not a ``Mapping``: :meth:`get` (and ``registry[name]``) always raises a UsageError for an unknown
    name, never returns a default; :meth:`find` returns None instead.

    Args:
        what: what an entry is, for messages (``"protocol"``, ``"converter"``).
        unknown: the message of an unknown name, a :meth:`str.format` template with ``{what}``,
            ``{name}`` (as given), ``{hint}`` (``" — did you mean 'x'?"`` or ``""``), ``{known}``
            (the names, comma-separated) and any keyword given to :meth:`get` / :meth:`error`
            (which may also override ``hint``).
        case_sensitive: match names exactly (names that are path components: protocols,
            converters); otherwise names are stripped and case-folded before matching.
    """

    def __init__(self, what: str, *, unknown: str = UNKNOWN, case_sensitive: bool = False) -> None:
        self.what = what
        self.unknown_message = unknown
        self.case_sensitive = case_sensitive
        self._entries: dict[str, T] = {}  # canonical name -> entry
        self._keys: dict[str, str] = {}  # normalised name or alias -> canonical name
        self._spelled: dict[str, str] = {}  # normalised name or alias -> as written

    def key(self, name: str) -> str:
        """``name`` as it is matched: unchanged when case-sensitive, else stripped and lower-cased."""
        return name if self.case_sensitive else name.strip().lower()

    def register(self, name: str, entry: T, *, aliases: Iterable[str] = (), replace: bool = True) -> T:
        """Add ``entry`` under ``name`` (and ``aliases``); returns ``entry``.

        Registering a name again replaces its entry (a module imported twice); with ``replace=False``
        a name or alias already taken by another entry is a ValueError.
        """
        for n in (name, *aliases):
            taken = self._keys.get(self.key(n))
            if taken is not None and (taken != name or not replace):
                raise ValueError(f"{self.what} name '{n}' is already used by '{taken}'")
        self._entries[name] = entry
        for n in (name, *aliases):
            self._keys[self.key(n)] = name
            self._spelled[self.key(n)] = n
        return entry

    def canonical(self, name: str) -> str | None:
        """The registered name ``name`` (or an alias, any case unless case-sensitive) stands for, or None."""
        return self._keys.get(self.key(name))

    def find(self, name: str) -> T | None:
        """The entry called ``name``, or None."""
        canonical = self.canonical(name)
        return None if canonical is None else self._entries[canonical]

    def get(self, name: str, **context: object) -> T:
        """The entry called ``name``; :class:`UsageError` (:meth:`error`) otherwise."""
        canonical = self.canonical(name)
        if canonical is None:
            raise self.error(name, **context)
        return self._entries[canonical]

    __getitem__ = get

    def hint(self, name: str) -> str:
        """``" — did you mean 'x'?"`` for the closest name or alias (as written), or ``""``."""
        close = difflib.get_close_matches(self.key(name), list(self._spelled), n=1, cutoff=CLOSE)
        return suggest(self._spelled[close[0]]) if close else ""

    def error(self, name: str, **context: object) -> UsageError:
        """The UsageError for an unknown ``name`` (the ``unknown`` template, filled in)."""
        fields = {"what": self.what, "name": name, "hint": self.hint(name), "known": ", ".join(self._entries), **context}
        return UsageError(self.unknown_message.format(**fields))

    def names(self) -> list[str]:
        """Registered names (not aliases), in registration order."""
        return list(self._entries)

    def all_names(self) -> list[str]:
        """Every name and alias, as written."""
        return list(self._spelled.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry[{self.what}]({', '.join(self._entries)})"


__all__ = ["UNKNOWN", "Registry"]
