"""The engines ``m6bench run --engine`` chooses from, by name: light, so the CLI can set one
before any worker starts without importing torch (:mod:`m6rec_bench.engine.fast_eval` does the work).
"""

from __future__ import annotations

import os

from m6rec_bench.errors import UsageError

ENGINE_ENV = "M6BENCH_ENGINE"
ENGINES = ("replay", "recbole", "fast")
DEFAULT_ENGINE = "replay"
#: Engines that train on :mod:`m6rec_bench.engine.fast_train`'s replayed batches.
REPLAY_ENGINES = ("replay", "fast")


def engine_from_env() -> str:
    """The engine named by ``M6BENCH_ENGINE`` (:data:`DEFAULT_ENGINE` when unset)."""
    raw = os.environ.get(ENGINE_ENV, "").strip().lower() or DEFAULT_ENGINE
    if raw not in ENGINES:
        raise UsageError(f"{ENGINE_ENV}={raw!r} is not an evaluation engine; use one of: {', '.join(ENGINES)}")
    return raw


def set_engine(engine: str) -> None:
    """Choose the engine for this process and the workers it starts (``m6bench run --engine``)."""
    name = engine.strip().lower()
    if name not in ENGINES:
        raise UsageError(f"--engine {engine!r} is not an engine; use one of: {', '.join(ENGINES)}")
    os.environ[ENGINE_ENV] = name
