"""NeuMF's factorised full-sort scores (m6rec_bench.engine.pair_scores) against RecBole's pairs.

The reference is RecBole's own route for a model without ``full_sort_predict``: every (user, item)
pair through ``model.predict``. The factorised scores must equal it to float rounding for NeuMF as
configured by default and in its GMF-only, MLP-only and one-layer forms; the default engine's
validation pass (``replay``: factorised scores, near ties scored again by RecBole) must give
RecBole's top-k lists and result dict; anything the factorisation does not know keeps the pairs.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from m6rec_bench import compat
from m6rec_bench.engine import fast_eval, pair_scores
from m6rec_bench.engine.cell import CellSpec, build, build_config_dict
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol


@pytest.fixture(scope="module")
def neumf(ml100k_slice, tmp_path_factory):
    """NeuMF on the slice after two training epochs, with its RecBole trainer."""
    from recbole.utils import get_trainer

    entry, protocol = registry.get("NeuMF"), get_protocol("default")
    split, extra = protocol.prepare(ml100k_slice, 2020)
    config = build_config_dict(CellSpec(dataset=ml100k_slice.name, model="NeuMF", epochs=2), entry, protocol,
                               split, extra)
    b = build(entry, split, config, str(tmp_path_factory.mktemp("neumf")))
    trainer = get_trainer(b.config["MODEL_TYPE"], b.config["model"])(b.config, b.model)
    for epoch in range(2):
        trainer._train_epoch(b.train_data, epoch, show_progress=False)
    b.model.eval()
    return b, trainer


def _pairs(model, users: torch.Tensor) -> torch.Tensor:
    """``model.predict`` on every (user, item) pair: RecBole's fallback, one row per user."""
    items = torch.arange(model.n_items)
    with torch.no_grad():
        scores = model.predict({model.USER_ID: users.repeat_interleave(model.n_items),
                                model.ITEM_ID: items.repeat(len(users))})
    return scores.view(len(users), model.n_items)


def _variant(b, **settings):
    """A fresh NeuMF built from the cell's config with ``settings`` changed (seeded, untrained)."""
    from recbole.model.general_recommender.neumf import NeuMF

    config = copy.deepcopy(b.config)
    for key, value in settings.items():
        config[key] = value
    torch.manual_seed(0)
    return NeuMF(config, compat.loader_dataset(b.train_data)).eval()


def test_factorised_scores_are_predicts(neumf) -> None:
    b, _ = neumf
    scorer = pair_scores.factorised(b.model)
    assert scorer is not None and scorer.rows_per_call() >= 1
    users = torch.arange(1, b.model.n_users)
    got, want = scorer(users), _pairs(b.model, users)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-6), (got - want).abs().max()


@pytest.mark.parametrize("settings", [{"mf_train": False}, {"mlp_train": False}, {"mlp_hidden_size": [32]},
                                      {"mlp_hidden_size": [64, 32, 16]}], ids=str)
def test_factorised_forms(neumf, settings) -> None:
    b, _ = neumf
    model = _variant(b, **settings)
    users = torch.arange(1, 20)
    got, want = pair_scores.factorised(model)(users), _pairs(model, users)
    assert torch.allclose(got, want, rtol=0, atol=1e-6), (got - want).abs().max()


def test_replay_validation_is_recboles(neumf) -> None:
    """The default engine's validation: factorised scores, RecBole's lists and numbers."""
    b, trainer = neumf
    ref = fast_eval.evaluate_pass(trainer, b.valid_data, engine="recbole")
    got = fast_eval.evaluate_pass(trainer, b.valid_data, engine="replay")
    assert got.result == ref.result
    np.testing.assert_array_equal(got.per_user.top_items, ref.per_user.top_items)
    for key, values in ref.per_user.values.items():
        np.testing.assert_array_equal(got.per_user.values[key], values)
    hits_only = fast_eval.evaluate_pass(trainer, b.valid_data, engine="replay", per_user=False)
    assert hits_only.result == ref.result and hits_only.rescored_rows <= got.rescored_rows


def test_guard_runs_for_factorised_scores(neumf, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of RecBole's own size still go through the near-tie guard (the scores are not
    RecBole's): with every row flagged, every row is scored again."""
    b, trainer = neumf
    monkeypatch.setattr(fast_eval, "near_ties", lambda scores, k: torch.ones(len(scores), dtype=torch.bool))
    got = fast_eval.evaluate_pass(trainer, b.valid_data, engine="replay", rows=int(b.valid_data.step))
    assert got.rescored_rows == fast_eval.split_index(b.valid_data).n_rows


def test_unknown_structures_keep_the_pairs(neumf) -> None:
    from recbole.model.general_recommender.neumf import NeuMF

    b, _ = neumf
    assert pair_scores.factorised(_variant(b, mlp_hidden_size=[64]).train()) is None  # dropout on
    subclass = type("MyNeuMF", (NeuMF,), {})
    model = _variant(b)
    model.__class__ = subclass
    assert pair_scores.factorised(model) is None  # a subclass may override forward
    model = _variant(b)
    model.mlp_layers.mlp_layers[2] = torch.nn.Tanh()
    assert pair_scores.factorised(model) is None  # another activation
