"""The cell runner on real data: agreement with raw RecBole, resume, failure isolation, skipping."""

from __future__ import annotations

import pytest

from m6rec_bench.datasets import DatasetFeatures, PreparedDataset
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell
from m6rec_bench.errors import UsageError
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.results import RecordStore
from raw_recbole import raw_recbole


def test_bpr_matches_raw_recbole_on_a_slice(ml100k_slice):
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=8)
    rec = run_cell(spec, prepared=ml100k_slice, command="test")
    assert rec.status == "ok", rec.reason
    config = build_config_dict(spec, registry.get("BPR"), get_protocol("default"), ml100k_slice, {})
    raw = raw_recbole(ml100k_slice, "BPR", config)
    assert rec.test == pytest.approx(raw, abs=1e-12)
    assert set(rec.test) >= {"ndcg@10", "recall@20", "mrr@10", "hit@10", "precision@20"}
    assert rec.best_epoch is not None and rec.epochs_run <= 8 and rec.n_params > 0
    assert rec.peak_mem_mb > 0 and rec.train_time_s > 0
    assert rec.resolved_config["valid_metric"] == "NDCG@10"
    # per-user test metrics are kept and average to RecBole's own numbers
    users, ndcg = rec.per_user["users"], rec.per_user["ndcg@10"]
    assert len(users) == len(set(users)) == len(ndcg) > 100
    assert round(sum(ndcg) / len(ndcg), 4) == pytest.approx(rec.test["ndcg@10"], abs=1e-4)


def test_resume_reuses_finished_cells_and_seed_changes_identity(ml100k_slice, tmp_path):
    store = RecordStore(tmp_path)
    spec = CellSpec(dataset=ml100k_slice.name, model="Pop")
    first = run_cell(spec, store=store, prepared=ml100k_slice, command="t")
    again = run_cell(spec, store=store, prepared=ml100k_slice, command="t")
    assert again.reused and not first.reused and again.cell_id == first.cell_id
    other = run_cell(spec.model_copy(update={"seed": 7}), store=store, prepared=ml100k_slice, command="t")
    assert other.cell_id != first.cell_id and not other.reused
    forced = run_cell(spec, store=store, resume=False, prepared=ml100k_slice, command="t")
    assert not forced.reused
    assert len(list(store.records())) == 2


def test_a_failing_model_becomes_a_failed_record(ml100k_slice, tmp_path):
    store = RecordStore(tmp_path)
    # NeuMF with a dropout rate torch refuses (well-typed, so it passes the allow-list): RecBole raises inside the model.
    spec = CellSpec(dataset=ml100k_slice.name, model="NeuMF", epochs=1, overrides={"dropout_prob": 2.0})
    rec = run_cell(spec, store=store, prepared=ml100k_slice, command="t")
    assert rec.status == "failed" and rec.reason
    assert store.find(rec.cell_id).status == "failed"
    # a failed cell is retried, not reused
    assert not run_cell(spec, store=store, prepared=ml100k_slice, command="t").reused


def test_plugin_needing_kg_is_skipped_on_a_dataset_without_one(ml100k_slice, tmp_path):
    kg_plugins = [e for e in registry.all_models() if e.kind == "plugin" and "kg" in e.needs]
    if not kg_plugins:
        pytest.skip("no installed plugin needs a KG")
    no_kg = PreparedDataset(ml100k_slice.name, ml100k_slice.root, ml100k_slice.checksum,
                            DatasetFeatures(item_text=ml100k_slice.features.item_text, kg=False))
    rec = run_cell(CellSpec(dataset=no_kg.name, model=kg_plugins[0].name), prepared=no_kg, command="t")
    assert rec.status == "skipped" and "kg" in rec.reason


def test_bad_input_is_refused_before_running(ml100k_slice):
    with pytest.raises(UsageError, match="did you mean 'BPR'"):
        run_cell(CellSpec(dataset="x", model="BRP"), prepared=ml100k_slice)
    with pytest.raises(UsageError, match="protocol 'nope'"):
        run_cell(CellSpec(dataset="x", model="BPR", protocol="nope"), prepared=ml100k_slice)
    with pytest.raises(UsageError, match="device"):
        run_cell(CellSpec(dataset="x", model="BPR", device="tpu"), prepared=ml100k_slice)
