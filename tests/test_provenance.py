"""Provenance and cost (issues #16, #19): which code ran, what a trained model cost, under which load
and thread policy — in every record, in the cell id, and on the board."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from m6rec_bench.engine import cell, environment, threads
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.errors import UsageError
from m6rec_bench.leaderboard import aggregate
from m6rec_bench.leaderboard.writers import to_csv, to_markdown
from m6rec_bench.models import registry
from m6rec_bench.results import Record
from m6rec_bench.results.record import RunConditions
from m6rec_bench.results.store import RecordStore


def _pop(ds, seed=2020):
    return CellSpec(dataset=str(ds.folder), model="Pop", epochs=1, seed=seed)


def test_code_identity_and_conditions_in_every_record_and_code_in_the_cell_id(ml100k_slice, tmp_path, monkeypatch):
    import torch

    store = RecordStore(tmp_path / "runs")
    rec = run_cell(_pop(ml100k_slice), store=store, prepared=ml100k_slice, save_artifact=False)
    assert rec.status == "ok"
    assert rec.code == cell.code_of(registry.get("Pop")) and rec.code.startswith(("git:", "src:"))
    c = rec.conditions
    assert c is not None and c.load_start is not None and c.load_end is not None
    assert c.torch_threads == torch.get_num_threads() and c.parallel_cells == 1 and c.cores == threads.cores()
    assert c.omp_wait_policy
    assert rec.setup_time_s is not None and rec.setup_time_s >= 0
    # the same cell run by other code: another id, so resume does not reuse the record
    assert cell.finished_record(_pop(ml100k_slice), store, ml100k_slice).cell_id == rec.cell_id  # same code: reused
    monkeypatch.setattr(environment, "code_identity", lambda *folders: "git:0123456789ab+dirty.feedfacecafe")
    other = run_cell(_pop(ml100k_slice), store=store, prepared=ml100k_slice, save_artifact=False)
    assert other.cell_id != rec.cell_id and not other.reused
    assert other.code == "git:0123456789ab+dirty.feedfacecafe"


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


def _identity(*folders):
    environment._code_identity.cache_clear()
    return environment.code_identity(*folders)


def test_code_identity_is_the_commit_plus_a_hash_of_uncommitted_changes_or_a_source_hash(tmp_path):
    repo, pkg = tmp_path / "repo", tmp_path / "repo" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("X = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert _identity(pkg) == f"git:{head[:12]}"
    (pkg / "mod.py").write_text("X = 2\n")
    dirty = _identity(pkg)
    assert dirty.startswith(f"git:{head[:12]}+dirty.")
    (pkg / "mod.py").write_text("X = 3\n")
    assert _identity(pkg) not in (dirty, f"git:{head[:12]}")  # another change, another identity
    (pkg / "mod.py").write_text("X = 1\n")
    (pkg / "new.py").write_text("Y = 1\n")  # an untracked module counts too
    assert _identity(pkg).startswith(f"git:{head[:12]}+dirty.")
    (repo / "elsewhere.txt").write_text("outside the package")
    (pkg / "new.py").unlink()
    assert _identity(pkg) == f"git:{head[:12]}"  # changes outside the package folders do not count

    wheel = tmp_path / "site-packages" / "plug"  # not in a git checkout: a hash of its files
    wheel.mkdir(parents=True)
    (wheel / "__init__.py").write_text("A = 1\n")
    (wheel / "__pycache__").mkdir()
    (wheel / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    first = _identity(wheel)
    assert first.startswith("src:")
    (wheel / "__pycache__" / "x.pyc").write_bytes(b"recompiled")
    assert _identity(wheel) == first
    (wheel / "__init__.py").write_text("A = 2\n")
    assert _identity(wheel) != first
    single = tmp_path / "site-packages" / "single.py"  # a one-module plugin: that file, not site-packages
    single.write_text("B = 1\n")
    assert _identity(single).startswith("src:") and _identity(single) != _identity(single.parent)
    # a core in a checkout with a plugin from a wheel: both named
    both = _identity(pkg, wheel)
    assert both.startswith(f"git:{head[:12]} plug=src:")


def test_code_identity_is_computed_once_per_process(monkeypatch):
    calls = []
    real = environment._git

    def counting(*args):
        calls.append(args)
        return real(*args)

    environment._code_identity.cache_clear()
    monkeypatch.setattr(environment, "_git", counting)
    core = environment.package_folder("m6rec_bench")
    first = environment.code_identity(core)
    n = len(calls)
    assert all(environment.code_identity(core) == first for _ in range(20)) and len(calls) == n


def test_setup_time_includes_a_plugins_encoding(ml100k_slice, fusion_content, tmp_path, monkeypatch):
    """Text-Tower encodes item texts while it is constructed, before the trainer's clock starts."""
    import m6rec_plugins.text as text

    encode = text.item_text_embeddings  # the fixture's cheap stand-in

    def slow_encoder(config, dataset):
        time.sleep(0.6)
        return encode(config, dataset)

    monkeypatch.setattr(text, "item_text_embeddings", slow_encoder)
    spec = CellSpec(dataset=str(ml100k_slice.folder), model="Text-Tower", epochs=1)
    rec = run_cell(spec, store=RecordStore(tmp_path / "runs"), prepared=ml100k_slice, save_artifact=False)
    assert rec.status == "ok", rec.reason
    assert rec.setup_time_s >= 0.6 and rec.train_time_s is not None
    assert rec.n_buffers and rec.n_buffers >= 384  # the text vectors it holds, not learned
    assert rec.n_trainable_params and rec.n_trainable_params <= rec.n_params
    [lb] = aggregate([rec])
    row = lb.rows[0]
    assert row.cost["cost_time_s"].mean == pytest.approx(rec.setup_time_s + rec.train_time_s)
    assert f"| {row.cost['cost_time_s'].mean:.1f} |" in to_markdown(lb)  # Train s: set-up + training


