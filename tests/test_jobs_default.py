"""``--jobs`` by default: one cell per core (one torch thread each), the longest cells sent first."""

from __future__ import annotations

from m6rec_bench.engine import threads
from m6rec_bench.engine.cell import CellSpec
from m6rec_bench.engine.estimate import estimate_suite, longest_first
from m6rec_bench.engine.executors import IN_PROCESS_ENV


def test_default_jobs_is_one_cell_per_core_and_never_more_workers_than_cells(monkeypatch):
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    assert threads.default_jobs(12, available=2) == 2
    assert threads.threads_per_cell(threads.default_jobs(12, available=2), available=2) == 1  # one thread per cell
    assert threads.default_jobs(1, available=8) == 1  # a lone cell: one worker (8 threads only with M6BENCH_THREADS=all)
    assert threads.threads_per_cell(threads.default_jobs(1, available=8), available=8, cap=0) == 8
    assert threads.default_jobs(3, available=8) == 3
    assert threads.default_jobs(0, available=2) == 1
    assert threads.default_jobs(12) == min(12, threads.cores())
    monkeypatch.setenv(IN_PROCESS_ENV, "1")  # cells in this process: one at a time
    assert threads.default_jobs(12, available=2) == 1


def test_longest_cells_go_first_unknown_ones_before_them(ml100k):
    cells = [CellSpec(dataset="ml-100k", model=m, seed=s) for m in ("Pop", "M6-Fusion", "BPR", "NoPriorModel")
             for s in (2020, 2021)]
    seconds = estimate_suite(cells).seconds
    order = longest_first(cells)
    assert sorted(order) == list(range(len(cells)))
    assert [cells[i].model for i in order[:2]] == ["NoPriorModel"] * 2  # no estimate: treated as longest
    known = [seconds[i] for i in order[2:]]
    assert known == sorted(known, reverse=True) and None not in known
    assert cells[order[2]].model == "M6-Fusion" and cells[order[-1]].model == "Pop"
    assert [cells[i].seed for i in order[:2]] == [2020, 2021]  # ties keep plan order
