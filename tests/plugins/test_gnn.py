"""GNN-LightGCN / GNN-NGCF (m6rec_plugins.gnn): maths, caching, determinism, and a run through the engine.

Everything runs on a 150-user slice of RecBole's bundled ml-100k or on a hand-made 4×5 graph, with
one torch thread (the test machine is shared; results do not depend on it).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from m6rec_bench import compat
from m6rec_bench.datasets import DatasetFeatures, PreparedDataset, checksum_of, slice_dataset
from m6rec_bench.datasets.prepare import bundled_root
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_plugins import gnn

N_USERS = 150


@pytest.fixture(scope="module")
def ml_slice(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    root = bundled_root()
    full = PreparedDataset("ml-100k", root, checksum_of(root / "ml-100k", "ml-100k"),
                           DatasetFeatures(("movie_title", "release_year", "class"), False))
    return slice_dataset(full, tmp_path_factory.mktemp("gnn-slice"), N_USERS, seed=0)


# ---------------------------------------------------------------------------------------- tiny graph


class _TinyDataset:
    """Just what the models read from a RecBole dataset: ``num`` and ``inter_matrix``."""

    def __init__(self, pairs: list[tuple[int, int]], n_users: int, n_items: int) -> None:
        self.pairs, self.n_users, self.n_items = pairs, n_users, n_items

    def num(self, field: str) -> int:
        return self.n_users if field == "user_id" else self.n_items

    def inter_matrix(self, form: str = "coo") -> sp.coo_matrix:
        rows, cols = zip(*self.pairs)
        return sp.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(self.n_users, self.n_items))


# ids 0 are RecBole's padding (isolated nodes); item 4 is never interacted with; (1, 1) is duplicated
PAIRS = [(1, 1), (1, 2), (2, 2), (2, 3), (3, 1), (3, 3), (1, 1)]


def _config(**extra: Any) -> dict[str, Any]:
    return {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_", "device": torch.device("cpu"),
            "require_pow": False, **extra}


def _tiny(cls: type, **extra: Any) -> Any:
    torch.manual_seed(0)
    plugin_cfg = (gnn.LightGCNConfig if cls is gnn.PyGLightGCN else gnn.NGCFConfig)(**extra)
    return cls(_config(**plugin_cfg.model_dump()), _TinyDataset(PAIRS, 4, 5))


def _dense_norm_adj(n_users: int, n_items: int) -> torch.Tensor:
    a = torch.zeros(n_users + n_items, n_users + n_items)
    for u, i in PAIRS:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = a.sum(1)
    dinv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    return dinv[:, None] * a * dinv[None, :]


def test_lightgcn_propagation_matches_dense_reference() -> None:
    model = _tiny(gnn.PyGLightGCN, n_layers=3)
    a_hat = _dense_norm_adj(4, 5)
    e = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    layers = [e]
    for _ in range(3):
        layers.append(a_hat @ layers[-1])
    expected = torch.stack(layers).mean(0)
    users, items = model.forward()
    torch.testing.assert_close(torch.cat([users, items]), expected)
    assert torch.equal(model.adj.to_dense(), model.adj.to_dense().t())  # symmetric, duplicates collapsed


def test_symmetric_spmm_gradient_matches_dense() -> None:
    model = _tiny(gnn.PyGLightGCN)
    a_hat = _dense_norm_adj(4, 5)
    x = torch.randn(9, 3, requires_grad=True)
    w = torch.randn(9, 3)
    (gnn.symmetric_spmm(model.adj, gnn.symmetric_spmm(model.adj, x)) * w).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    (a_hat @ (a_hat @ x_ref) * w).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_ngcf_layer_matches_dense_reference() -> None:
    model = _tiny(gnn.PyGNGCF, hidden_size_list=(8, 6))
    model.eval()
    a_hat = _dense_norm_adj(4, 5)
    x = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    layers = [x]
    for conv in model.convs:
        side = a_hat @ x
        h = conv.lin_self(x + side) + conv.lin_inter(side * x)
        x = torch.nn.functional.normalize(torch.nn.functional.leaky_relu(h, 0.2), dim=1)
        layers.append(x)
    with torch.no_grad():
        users, items = model.forward()
    torch.testing.assert_close(torch.cat([users, items]), torch.cat(layers, 1))
    assert users.shape == (4, 64 + 8 + 6)


def test_node_dropout_keeps_adjacency_symmetric() -> None:
    model = _tiny(gnn.PyGNGCF, node_dropout=0.5)
    model.train()
    dropped, full = model._dropped_adjacency(model.user_embedding.weight).to_dense(), model.adj.to_dense()
    torch.testing.assert_close(dropped, dropped.t())
    kept = dropped != 0
    assert 0 < kept.sum() < (full != 0).sum()  # seed 0 keeps some of the 6 edges, not all
    torch.testing.assert_close(dropped[kept], full[kept] / 0.5)  # inverted-dropout scaling
    model.eval()
    assert model._dropped_adjacency(model.user_embedding.weight) is model.adj


@pytest.mark.parametrize("cls", [gnn.PyGLightGCN, gnn.PyGNGCF])
def test_eval_cache_is_exact_and_invalidated(cls: type) -> None:
    model = _tiny(cls)
    users_ids = torch.tensor([1, 2, 3])
    inter = {"user_id": users_ids}
    model.eval()
    with torch.no_grad():
        first = model.full_sort_predict(inter)
        assert model._cache is not None
        again = model.full_sort_predict(inter)
        users, items = model.forward()  # uncached
    assert torch.equal(first, again)
    assert torch.equal(first, (users[users_ids] @ items.t()).view(-1))
    with torch.no_grad():
        model.user_embedding.weight.add_(0.5)  # like an optimiser step: same tensor, new version
        changed = model.full_sort_predict(inter)
        users, items = model.forward()
    assert not torch.equal(first, changed)
    assert torch.equal(changed, (users[users_ids] @ items.t()).view(-1))
    model.train()
    assert model._cache is None


# ---------------------------------------------------------------------------------------- vs RecBole


@pytest.fixture(scope="module")
def recbole_slice(ml_slice: PreparedDataset) -> SimpleNamespace:
    compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    with compat.shielded_argv():
        config = Config(model="LightGCN", dataset=ml_slice.name,
                        config_dict={"data_path": str(ml_slice.root), "use_gpu": False, "show_progress": False})
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    return SimpleNamespace(train=train, batch=next(iter(train)))


@pytest.mark.filterwarnings("ignore:torch.sparse.SparseTensor:UserWarning")  # RecBole's own adjacency code
@pytest.mark.parametrize(("ours", "theirs", "plugin"), [
    (gnn.PyGLightGCN, "LightGCN", gnn.lightgcn),
    (gnn.PyGNGCF, "NGCF", gnn.ngcf),
])
def test_same_start_as_recbole(recbole_slice: SimpleNamespace, ours: type, theirs: str, plugin: Any) -> None:
    """Same seed → the same initial parameters, scores and loss as RecBole's own implementation."""
    from recbole.utils import get_model

    config = recbole_slice.train.config
    for key, value in plugin.recbole_settings().items():
        config[key] = list(value) if isinstance(value, tuple) else value
    out = []
    for cls in (ours, get_model(theirs)):
        torch.manual_seed(2020)
        model = cls(config, recbole_slice.train._dataset)
        model.eval()  # no dropout, so the loss is deterministic
        loss = model.calculate_loss(recbole_slice.batch).item()
        with torch.no_grad():
            scores = model.full_sort_predict(recbole_slice.batch)
        out.append((loss, scores))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-5)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------- engine


