"""GenRec-TIGER (m6rec_plugins.generative, m6rec_plugins.semantic_ids): semantic IDs, trie-constrained
beam search, and real training on the 150-user ml-100k slice under ``sequential`` and ``cold-item``.

Item text vectors come from the cheap hashed bag-of-words stand-in (the ``fusion_content`` fixture),
which the semantic IDs are clustered from exactly as from the real MiniLM vectors.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

import m6rec_plugins.generative as generative
from m6rec_bench import artifacts
from m6rec_bench.engine.cell import CellSpec, build, build_config_dict, run_cell
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.protocols.cold_item import item_groups
from m6rec_bench.results.store import RecordStore
from m6rec_plugins.semantic_ids import Trie, kmeans, residual_kmeans

SEQ, COLD = "GenRec-TIGER", "GenRec-TIGER-Cold"


def test_plugins_declare_types_needs_and_cite_tiger():
    seq, cold = registry.plugins()[SEQ], registry.plugins()[COLD]
    assert seq is generative.plugin and cold is generative.cold
    assert seq.model_type == "sequential" and cold.model_type == "general"
    assert seq.needs == cold.needs == {"inter", "item_text"}
    assert not seq.in_default_suite and not cold.in_default_suite
    assert SEQ not in registry.default_suite("sequential") and COLD not in registry.default_suite("cold-item")
    assert seq.recbole_config["train_neg_sample_args"] is None and seq.recbole_config["loss_type"] == "CE"
    with pytest.raises(ValueError):
        generative.GenRecConfig(beam_size=10)  # top-20 must come from the beam
    doc = " ".join((sys.modules[generative.__name__].__doc__ or "").split())
    assert "Rajput et al." in doc and "ranked last, tied" in doc


def _blobs(seed: int = 0) -> np.ndarray:
    """300 items in 6 clusters of a 24-d space, with exact duplicates and two items without text."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 24)) * 3
    x = centres[rng.integers(6, size=301)] + rng.normal(size=(301, 24))
    x[0] = 0.0
    x[10:15] = x[9]  # six identical texts: only the collision level tells them apart
    x[[40, 41]] = 0.0  # no text
    return x


def test_residual_kmeans_codes_unique_deterministic_and_residuals_shrink():
    x = _blobs()
    a, b = residual_kmeans(x, n_levels=3, n_codes=8, seed=7), residual_kmeans(x, n_levels=3, n_codes=8, seed=7)
    assert np.array_equal(a.codes, b.codes) and a.level_sizes == b.level_sizes
    assert a.codes.shape == (301, 4) and (a.codes[0] == -1).all()
    real = [tuple(row) for row in a.codes[1:]]
    assert len(set(real)) == 300, "every item's code tuple is unique"
    for level, size in enumerate(a.level_sizes):
        assert 0 <= a.codes[1:, level].min() and a.codes[1:, level].max() < size
    assert a.level_sizes[:3] == (8, 8, 8)
    dup = a.codes[9:15]
    assert (dup[:, :3] == dup[0, :3]).all() and sorted(dup[:, 3]) == list(range(6))
    assert a.level_sizes[3] >= 6 and a.collision_share() > 0
    # each level quantises the residual of the previous one: its mean squared norm shrinks
    mse = a.residual_mse
    assert mse[0] == pytest.approx(298 / 300)  # unit vectors; the two items without text stay zero
    assert all(later < earlier for earlier, later in zip(mse, mse[1:]))
    assert not a.has_text[[0, 40, 41]].any() and a.has_text.sum() == 298
    other = residual_kmeans(x, n_levels=3, n_codes=8, seed=8)
    assert not np.array_equal(a.codes, other.codes)


def test_kmeans_matches_the_true_clusters_of_separated_blobs():
    rng = np.random.default_rng(1)
    truth = rng.integers(4, size=200)
    x = np.eye(4)[truth] * 10 + rng.normal(scale=0.1, size=(200, 4))
    centroids, codes = kmeans(x, 4, np.random.default_rng(0))
    assert centroids.shape == (4, 4)
    # a relabelling of the truth: same partition
    assert len(set(zip(truth.tolist(), codes.tolist(), strict=True))) == 4
    _, capped = kmeans(x[:3], 10, np.random.default_rng(0))  # k capped at n
    assert sorted(capped.tolist()) == [0, 1, 2]


