"""A worker started ahead of the pool (issue #19, start fast): ``m6bench run`` starts its first
worker — interpreter, torch, RecBole — while it still plans the suite, and the pool adopts it.

These tests drive real spawned workers (m6rec_bench.engine.workers) with cheap tasks from the
standard library and this module (spawned workers import it by name: tests/ is on their path).
"""

from __future__ import annotations

import os

import pytest

from m6rec_bench.engine import workers
from m6rec_bench.engine.executors import IN_PROCESS_ENV, worker_ahead
from m6rec_bench.engine.workers import WorkerPool, start_ahead, stop_ahead

psutil = pytest.importorskip("psutil")

MARK = "M6_WORKER_AHEAD_TEST"


WARMED: list[str] = []


def warm() -> None:
    """The ``warm`` step the worker runs while it waits (in the worker): leaves a trace to see."""
    WARMED.append("warmed")


def warmed() -> list[str]:
    """A task (in the worker): what :func:`warm` left there."""
    return WARMED


def set_mark(value: str) -> None:
    """A pool initializer (in the worker)."""
    os.environ[MARK] = value


def read_env(name: str) -> str | None:
    """A task (in the worker): the worker's own environment variable."""
    return os.environ.get(name)


def fail_init() -> None:
    raise ValueError("this initializer always fails")


def _ahead_pid() -> int:
    assert workers._ahead is not None, "no worker is waiting"
    return workers._ahead[0].pid


def _gone(pid: int, timeout: float = 10) -> bool:
    try:
        psutil.Process(pid).wait(timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture(autouse=True)
def _no_worker_left():
    yield
    stop_ahead()  # a failing test must not leave one waiting for the next


def test_the_pool_adopts_the_worker_started_ahead_and_runs_its_initializer_there(monkeypatch):
    monkeypatch.setenv(MARK + "_GONE", "set when the worker started")
    start_ahead(f"{__name__}:warm")
    start_ahead(f"{__name__}:warm")  # a no-op while one waits
    pid = _ahead_pid()
    # options read after the worker started (``--engine``): a fresh worker would inherit them
    monkeypatch.setenv(MARK + "_LATE", "set afterwards")
    monkeypatch.delenv(MARK + "_GONE")
    pool = WorkerPool(1, initializer=set_mark, initargs=("from the pool",))
    try:
        assert pool.submit(os.getpid).result(timeout=60) == pid
        assert workers._ahead is None  # taken by the pool
        assert pool.submit(read_env, MARK).result(timeout=60) == "from the pool"
        assert pool.submit(warmed).result(timeout=60) == ["warmed"]
        assert pool.submit(read_env, MARK + "_LATE").result(timeout=60) == "set afterwards"
        assert pool.submit(read_env, MARK + "_GONE").result(timeout=60) is None
        assert pool.submit(pow, 2, 10).result(timeout=60) == 1024
    finally:
        pool.shutdown()
    proc = pool._workers[0]
    assert proc.exitcode == 0  # told to stop: ended at once (os._exit(0)), not killed
    # the next pool starts its own worker: the one started ahead served one pool
    second = WorkerPool(1)
    try:
        assert second.submit(os.getpid).result(timeout=60) != pid
    finally:
        second.shutdown()


def test_an_unadopted_worker_is_ended_by_stop_ahead():
    start_ahead()
    pid = _ahead_pid()
    stop_ahead()
    assert workers._ahead is None and _gone(pid)
    stop_ahead()  # nothing waiting: a no-op


def test_a_failing_initializer_fails_the_first_task_and_a_fresh_worker_takes_the_next():
    start_ahead()
    pid = _ahead_pid()
    pool = WorkerPool(1, initializer=fail_init)
    try:
        with pytest.raises(RuntimeError, match="initializer failed: ValueError.*always fails"):
            pool.submit(pow, 2, 3).result(timeout=60)
        assert _gone(pid)
        # a fresh worker runs the initializer at start-up: it dies of it, and the task says how
        with pytest.raises(workers.WorkerDied):
            pool.submit(pow, 2, 3).result(timeout=60)
    finally:
        pool.shutdown()


def test_a_worker_that_died_while_waiting_is_not_adopted():
    start_ahead()
    proc = workers._ahead[0]
    proc.kill()
    proc.join()
    pool = WorkerPool(1)
    try:
        assert pool.submit(os.getpid).result(timeout=60) != proc.pid
    finally:
        pool.shutdown()


def test_worker_ahead_starts_one_only_for_local_contained_runs(monkeypatch):
    with worker_ahead("local"):  # tests run cells in-process (conftest): nothing to start
        assert workers._ahead is None
    monkeypatch.delenv(IN_PROCESS_ENV)
    for kind in (None, "dask"):
        with worker_ahead(kind):
            assert workers._ahead is None
    with worker_ahead("local"):
        pid = _ahead_pid()
        assert os.environ["OMP_WAIT_POLICY"]  # set before the worker imports torch
    assert workers._ahead is None and _gone(pid)  # nothing adopted it: ended on the way out


def fail_warm() -> None:
    raise ImportError("a broken import while warming up")


def test_a_failing_warm_up_leaves_the_worker_to_report_errors_from_its_tasks():
    start_ahead(f"{__name__}:fail_warm")
    pid = _ahead_pid()
    pool = WorkerPool(1)
    try:
        assert pool.submit(os.getpid).result(timeout=60) == pid
    finally:
        pool.shutdown()
