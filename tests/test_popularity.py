"""Popularity (m6rec_bench.models.popularity): exact training counts, a fixed tie-break, and the
numbers RecBole's evaluator reports for it equal a ranking counted here with numpy."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch

from m6rec_bench.engine.cell import CellSpec, build, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.errors import DataError
from m6rec_bench.models import popularity, registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.results.store import RecordStore
from m6rec_bench.tuning.spaces import NOTHING_TO_TUNE, search_space


def _split(feat, uid: str, iid: str) -> tuple[np.ndarray, np.ndarray]:
    return feat[uid].numpy(), feat[iid].numpy()


def _ndcg_at_10(top: list[int], positives: set[int]) -> float:
    """RecBole's NDCG@10 of one user (recbole.evaluator.metrics.NDCG)."""
    dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(top[:10]) if i in positives)
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(positives), 10)))
    return dcg / idcg


def test_rank_scores_order_by_count_then_lower_id():
    counts = torch.tensor([0, 3, 5, 3, 0, 5, 1])
    scores = popularity.rank_scores(counts)
    assert scores.dtype == torch.float32
    assert torch.argsort(scores, descending=True).tolist() == [2, 5, 1, 3, 6, 0, 4]
    assert len(set(scores.tolist())) == len(counts)  # no ties left for torch.topk to break
    # whatever k, topk picks the same prefix (with tied scores it need not)
    assert all(torch.topk(scores, k).indices.tolist() == [2, 5, 1, 3, 6, 0, 4][:k] for k in range(1, 8))


def test_rank_scores_are_exact_for_16m_items_and_refused_beyond(monkeypatch):
    n = popularity.MAX_EXACT_ITEMS
    scores = popularity.rank_scores(torch.zeros(n, dtype=torch.long))  # all tied: order is the id order
    assert scores[0].item() == n and scores[-1].item() == 1
    assert bool((scores[:-1] - scores[1:] == 1).all())  # every float32 score distinct, consecutive
    monkeypatch.setattr(popularity, "MAX_EXACT_ITEMS", 4)
    with pytest.raises(DataError, match="has 5 items.*exact only up to 4 items"):
        popularity.rank_scores(torch.zeros(5, dtype=torch.long))


def test_training_counts_count_positive_labels_only():
    from recbole.data.interaction import Interaction

    class _Dataset:
        iid_field, label_field, item_num = "item_id", "label", 5
        inter_feat = Interaction({"item_id": torch.tensor([1, 1, 2, 3, 3, 3]),
                                  "label": torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])})

    assert popularity.training_counts(_Dataset()).tolist() == [0, 1, 1, 2, 0]
    _Dataset.label_field = None  # no label field: every row is an interaction
    assert popularity.training_counts(_Dataset()).tolist() == [0, 2, 1, 3, 0]


def test_registered_beside_recboles_pop_which_says_what_it_gets_wrong():
    entry = registry.get("popularity")
    assert (entry.name, entry.kind, entry.package) == ("Popularity", "baseline", "m6rec-bench")
    assert entry.model_cls is popularity.Popularity
    pop = registry.get("Pop")
    assert pop.model_cls is None and "RUCAIBox/RecBole#2198" in pop.description
    assert "Popularity" in NOTHING_TO_TUNE and search_space(entry) is None


def test_popularity_on_ml100k_is_the_counted_training_split(ml100k):
    """ml-100k, default protocol, seed 2020: the model's counts and order are numpy's, and the test
    NDCG@10 RecBole's evaluator reports is the NDCG@10 of that ranking computed here."""
    entry, proto = registry.get("Popularity"), get_protocol("default")
    spec = CellSpec(dataset=ml100k.name, model="Popularity", seed=2020)
    split_ds, extra = proto.prepare(ml100k, spec.seed)
    run = train_and_evaluate(entry, split_ds, build_config_dict(spec, entry, proto, split_ds, extra))
    ds = run.dataset
    uid, iid, n_items = ds.uid_field, ds.iid_field, ds.item_num

    train_u, train_i = _split(run.train_data._dataset.inter_feat, uid, iid)
    counts = np.bincount(train_i, minlength=n_items)
    assert counts.sum() == len(train_i) > 70_000
    assert np.array_equal(run.model.item_count.cpu().numpy(), counts)
    ranking = np.lexsort((np.arange(n_items), -counts))  # count descending, then lower id
    ranking = ranking[ranking != 0]  # the padding item is never recommended
    # after training and evaluating: the evaluator's in-place history masking never reached the scores
    assert torch.equal(run.model.score, popularity.rank_scores(run.model.item_count))
    model_order = torch.argsort(run.model.score, descending=True).cpu().numpy()
    assert np.array_equal(model_order[model_order != 0], ranking)

    valid_u, valid_i = _split(run.valid_data._dataset.inter_feat, uid, iid)
    test_u, test_i = _split(run.test_data._dataset.inter_feat, uid, iid)
    seen: dict[int, set[int]] = {}
    for u, i in zip(np.concatenate([train_u, valid_u]), np.concatenate([train_i, valid_i]), strict=True):
        seen.setdefault(int(u), set()).add(int(i))
    positives: dict[int, set[int]] = {}
    for u, i in zip(test_u, test_i, strict=True):
        positives.setdefault(int(u), set()).add(int(i))
    ndcg = []
    for u, pos in positives.items():
        history = seen.get(u, set()) - pos  # RecBole masks the user's other interactions, not the test ones
        top = [int(i) for i in ranking[:10 + len(history)] if int(i) not in history][:10]
        ndcg.append(_ndcg_at_10(top, pos))
    assert len(ndcg) == 943
    assert run.test["ndcg@10"] == pytest.approx(round(float(np.mean(ndcg)), 4), abs=1e-12)


def test_ranking_does_not_depend_on_the_training_batch_size(ml100k_slice):
    """RecBole's Pop ranks differently with another ``train_batch_size`` (RUCAIBox/RecBole#1844)."""
    entry, proto = registry.get("Popularity"), get_protocol("default")
    scores = []
    for batch in (64, 4096):
        spec = CellSpec(dataset=ml100k_slice.name, model="Popularity", overrides={"train_batch_size": batch})
        split_ds, extra = proto.prepare(ml100k_slice, spec.seed)
        with tempfile.TemporaryDirectory() as ckpt:
            scores.append(build(entry, split_ds, build_config_dict(spec, entry, proto, split_ds, extra), ckpt).model.score)
    assert torch.equal(scores[0], scores[1])


def test_a_popularity_cell_has_its_own_id_and_a_loadable_artifact(ml100k_slice, tmp_path):
    from m6rec_bench import artifacts

    store = RecordStore(tmp_path)
    rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="Popularity", epochs=1), store=store,
                   resume=False, prepared=ml100k_slice)
    pop = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="Pop", epochs=1), store=None, resume=False,
                   prepared=ml100k_slice)
    assert rec.status == "ok" and rec.label == "Popularity" and rec.model_kind == "baseline"
    assert rec.cell_id != pop.cell_id and 0 < rec.test["ndcg@10"] < 1
    loaded = artifacts.load(store.path_for(rec), prepared=ml100k_slice)
    assert torch.equal(loaded.model.score, popularity.rank_scores(loaded.model.item_count))
    assert int(loaded.model.item_count.sum()) == loaded.train_data._dataset.inter_num
