"""Tuning: seeded TPE studies that resume, are shared by workers, prune, and feed ``run``.

Everything runs on the 150-user slice with 1–2 epochs and 1–4 trials; ``eval_batch_size`` is fixed
large so a validation is one batch (the only reason these trials take about a second each).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.engine.cell import CellSpec, build_config_dict
from m6rec_bench.errors import M6BenchError, UsageError
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.tuning import (
    TuningListener,
    default_storage_path,
    open_storage,
    search_space,
    tune,
)
from m6rec_bench.tuning.spaces import LEARNING_RATES, NOTHING_TO_TUNE

runner = CliRunner()
FAST = {"eval_batch_size": 1_000_000}


def _study(result, storage=None):
    return optuna.load_study(study_name=result.study_name, storage=storage or open_storage(result.storage).backend)


def _states(study) -> list[TrialState]:
    return [t.state for t in study.get_trials(deepcopy=False)]


class _InterruptAt(TuningListener):
    """Simulates Ctrl-C during a given trial's first epoch."""

    def __init__(self, number: int) -> None:
        self.number = number

    def trial_epoch(self, model: str, number: int, epoch: int, score: float) -> None:
        if number == self.number:
            raise KeyboardInterrupt


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_every_search_space_gives_a_valid_config(ml100k_slice):
    """Each baseline and plugin space samples settings the cell accepts (pydantic for plugins)."""
    proto = get_protocol("default")
    for entry in registry.all_models():
        space = search_space(entry)
        if entry.name in NOTHING_TO_TUNE:
            assert space is None
            continue
        assert space is not None, entry.name
        params = space(optuna.create_study().ask())
        spec = CellSpec(dataset=ml100k_slice.name, model=entry.name, overrides=params)
        config = build_config_dict(spec, entry, proto, ml100k_slice, {})
        assert all(config[k] == v or entry.plugin is not None for k, v in params.items()), entry.name


def test_trials_complete_then_resume_after_interrupt(ml100k_slice, tmp_path):
    settings = dict(epochs=1, overrides=FAST, runs_dir=tmp_path)
    # trial 0 completes, trial 1 is interrupted (Ctrl-C): recorded FAIL, the error propagates
    with pytest.raises(KeyboardInterrupt):
        tune("BPR", ml100k_slice, n_trials=2, listener=_InterruptAt(1), **settings)
    journal = default_storage_path(tmp_path)
    assert journal.is_file()

    # the same call again runs only what is missing: one trial, the failed one does not count
    res = tune("BPR", ml100k_slice, n_trials=2, **settings)
    assert res.ran == [2] and res.n_complete == 2 and res.n_failed == 1
    assert _states(_study(res)) == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert res.best_params["learning_rate"] in LEARNING_RATES
    assert res.best_params["embedding_size"] in (32, 64, 128)
    assert "eval_batch_size" not in res.best_params  # fixed settings are not tuned
    assert res.best_value is not None and 0.0 <= res.best_value <= 1.0

    # a bigger budget on the same journal: exactly one more trial
    more = tune("BPR", ml100k_slice, n_trials=3, **settings)
    assert more.ran == [3] and more.n_trials == 3 and more.study_name == res.study_name
    # and a budget already reached runs nothing
    assert tune("BPR", ml100k_slice, n_trials=3, **settings).ran == []


def test_pruned_trial_is_recorded_as_pruned(ml100k_slice, tmp_path):
    # trial 0 runs the defaults and is never pruned; trial 1 is
    res = tune("BPR", ml100k_slice, n_trials=2, epochs=2, overrides=FAST, runs_dir=tmp_path, pruner=_AlwaysPrune())
    assert res.n_pruned == 1 and res.n_complete == 1 and res.n_failed == 0 and res.best_trial == 0
    default, trial = _study(res).get_trials()
    assert default.state == TrialState.COMPLETE
    assert trial.state == TrialState.PRUNED and trial.last_step == 0  # stopped after the first validation
    # a pruned trial counts toward the budget
    assert tune("BPR", ml100k_slice, n_trials=2, epochs=2, overrides=FAST, runs_dir=tmp_path).ran == []


