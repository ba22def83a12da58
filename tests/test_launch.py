"""The ``m6bench`` console script (m6rec_bench.launch): the worker started before the CLI loads,
and the quick exit (issue #19, start fast)."""

from __future__ import annotations

import os
import subprocess
import sys

from m6rec_bench.engine.executors import IN_PROCESS_ENV
from m6rec_bench.launch import exit_status, wants_worker
from m6rec_bench.results.store import RecordStore


def _m6bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "m6rec_bench", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_only_a_local_run_starts_its_worker_before_the_cli_loads(monkeypatch):
    assert not wants_worker(["run", "-d", "movielens"])  # M6BENCH_IN_PROCESS=1 (tests/conftest.py)
    monkeypatch.delenv(IN_PROCESS_ENV)
    assert wants_worker(["run", "-d", "movielens", "-m", "BPR"])
    assert wants_worker(["run"])
    for argv in (["run", "--help"], ["run", "-h"], ["run", "-d", "x", "--dry-run"], ["run", "--executor", "dask"],
                 ["run", "--executor=dask"], ["models", "list"], ["tune", "-m", "BPR"], []):
        assert not wants_worker(argv), argv


def test_exit_status_follows_python():
    assert exit_status(None) == 0 and exit_status(0) == 0 and exit_status(3) == 3 and exit_status(130) == 130
    assert exit_status(256) == 0  # as sys.exit(256) ends a process on POSIX
    assert exit_status("a message") == 1


def test_the_console_script_keeps_exit_codes_and_output():
    typo = _m6bench("modls", "list")
    assert typo.returncode == 2 and "No such command" in typo.stderr, typo.stderr
    listed = _m6bench("models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "BPR" in listed.stdout and "LightGCN" in listed.stdout  # the whole table, flushed before the quick exit


def test_a_run_takes_options_read_after_its_worker_started(ml100k_slice, tmp_path, monkeypatch):
    """The worker starts before ``--engine`` is parsed, with ``M6BENCH_ENGINE=fast`` inherited; the
    pool hands it the environment as it is when it adopts the worker, so the cell runs under the
    engine the command asked for."""
    monkeypatch.delenv(IN_PROCESS_ENV)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    runs = tmp_path / "runs"
    res = _m6bench("run", "-d", str(ml100k_slice.folder), "-m", "Pop", "--engine", "recbole", "--runs-dir", str(runs),
                   "--out", str(tmp_path / "lb"), env={"M6BENCH_ENGINE": "fast"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 cells: 1 finished (0 reused), 0 failed" in res.stdout
    [rec] = RecordStore(runs).records()
    assert rec.conditions is not None and rec.conditions.engine == "recbole"
    assert rec.conditions.omp_wait_policy == "PASSIVE"  # set before the worker imported torch