def test_trie_holds_exactly_the_given_tuples():
    codes = np.array([[-1, -1, -1], [0, 1, 0], [0, 1, 1], [2, 0, 0], [1, 1, 0]])
    trie = Trie(codes, [1, 2, 3], level_sizes=(3, 2, 2))
    assert len(trie) == 3 and trie.items() == [1, 2, 3]
    assert trie.item((0, 1, 1)) == 2 and trie.item((1, 1, 0)) is None and (1, 1, 0) not in trie
    root = trie.children[0]
    assert (root >= 0).tolist() == [True, False, True]
    nodes = trie.path_nodes(torch.tensor([[0, 1, 1], [1, 1, 0]]))
    assert nodes[0, 0] == 0 and (nodes[0] >= 0).all() and (nodes[1, 1:] == -1).all()
    assert trie.item_at[trie.children[nodes[0, 2], 1]] == 2
    with pytest.raises(Exception, match="share the code tuple"):
        Trie(np.array([[-1, -1], [0, 0], [0, 0]]), [1, 2], level_sizes=(1, 1))


def _built(ds, model: str, protocol: str, **overrides):
    entry = registry.get(model)
    proto = get_protocol(protocol)
    spec = CellSpec(dataset=ds.name, model=model, protocol=protocol, epochs=1, overrides=overrides)
    split, extra = proto.prepare(ds, spec.seed)
    return build(entry, split, build_config_dict(spec, entry, proto, ds, extra), "unused-checkpoint-dir")


def test_constrained_beam_search_never_yields_an_invalid_item(ml100k_slice, fusion_content):
    """Property: untrained decoders (small and large random weights), 300 random histories each —
    every returned item is a real item whose code tuple is in the trie, once per beam, best first,
    with the exact teacher-forced log-probability; excluded items never come back."""
    b = _built(ml100k_slice, SEQ, "sequential")
    core = b.model.core
    ids = core.ids
    assert len(core.trie) == int(ids.has_text.sum()) == b.model.n_items - 1  # every item has text here
    assert len({tuple(r) for r in ids.codes[1:]}) == b.model.n_items - 1
    gen = torch.Generator().manual_seed(0)
    core.eval()
    for std in (0.02, 1.0):
        for p in core.decoder.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=std, generator=gen)
        n_users, width = 300, 20
        count = torch.randint(0, width + 1, (n_users,), generator=gen)
        hist = torch.randint(1, b.model.n_items, (n_users, width), generator=gen)
        hist = hist.masked_fill(torch.arange(width) >= count.unsqueeze(1), 0)
        exclude = torch.rand(n_users, b.model.n_items, generator=gen) < 0.3
        items, logp, prefix, prefix_logp = core.beam_search(hist, count, exclude, beam_size=25)
        assert items.shape == logp.shape == (n_users, 25)
        assert torch.isfinite(logp).all() and (items > 0).all() and (items < b.model.n_items).all()
        for row, user_items in enumerate(items.tolist()):
            assert len(set(user_items)) == 25
            for item in user_items:
                assert core.trie.item(ids.codes[item]) == item
            assert not exclude[row, user_items].any()
        assert (logp[:, :-1] >= logp[:, 1:] - 1e-6).all()
        assert (prefix_logp >= logp - 1e-5).all()  # a prefix is at least as probable as any of its items
        depth = ids.n_levels
        paths = core.trie.path_nodes(torch.from_numpy(ids.codes)[items.reshape(-1)])
        assert torch.equal(paths[:, depth - 1], prefix.reshape(-1)), "prefix = node of all codes but the collision index"
        some = slice(0, 40)  # the cached-key decoding scores exactly what a full teacher-forced pass scores
        with torch.no_grad():
            exact = core.item_logprob(hist[some].repeat_interleave(25, 0), count[some].repeat_interleave(25),
                                      items[some].reshape(-1))
        torch.testing.assert_close(exact.view(-1, 25), logp[some], rtol=1e-4, atol=1e-4)
    # full_sort_predict: the beam's log-probabilities, every other item on one finite floor below them
    batch = next(iter(b.test_data))[0]
    with torch.no_grad():
        scores = b.model.full_sort_predict(batch)
    assert scores.shape == (len(batch), b.model.n_items) and torch.isfinite(scores).all()
    in_beam = scores > generative.OUTSIDE_BEAM
    assert (in_beam.sum(1) == core.beam_size).all() and (scores[~in_beam] == generative.OUTSIDE_BEAM).all()


