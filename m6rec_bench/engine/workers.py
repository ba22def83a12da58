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

Start-up and shutdown stay off the command's critical path: :func:`start_ahead` starts one worker
(and its torch/RecBole imports) while the command is still planning, for the next pool to adopt,
and a worker told to stop ends at once (:func:`end_quickly`) instead of tearing down its modules.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
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
from typing import Any, NoReturn

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
            task = None
        if task is None:
            end_quickly()
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


def end_quickly(code: int = 0, *, exit_handlers: bool = False) -> NoReturn:
    """End this process now with exit status ``code``, without the interpreter's shutdown.

    A worker's results have all been sent and its records written (atomically) by the time it is
    told to stop, so nothing is lost by skipping the shutdown, which with torch and RecBole loaded
    takes about a second (module teardown, garbage collection of their objects: measured 1.1 s on
    the development machine, which ``m6bench run`` used to wait for after its last cell); the
    ``m6bench`` process itself skips ~0.3 s the same way (:func:`m6rec_bench.launch.main`). With
    ``exit_handlers`` the non-daemon threads are waited for and the :mod:`atexit` handlers run
    first (temporary folders, multiprocessing's clean-up), as on a normal exit; logging and the
    standard streams are flushed either way. Only the teardown is skipped: a file left open and
    unflushed would lose its buffer, so m6bench writes files inside ``with`` (:mod:`m6rec_bench.io`).
    """
    if exit_handlers:  # what the interpreter's own exit does first: wait for non-daemon threads, then atexit
        import atexit

        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)


def start_ahead(warm: str | None = None) -> None:
    """Start one local worker now, before any :class:`WorkerPool`, for the next pool to adopt.

    Its interpreter starts, and ``warm`` (``"module:function"``, called in the worker: imports such
    as torch and RecBole) runs, while this process goes on with its own work — reading options,
    planning a suite — instead of after it: on 2 cores that takes the worker's start-up off the
    command's critical path. The next pool's first slot adopts it and runs the pool's initializer in
    it before its first task; a worker no pool adopts is ended by :func:`stop_ahead`, and dies with
    this process whatever ends it. A no-op while one is already waiting.

    It is started from the calling thread, so PDEATHSIG follows that thread: call it from the
    thread that lives as long as the command (the main thread).
    """
    global _ahead
    with _ahead_lock:
        if _ahead is None:
            _ahead = _spawn(multiprocessing.get_context("spawn"), _call_named if warm else None, (warm,) if warm else ())


def stop_ahead() -> None:
    """End the worker :func:`start_ahead` started if no pool has adopted it (it holds no task)."""
    ahead = _take_ahead()
    if ahead is not None:
        proc, conn = ahead
        proc.kill()
        proc.join()
        conn.close()


def _take_ahead() -> tuple[multiprocessing.process.BaseProcess, connection.Connection] | None:
    """The worker started ahead, now owned by the caller, if one is waiting and alive."""
    global _ahead
    with _ahead_lock:
        ahead, _ahead = _ahead, None
    if ahead is not None and not ahead[0].is_alive():
        ahead[0].join()
        ahead[1].close()
        return None
    return ahead


def _spawn(ctx: Any, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
           ) -> tuple[multiprocessing.process.BaseProcess, connection.Connection]:
    """Start a worker process running :func:`_worker_main`; the parent's end of its pipe."""
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(child_end, os.getpid(), initializer, initargs), name="m6bench-worker")
    proc.start()
    child_end.close()
    return proc, parent_end


def _adopted(environ: dict[str, str], initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    """In a worker a pool adopts: take the pool's environment (set and unset as there), then run its initializer."""
    for name in set(os.environ) - set(environ):
        del os.environ[name]
    os.environ.update(environ)
    if initializer is not None:
        initializer(*initargs)


def _call_named(target: str) -> None:
    """Call the function ``target`` names (``"package.module:function"``), with no arguments.

    Its errors are ignored: warming up only moves work earlier, and a worker that died of it would
    fail the first task with an exit code; the task meets the same error (a broken import) itself,
    and reports it."""
    import importlib

    module, _, name = target.partition(":")
    try:
        getattr(importlib.import_module(module), name)()
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass


#: The worker :func:`start_ahead` started, while no pool has adopted it: (process, parent's pipe end).
_ahead: tuple[multiprocessing.process.BaseProcess, connection.Connection] | None = None
_ahead_lock = threading.Lock()


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
                    init_replies = 0
                    if proc is None:
                        proc, conn, init_replies = self._adopt_or_start()
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
                    if self._await(future, proc, conn, init_replies):
                        continue
                proc.join(timeout=_STOP_GRACE_S)
                future.set_exception(WorkerDied(proc.exitcode))
                conn.close()
                proc = conn = None
        finally:
            if proc is not None and conn is not None:
                self._stop_worker(proc, conn)

    def _adopt_or_start(self) -> tuple[multiprocessing.process.BaseProcess, connection.Connection, int]:
        """The worker :func:`start_ahead` started, or a fresh one started with this pool's initializer
        (then 0). The adopted one is first sent this process's environment as it is now (what a fresh
        worker would inherit: options read since, such as ``--engine``) and the pool's initializer,
        as one message whose reply the slot skips (1)."""
        ahead = _take_ahead()
        initializer, initargs = self._init
        if ahead is None:
            return (*_spawn(self._ctx, initializer, initargs), 0)
        proc, conn = ahead
        try:
            conn.send((_adopted, (dict(os.environ), initializer, initargs), {}))
        except OSError:  # it died while waiting: the task then fails as on any worker's death
            pass
        return proc, conn, 1

    def _await(self, future: Future[Any], proc: multiprocessing.process.BaseProcess, conn: connection.Connection,
               init_replies: int = 0) -> bool:
        """Relay the task's events and set its outcome; False when the worker died first. The first
        ``init_replies`` replies are its initializer's (an adopted worker): skipped, or the task's
        failure when the initializer failed (the worker is then ended; the slot starts a fresh one)."""
        while True:
            ready = connection.wait([conn, proc.sentinel])
            if conn not in ready:  # the process ended with nothing more to read
                return False
            try:
                kind, value = conn.recv()
            except (EOFError, OSError):
                return False
            if kind != "event" and init_replies:
                init_replies -= 1
                if kind != "ok":  # the pool's initializer failed in an adopted worker: end it, fail the task
                    proc.kill()
                    proc.join()
                    future.set_exception(RuntimeError(f"the worker's initializer failed: {value!r}"))
                    return True
            elif kind == "event":
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
