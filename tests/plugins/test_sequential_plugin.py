"""SeqGNN-GRU (m6rec_plugins.sequential): session graphs, and real training on an ml-100k slice.

The graph test compares the vectorised batch with PyG's own ``Batch.from_data_list`` over graphs
built one sequence at a time, the SR-GNN way. Training runs a few epochs on the 150-user slice
under ``--protocol sequential`` with one torch thread (``slow``: about a minute each on 2 cores, as is
the plugin's contract); the default run takes one optimiser step on a real training batch of the slice,
built by the engine as a cell builds it.
"""

from __future__ import annotations

import math
import sys
import tempfile

import pytest
import torch
from torch_geometric.data import Batch, Data

from m6rec_bench.engine.cell import CellSpec, build, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_plugins.sequential import SeqGNNGRU, SeqGNNGRUConfig, plugin, session_graphs

NAME = "SeqGNN-GRU"


def _one_graph(seq: list[int]) -> Data:
    """SR-GNN's construction for one sequence (RecBole ``SRGNN._get_slice``), as a PyG ``Data``."""
    items = [i for i in seq if i > 0]
    nodes = sorted(set(items))
    pos = {item: k for k, item in enumerate(nodes)}
    pairs = sorted({(pos[a], pos[b]) for a, b in zip(items, items[1:], strict=False)})
    indeg = {v: sum(1 for _, d in pairs if d == v) for v in range(len(nodes))}
    outdeg = {u: sum(1 for s, _ in pairs if s == u) for u in range(len(nodes))}
    fwd = [(s, d, 1 / indeg[d]) for s, d in pairs]
    bwd = [(d, s, 1 / outdeg[s]) for s, d in pairs]
    edges = fwd + bwd
    edge_index = torch.tensor([[e[0] for e in edges], [e[1] for e in edges]], dtype=torch.long).view(2, -1)
    return Data(node_item=torch.tensor(nodes), edge_index=edge_index, edge_weight=torch.tensor([e[2] for e in edges]),
                alias=torch.tensor([pos[i] for i in items]), num_nodes=len(nodes))


def _edges(index: torch.Tensor, weight: torch.Tensor) -> list[tuple[int, int, float]]:
    return sorted((int(s), int(d), round(float(w), 6)) for (s, d), w in zip(index.T.tolist(), weight, strict=True))


def test_session_graphs_equal_pyg_batches_of_sr_gnn_graphs():
    seqs = [[5, 3, 5, 7, 3, 0, 0], [2, 2, 9, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0, 0], [1, 8, 6, 8, 1, 6, 8]]
    graphs = session_graphs(torch.tensor(seqs), n_items=10)
    ref = Batch.from_data_list([_one_graph(s) for s in seqs])
    assert graphs.items.tolist() == ref.node_item.tolist()
    assert graphs.batch.tolist() == ref.batch.tolist()
    assert _edges(graphs.edge_index, graphs.edge_weight) == _edges(ref.edge_index, ref.edge_weight)
    mask = torch.tensor(seqs) > 0
    # alias: every real position points at the node holding its item, in its own sequence's graph
    assert graphs.alias[mask].tolist() == (ref.alias + ref.ptr[:-1].repeat_interleave(mask.sum(1))).tolist()
    assert graphs.items[graphs.alias][mask].tolist() == torch.tensor(seqs)[mask].tolist()
    # each node's incoming forward weights sum to 1 (SR-GNN's row-normalised A_in)
    pyg = graphs.to_pyg(torch.zeros(len(graphs.items), 1))
    assert pyg.num_graphs == len(seqs) and pyg.edge_index.shape[1] == len(graphs.edge_weight)


def test_config_search_space_and_contract_fields():
    assert plugin.model_type == "sequential" and plugin.recbole_config["train_neg_sample_args"] is None
    assert registry.get(NAME).model_type == "sequential" and NAME in registry.default_suite("sequential")
    assert NAME not in registry.default_suite("default")
    assert SeqGNNGRUConfig().use_text and plugin.ablations == {"w/o text": {"use_text": False}}
    with pytest.raises(ValueError):
        SeqGNNGRUConfig(dropout_prob=1.5)
    doc = " ".join((sys.modules[SeqGNNGRU.__module__].__doc__ or "").split())
    assert "Wu et al." in doc and "Hidasi et al." in doc and "GatedGraphConv" in doc


def test_one_training_step_lowers_the_loss_and_scores_every_item(ml100k_slice, fusion_content):
    """Built through the engine (text vectors from the hashed stand-in): one Adam step on 256 rows of a
    training batch lowers their loss, with gradients reaching the text projection; full_sort_predict
    scores every item, finitely, and the step changes the scores."""
    entry, protocol = registry.get(NAME), get_protocol("sequential")
    spec = CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="sequential", epochs=1)
    split, extra = protocol.prepare(ml100k_slice, spec.seed)
    config = build_config_dict(spec, entry, protocol, ml100k_slice, extra)

    def scores(model, test_data) -> torch.Tensor:
        model.eval()
        interaction = next(iter(test_data))[0]
        with torch.no_grad():
            return model.full_sort_predict(interaction).view(len(interaction), -1)

    with tempfile.TemporaryDirectory() as ckpt:
        b = build(entry, split, config, ckpt)
    model, batch = b.model, next(iter(b.train_data))[torch.arange(256)]
    first = scores(model, b.test_data)
    assert first.shape[1] == b.dataset.item_num and torch.isfinite(first[:, 1:]).all()

    with torch.no_grad():
        before = float(model.calculate_loss(batch))
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = model.calculate_loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.text_proj.weight.grad is not None and model.text_proj.weight.grad.abs().sum() > 0
    optimiser.step()
    model.eval()
    with torch.no_grad():
        after = float(model.calculate_loss(batch))
    assert after < before, (before, after)
    assert not torch.equal(scores(model, b.test_data), first)


def _run(ds, epochs: int, **overrides):
    entry = registry.get(NAME)
    spec = CellSpec(dataset=ds.name, model=NAME, protocol="sequential", epochs=epochs, overrides=overrides)
    config = build_config_dict(spec, entry, get_protocol("sequential"), ds, {})
    return train_and_evaluate(entry, ds, config)


@pytest.mark.slow
def test_trains_loss_decreases_and_beats_random(ml100k_slice):
    run = _run(ml100k_slice, epochs=3, use_text=False)
    losses = [float(v) for v in run.trainer.train_loss_dict.values()]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    # a random ranking of the catalogue finds the single test item in the top 10 with p = 10 / n_items
    random_hit = 10 / (run.dataset.item_num - 1)
    assert run.test["hit@10"] > 3 * random_hit, (run.test, random_hit)
    assert math.isfinite(run.test["ndcg@10"]) and run.test["ndcg@10"] > 0


@pytest.mark.slow
def test_text_variant_runs_through_the_engine(ml100k_slice, tmp_path):
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="sequential", epochs=1),
                   prepared=ml100k_slice, command="test")
    assert rec.status == "ok", rec.reason
    assert rec.config["use_text"] is True and rec.n_params > 0
    assert len(rec.per_user["users"]) == 150
    no_text = run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="sequential", epochs=1,
                                overrides={"use_text": False}), prepared=ml100k_slice, command="test")
    assert no_text.status == "ok" and no_text.cell_id != rec.cell_id
    assert rec.n_params - no_text.n_params == 384 * 64  # the text projection