def _finite(rec) -> bool:
    return bool(rec.test) and all(math.isfinite(v) for v in rec.test.values())


def test_sequential_training_gives_finite_metrics(ml100k_slice, fusion_content):
    fast = {"train_batch_size": 2048, "train_share": 0.125}  # fewer optimiser steps than the default recipe
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=SEQ, protocol="sequential", epochs=2, overrides=fast),
                   prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    assert _finite(rec) and rec.test["hit@20"] > 0
    assert rec.config["MAX_ITEM_LIST_LENGTH"] == 20


@pytest.mark.slow  # ~45 s on 2 cores
def test_cold_item_training_generates_cold_items(ml100k_slice, fusion_content, tmp_path):
    store = RecordStore(tmp_path)
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=COLD, protocol="cold-item", epochs=2),
                   prepared=ml100k_slice, store=store)
    assert rec.status == "ok", rec.reason
    assert _finite(rec) and rec.test["hit@20"] > 0
    assert {"cold", "warm", "overall"} <= set(rec.extra_metrics)
    assert all(math.isfinite(v) for g in ("cold", "warm", "overall") for v in rec.extra_metrics[g].values())

    loaded = artifacts.load(store.path_for(rec), prepared=ml100k_slice)  # the trained model, rebuilt
    model = loaded.model
    train = loaded.train_data._dataset
    assert "timestamp" in train.inter_feat, "the plugin loads the timestamp that orders histories"
    when = {(int(u), int(i)): float(t) for u, i, t in zip(train.inter_feat["user_id"], train.inter_feat["item_id"],
                                                          train.inter_feat["timestamp"], strict=True)}
    for user in (1, 2, 3):
        seq = model.seqs[user, : model.lengths[user]].tolist()
        times = [when[(user, item)] for item in seq]
        assert len(seq) > 1 and times == sorted(times)
    cold = item_groups(loaded)["cold"]
    warm_in_training = torch.zeros(model.n_items, dtype=torch.bool)
    warm_in_training[model.seqs.flatten()] = True
    assert not warm_in_training[1:][torch.from_numpy(cold[1:])].any(), "cold items have no training interaction"
    assert model.core.in_trie[torch.from_numpy(cold)].all(), "cold items have semantic IDs in the trie"
    users = torch.arange(1, model.n_users)
    model.eval()
    items, logp, _, _ = model.core.beam_search(*model.histories(users), model.seen(users))
    found = items[torch.isfinite(logp)]
    assert torch.from_numpy(cold)[found].any(), "no cold item was ever generated"
    assert not model.seen(users).gather(1, items).any(), "a training item came back from the beam"
    # TIGER's cold-start retrieval adds unseen items that share a generated prefix, at most cold_share of the beam
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({"user_id": users})).view(len(users), -1)
    listed = scores > generative.OUTSIDE_BEAM
    generated = torch.zeros_like(listed).scatter_(1, items, torch.isfinite(logp))
    generated[:, 0] = False
    added = listed & ~generated
    assert torch.equal(listed & generated, generated), "every generated item keeps its place in the list"
    assert model.n_unseen == 4 and added.any() and (added.sum(1) <= model.n_unseen).all()
    assert model.unseen[added.nonzero()[:, 1]].all(), "only unseen items are added"
