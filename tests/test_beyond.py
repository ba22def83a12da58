"""Beyond-accuracy metrics (m6rec_bench.beyond): hand-computed values, and every cell record has them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from m6rec_bench import beyond
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.evaluation import evaluate_groups
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.results.store import RecordStore


def _tiny() -> beyond.ItemStats:
    # users 1..3, items 1..4 (row / column 0: RecBole's padding); item 4 has no training interaction
    #        i1 i2 i3 i4
    # u1      1  1  .  .
    # u2      1  .  1  .
    # u3      1  .  .  .
    dense = np.zeros((4, 5))
    dense[1, [1, 2]] = dense[2, [1, 3]] = dense[3, 1] = 1
    return beyond.ItemStats.from_matrix(sp.csr_matrix(dense))


def test_hand_computed_values_on_a_tiny_matrix():
    stats = _tiny()
    log3 = math.log2(3)
    # p = (3/3, 1/3, 1/3, and 1/n for the unseen item 4)
    np.testing.assert_allclose(stats.novelty[1:], [0.0, log3, log3, log3])
    assert stats.max_novelty == pytest.approx(log3) and stats.n_items == 4
    cos = stats.cosine(np.array([1, 2, 3, 4]))
    np.testing.assert_allclose(cos, [[1, 1 / math.sqrt(3), 1 / math.sqrt(3), 0], [1 / math.sqrt(3), 1, 0, 0],
                                     [1 / math.sqrt(3), 0, 1, 0], [0, 0, 0, 0]], atol=1e-12)

    got = beyond.list_metrics(np.array([[1, 2], [2, 3]]), stats)
    assert got["coverage@2"] == pytest.approx(3 / 4)
    assert got["novelty@2"] == pytest.approx(((0 + log3) / 2 + log3) / 2)
    assert got["ild@2"] == pytest.approx(((1 - 1 / math.sqrt(3)) + 1.0) / 2)

    got = beyond.list_metrics(np.array([[1, 2, 4]]), stats)
    assert got["coverage@3"] == pytest.approx(3 / 4)
    assert got["novelty@3"] == pytest.approx(2 * log3 / 3)
    assert got["ild@3"] == pytest.approx((1 - 1 / math.sqrt(3) + 1 + 1) / 3)  # the unseen item is distance 1


def test_chunked_gram_equals_one_list_at_a_time(monkeypatch):
    rng = np.random.default_rng(0)
    stats = beyond.ItemStats.from_matrix(sp.random(60, 41, density=0.2, random_state=1, format="csr"))
    lists = np.stack([rng.choice(np.arange(1, 41), 10, replace=False) for _ in range(23)])
    monkeypatch.setattr(beyond, "_CHUNK", 5)
    chunked = beyond.list_metrics(lists, stats)
    per_list = [beyond.list_metrics(row[None, :], stats)["ild@10"] for row in lists]
    assert chunked["ild@10"] == pytest.approx(np.mean(per_list))


def test_ild_equals_the_mean_pairwise_cosine_distance_of_each_list():
    """ILD is computed from sums of item vectors; it must equal the definition, pair by pair — with
    the padding item 0, an item unseen in training (zero vector) and a repeated item in the lists."""
    rng = np.random.default_rng(3)
    train = (rng.random((50, 31)) < 0.25).astype(float)
    train[:, [0, 30]] = 0  # the padding column, and item 30 never seen in training
    stats = beyond.ItemStats.from_matrix(sp.csr_matrix(train))
    assert stats.vectors[[0, 30]].nnz == 0
    lists = np.stack([rng.choice(np.arange(0, 31), 6, replace=False) for _ in range(17)])
    lists[2, 0] = 30
    lists[0, :2] = 0
    lists[1, 1] = lists[1, 0]
    expected = []
    for row in lists:
        cos = stats.cosine(row)
        expected.append(np.mean([1.0 - cos[a, b] for a in range(6) for b in range(a + 1, 6)]))
    assert beyond.list_metrics(lists, stats)["ild@6"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_sequential_training_rows_count_every_item_of_their_lists():
    from recbole.data.interaction import Interaction

    class Augmented:  # RecBole's data augmentation: targets 2 and 3 of user 1 after <1> and <1, 2>
        uid_field, iid_field, item_id_list_field = "user_id", "item_id", "item_id_list"
        user_num, item_num = 2, 5
        inter_feat = Interaction({"user_id": torch.tensor([1, 1]), "item_id": torch.tensor([2, 3]),
                                  "item_id_list": torch.tensor([[1, 0], [1, 2]])})

    m = beyond.train_matrix(Augmented())
    assert m.toarray().tolist() == [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0]]


@pytest.fixture(scope="module")
def bpr_run(ml100k_slice, m6home):
    mp = pytest.MonkeyPatch()
    mp.setenv("M6BENCH_HOME", str(m6home))
    try:
        entry = registry.get("BPR")
        spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=1)
        yield train_and_evaluate(entry, ml100k_slice, build_config_dict(spec, entry, get_protocol("default"), ml100k_slice, {}))
    finally:
        mp.undo()


def test_top_items_are_the_evaluators_masked_lists(bpr_run):
    res = evaluate_groups(bpr_run.model, bpr_run.test_data, {"all": None}, topk=(10,), top_items=10)["all"]
    assert res.top_items.shape == (res.n_users, 10)
    data = bpr_run.test_data
    for row, uid in enumerate(res.user_ids):
        top = res.top_items[row]
        assert 0 not in top and len(set(top)) == 10
        assert not set(top) & set(data.uid2history_item[uid].tolist())  # train + valid history masked
        hit = bool(set(top) & set(data.uid2positive_item[uid].tolist()))
        assert res.values["hit@10"][row] == hit


def test_run_cell_record_has_the_beyond_group(ml100k_slice, tmp_path):
    from m6rec_bench import artifacts

    store = RecordStore(tmp_path)
    rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="BPR", epochs=1), store=store, resume=False,
                   prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    b = rec.extra_metrics["beyond"]
    assert set(b) == {"coverage@10", "novelty@10", "ild@10"}
    assert 0 < b["coverage@10"] <= 1 and 0 < b["ild@10"] <= 1 and b["novelty@10"] > 0
    # the numbers are those of the evaluator's own top-10 lists of the trained model
    loaded = artifacts.load(store.path_for(rec), prepared=ml100k_slice)
    lists = evaluate_groups(loaded.model, loaded.test_data, {"all": None}, topk=(10,), top_items=10)["all"].top_items
    again = beyond.list_metrics(lists, beyond.ItemStats.from_train(loaded.train_data._dataset))
    assert again == pytest.approx(b, abs=1e-6)
    assert b["coverage@10"] * (loaded.dataset.item_num - 1) == pytest.approx(len(np.unique(lists)))