class _Rendezvous(TuningListener):
    """Holds this worker's first trial until the other worker has started one too (both busy at once)."""

    def __init__(self, me: Path, other: Path, alive=lambda: True) -> None:
        self.me, self.other, self.alive, self.met = me, other, alive, False

    def trial_started(self, model: str, number: int, index: int, total: int) -> None:
        if self.met:
            return
        self.me.write_text(str(number))
        deadline = time.monotonic() + 150
        while not self.other.exists():
            if not self.alive() or time.monotonic() > deadline:
                pytest.fail("the other worker never started a trial")
            time.sleep(0.02)
        self.met = True


def test_two_local_workers_share_one_study(ml100k_slice, tmp_path):
    """A worker process and this test process tune the same study on one journal file at once."""
    a, b = tmp_path / "a.started", tmp_path / "b.started"
    settings = dict(n_trials=4, epochs=1, overrides=FAST, runs_dir=str(tmp_path))
    script = textwrap.dedent(f"""
        import json, time
        from pathlib import Path
        from m6rec_bench.tuning import TuningListener, tune

        class Rendezvous(TuningListener):
            met = False
            def trial_started(self, model, number, index, total):
                if not self.met:
                    Path({str(b)!r}).write_text(str(number))
                    deadline = time.monotonic() + 150
                    while not Path({str(a)!r}).exists():
                        assert time.monotonic() < deadline, "the test process never started a trial"
                        time.sleep(0.02)
                    self.met = True

        res = tune("BPR", {str(ml100k_slice.folder)!r}, listener=Rendezvous(), **{settings!r})
        print(json.dumps({{"ran": res.ran, "study": res.study_name}}))
    """)
    env = {**os.environ, "M6BENCH_PLUGINS": "-"}  # BPR only: spare the worker importing every plugin
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        mine = tune("BPR", ml100k_slice, listener=_Rendezvous(a, b, alive=lambda: worker.poll() is None), **settings)
        out, err = worker.communicate(timeout=180)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-3000:]
    theirs = json.loads(out.strip().splitlines()[-1])

    assert theirs["study"] == mine.study_name
    ran = [set(mine.ran), set(theirs["ran"])]
    assert ran[0] and ran[1] and not ran[0] & ran[1]  # both worked, never on the same trial
    study = _study(mine)
    finished = {t.number for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert finished == ran[0] | ran[1] and 4 <= len(finished) <= 5
    assert {t.user_attrs["worker"]["pid"] for t in study.get_trials()} == {os.getpid(), worker.pid}


def test_cli_tune_prints_progress_best_trial_and_dashboard(ml100k_slice, tmp_path):
    args = ["tune", "-d", str(ml100k_slice.folder), "-m", "BPR", "--trials", "1", "--epochs", "1",
            "--set", "eval_batch_size=1000000", "--runs-dir", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    journal = default_storage_path(tmp_path)
    assert "trial 0: valid NDCG@10" in res.output and "best trial of BPR: #0" in res.output
    assert "learning_rate" in res.output and f"optuna-dashboard {journal}" in res.output
    again = runner.invoke(app, args)  # resumes: nothing missing
    assert again.exit_code == 0 and "1 of 1 trials finished" in again.output and "this run: 0" in again.output

    pop = runner.invoke(app, ["tune", "-d", str(ml100k_slice.folder), "-m", "Pop", "--runs-dir", str(tmp_path)])
    assert pop.exit_code == 0 and "Pop has no hyper-parameters to tune" in pop.output


@pytest.mark.parametrize("extra,message", [
    (["-m", "BRP"], "did you mean 'BPR'"),
    (["-m", "BPR", "--storage", "nosuchdb://x/y"], "unknown database kind 'nosuchdb'"),
    (["-m", "BPR", "--storage", "postgresql://u:secret@host:port/db"], "not a database URL"),
    (["-m", "BPR", "--set", "learning_rate"], "--set takes KEY=VALUE"),
])
def test_cli_tune_bad_input_exits_2(ml100k_slice, tmp_path, extra, message):
    res = runner.invoke(app, ["tune", "-d", str(ml100k_slice.folder), "--runs-dir", str(tmp_path), *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output and "secret" not in res.output


def test_unreachable_database_is_a_failure_not_a_traceback():
    port = _free_port()
    with pytest.raises(M6BenchError) as err:
        open_storage(f"postgresql://postgres:pw@127.0.0.1:{port}/optuna")
    assert not isinstance(err.value, UsageError) and "cannot reach" in str(err.value) and "pw" not in str(err.value)


def test_run_with_tune_budget_runs_the_tuned_config(ml100k_slice, tmp_path):
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(f"datasets: ['{ml100k_slice.folder}']\nmodels: [Pop, BPR]\nepochs: 1\n"
                   f"overrides: {{BPR: {{eval_batch_size: 1000000}}}}\n")
    runs, lb = tmp_path / "runs", tmp_path / "lb"
    res = runner.invoke(app, ["run", "--config", str(cfg), "--tune-budget", "2", "--runs-dir", str(runs), "-o", str(lb)])
    assert res.exit_code == 0, res.output
    assert "tuned BPR: 2/2 trials" in res.output

    studies = optuna.get_all_study_summaries(open_storage(None, runs).backend)
    assert [s.study_name.split(".")[0] for s in studies] == ["BPR"]  # Pop has nothing to tune
    study = optuna.load_study(study_name=studies[0].study_name, storage=open_storage(None, runs).backend)
    assert len(study.trials) == 2
    best = study.best_trial.user_attrs["overrides"]

    records = {json.loads(p.read_text())["model"]: json.loads(p.read_text()) for p in runs.rglob("seed*.json")}
    bpr, pop = records["BPR"]["config"], records["Pop"]["config"]
    assert {k: bpr[k] for k in best} == best and bpr["m6_tune_budget"] == 2
    assert bpr["eval_batch_size"] == 1_000_000
    assert pop["m6_tune_budget"] == 2 and pop["m6_tune_note"] == "nothing to tune"  # same budget, its defaults
    assert not (lb / ml100k_slice.name / "default").exists()  # tuned rows never share a board with untuned ones
    board = json.loads((lb / ml100k_slice.name / "default-tuned" / "leaderboard.json").read_text())
    rows = {r["label"]: r for r in board["rows"]}
    assert set(rows) == {"Pop", "BPR"} and board["variant"] == "tuned"
    assert {k: rows["BPR"]["reproduce"]["config"][k] for k in best} == best
    assert "--tune-budget 2" in rows["BPR"]["reproduce"]["command"]

    again = runner.invoke(app, ["run", "--config", str(cfg), "--tune-budget", "2", "--runs-dir", str(runs), "-o", str(lb)])
    assert again.exit_code == 0 and "2 reused" in again.output  # study and cells resume, nothing re-run
    assert len(optuna.load_study(study_name=study.study_name, storage=open_storage(None, runs).backend).trials) == 2


# ------------------------------------------------------------------------------------ PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 (Debian's postgresql package), as a SQLAlchemy URL."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres")) or [shutil.which("postgres") or ""]
    if not bins[-1] or not os.path.exists(bins[-1]):
        pytest.skip("no PostgreSQL server binary (apt-get install -y postgresql)")
    pytest.importorskip("psycopg", reason="PostgreSQL driver missing (pip install 'psycopg[binary]')")
    bindir = Path(bins[-1]).parent
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="m6pg-"))  # not under pytest's 0700 tmp: the server user must reach it
    if os.geteuid() == 0:  # postgres refuses to run as root
        runas = shutil.which("runuser")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        prefix = [runas, "-u", "postgres", "--"] if runas else ["su", "postgres", "-s", "/bin/sh", "-c"]
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()

    def cmd(*argv: str) -> list[str]:
        return [*prefix, " ".join(argv)] if prefix[:1] == ["su"] else [*prefix, *argv]

    subprocess.run(cmd(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                       "--no-sync"), check=True, capture_output=True)
    server = subprocess.Popen(cmd(str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                                  "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"PostgreSQL did not start: {server.stderr.read().decode()[-2000:] if server.stderr else ''}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_storage_is_shared_by_workers(ml100k_slice, tmp_path, postgres_url):
    settings = dict(epochs=1, overrides=FAST, storage=postgres_url, runs_dir=tmp_path)
    first = tune("BPR", ml100k_slice, n_trials=2, **settings)  # worker 1
    assert first.ran == [0, 1] and first.storage.startswith("postgresql://postgres@127.0.0.1")
    second = tune("BPR", ml100k_slice, n_trials=3, **settings)  # worker 2: its own connection, same study
    assert second.ran == [2] and second.study_name == first.study_name
    assert second.dashboard == f"optuna-dashboard {postgres_url}"
    study = optuna.load_study(study_name=first.study_name, storage=postgres_url)
    assert _states(study) == [TrialState.COMPLETE] * 3
    assert not default_storage_path(tmp_path).exists()  # nothing went to the local journal
