"""Where a suite's cells and tuning studies run: worker processes here, or a Dask cluster.

:func:`open_pool` gives one ``concurrent.futures.Executor`` for either kind, so the suite and the
tuner have a single parallel code path:

* ``local`` — ``jobs`` spawned worker processes on this machine
  (:class:`~m6rec_bench.engine.workers.WorkerPool`: they die with this process, and a worker that
  dies takes only its own task with it); ``jobs == 1`` gives one such worker when the caller asks
  for containment, else ``None`` (the caller runs in-process);
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
import queue
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from m6rec_bench.engine import threads as thread_policy
from m6rec_bench.engine.threads import IN_PROCESS_ENV, in_process  # noqa: F401 - re-exported
from m6rec_bench.engine.workers import WorkerPool, start_ahead, stop_ahead
from m6rec_bench.errors import M6BenchError, Terminated, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

#: The executors ``--executor`` accepts.
KINDS = ("local", "dask")
#: Seconds to reach a Dask scheduler (and to wait for its first worker) before giving up.
CONNECT_TIMEOUT_S = 10.0
DASK_HINT = 'pip install "m6rec-bench[dask]"'
#: ``M6BENCH_IN_PROCESS=1``: with ``--jobs 1``, run cells in this process instead of one contained worker.

_ONE_AT_A_TIME = threading.Lock()


@dataclass
class Pool:
    """An executor and how its tasks should use a worker: ``threads`` torch threads per task
    (``None``: as many as the Dask worker has threads). ``events`` (local workers only) carries what
    tasks :func:`~m6rec_bench.engine.workers.report` — epoch progress — and when each starts.
    ``parallel``: more than one task at a time (one contained local worker is not)."""

    executor: Executor
    where: str
    threads: int | None
    events: queue.SimpleQueue[tuple[Future[Any], Any]] | None = None
    parallel: bool = True


#: What a worker started ahead of its first cell imports meanwhile (``"module:function"``).
PRELOAD = "m6rec_bench.engine.preload:preload"


@contextlib.contextmanager
def worker_ahead(kind: str | None = "local") -> Iterator[None]:
    """While inside, the first local worker is already starting — its interpreter, torch, RecBole
    (:data:`PRELOAD`) — so that the command's own work (reading options, planning, resolving the
    dataset) overlaps it instead of preceding it; the first pool opened inside adopts it
    (:func:`~m6rec_bench.engine.workers.start_ahead`), and one left unadopted (every cell reused, an
    error while planning) is ended on the way out. :func:`m6rec_bench.launch.main` may have started
    it already, from a guess at the arguments; this settles the guess: for ``kind`` other than
    ``local`` (Dask, or None: not running) or with ``M6BENCH_IN_PROCESS=1`` a worker started ahead
    is ended and none is started. Call it from the main thread."""
    if kind != "local" or in_process():
        stop_ahead()
        yield
        return
    thread_policy.prefer_passive_wait()  # the worker's OpenMP reads it when it imports torch
    start_ahead(PRELOAD)
    try:
        yield
    finally:
        stop_ahead()


@contextlib.contextmanager
def open_pool(kind: str = "local", *, jobs: int = 1, scheduler: str | None = None,
              contain: bool = False) -> Iterator[Pool | None]:
    """The executor of ``kind``, shut down on exit.

    ``local`` with one job gives ``None`` (the caller runs in-process), unless ``contain``: then one
    worker process, so a cell that kills its process (``os._exit``, a segfault, the OOM killer)
    becomes a failed cell instead of the end of the suite — except with ``M6BENCH_IN_PROCESS=1``
    (debugging with pdb; the tests, which monkeypatch the engine).

    Local workers die with this process whatever ends it (:mod:`m6rec_bench.engine.workers`); SIGTERM
    stops them and unwinds like Ctrl-C, as :class:`~m6rec_bench.errors.Terminated`.
    """
    if kind == "local":
        if jobs <= 1 and (not contain or in_process()):
            yield None
            return
        # spawned workers inherit the wait policy (set before torch starts its OpenMP runtime there)
        thread_policy.prefer_passive_wait()
        pool = WorkerPool(jobs, initializer=thread_policy.worker_init, initargs=(jobs,))
        try:
            with stop_on_sigterm():
                yield Pool(pool, f"{jobs} local worker process{'es' if jobs > 1 else ''}", _local_threads(jobs),
                           events=pool.events, parallel=jobs > 1)
        except BaseException:  # Ctrl-C, SIGTERM or an error: stop the cells still running instead of waiting for them
            pool.terminate()
            raise
        pool.shutdown(wait=True)
        return
    if kind != "dask":
        raise UsageError(f"--executor '{kind}' is not known; use one of {', '.join(KINDS)}")
    if not scheduler:
        raise UsageError("--executor dask needs --scheduler tcp://HOST:PORT (the address `dask scheduler` prints)")
    stop_ahead()  # a local worker started ahead (a suite file asked for Dask): not needed
    client = connect(scheduler)
    try:
        yield Pool(client.get_executor(pure=False), f"Dask scheduler {scheduler}", None)
    finally:
        client.close()


def _local_threads(jobs: int) -> int:
    """Torch threads per local task (:func:`~m6rec_bench.engine.threads.threads_per_cell`): one,
    unless ``M6BENCH_THREADS`` asks for more, and never more than ``cores // jobs``. Thread counts
    change RecBole's CPU speed, not its numbers (``tests/test_provenance.py``)."""
    return thread_policy.threads_per_cell(jobs)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While inside: SIGTERM (``kill PID``) raises :class:`Terminated` in the main thread, so the
    caller stops its workers and says so in one line, as for Ctrl-C. Elsewhere than the main thread
    (where no handler can be set) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
