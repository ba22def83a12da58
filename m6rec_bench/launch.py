"""The ``m6bench`` console script: what must happen before the command line loads.

Two things must come before the CLI's own imports (Typer, Rich, pydantic: ~0.2–0.5 s):

* ``OMP_WAIT_POLICY=PASSIVE`` (:func:`m6rec_bench.engine.threads.prefer_passive_wait`): it counts
  only when set before torch's OpenMP runtime loads, here and in every worker spawned from here;
* for ``m6bench run``, the first worker process starts now (:func:`~m6rec_bench.engine.workers.start_ahead`)
  and imports torch and RecBole while this process loads the CLI, reads the options and plans the
  suite: on 2 cores that takes the worker's ~5 s start-up off the command's critical path. Whether
  the run wants a local worker is only known once its options and suite file are read: this module
  only guesses from the arguments (no ``--help``, ``--dry-run`` or ``--executor``), and
  :func:`m6rec_bench.engine.executors.worker_ahead` settles it — ending the worker when it is not
  wanted, starting one when the guess was no. The worker takes the parent's environment when a pool
  adopts it, so options read later (``--engine``) still reach it.

This module imports nothing heavy before the worker starts: the engine's executors (multiprocessing).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

#: Arguments after which ``m6bench run`` starts no local worker (help, a dry run, a remote executor).
NO_WORKER_FLAGS = frozenset({"--help", "-h", "--dry-run", "--executor"})


def wants_worker(argv: list[str]) -> bool:
    """Whether the command line ``argv`` (without the program name) looks like ``m6bench run`` that
    will run cells in a local worker process. A guess: wrong either way costs time, never results."""
    from m6rec_bench.engine.threads import in_process

    return bool(argv) and argv[0] == "run" and not any(a.split("=", 1)[0] in NO_WORKER_FLAGS for a in argv[1:]) \
        and not in_process()


def main() -> NoReturn:
    """Console-script entry point (``m6bench``, ``python -m m6rec_bench``).

    The command's exit ends the process at once (:func:`~m6rec_bench.engine.workers.end_quickly`,
    after the :mod:`atexit` handlers): the interpreter's teardown of the CLI's modules adds ~0.3 s
    to every command and nothing to its results. An unexpected exception takes the normal way out,
    traceback included.
    """
    from m6rec_bench.engine import threads
    from m6rec_bench.engine.executors import PRELOAD
    from m6rec_bench.engine.workers import end_quickly, start_ahead, stop_ahead

    threads.prefer_passive_wait()
    if wants_worker(sys.argv[1:]):
        start_ahead(PRELOAD)
    try:
        try:
            from m6rec_bench.cli import app

            app()
            code: Any = 0
        finally:
            stop_ahead()  # not adopted (an error, every cell reused): ended with the command
    except SystemExit as exc:
        code = exc.code
    end_quickly(exit_status(code), exit_handlers=True)


def exit_status(code: Any) -> int:
    """The process exit status of ``sys.exit(code)``, as Python's own exit computes it (a message
    is printed to stderr and gives 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


__all__ = ["NO_WORKER_FLAGS", "exit_status", "main", "wants_worker"]
