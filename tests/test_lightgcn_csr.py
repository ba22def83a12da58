"""compat's CSR propagation for RecBole's LightGCN and NGCF: RecBole's embeddings, loss and gradients.

The model is built seeded on the slice with the shim (its adjacency is CSR, propagated by the
symmetric product); RecBole's own COO adjacency (``get_norm_adj_mat``, untouched) is then put back
on the same model, so the comparison is the propagation alone: same weights, same batch.
"""

from __future__ import annotations

import tempfile

import pytest
import torch

from m6rec_bench import compat, compress
from m6rec_bench.engine.cell import CellSpec, build, build_config_dict
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol


def _model(ds, name: str, ckpt: str, **overrides):
    entry, protocol = registry.get(name), get_protocol("default")
    config = build_config_dict(CellSpec(dataset=ds.name, model=name, overrides=overrides), entry, protocol, ds, {})
    return build(entry, ds, config, ckpt)


def _loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(0)  # NGCF's message dropout draws the same masks on both sides
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["LightGCN", "NGCF"])
def test_csr_propagation_equals_recbole(ml100k_slice, name):
    with tempfile.TemporaryDirectory() as ckpt:
        b = _model(ml100k_slice, name, ckpt)
        model = b.model
        assert model.norm_adj_matrix.layout == torch.sparse_csr  # the shim is in place
        batch = next(iter(b.train_data))
        model.eval()
        with torch.no_grad():
            fast_users, fast_items = model.forward()
        model.train()
        fast_loss, fast_grads = _loss_and_grads(model, batch)

        model.norm_adj_matrix = model.get_norm_adj_mat()  # RecBole's COO adjacency, same weights
        assert model.norm_adj_matrix.layout == torch.sparse_coo
        model.eval()
        with torch.no_grad():
            users, items = model.forward()
        model.train()
        loss, grads = _loss_and_grads(model, batch)

    torch.testing.assert_close(fast_users, users, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast_items, items, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast_loss, loss, atol=1e-6, rtol=0)
    assert fast_grads.keys() == grads.keys() and grads
    for key, grad in grads.items():
        torch.testing.assert_close(fast_grads[key], grad, atol=1e-6, rtol=1e-5, msg=key)


def test_ngcf_with_node_dropout_keeps_recbole_coo(ml100k_slice):
    with tempfile.TemporaryDirectory() as ckpt:
        model = _model(ml100k_slice, "NGCF", ckpt, node_dropout=0.1).model
    assert model.norm_adj_matrix.layout == torch.sparse_coo


def test_shim_is_idempotent_and_a_model_copies_for_compression(ml100k_slice):
    compat.apply()
    from recbole.model.general_recommender import lightgcn

    before_init, before_torch = lightgcn.LightGCN.__init__, lightgcn.torch
    compat._csr_graph_propagation()
    assert lightgcn.LightGCN.__init__ is before_init and lightgcn.torch is before_torch
    with tempfile.TemporaryDirectory() as ckpt:
        model = _model(ml100k_slice, "LightGCN", ckpt).model
    twin = compress.copy_to_cpu(model)  # compression copies the model (sharing its sparse tensors)
    assert twin.norm_adj_matrix is model.norm_adj_matrix
    with torch.no_grad():
        torch.testing.assert_close(twin.forward()[0], model.forward()[0])
