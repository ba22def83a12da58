"""Per-user metrics (m6rec_bench.evaluation): equal to RecBole's evaluator, and filtered correctly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m6rec_bench.engine.cell import CellSpec, build_config_dict, train_and_evaluate
from m6rec_bench.evaluation import _metric_rows, evaluate_groups, per_user_metrics
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol



@pytest.fixture(scope="module")
def bpr_run(ml100k_slice, m6home, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("M6BENCH_HOME", str(m6home))
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        entry = registry.get("BPR")
        spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=4)
        config = build_config_dict(spec, entry, get_protocol("default"), ml100k_slice, {})
        yield train_and_evaluate(entry, ml100k_slice, config)
    finally:
        torch.set_num_threads(saved)
        mp.undo()


def test_means_equal_recbole_trainer_evaluate(bpr_run):
    result = per_user_metrics(bpr_run.model, bpr_run.test_data)
    assert set(result.values) == set(bpr_run.test)
    assert result.means(4) == bpr_run.test
    again = bpr_run.trainer.evaluate(bpr_run.test_data, load_best_model=False)
    assert {k: float(v) for k, v in again.items()} == bpr_run.test  # nothing was disturbed
    assert result.n_users == len(bpr_run.test_data.uid_list)
    assert len(np.unique(result.user_ids)) == result.n_users
    assert all(len(v) == result.n_users for v in result.values.values())
    assert len(result.to_dict()["values"]["ndcg@10"]) == result.n_users


def test_item_filter_keeps_only_users_with_positives_in_it(bpr_run):
    n_items = bpr_run.dataset.item_num
    everything = np.ones(n_items, dtype=bool)
    none_filter, all_filter = per_user_metrics(bpr_run.model, bpr_run.test_data), per_user_metrics(
        bpr_run.model, bpr_run.test_data, item_filter=everything
    )
    assert all_filter.means() == none_filter.means()
    half = np.zeros(n_items, dtype=bool)
    half[1 : n_items // 2] = True
    groups = evaluate_groups(bpr_run.model, bpr_run.test_data, {"half": half, "other": ~half, "all": None})
    for name, mask in (("half", half), ("other", ~half)):
        res = groups[name]
        assert 0 < res.n_users <= groups["all"].n_users
        # the positives each user keeps are exactly its test items inside the mask
        for uid, n_pos in zip(res.user_ids[:20], res.n_positives[:20], strict=True):
            items = bpr_run.test_data.uid2positive_item[uid].numpy()
            assert n_pos == mask[items].sum() > 0
    users_with = {int(u) for u in groups["half"].user_ids} | {int(u) for u in groups["other"].user_ids}
    assert users_with == {int(u) for u in groups["all"].user_ids}
    with pytest.raises(ValueError, match="shape"):
        per_user_metrics(bpr_run.model, bpr_run.test_data, item_filter=np.ones(3, dtype=bool))


def test_metric_formulas_on_a_hand_made_ranking():
    # user 0: hits at ranks 2 and 4, 3 positives; user 1: no hit; user 2: hit at rank 1, 1 positive
    hits = np.zeros((3, 5), dtype=bool)
    hits[0, [1, 3]] = True
    hits[2, 0] = True
    pos_len = np.array([3, 2, 1])
    at5 = {name: _metric_rows(name, hits, pos_len)[:, 4] for name in ("hit", "mrr", "recall", "precision", "ndcg")}
    assert at5["hit"].tolist() == [1, 0, 1]
    assert at5["mrr"].tolist() == [0.5, 0, 1]
    assert at5["recall"].tolist() == pytest.approx([2 / 3, 0, 1])
    assert at5["precision"].tolist() == pytest.approx([0.4, 0, 0.2])
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert at5["ndcg"].tolist() == pytest.approx([dcg / idcg, 0, 1])
    with pytest.raises(ValueError, match="not a supported"):
        _metric_rows("auc", hits, pos_len)