@pytest.mark.parametrize("model", ["GNN-LightGCN", "GNN-NGCF"])
def test_runs_through_engine(ml_slice: PreparedDataset, model: str) -> None:
    rec = run_cell(CellSpec(dataset=ml_slice.name, model=model, epochs=2), prepared=ml_slice)
    assert rec.status == "ok", rec.reason
    assert rec.test and all(math.isfinite(v) for v in rec.test.values())
    assert rec.test["ndcg@10"] > 0
    assert rec.epochs_run == 2


def test_same_seed_same_scores(ml_slice: PreparedDataset) -> None:
    spec = CellSpec(dataset=ml_slice.name, model="GNN-LightGCN", epochs=2, seed=7)
    first, second = run_cell(spec, prepared=ml_slice), run_cell(spec, prepared=ml_slice)
    assert first.status == second.status == "ok"
    assert first.test == second.test and first.valid == second.valid


def test_plugin_declarations() -> None:
    assert gnn.lightgcn.name == "GNN-LightGCN" and gnn.ngcf.name == "GNN-NGCF"
    assert gnn.lightgcn.family == gnn.ngcf.family == "gnn"
    assert gnn.lightgcn.recbole_settings() == {"embedding_size": 64, "n_layers": 2, "reg_weight": 1e-5}
    assert gnn.ngcf.recbole_settings()["hidden_size_list"] == [64, 64, 64]
    import optuna

    params = {"learning_rate": 1e-3, "n_layers": 3, "reg_weight": 1e-4, "embedding_size": 32,
              "node_dropout": 0.1, "message_dropout": 0.1, "hidden_size_list": "64,64,64"}
    for plugin in (gnn.lightgcn, gnn.ngcf):  # one trial each: their grids (RecBole's) differ in learning rates
        overrides = plugin.search_space(optuna.trial.FixedTrial(params))
        plugin.config_cls(**{k: v for k, v in overrides.items() if k in plugin.config_cls.model_fields})