def _probe() -> tuple[dict, str | None]:
    """What a cell in a worker records of the thread policy (run_cell calls the same function)."""
    return threads.conditions(), os.environ.get("OMP_WAIT_POLICY")


def test_jobs_2_workers_get_the_passive_wait_policy_and_share_the_cores(monkeypatch):
    """The pool of ``--jobs 2``: spawned workers start with OMP_WAIT_POLICY=PASSIVE in their environment
    (so their OpenMP runtime loads with it), know they are one of 2 cells, and get cores // 2 threads."""
    from m6rec_bench.engine.executors import open_pool

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # as a user who never heard of it
    with open_pool("local", jobs=2) as pool:
        assert pool.threads == threads.threads_per_cell(2)
        conditions, env = pool.executor.submit(_in_slot, pool.threads).result(timeout=300)
    assert env == "PASSIVE" and conditions["omp_wait_policy"] == "PASSIVE"
    assert conditions["parallel_cells"] == 2 and conditions["torch_threads"] == threads.threads_per_cell(2)


def _in_slot(n: int) -> tuple[dict, str | None]:
    from m6rec_bench.engine.executors import task_slot

    with task_slot(n):
        return _probe()


def test_threads_per_cell_never_oversubscribes():
    assert threads.threads_per_cell(1, available=8, cap=0) == 8
    assert threads.threads_per_cell(2, available=8, cap=0) == 4
    assert threads.threads_per_cell(3, available=8, cap=0) == 2
    assert threads.threads_per_cell(4, available=2, cap=0) == 1  # more cells than cores: one thread each
    assert threads.threads_per_cell(1, available=8, cap=3) == 3


def test_one_thread_per_cell_unless_m6bench_threads_asks(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    assert threads.threads_per_cell(1, available=8) == 1  # 2 passive threads trained slower than 1 here
    monkeypatch.setenv(threads.THREADS_ENV, "all")
    assert threads.threads_per_cell(1, available=8) == 8 and threads.threads_per_cell(2, available=8) == 4
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    assert threads.threads_per_cell(1, available=8) == 2 and threads.threads_per_cell(8, available=8) == 1
    monkeypatch.setenv(threads.THREADS_ENV, "many")
    with pytest.raises(UsageError, match="M6BENCH_THREADS='many' is not a thread count"):
        threads.threads_per_cell(1, available=8)
    assert threads.cores() == len(os.sched_getaffinity(0))


def _rec(label, seed, load, threads_, setup=None, train=2.0):
    cond = RunConditions(load_start=load, load_end=load, cores=2, torch_threads=threads_, omp_wait_policy="PASSIVE",
                         parallel_cells=1) if load is not None else None
    return Record(cell_id=f"{label}-{seed}", status="ok", dataset="d", dataset_checksum="sha256:abc", protocol="default",
                  model=label, label=label, model_kind="baseline", family="recbole", seed=seed, config={"epochs": 1},
                  test={"ndcg@10": 0.1}, valid={"ndcg@10": 0.1}, train_time_s=train, setup_time_s=setup, n_params=10,
                  conditions=cond)


def test_board_says_when_rows_were_timed_under_different_conditions():
    [same] = aggregate([_rec("BPR", 2020, 1.0, 1), _rec("Pop", 2020, 1.5, 1)])
    assert same.settings["timing"]["differs"] == []
    md = to_markdown(same)
    assert "*Timed at*: machine load 1–1.5; torch threads per cell: 1; OMP_WAIT_POLICY: PASSIVE; cells at once: 1." in md
    [apart] = aggregate([_rec("BPR", 2020, 0.5, 1), _rec("Pop", 2020, 3.0, 2)])
    assert apart.settings["timing"]["differs"] == ["load", "torch_threads"]
    assert "*Timed under different conditions* (load more than 2× apart, thread counts)" in to_markdown(apart)
    [mixed] = aggregate([_rec("BPR", 2020, 1.0, 1), _rec("Pop", 2020, None, 1)])  # a record from before #19
    assert "1 cell(s) recorded no conditions" in to_markdown(mixed)
    [old] = aggregate([_rec("BPR", 2020, None, 1)])
    assert "timing" not in old.settings and "Timed" not in to_markdown(old)  # old boards read as they did


def test_train_cost_is_set_up_plus_training_and_old_records_keep_their_time():
    [lb] = aggregate([_rec("KG", 2020, 1.0, 1, setup=5.0, train=2.0), _rec("BPR", 2020, 1.0, 1, setup=None, train=3.0)])
    by = {r.label: r for r in lb.rows}
    assert by["KG"].cost["cost_time_s"].mean == 7.0 and by["KG"].cost["setup_time_s"].mean == 5.0
    assert by["BPR"].cost["cost_time_s"].mean == 3.0 and "setup_time_s" not in by["BPR"].cost
    csv_text = to_csv(lb)
    assert "setup_time_s_mean,cost_time_s_mean,n_trainable_params,n_buffers" in csv_text.splitlines()[0]


def test_old_records_still_load():
    """A record written before schema 3 (no code, set-up time or conditions) is read as it was."""
    data = _rec("BPR", 2020, None, 1).model_dump(mode="json")
    for key in ("code", "conditions", "setup_time_s", "n_trainable_params", "n_buffers"):
        data.pop(key)
    data["schema_version"] = 2
    rec = Record.model_validate(data)
    assert rec.code is None and rec.conditions is None and rec.setup_time_s is None
