"""What a worker started ahead of its first cell imports while the command still plans.

:func:`m6rec_bench.engine.executors.worker_ahead` starts one local worker before the suite is
planned and has it call :func:`preload` (named as a string, so nothing imports this module: it sits
above the whole engine); the pool then adopts that worker, whose torch and RecBole are loaded.
"""

from __future__ import annotations


def preload() -> None:
    """Import what training a cell needs — torch, RecBole (through :mod:`m6rec_bench.compat`), the
    engine's cell, suite and training loops — ahead of the first cell: the imports
    :func:`m6rec_bench.training.train_and_evaluate` and :func:`m6rec_bench.training.build` make,
    made earlier."""
    from m6rec_bench import compat

    compat.apply()
    import recbole.data  # noqa: F401
    import recbole.utils  # noqa: F401

    from m6rec_bench import training  # noqa: F401
    from m6rec_bench.engine import cell, fast_eval, fast_train, suite  # noqa: F401


__all__ = ["preload"]
