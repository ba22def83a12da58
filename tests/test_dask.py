"""``--executor dask``: a suite's cells on a real Dask cluster (two worker processes on this machine).

The records must equal the sequential run's, resume must reuse them, a failing model must be a
failed record while the rest finishes, and bad scheduler settings must be one-line errors.
"""

from __future__ import annotations

import socket
import sys

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.engine import executors
from m6rec_bench.results.store import RecordStore

distributed = pytest.importorskip("distributed", reason='Dask distributed is not installed (pip install "m6rec-bench[dask]")')

runner = CliRunner()
FAILING = "overrides:\n  NeuMF: {dropout_prob: 2.0}\n"  # well typed: NeuMF fails at run time, not at validation


@pytest.fixture(scope="module")
def scheduler(m6home):
    """A LocalCluster of two single-threaded worker processes; yields the scheduler address."""
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, env={"M6BENCH_HOME": str(m6home)}) as cluster:
        yield cluster.scheduler_address


def _records(runs):
    return {r.label: r for r in RecordStore(runs).records()}


def _run(*args):
    return runner.invoke(app, ["run", "--epochs", "2", "--seeds", "1", *args])


def test_dask_records_equal_sequential_resume_and_failure(ml100k_slice, scheduler, tmp_path):
    data = ["-d", str(ml100k_slice.folder)]
    seq = _run(*data, "-m", "Pop,BPR", "--runs-dir", str(tmp_path / "seq"), "--out", str(tmp_path / "lb-seq"))
    assert seq.exit_code == 0, seq.output

    suite = tmp_path / "suite.yaml"
    suite.write_text(FAILING)
    dask_args = [*data, "-c", str(suite), "-m", "Pop,BPR,NeuMF", "--executor", "dask", "--scheduler", scheduler,
                 "--runs-dir", str(tmp_path / "dask"), "--out", str(tmp_path / "lb-dask")]
    res = _run(*dask_args)
    assert res.exit_code == 1, res.output  # NeuMF failed, the others finished
    assert "3 cells: 2 finished (0 reused), 1 failed" in res.output and "Traceback" not in res.output

    want, got = _records(tmp_path / "seq"), _records(tmp_path / "dask")
    assert got["NeuMF"].status == "failed" and got["NeuMF"].reason
    for label in ("Pop", "BPR"):
        assert got[label].status == "ok"
        assert got[label].cell_id == want[label].cell_id
        assert got[label].test == want[label].test and got[label].valid == want[label].valid, label
        assert got[label].per_user == want[label].per_user, label
    assert (tmp_path / "lb-dask" / ml100k_slice.name / "default" / "leaderboard.md").is_file()

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "dask").rglob("seed*.json")}
    again = _run(*dask_args)
    assert again.exit_code == 1, again.output
    assert "3 cells: 2 finished (2 reused), 1 failed" in again.output
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "dask").rglob("seed*.json")}
    ok = [p for p in before if "NeuMF" not in str(p)]
    assert len(ok) == 2 and all(after[p] == before[p] for p in ok)  # reused, not rewritten


def test_dask_without_shared_runs_dir_client_stores_records(ml100k_slice, scheduler, tmp_path, monkeypatch):
    """A worker that cannot see --runs-dir returns its record and the client stores it."""
    from m6rec_bench.engine import suite as suite_mod

    real = suite_mod._cell_job

    def elsewhere(spec, runs_dir, *args):  # as on a worker where the runs directory does not exist
        return real(spec, runs_dir / "not-shared", *args)

    monkeypatch.setattr(suite_mod, "_cell_job", elsewhere)
    res = _run("-d", str(ml100k_slice.folder), "-m", "Pop", "--executor", "dask", "--scheduler", scheduler,
               "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb"))
    assert res.exit_code == 0, res.output
    assert _records(tmp_path / "runs")["Pop"].status == "ok"
    assert not (tmp_path / "runs" / "not-shared").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_exit_1(ml100k_slice, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    res = _run("-d", str(ml100k_slice.folder), "-m", "Pop", "--executor", "dask", "--scheduler", address,
               "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb"))
    assert res.exit_code == 1, res.output
    assert f"cannot reach the Dask scheduler at {address}" in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)


def test_dask_without_scheduler_is_a_usage_error(tmp_path):
    res = _run("-m", "Pop", "--executor", "dask", "--runs-dir", str(tmp_path / "runs"))
    assert res.exit_code == 2, res.output
    assert "--executor dask needs --scheduler tcp://HOST:PORT" in res.output and "Traceback" not in res.output


def test_dask_not_installed_says_which_extra(ml100k_slice, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    res = _run("-d", str(ml100k_slice.folder), "-m", "Pop", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1",
               "--runs-dir", str(tmp_path / "runs"))
    assert res.exit_code == 2, res.output
    assert 'pip install "m6rec-bench[dask]"' in res.output
