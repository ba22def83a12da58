"""Faults: a run killed mid-suite (kill -9, Ctrl-C) and resumed, concurrent writers, failure isolation.

The kill and concurrency tests drive real ``m6bench run`` processes on the 150-user ml-100k slice.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.engine import cell as cell_mod
from m6rec_bench.io import atomic_write_text, sweep_stale_parts
from m6rec_bench.leaderboard import aggregate, write
from m6rec_bench.results import Record
from m6rec_bench.results.store import RecordStore, load_record

runner = CliRunner()


def _m6bench(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """Start ``python -m m6rec_bench <args>`` as a real process (Ctrl-C raises KeyboardInterrupt in it)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "m6rec_bench", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even when started in the background
    )


def _files(root: Path, pattern: str) -> list[Path]:
    """The files under ``root`` matching ``pattern``, while a running m6bench may rename folders
    under it (an artifact's ``.part`` folder becoming the artifact): ``os.walk`` skips a folder that
    vanished mid-walk where ``Path.rglob`` raises FileNotFoundError."""
    return sorted(Path(d) / f for d, _, names in os.walk(root) for f in fnmatch.filter(names, pattern))


def _records(runs: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in _files(runs, "seed*.json")}


def _wait_for_records(proc: subprocess.Popen[str], runs: Path, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(_records(runs)) < n:
        if proc.poll() is not None:
            pytest.fail(f"m6bench ended (rc {proc.returncode}) before writing {n} records:\n{proc.communicate()[0]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {n} records after {timeout}s:\n{proc.communicate()[0]}")
        time.sleep(0.05)


def _parts(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*.part")]  # after the run: nothing moves


def _board_rows(board: Path) -> tuple[set[str], set[str], set[str], set[str]]:
    """Row labels of leaderboard.json / .csv / .md and the cell ids of the published records."""
    data = json.loads((board / "leaderboard.json").read_text())
    js = {r["label"] for r in data["rows"]}
    cs = {r["label"] for r in csv.DictReader(io.StringIO((board / "leaderboard.csv").read_text()))}
    md_lines = (board / "leaderboard.md").read_text().splitlines()
    md = {line.split("|")[2].strip() for line in md_lines if line.startswith("| ") and not line.startswith("| #")}
    cids = {cid for r in data["rows"] for cid in r["reproduce"]["cell_ids"]}
    assert {p.stem for p in (board / "records").glob("*.json")} == cids
    return js, cs, md, cids


def test_kill_9_mid_suite_then_resume(ml100k_slice, tmp_path):
    runs, lb = tmp_path / "runs", tmp_path / "lb"
    args = ["run", "-d", str(ml100k_slice.folder), "-m", "Pop,ItemKNN,BPR", "--epochs", "5",
            "--runs-dir", str(runs), "--out", str(lb)]
    proc = _m6bench(args, tmp_path)
    _wait_for_records(proc, runs, 2)  # Pop and ItemKNN are done; BPR is loading or training now
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    finished = _records(runs)
    recs = {p: load_record(p) for p in finished}
    assert all(r is not None and r.status == "ok" for r in recs.values()), finished
    assert sorted(r.model for r in recs.values()) == ["ItemKNN", "Pop"]  # BPR was cut off mid-cell
    for path in runs.rglob("*.json"):  # every final file is whole
        json.loads(path.read_text())
    # a kill inside an atomic write leaves its temporary file behind: the next run sweeps it away
    board = lb / ml100k_slice.name / "default"
    stale = [next(iter(finished)).with_name(f".seed2020-x.json.{proc.pid}.abcd1234.part"),
             board / f".leaderboard.json.{proc.pid}.abcd1234.part"]
    for part in stale:
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text('{"half": ')

    res = runner.invoke(app, args)  # the very same command
    assert res.exit_code == 0, res.output
    assert "3 cells: 3 finished (2 reused), 0 failed" in res.output
    after = _records(runs)
    assert {p: after[p] for p in finished} == finished  # finished records untouched
    assert sorted(load_record(p).model for p in after) == ["BPR", "ItemKNN", "Pop"]
    js, cs, md, _ = _board_rows(board)
    assert js == cs == md == {"Pop", "ItemKNN", "BPR"}
    assert all(r["status"] == "ok" for r in json.loads((board / "leaderboard.json").read_text())["rows"])
    assert _parts(runs, lb) == []


def test_ctrl_c_exits_130_without_traceback_and_keeps_records(ml100k_slice, tmp_path):
    runs = tmp_path / "runs"
    proc = _m6bench(["run", "-d", str(ml100k_slice.folder), "-m", "Pop,BPR", "--epochs", "5",
                     "--runs-dir", str(runs), "--out", str(tmp_path / "lb")], tmp_path)
    _wait_for_records(proc, runs, 1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "run the same command again to resume" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    [rec] = [load_record(p) for p in _records(runs)]
    assert rec is not None and rec.model == "Pop" and rec.status == "ok"
    assert _parts(runs) == []


# slow (two whole m6bench processes, ~15 s on 2 quiet cores): the default suite checks the same merge under the
# board lock with forked writers (test_concurrent_leaderboard_writers_never_corrupt_it here, and
# tests/test_board_merge.py::test_two_suites_writing_one_board_at_once_end_with_both); only this test runs two real
# `m6bench run` processes sharing one runs dir end to end.
@pytest.mark.slow
def test_two_runs_write_one_leaderboard_concurrently(ml100k_slice, tmp_path):
    runs, lb = tmp_path / "runs", tmp_path / "lb"
    common = ["run", "-d", str(ml100k_slice.folder), "--runs-dir", str(runs), "--out", str(lb)]
    procs = [_m6bench([*common, "-m", models], tmp_path) for models in ("Pop", "ItemKNN,Pop")]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs

    js, cs, md, cids = _board_rows(lb / ml100k_slice.name / "default")
    assert js == cs == md  # the three formats come from one writer (the last), never a mix
    assert js == {"ItemKNN", "Pop"}  # each run merges its rows into the board under its lock: both runs' rows
    store = RecordStore(runs)
    assert all(store.find(cid) is not None for cid in cids)
    assert sorted(r.model for r in store.records()) == ["ItemKNN", "Pop"]  # Pop: one cell, one file
    assert _parts(runs, lb) == []


def _rec(label: str, seed: int, ndcg: float) -> Record:
    return Record(cell_id=f"{label}-{seed}", status="ok", dataset="d", dataset_checksum="sha256:abc",
                  protocol="default", model=label, label=label, model_kind="baseline", family="recbole",
                  seed=seed, config={}, test={"ndcg@10": ndcg}, valid={"ndcg@10": ndcg})


def _write_many(out: str, labels: list[str], n: int) -> None:
    recs = [_rec(label, 2020, 0.1 + i / 10) for i, label in enumerate(labels)]
    [board] = aggregate(recs)
    for _ in range(n):
        write(board, Path(out), recs)


def test_concurrent_leaderboard_writers_never_corrupt_it(tmp_path):
    """Processes hammering one leaderboard: a reader always parses it; at the end all formats agree on every row."""
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_many, args=(str(tmp_path), labels, 25))
               for labels in (["A", "B", "C"], ["X", "Y"], ["A", "Y"])]
    for w in writers:
        w.start()
    board, reads = tmp_path / "d" / "default", 0
    while any(w.is_alive() for w in writers):
        path = board / "leaderboard.json"
        if path.exists():
            json.loads(path.read_text())  # never half a file
            reads += 1
        time.sleep(0.002)
    for w in writers:
        w.join()
        assert w.exitcode == 0
    js, cs, md, _ = _board_rows(board)
    assert js == cs == md == {"A", "B", "C", "X", "Y"}  # a board is the union of what every writer added
    assert _parts(tmp_path) == []
    assert reads > 0


def test_sweep_removes_only_parts_of_dead_writers(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        mine = tmp_path / f".a.json.{live.pid}.abcdefgh.part"
        gone = tmp_path / "sub" / f".b.json.{dead.pid}.abcdefgh.part"
        for p in (mine, gone):
            p.parent.mkdir(exist_ok=True)
            p.write_text("x")
        keep = tmp_path / "c.json"
        atomic_write_text(keep, "{}")
        assert sweep_stale_parts(tmp_path) == [gone]
        assert mine.exists() and keep.read_text() == "{}"
    finally:
        live.kill()
        live.wait()


def test_failing_model_is_a_failed_row_and_exit_1(ml100k_slice, tmp_path):
    cfg = tmp_path / "suite.yaml"
    cfg.write_text("models: [Pop, NeuMF]\noverrides:\n  NeuMF: {dropout_prob: 2.0}\n")  # well typed: fails at run time
    res = runner.invoke(app, ["run", "-c", str(cfg), "-d", str(ml100k_slice.folder), "--epochs", "1",
                              "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 1, res.output
    assert "2 cells: 1 finished (0 reused), 1 failed" in res.output
    assert "✗ NeuMF seed 2020: " in res.output and "Traceback" not in res.output
    data = json.loads((tmp_path / "lb" / ml100k_slice.name / "default" / "leaderboard.json").read_text())
    rows = {r["label"]: r for r in data["rows"]}
    assert rows["Pop"]["status"] == "ok" and rows["Pop"]["test"]["ndcg@10"]["mean"] > 0
    assert rows["NeuMF"]["status"] == "failed" and rows["NeuMF"]["reason"]
    assert "failed: " in (tmp_path / "lb" / ml100k_slice.name / "default" / "leaderboard.md").read_text()


def test_out_of_memory_is_a_failed_row_and_the_suite_goes_on(ml100k_slice, tmp_path, monkeypatch):
    real = cell_mod.train_and_evaluate

    def oom_for_bpr(entry, *args, **kwargs):
        if entry.name == "BPR":
            raise MemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(cell_mod, "train_and_evaluate", oom_for_bpr)
    res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "BPR,Pop", "--epochs", "1",
                              "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 1, res.output
    assert "BPR seed 2020: MemoryError: CUDA out of memory" in res.output
    assert "2 cells: 1 finished (0 reused), 1 failed" in res.output
    statuses = {r.model: r.status for r in RecordStore(tmp_path / "runs").records()}
    assert statuses == {"BPR": "failed", "Pop": "ok"}


# slow (a parent and two worker processes, ~20 s on 2 quiet cores): the default suite checks Ctrl-C with --jobs 1
# (test_ctrl_c_exits_130_without_traceback_and_keeps_records), SIGTERM stopping the worker and a SIGKILLed parent's
# --jobs 2 workers dying (tests/test_containment.py); only this test sends Ctrl-C to a --jobs 2 run.
@pytest.mark.slow
def test_ctrl_c_with_jobs_stops_the_workers_too(ml100k_slice, tmp_path):
    psutil = pytest.importorskip("psutil")
    runs = tmp_path / "runs"
    proc = _m6bench(["run", "-d", str(ml100k_slice.folder), "-m", "Pop,BPR,NeuMF", "--seeds", "3", "--epochs", "300",
                     "--jobs", "2", "--runs-dir", str(runs), "--out", str(tmp_path / "lb")], tmp_path)
    _wait_for_records(proc, runs, 1)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "a --jobs 2 run has worker processes"
    proc.send_signal(signal.SIGINT)  # to the parent only, as `kill -INT` does
    t0 = time.monotonic()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert time.monotonic() - t0 < 20, "it waited for the running cells instead of stopping them"
    assert "Traceback" not in out
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"worker processes left behind: {alive}"
    assert all(load_record(p) is not None for p in _records(runs))
    assert _parts(runs) == []
