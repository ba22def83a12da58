r"""SeqGNN-GRU: a session graph encoded by a gated GNN, read in order by a GRU (``--protocol sequential``).

Each user's item sequence :math:`s = (v_1, \dots, v_n)` (RecBole's ``item_id_list``, the items before
the target, at most ``MAX_ITEM_LIST_LENGTH``) becomes an item-transition graph, as in SR-GNN
(Wu et al., "Session-based Recommendation with Graph Neural Networks", AAAI 2019): the nodes are the
distinct items of the sequence, the edges its consecutive transitions :math:`v_t \to v_{t+1}`.
Nodes receive from their predecessors (edge weight :math:`1/\deg_{in}`) and their successors
(:math:`1/\deg_{out}`), SR-GNN's normalised :math:`A^{in}` and :math:`A^{out}`, here through a single
PyTorch Geometric :class:`~torch_geometric.nn.conv.GatedGraphConv` (Li et al., ICLR 2016), which
shares one message matrix :math:`\Theta` between the two directions (SR-GNN keeps two):

.. math::
    \mathbf{m}_i^{(l+1)} = \sum_{j \in \mathcal{N}(i)} e_{j,i}\, \Theta^{(l)} \mathbf{h}_j^{(l)}, \qquad
    \mathbf{h}_i^{(l+1)} = \mathrm{GRUCell}\big(\mathbf{m}_i^{(l+1)}, \mathbf{h}_i^{(l)}\big), \qquad
    \mathbf{h}_i^{(0)} = \mathbf{e}_{v_i}

The node states, put back in sequence order (:math:`\mathbf{x}_t = \mathbf{h}_{v_t}^{(L)}`, so a
repeated item contributes its one graph state at every position), feed a GRU as in GRU4Rec (Hidasi
et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016):

.. math::
    \mathbf{o}_t = \mathrm{GRU}(\mathbf{x}_t, \mathbf{o}_{t-1}), \qquad \mathbf{z} = W_o\, \mathbf{o}_n

or, with ``attention_readout``, SR-GNN's soft-attention readout over the GRU outputs,

.. math::
    \alpha_t = \mathbf{q}^\top \sigma(W_1 \mathbf{o}_n + W_2 \mathbf{o}_t), \qquad
    \mathbf{s}_g = \sum_t \alpha_t \mathbf{o}_t, \qquad \mathbf{z} = W_3 [\mathbf{s}_g ; \mathbf{o}_n]

Every item is scored by :math:`\hat y_j = \mathbf{z}^\top \mathbf{e}_j` and the model trains with
cross-entropy over all items (RecBole's ``loss_type: CE``, no sampled negatives).

Text (``use_text``): the item vector is its ID embedding plus a learned projection of the frozen
all-MiniLM-L6-v2 vector of its text (:func:`m6rec_plugins.text.item_text_embeddings`, cached),
:math:`\mathbf{e}_j = \mathbf{E}_j + P\,\mathbf{t}_j`, used both as graph input and as output
vector, so an item seen rarely in training still has a vector that says what it is.

The graphs of a batch are one disjoint union — what PyG's :meth:`~torch_geometric.data.Batch.from_data_list`
builds — assembled without a Python loop (:func:`session_graphs`); everything is plain PyTorch and
PyG message passing, with no compiled extension (``torch_scatter``, ``pyg-lib``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GatedGraphConv
from torch_geometric.utils import coalesce, degree

from m6rec_bench.plugin_api import DataError, Plugin, PluginConfig

__all__ = ["SeqGNNGRU", "SeqGNNGRUConfig", "SessionGraphs", "plugin", "search_space", "session_graphs"]


@dataclass(frozen=True)
class SessionGraphs:
    """The item-transition graphs of a batch of sequences, as one disjoint union.

    Attributes:
        items: ``[n_nodes]`` item id of every node (nodes of sequence ``b`` are its distinct items, sorted).
        batch: ``[n_nodes]`` the sequence each node belongs to (PyG's ``batch`` vector).
        edge_index: ``[2, n_edges]`` predecessor → node and successor → node edges.
        edge_weight: ``[n_edges]`` ``1/in-degree`` (forward) and ``1/out-degree`` (backward).
        alias: ``[B, L]`` node of every sequence position (0 at padding positions; mask them).
    """

    items: Tensor
    batch: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    alias: Tensor

    def to_pyg(self, x: Tensor) -> Batch:
        """The same graphs as a PyG :class:`~torch_geometric.data.Batch` with node features ``x``."""
        return Batch(x=x, edge_index=self.edge_index, edge_weight=self.edge_weight, batch=self.batch)


def session_graphs(item_seq: Tensor, n_items: int) -> SessionGraphs:
    """Build the transition graph of every row of ``item_seq`` (``[B, L]``, right-padded with 0).

    Distinct items of a row become its nodes (keyed ``row * n_items + item``, so
    :func:`torch.unique` numbers them row by row); each consecutive pair of real positions gives
    an edge, duplicates kept once (SR-GNN's binary adjacency).
    """
    n_rows, length = item_seq.shape
    mask = item_seq > 0
    rows = torch.arange(n_rows, device=item_seq.device).unsqueeze(1).expand(n_rows, length)
    keys = rows[mask] * n_items + item_seq[mask]
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    alias = torch.zeros_like(item_seq)
    alias[mask] = inverse
    pair = mask[:, :-1] & mask[:, 1:]
    forward = torch.stack([alias[:, :-1][pair], alias[:, 1:][pair]])
    n_nodes = int(uniq.numel())
    forward = coalesce(forward, num_nodes=n_nodes)
    src, dst = forward
    w_in = 1.0 / degree(dst, n_nodes).clamp(min=1)[dst]  # node dst hears its predecessors
    w_out = 1.0 / degree(src, n_nodes).clamp(min=1)[src]  # node src hears its successors
    edge_index = torch.cat([forward, forward.flip(0)], dim=1)
    edge_weight = torch.cat([w_in, w_out])
    return SessionGraphs(uniq % n_items, uniq // n_items, edge_index, edge_weight, alias)


class SeqGNNGRUConfig(PluginConfig):
    """SeqGNN-GRU hyper-parameters; GNN defaults follow RecBole's ``SRGNN.yaml``, the GRU its ``GRU4Rec.yaml``."""

    embedding_size: int = Field(64, ge=1, description="item embedding size (and GatedGraphConv width)")
    step: int = Field(1, ge=1, description="GatedGraphConv propagation steps (SR-GNN's step)")
    hidden_size: int = Field(64, ge=1, description="GRU hidden size")
    num_layers: int = Field(1, ge=1, description="GRU layers")
    dropout_prob: float = Field(0.3, ge=0, lt=1, description="dropout on the graph states fed to the GRU")
    attention_readout: bool = Field(True, description="add SR-GNN's soft-attention readout to the last GRU state")
    use_text: bool = Field(True, description="add a projection of the frozen item text vector to every item embedding")
    text_model: str = Field("all-MiniLM-L6-v2", description="sentence-transformer for item text (use_text)")
    text_batch_size: int = Field(64, ge=1, description="encoding batch size (once, then cached)")


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna space of :class:`SeqGNNGRUConfig` (plus RecBole's learning rate)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
        "embedding_size": trial.suggest_categorical("embedding_size", [32, 64, 128]),
        "hidden_size": trial.suggest_categorical("hidden_size", [64, 128]),
        "step": trial.suggest_int("step", 1, 2),
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.1, 0.2, 0.3, 0.5]),
        "attention_readout": trial.suggest_categorical("attention_readout", [True, False]),
    }


