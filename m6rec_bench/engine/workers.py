"""Local worker processes that die with m6bench, and whose own deaths are contained.

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies (``os._exit`` in
a model, a segfault in native code, the out-of-memory killer), it marks *every* pending future
broken and terminates the other workers, so the cell that died cannot be told from the cells
running beside it, and the pool is unusable afterwards. Here each worker process belongs to one
thread of the parent (a *slot*) that hands it one task at a time over a pipe: a death shows on that
pipe (end of file, the process sentinel), only that slot's task fails — with :class:`WorkerDied`,
which says how the process ended — the slot starts a fresh worker for its next task, and the other
workers go on undisturbed.

Workers die with the parent, whatever ends it (SIGKILL included), so a killed ``m6bench run`` never
leaves workers training and writing records behind it:

* on Linux a worker asks the kernel for SIGKILL when its parent goes (``prctl(PR_SET_PDEATHSIG)``).
  That signal fires when the parent *thread* that started the worker ends, so workers are started
  by their slot thread, which lives exactly as long as the pool (its worker is stopped first);
* everywhere (and as a backup) a watchdog thread in the worker polls ``os.getppid()``, which
  changes when the parent is gone (the worker is re-parented to init or a subreaper).

Workers ignore SIGINT: Ctrl-C in a terminal reaches the whole process group, and it is the parent
that decides what stops (:meth:`WorkerPool.terminate`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future
from multiprocessing import connection
from typing import Any

from m6rec_bench.errors import M6BenchError

#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
_PR_SET_PDEATHSIG = 1
#: Seconds between two looks of a worker's watchdog at its parent.
WATCH_INTERVAL_S = 0.5
#: Seconds a stopped worker gets to exit before it is killed.
_STOP_GRACE_S = 10.0

#: The worker's end of its pipe to the parent (None outside a worker process).
_conn: connection.Connection | None = None


class WorkerDied(M6BenchError):
    """The worker process running a task ended before the task did; :attr:`exitcode` as multiprocessing gives it."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__(f"worker process died: {describe_exit(exitcode)}")


def describe_exit(code: int | None) -> str:
    """``exit 3``, ``signal 11 (SIGSEGV)`` … for a process exit code (negative: the signal that ended it)."""
    if code is None:
        return "cause unknown"
    if code >= 0:
        return f"exit {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    hint = " — killed from outside, often by the out-of-memory killer" if -code == signal.SIGKILL else ""
    return f"signal {-code}{name}{hint}"


def report(event: Any) -> None:
    """Send ``event`` (a picklable tuple) from the task running in this worker to the parent's
    :attr:`WorkerPool.events`; a no-op outside a :class:`WorkerPool` worker (in-process, on Dask)."""
    if _conn is not None:
        _conn.send(("event", event))


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (its parent) does: PDEATHSIG on Linux, a watchdog everywhere."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl (an unusual libc): the watchdog alone
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    watch_parent(parent_pid)


