"""Where a suite's cells and tuning studies run: worker processes here, or a Dask cluster.

:func:`open_pool` gives one ``concurrent.futures.Executor`` for either kind, so the suite and the
tuner have a single parallel code path:

* ``local`` with ``jobs > 1`` — a spawned :class:`~concurrent.futures.ProcessPoolExecutor` on this
  machine (``jobs == 1`` gives ``None``: the caller runs in-process, sequentially);
* ``dask`` — ``distributed.Client(scheduler).get_executor()``: tasks go to the cluster's workers.

Local workers get the thread policy of :mod:`m6rec_bench.engine.threads`: the cores of this
process's affinity shared by the ``jobs`` cells, ``OMP_WAIT_POLICY=PASSIVE`` in the environment they
are spawned with. A task runs inside :func:`task_slot`, which sets its torch threads and lets one
task at a time run in a worker process: RecBole's ``init_seed`` seeds process-global RNGs, so two
cells sharing a process (a Dask worker with ``--nthreads 2``) would no longer be reproducible.

Dask workers import ``m6rec_bench`` (and the plugins) themselves and read the dataset cache
(``M6BENCH_HOME``) and ``--runs-dir`` by the client's absolute paths: both belong on a filesystem
every worker shares. A worker that cannot see the runs directory still returns its record, and the
client stores it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from m6rec_bench.engine import threads as thread_policy
from m6rec_bench.errors import M6BenchError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

#: The executors ``--executor`` accepts.
KINDS = ("local", "dask")
#: Seconds to reach a Dask scheduler (and to wait for its first worker) before giving up.
CONNECT_TIMEOUT_S = 10.0
DASK_HINT = 'pip install "m6rec-bench[dask]"'

_ONE_AT_A_TIME = threading.Lock()


@dataclass
class Pool:
    """An executor and how its tasks should use a worker: ``threads`` torch threads per task
    (``None``: as many as the Dask worker has threads)."""

    executor: Executor
    where: str
    threads: int | None


@contextlib.contextmanager
def open_pool(kind: str = "local", *, jobs: int = 1, scheduler: str | None = None) -> Iterator[Pool | None]:
    """The executor of ``kind``, shut down on exit; ``None`` for ``local`` with one job."""
    if kind == "local":
        if jobs <= 1:
            yield None
            return
        # spawned, not forked: torch's thread pools do not survive a fork; they inherit the wait policy
        thread_policy.prefer_passive_wait()
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=thread_policy.worker_init, initargs=(jobs,))
        try:
            yield Pool(pool, f"{jobs} local worker processes", thread_policy.threads_per_cell(jobs))
        except BaseException:  # Ctrl-C, or an error: stop the cells still running instead of waiting for them
            _abandon(pool)
            raise
        pool.shutdown(wait=True)
        return
    if kind != "dask":
        raise UsageError(f"--executor '{kind}' is not known; use one of {', '.join(KINDS)}")
    if not scheduler:
        raise UsageError("--executor dask needs --scheduler tcp://HOST:PORT (the address `dask scheduler` prints)")
    client = connect(scheduler)
    try:
        yield Pool(client.get_executor(pure=False), f"Dask scheduler {scheduler}", None)
    finally:
        client.close()


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Cancel queued cells and terminate the workers. A cell killed mid-way leaves no record (records
    are written atomically; a stale temp file is swept on the next run), so a rerun resumes it."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        if proc.is_alive():
            proc.terminate()
    for proc in workers:
        proc.join(timeout=10)
    _forget_wakeup(pool)


def _forget_wakeup(pool: ProcessPoolExecutor) -> None:
    """Let the pool's manager thread finish, then keep the interpreter's exit hook away from it.

    CPython < 3.12.8 / 3.13.1 checks ``_ThreadWakeup._closed`` and writes to the pipe without a lock
    (python/cpython#125451): when the manager thread closes the pipe while ``_python_exit`` wakes
    it at interpreter exit, a Ctrl-C'd ``--jobs`` run prints an ``OSError: Bad file descriptor``
    traceback after its clean message (seen about once in five runs of
    ``tests/test_faults.py::test_ctrl_c_with_jobs_stops_the_workers_too``).
    """
    import concurrent.futures.process as cf_process

    thread = getattr(pool, "_executor_manager_thread", None)
    if thread is None:
        return
    thread.join(timeout=10)
    if not thread.is_alive():
        getattr(cf_process, "_threads_wakeups", {}).pop(thread, None)


def connect(address: str, timeout: float | None = None) -> Client:
    """A client of the Dask scheduler at ``address`` that has at least one worker, or a clear error."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(f"--executor dask needs the Dask distributed package, which is not installed: {DASK_HINT}") from None
    from distributed.comm import get_address_host_port

    try:  # before a Client exists: a half-built one hangs 20 s in its finaliser
        get_address_host_port(address)
    except ValueError as exc:
        raise UsageError(f"--scheduler {address} is not a Dask scheduler address ({exc}); use tcp://HOST:PORT") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise M6BenchError(f"cannot reach the Dask scheduler at {address}: {reason} — is `dask scheduler` running "
                           "there, and is the port open?") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise M6BenchError(f"the Dask scheduler at {address} has no workers — start some with "
                           f"`dask worker {address} --nthreads 1`") from None
    return client


@contextlib.contextmanager
def task_slot(threads: int | None) -> Iterator[None]:
    """Run one task per worker process at a time with ``threads`` torch threads (None: the Dask
    worker's thread count, 1 elsewhere)."""
    with _ONE_AT_A_TIME:
        if threads is None:
            threads = _dask_worker_threads()
        thread_policy.use(threads)
        yield


def _dask_worker_threads() -> int:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a Dask worker
        return 1
    return int(getattr(getattr(worker, "state", worker), "nthreads", 1) or 1)