class SeqGNNGRU(SequentialRecommender):
    r"""Gated-GNN session graph + GRU next-item model (SR-GNN, AAAI 2019; GRU4Rec, ICLR 2016).

    See the module docstring for the equations. Trained with cross-entropy over all items.
    """

    input_type = InputType.POINTWISE

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.embedding_size = int(config["embedding_size"])
        self.hidden_size = int(config["hidden_size"])
        self.attention_readout = bool(config["attention_readout"])
        self.use_text = bool(config["use_text"])

        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.ggnn = GatedGraphConv(self.embedding_size, num_layers=int(config["step"]), aggr="add")
        self.dropout = nn.Dropout(float(config["dropout_prob"]))
        self.gru = nn.GRU(self.embedding_size, self.hidden_size, num_layers=int(config["num_layers"]),
                          batch_first=True, bias=False)
        if self.attention_readout:
            self.att_last = nn.Linear(self.hidden_size, self.hidden_size)
            self.att_seq = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
            self.att_q = nn.Linear(self.hidden_size, 1, bias=False)
            self.readout = nn.Linear(2 * self.hidden_size, self.embedding_size)
        else:
            self.readout = nn.Linear(self.hidden_size, self.embedding_size)
        self.text_proj: nn.Linear | None = None
        if self.use_text:
            from m6rec_plugins.text import item_text_embeddings

            text = item_text_embeddings(config, dataset)
            if text.shape[0] != self.n_items:
                raise DataError(f"text embeddings have {text.shape[0]} items, dataset {self.n_items}")
            self.register_buffer("text", torch.from_numpy(text), persistent=False)
            self.text_proj = nn.Linear(text.shape[1], self.embedding_size, bias=False)
        self.loss_fct = nn.CrossEntropyLoss()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GRU4Rec's initialisation in RecBole: Xavier for embeddings, linear maps and GRU weights."""
        if isinstance(module, nn.Embedding | nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.GRU):
            for name, weight in module.named_parameters():
                if "weight" in name:
                    nn.init.xavier_uniform_(weight)

    def item_vectors(self) -> Tensor:
        """``[n_items, embedding_size]``: ID embedding, plus the projected text vector with ``use_text``."""
        vectors = self.item_embedding.weight
        if self.text_proj is not None:
            vectors = vectors + self.text_proj(self.text)
        return vectors

    def forward(self, item_seq: Tensor, item_seq_len: Tensor, items: Tensor | None = None) -> Tensor:
        """The sequence representation :math:`\\mathbf{z}` (``[B, embedding_size]``)."""
        items = self.item_vectors() if items is None else items
        graphs = session_graphs(item_seq, self.n_items)
        nodes = self.ggnn(items[graphs.items], graphs.edge_index, graphs.edge_weight)
        mask = (item_seq > 0).unsqueeze(-1)
        seq = self.dropout(nodes[graphs.alias] * mask)
        out, _ = self.gru(seq)
        last = self.gather_indexes(out, item_seq_len - 1)
        if not self.attention_readout:
            return self.readout(last)
        alpha = self.att_q(torch.sigmoid(self.att_last(last).unsqueeze(1) + self.att_seq(out)))
        pooled = (alpha * out * mask).sum(dim=1)
        return self.readout(torch.cat([pooled, last], dim=1))

    def calculate_loss(self, interaction: Any) -> Tensor:
        items = self.item_vectors()
        z = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], items)
        return self.loss_fct(z @ items.T, interaction[self.POS_ITEM_ID])

    def predict(self, interaction: Any) -> Tensor:
        items = self.item_vectors()
        z = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], items)
        return (z * items[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> Tensor:
        items = self.item_vectors()
        z = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], items)
        return z @ items.T


plugin = Plugin(
    name="SeqGNN-GRU",
    family="sequential",
    description="gated-GNN session graph + GRU next-item model with item text "
    "(SR-GNN, Wu et al., AAAI 2019; GRU4Rec, Hidasi et al., ICLR 2016)",
    config_cls=SeqGNNGRUConfig,
    model_cls=SeqGNNGRU,
    needs=frozenset({"inter", "item_text"}),
    search_space=search_space,
    # cross-entropy over every item: RecBole samples no training negatives
    recbole_config={"train_neg_sample_args": None},
    ablations={"w/o text": {"use_text": False}},
)
