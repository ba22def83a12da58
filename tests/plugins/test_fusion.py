"""M6-Fusion: trains and ranks with every modality removed in turn, and scores cold items from content.

Content vectors come from cheap stand-ins (the ``fusion_content`` fixture of tests/conftest.py:
hashed bag of words of the item text, and of its attributes for the KG) so the tests stay fast; the real PyKEEN / MiniLM loaders are exercised by
the plugin contract test and by ``test_real_content`` (marked slow).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import m6rec_plugins.fusion as fusion
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.models import registry
from m6rec_bench.protocols.cold_item import COLD_ITEM, item_groups

NAME = "M6-Fusion"



def test_plugin_declares_needs_and_ablations():
    plugin = registry.plugins()[NAME]
    assert plugin is fusion.plugin and plugin.family == "fusion"
    assert plugin.needs == {"inter", "kg", "item_text"}
    assert plugin.ablations == {
        "w/o KG": {"use_kg": False}, "w/o text": {"use_text": False}, "w/o graph": {"use_graph": False},
    }
    for overrides in plugin.ablations.values():
        plugin.config_cls(**overrides)
    assert "2205.08084" in fusion.__doc__ and "LightGCN" in fusion.__doc__ and "CKE" in fusion.__doc__


@pytest.mark.parametrize(
    "label",
    ["full", "w/o KG", "w/o text", "w/o graph", "attention+softmax"],
)
def test_trains_and_ranks_with_any_modality_removed(label, ml100k_slice, fusion_content):
    extra = {"full": {}, "attention+softmax": {"fusion": "attention", "loss_type": "softmax"}}
    overrides = extra.get(label, fusion.plugin.ablations.get(label))
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, epochs=2, overrides=overrides),
                   prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    assert rec.test and all(math.isfinite(v) for v in rec.test.values())
    assert rec.test["hit@20"] > 0
    # a switched-off modality is not even loaded: the flags remove the need for it
    assert fusion_content["kg"] == (0 if overrides.get("use_kg") is False else 1)
    assert fusion_content["text"] == (0 if overrides.get("use_text") is False else 1)


def _cold_run(ml100k_slice, **overrides):
    entry = registry.get(NAME)
    split, extra = COLD_ITEM.prepare(ml100k_slice, 2020)
    spec = CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="cold-item", epochs=3, overrides=overrides)
    return train_and_evaluate(entry, split, build_config_dict(spec, entry, COLD_ITEM, ml100k_slice, extra))


def test_cold_items_are_scored_from_content(ml100k_slice, fusion_content):
    run = _cold_run(ml100k_slice)
    model = run.model
    cold = np.flatnonzero(item_groups(run)["cold"])
    assert len(cold) > 10 and not model.is_warm[cold].any()
    weights = model.modality_weights()
    assert (weights["id"][cold] == 0).all() and (weights["graph"][cold] == 0).all()
    assert (weights["text"][cold] > 0).all()
    batch = next(iter(run.test_data))[0]
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(batch).view(len(batch), -1)
        cold_scores = scores[:, cold]
        assert torch.isfinite(cold_scores).all()
        assert cold_scores.std(dim=1).min() > 1e-4  # cold items are told apart, per user
        # and the difference comes from their content: change a cold item's text, its score moves
        before = scores[:, cold[0]].clone()
        model.towers["text"].table[cold[0]] = model.towers["text"].table[cold[1]]
        model.towers["kg"].table[cold[0]] = model.towers["kg"].table[cold[1]]
        model.avail_kg[cold[0]] = model.avail_kg[cold[1]]
        model.train(False)  # drop the cached item vectors
        after = model.full_sort_predict(batch).view(len(batch), -1)
    assert torch.allclose(after[:, cold[0]], after[:, cold[1]])
    assert not torch.allclose(after[:, cold[0]], before)


def test_cold_item_protocol_groups_for_fusion(ml100k_slice, fusion_content):
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="cold-item", epochs=2,
                            overrides={"fusion": "attention"}), prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    assert set(rec.extra_metrics) == {"cold", "warm", "overall", "beyond"}  # beyond accuracy: every record
    assert all(math.isfinite(v) for g in rec.extra_metrics.values() for v in g.values())


@pytest.mark.slow
def test_real_content(ml100k_slice):
    """The real PyKEEN TransE and all-MiniLM-L6-v2 vectors, through the sibling plugins' caches."""
    run = _cold_run(ml100k_slice)
    assert "kg" in run.model.towers and "text" in run.model.towers
    assert run.model.towers["text"].table.shape[1] == 384
    assert all(math.isfinite(v) for v in run.test.values())


def test_chunked_softmax_loss_equals_the_whole_batch_loss():
    """A batch too large for one chunk gives the same loss and gradients, computed chunk by chunk."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(37, 8, generator=gen, requires_grad=True)
    p = torch.randn(37, 8, generator=gen, requires_grad=True)
    c = torch.randn(11, 8, generator=gen, requires_grad=True)
    pos = torch.randint(1, 20, (37,), generator=gen)
    cand = torch.arange(5, 16)  # some positives are among the candidates (masked there)
    grads = []
    losses = []
    for chunk in (10**9, 12 * 5):  # one chunk; 5 rows per chunk (8 chunks, the last one short)
        for t in (u, p, c):
            t.grad = None
        loss = fusion.softmax_loss(*(torch.nn.functional.normalize(t, dim=1) for t in (u, p, c)), pos, cand, 0.2,
                                   chunk_logits=chunk)
        loss.backward()
        losses.append(loss.item())
        grads.append([t.grad.clone() for t in (u, p, c)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for whole, chunked in zip(*grads):
        torch.testing.assert_close(whole, chunked, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("chunk", [10**9, 12 * 5])
def test_full_softmax_by_columns_equals_the_masked_positive_loss(chunk):
    """Every positive among sorted candidates (the full softmax): the cross-entropy over the
    candidates' columns equals prepending the positive and masking its column — value and the
    gradient into the shared item vectors — also when chunked."""
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(37, 8, generator=gen, requires_grad=True)
    items = torch.randn(30, 8, generator=gen, requires_grad=True)
    cand = torch.tensor(sorted(set(torch.randint(1, 30, (25,), generator=gen).tolist())))
    pos = cand[torch.randint(len(cand), (37,), generator=gen)]
    assert fusion.positive_columns(pos, cand) is not None
    assert fusion.positive_columns(torch.tensor([0]), cand) is None  # a positive outside: the masked path
    assert fusion.positive_columns(pos, cand.flip(0)) is None  # unsorted candidates: the masked path
    results = []
    for columns in (True, False):
        u.grad = items.grad = None
        u_n, e_n = torch.nn.functional.normalize(u, dim=1), torch.nn.functional.normalize(items, dim=1)
        if columns:
            loss = fusion.softmax_loss(u_n, e_n[pos], e_n[cand], pos, cand, 0.2, chunk_logits=chunk)
        else:
            loss = fusion._softmax_rows(u_n, e_n[pos], e_n[cand], pos, cand, 0.2)
        loss.backward()
        results.append((loss.item(), u.grad.clone(), items.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(results[0][2], results[1][2], rtol=1e-5, atol=1e-7)
