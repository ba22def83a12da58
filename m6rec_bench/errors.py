"""User-facing errors: each says what went wrong, with which input, and what to do.

The CLI catches :class:`M6BenchError` and prints its message on one line (no traceback), exiting
with :attr:`M6BenchError.exit_code`: 2 for bad input (usage), 1 for failures.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class M6BenchError(Exception):
    """A failure the user can act on; the message is shown as is."""

    exit_code = 1


class UsageError(M6BenchError):
    """Bad input from the user: an unknown name, a malformed file, a bad option value."""

    exit_code = 2


class DataError(M6BenchError):
    """A dataset could not be fetched, verified or read."""


class ChecksumError(DataError):
    """A downloaded file does not match its published checksum."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" — did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=CLOSE)
    return suggest(close[0]) if close else ""


#: How close (difflib's ratio) a known name must be to an unknown one to be suggested.
CLOSE = 0.6


def suggest(name: str) -> str:
    """``" — did you mean 'name'?"``: the one wording of every suggestion."""
    return f" — did you mean '{name}'?"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``) while cells run: unwinds like Ctrl-C — workers stopped, finished
    results kept — and the CLI exits 143 (128 + SIGTERM). A KeyboardInterrupt, so no
    ``except Exception`` on the way swallows it."""
