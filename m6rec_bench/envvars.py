"""Numbers read from ``M6BENCH_*`` environment variables, checked, with the default when unset.

A value that is not a number (or is out of range) stops the command with a :class:`UsageError`
that names the variable, instead of being ignored or failing deep inside a run.
"""

from __future__ import annotations

import math
import os

from m6rec_bench.errors import UsageError


def env_number(env: str, default: float, *, zero_ok: bool = False) -> float:
    """The number in the environment variable ``env`` (``default`` when unset or blank): positive,
    or also 0 when ``zero_ok``."""
    raw = os.environ.get(env)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
        raise UsageError(f"{env}={raw!r} must be a {'non-negative' if zero_ok else 'positive'} number")
    return value


__all__ = ["env_number"]