def watch_parent(parent_pid: int, interval: float = WATCH_INTERVAL_S) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(1)``) once ``parent_pid`` is no longer its parent."""

    def _watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=_watch, name="m6bench-parent-watch", daemon=True)
    thread.start()
    return thread


def _worker_main(conn: connection.Connection, parent_pid: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
    """A worker process: run the tasks its slot sends, one at a time, until told to stop (None) or orphaned."""
    global _conn
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)
    _conn = conn
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, args, kwargs = task
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - SystemExit in a task is its failure, not the worker's end
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception: say so instead
            what = f"{type(reply[1]).__name__}: {reply[1]}"[:500]
            conn.send(("error", RuntimeError(f"the task's {'result' if reply[0] == 'ok' else 'error'} cannot be "
                                             f"sent back from its worker process ({exc}): {what}")))


class WorkerPool(Executor):
    """``jobs`` worker processes on this machine, each running one task at a time; see the module docstring.

    :attr:`events` receives ``(future, event)`` pairs: ``(future, ("started",))`` when a task is
    handed to a worker, and whatever the task passes to :func:`report` while it runs — always before
    the future's own result is set.
    """

    def __init__(self, jobs: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()) -> None:
        self.jobs = max(1, jobs)
        self._init = (initializer, initargs)  # run first in every worker (the thread policy's worker_init)
        self.events: queue.SimpleQueue[tuple[Future[Any], Any]] = queue.SimpleQueue()
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None] = (
            queue.SimpleQueue())
        self._ctx = multiprocessing.get_context("spawn")  # spawned, not forked: torch's thread pools do not survive a fork
        self._lock = threading.Lock()
        self._closed = False  # no more submits
        self._stopping = False  # no more workers started (terminate)
        self._slots: list[threading.Thread] = []
        self._workers: dict[int, multiprocessing.process.BaseProcess] = {}  # slot index -> its current worker

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit a task to a WorkerPool that is shut down")
            future: Future[Any] = Future()
            self._tasks.put((future, fn, args, kwargs))
            if len(self._slots) < self.jobs:
                slot = threading.Thread(target=self._slot, args=(len(self._slots),), daemon=True,
                                        name=f"m6bench-worker-slot-{len(self._slots)}")
                self._slots.append(slot)
                slot.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run the tasks already submitted (unless ``cancel_futures``), then stop the workers."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                self._cancel_queued()
            slots = list(self._slots)
        for _ in slots:
            self._tasks.put(None)
        if wait:
            for slot in slots:
                slot.join()

    def terminate(self) -> None:
        """Stop now (Ctrl-C, SIGTERM, an error): cancel the queued tasks and end the running workers.

        A cell ended mid-way leaves no record (records are written atomically; a stale temporary
        file is swept on the next run), so a rerun resumes it.
        """
        with self._lock:
            self._closed = self._stopping = True
            self._cancel_queued()
            workers = list(self._workers.values())
            slots = list(self._slots)
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
        for _ in slots:
            self._tasks.put(None)
        for proc in workers:
            proc.join(timeout=_STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for slot in slots:
            slot.join(timeout=_STOP_GRACE_S)

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._tasks.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[0].cancel()

    def _slot(self, index: int) -> None:
        """One slot: take a task, run it on this slot's worker (started here, so PDEATHSIG follows this thread)."""
        proc: multiprocessing.process.BaseProcess | None = None
        conn: connection.Connection | None = None
        try:
            while True:
                item = self._tasks.get()
                if item is None:
                    return
                future, fn, args, kwargs = item
                if not future.set_running_or_notify_cancel():
                    continue
                with self._lock:
                    if self._stopping:
                        future.set_exception(CancelledError())
                        return
                    if proc is not None and not proc.is_alive():  # killed while idle: not this task's doing
                        proc.join()
                        if conn is not None:
                            conn.close()
                        proc = conn = None
                    if proc is None:
                        proc, conn = self._start_worker()
                        self._workers[index] = proc
                assert conn is not None
                self.events.put((future, ("started",)))
                try:
                    conn.send((fn, args, kwargs))
                except (BrokenPipeError, ConnectionResetError):  # it died just now, as the task was handed over
                    pass
                except Exception as exc:  # noqa: BLE001 - the task cannot be pickled: its own failure
                    future.set_exception(exc)
                    continue
                else:
                    if self._await(future, proc, conn):
                        continue
                proc.join(timeout=_STOP_GRACE_S)
                future.set_exception(WorkerDied(proc.exitcode))
                conn.close()
                proc = conn = None
        finally:
            if proc is not None and conn is not None:
                self._stop_worker(proc, conn)

    def _start_worker(self) -> tuple[multiprocessing.process.BaseProcess, connection.Connection]:
        parent_end, child_end = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child_end, os.getpid(), *self._init), name="m6bench-worker")
        proc.start()
        child_end.close()
        return proc, parent_end

    def _await(self, future: Future[Any], proc: multiprocessing.process.BaseProcess, conn: connection.Connection) -> bool:
        """Relay the task's events and set its outcome; False when the worker died first."""
        while True:
            ready = connection.wait([conn, proc.sentinel])
            if conn not in ready:  # the process ended with nothing more to read
                return False
            try:
                kind, value = conn.recv()
            except (EOFError, OSError):
                return False
            if kind == "event":
                self.events.put((future, value))
            elif kind == "ok":
                future.set_result(value)
                return True
            else:
                future.set_exception(value)
                return True

    @staticmethod
    def _stop_worker(proc: multiprocessing.process.BaseProcess, conn: connection.Connection) -> None:
        try:
            conn.send(None)
        except OSError:
            pass
        proc.join(timeout=_STOP_GRACE_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
        conn.close()
