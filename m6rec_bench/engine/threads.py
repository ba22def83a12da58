"""How many torch/OpenMP threads a cell gets, and how its threads wait: one policy, recorded.

Measured on 2 shared cores (issue #19): torch's default of one thread per core in every process is
5–30× slower per epoch than 1 thread while other processes load the cores, because OpenMP threads
spin-wait for each other (``OMP_WAIT_POLICY`` defaults to active); with ``OMP_WAIT_POLICY=PASSIVE``
2 threads are back to 1-thread speed. Hence:

* **wait policy** — ``PASSIVE`` unless the user chose one. OpenMP reads it once, when its runtime
  loads (``import torch``), so :func:`prefer_passive_wait` runs first thing in the CLI and before a
  pool spawns its workers (they inherit the environment);
* **cells at once** — ``--jobs`` defaults to one cell per core, at most one per cell
  (:func:`default_jobs`); the longest cells are sent first (:func:`m6rec_bench.engine.estimate.longest_first`);
* **threads per cell** — one, unless ``M6BENCH_THREADS`` asks for more (:func:`thread_cap`), and
  never more than the cores this process may run on (``os.sched_getaffinity``, not the machine's
  count: a container or ``taskset`` gives fewer) shared by the cells running at once (``--jobs``):
  :func:`threads_per_cell`. Measured on this 2-core machine, quiet (2026-12-02, whole cells through
  ``m6bench run``, ``taskset`` for 1 core vs 2): even with passive waiting, 2 threads trained slower
  than 1 for every model tried — BPR 46.8 s vs 26.3 s (75 epochs), LightGCN 6.1 vs 4.9 s and
  M6-Fusion 27.6 vs 22.3 s (5 epochs): RecBole's ops on ml-100k are too small to split. Thread
  counts do not change RecBole CPU results (BPR gives the same metrics with 1 and 2 threads), only
  speed.

:func:`conditions` is what a record keeps of this (``Record.conditions``), so a board can say when
its rows were timed under different conditions.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from m6rec_bench.errors import UsageError

#: The OpenMP wait policy m6rec-bench prefers; a value the user set in the environment wins.
WAIT_POLICY = "PASSIVE"

#: Cells running at once on this machine, as the process running this cell knows it: 1 in-process,
#: ``--jobs`` in a local worker (set by :func:`worker_init`).
_parallel_cells = 1
#: The wait policy set by :func:`prefer_passive_wait` before torch (and its OpenMP runtime) loaded;
#: None when it ran after, or not at all: :func:`wait_policy` then reads the initial environment.
_policy_at_torch_import: str | None = None


def cores() -> int:
    """CPU cores this process may run on (its affinity mask; the machine's count where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows: no affinity call
        return max(1, os.cpu_count() or 1)


#: ``M6BENCH_THREADS``: torch threads a cell may use at most (default 1; ``0`` or ``all``: the cores
#: divided among the cells running at once).
THREADS_ENV = "M6BENCH_THREADS"


def thread_cap() -> int:
    """Threads a cell may use at most: ``M6BENCH_THREADS`` (``0``/``all``: no cap), else 1."""
    raw = os.environ.get(THREADS_ENV, "").strip().lower()
    if not raw:
        return 1
    if raw == "all":
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{THREADS_ENV}={raw!r} is not a thread count; use a number ≥ 1, or 0 / all for every core")
    return value


def threads_per_cell(jobs: int, available: int | None = None, *, cap: int | None = None) -> int:
    """Threads for each of ``jobs`` cells sharing ``available`` cores (default: :func:`cores`): never
    more threads in all than cores, never fewer than one per cell, and at most ``cap`` (default
    :func:`thread_cap`: 1 unless ``M6BENCH_THREADS`` says otherwise; 0: no cap)."""
    share = max(1, (available if available is not None else cores()) // max(1, jobs))
    limit = thread_cap() if cap is None else cap
    return min(share, limit) if limit > 0 else share


#: Set to 1 to run cells in this process with ``--jobs 1`` (no containment: debuggers, profilers).
IN_PROCESS_ENV = "M6BENCH_IN_PROCESS"


def in_process() -> bool:
    """Whether ``M6BENCH_IN_PROCESS=1`` asks for cells in this process with ``--jobs 1`` (no containment)."""
    return os.environ.get(IN_PROCESS_ENV, "").strip().lower() in ("1", "true", "yes")


def default_jobs(n_cells: int, available: int | None = None) -> int:
    """``--jobs`` when the user gave none: one cell per core (each gets one torch thread, see
    :func:`threads_per_cell`), never more workers than cells; 1 under ``M6BENCH_IN_PROCESS=1``,
    which asks for the cells in this process.

    Why it pays: RecBole's trainer is Python-bound (a BPR epoch on ml-100k keeps one core busy with
    the loader and optimizer steps), so two 1-thread cells on 2 cores finish sooner than two
    2-thread cells one after the other (``benchmarks/RESULTS.md``)."""
    if in_process():
        return 1
    return max(1, min(available if available is not None else cores(), n_cells))


def prefer_passive_wait() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy; effective only for OpenMP
    runtimes loaded afterwards (this process's if torch is not imported yet, and every worker
    process spawned from here)."""
    global _policy_at_torch_import
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    if "torch" not in sys.modules and _policy_at_torch_import is None:
        _policy_at_torch_import = os.environ["OMP_WAIT_POLICY"].upper()


def wait_policy() -> str:
    """The wait policy this process's OpenMP runtime loaded with, as far as it can be known.

    Set by :func:`prefer_passive_wait` before torch loaded, or in the environment the process
    started with (a spawned worker inherits its parent's): that value; nothing: ``"default"``
    (OpenMP's own, active spinning); set only after torch loaded: ``"default (… set too late)"``.
    """
    if _policy_at_torch_import is not None:
        return _policy_at_torch_import
    initial = _initial_environment().get("OMP_WAIT_POLICY")
    if initial:
        return initial.upper()
    late = os.environ.get("OMP_WAIT_POLICY")
    if not late:
        return "default"
    return f"default ({late.upper()} set too late)" if "torch" in sys.modules else late.upper()


def _initial_environment() -> dict[str, str]:
    """The environment this process was started with (Linux: /proc/self/environ); else the current one."""
    try:
        raw = open("/proc/self/environ", "rb").read()  # noqa: SIM115 - one read of a pseudo-file
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def worker_init(parallel: int) -> None:
    """Initializer of a local worker process: it runs one of ``parallel`` cells at a time."""
    global _parallel_cells
    _parallel_cells = parallel


def use(threads: int) -> None:
    """Give this process's torch (and its OpenMP runtime) ``threads`` threads."""
    import torch

    torch.set_num_threads(max(1, threads))


def conditions() -> dict[str, Any]:
    """What a record keeps of the thread policy and engine it ran under (the load is added by the cell)."""
    import torch

    from m6rec_bench.engine.engines import engine_from_env

    return {"cores": cores(), "torch_threads": torch.get_num_threads(), "omp_wait_policy": wait_policy(),
            "parallel_cells": _parallel_cells, "engine": engine_from_env()}


def load() -> float | None:
    """The 1-minute load average of this machine (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
