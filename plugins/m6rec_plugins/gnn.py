r"""Graph collaborative filtering on PyTorch Geometric: LightGCN and NGCF as m6rec-bench plugins.

Both models propagate user and item embeddings over the bipartite training interaction graph,
full-batch, with PyG message-passing convs (:class:`~torch_geometric.nn.conv.LGConv` for LightGCN, a
small :class:`~torch_geometric.nn.conv.MessagePassing` conv for NGCF). No compiled extension
(``torch_scatter``, ``torch_sparse``, ``pyg-lib``) is needed.

Graph
    Nodes ``0 .. n_users-1`` are users, ``n_users .. n_users+n_items-1`` items (RecBole ids, so the
    padding ids 0 are isolated nodes). Every training interaction ``(u, i)`` gives the edges
    ``u → n_users+i`` and back. The symmetric normalisation
    :math:`\hat{A} = D^{-1/2} A D^{-1/2}` is computed once, in ``__init__``, with PyG's
    :func:`~torch_geometric.nn.conv.gcn_norm` and stored as a ``torch.sparse_csr`` tensor, which
    PyG convs accept in place of ``edge_index`` (fused ``message_and_aggregate``).

Where the speed comes from (compared with RecBole 1.2.1's LightGCN / NGCF, same maths)
    * RecBole multiplies with an *uncoalesced* COO tensor on every training batch, which
      ``torch.sparse.mm`` coalesces on every call and transposes for the backward (measured on
      ml-100k, 2 layers, forward + backward: ~85 ms COO vs ~5 ms here). Here the adjacency is CSR, and
      since :math:`\hat{A}` is symmetric, the backward of :math:`\hat{A}X` is :math:`\hat{A}G` — the
      same CSR product, no transpose (:func:`~m6rec_bench.plugin_api.symmetric_spmm`). That is the whole gain on CPU.
    * Evaluation propagates once per evaluation pass and reuses the result for every batch of
      users; the cache is keyed on the parameters' identity and version counters, so an optimiser
      step, ``load_state_dict`` or ``train()`` mode all invalidate it. (RecBole's LightGCN caches
      too, so this is parity, not a gain.)

Quality is kept comparable: same loss (BPR + RecBole's ``EmbLoss`` L2 term with ``reg_weight``),
same defaults as RecBole's ``LightGCN.yaml`` / ``NGCF.yaml``, and the same parameter
initialisation in the same order, so for a given seed the models start where RecBole's start.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization, xavier_uniform_initialization
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType
from torch import Tensor, nn
from torch_geometric.nn.conv import LGConv, MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import coalesce, to_torch_csr_tensor

from m6rec_bench.plugin_api import Plugin, PluginConfig, symmetric_spmm

__all__ = [
    "LightGCNConfig",
    "NGCFConfig",
    "NGCFConv",
    "PyGLightGCN",
    "PyGNGCF",
    "SymmetricLGConv",
    "lightgcn",
    "lightgcn_search_space",
    "ngcf",
    "ngcf_search_space",
    "normalized_adjacency",
]


# ---------------------------------------------------------------------------------------- graph


def interaction_edge_index(inter: Any, n_users: int) -> Tensor:
    """Undirected bipartite ``edge_index`` (both directions, duplicates removed) of a user×item COO matrix."""
    users = torch.as_tensor(np.asarray(inter.row), dtype=torch.long)
    items = torch.as_tensor(np.asarray(inter.col), dtype=torch.long) + n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    return coalesce(edge_index, num_nodes=n_users + int(inter.shape[1]))


def normalized_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`D^{-1/2} A D^{-1/2}` of an undirected graph as a ``torch.sparse_csr`` tensor.

    Built with PyG's :func:`gcn_norm` (no self-loops; isolated nodes get empty rows) and
    :func:`to_torch_csr_tensor`.
    """
    edge_index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # "CSR support is in beta" etc.
        return to_torch_csr_tensor(edge_index, weight, size=(num_nodes, num_nodes))


def _mirror_index(adj: Tensor) -> Tensor:
    """For each stored entry ``(r, c)`` of a symmetric CSR ``adj``, the position of ``(c, r)``."""
    n = adj.size(0)
    row = torch.repeat_interleave(torch.arange(n, device=adj.device), adj.crow_indices().diff())
    col = adj.col_indices()
    key = row * n + col  # sorted: CSR is row-major with sorted columns
    return torch.searchsorted(key, col * n + row)


# ---------------------------------------------------------------------------------------- convs


class SymmetricLGConv(LGConv):
    r"""PyG's :class:`~torch_geometric.nn.conv.LGConv` on a pre-normalised symmetric CSR adjacency.

    .. math::
        \mathbf{x}^{\prime}_i = \sum_{j \in \mathcal{N}(i)} \frac{1}{\sqrt{\deg(i)\deg(j)}} \mathbf{x}_j

    Normalisation is done once by the caller (``normalize=False``). Given a ``torch.sparse_csr``
    adjacency the fused ``message_and_aggregate`` runs :func:`symmetric_spmm`; given a plain
    ``edge_index`` (with ``edge_weight``) it falls back to LGConv's gather/scatter path.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(normalize=False, **kwargs)

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        return symmetric_spmm(adj_t, x)


class NGCFConv(MessagePassing):
    r"""One embedding-propagation layer of NGCF (Wang et al., SIGIR 2019, eq. 7 in matrix form).

    .. math::
        E^{(l+1)} = (\mathcal{L} + I) E^{(l)} W_1 + (\mathcal{L} E^{(l)} \odot E^{(l)}) W_2,
        \qquad \mathcal{L} = D^{-1/2} A D^{-1/2}

    (the LeakyReLU, dropout and L2 normalisation that follow are the model's). ``W_1``, ``W_2``
    carry biases, as in RecBole's ``BiGNNLayer``. Written as a PyG ``MessagePassing``: the message
    is :math:`\mathcal{L}_{ij} e_j`, summed; on a symmetric CSR adjacency the fused path runs
    :func:`symmetric_spmm`.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(aggr="add")
        self.lin_self = nn.Linear(in_channels, out_channels)  # W_1, on E + L E
        self.lin_inter = nn.Linear(in_channels, out_channels)  # W_2, on L E ⊙ E

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        side = self.propagate(edge_index, x=x, edge_weight=edge_weight)
        return self.lin_self(x + side) + self.lin_inter(side * x)

    def message(self, x_j: Tensor, edge_weight: Tensor | None) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        return symmetric_spmm(adj_t, x)


# ---------------------------------------------------------------------------------------- models


class _GraphRecommender(GeneralRecommender):
    """Shared plumbing: the normalised training graph, BPR loss, and the evaluation cache."""

    input_type = InputType.PAIRWISE

    #: evaluation caches, rebuilt on demand: mid-cell checkpoints leave them out (plugin API, "cache_attributes")
    cache_attributes = ("_cache", "_params")

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        inter = dataset.inter_matrix(form="coo")
        self.n_nodes = self.n_users + self.n_items
        edge_index = interaction_edge_index(inter, self.n_users)
        # Plain attributes, not buffers: the graph is data, not state (kept out of state_dict).
        self.adj: Tensor = normalized_adjacency(edge_index, self.n_nodes).to(self.device)
        self.reg_weight: float = float(config["reg_weight"])
        self.mf_loss = BPRLoss()
        self.reg_loss = EmbLoss()
        self._cache: tuple[tuple[tuple[int, int], ...], tuple[Tensor, Tensor]] | None = None
        self._params: list[nn.Parameter] | None = None

    # subclasses implement forward() -> (user_embeddings, item_embeddings)

    def _state_key(self) -> tuple[tuple[int, int], ...]:
        # The parameter list is looked up once per evaluation pass (walking the modules for every
        # batch of two users costs ~10% of an evaluation); train() and .to() forget it.
        if self._params is None:
            self._params = list(self.parameters())
        return tuple((p.data_ptr(), p._version) for p in self._params)

    def propagated(self) -> tuple[Tensor, Tensor]:
        """User and item embeddings after propagation; computed once per evaluation pass.

        In training mode or with autograd on, always recomputed. In eval mode under ``no_grad`` the
        result is reused until a parameter changes in place (optimiser step, ``load_state_dict``) or
        the model goes through ``train()`` / ``.to()``.
        """
        if self.training or torch.is_grad_enabled():
            self._cache = None
            return self.forward()
        key = self._state_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.forward())
        return self._cache[1]

    def train(self, mode: bool = True) -> _GraphRecommender:
        self._cache, self._params = None, None
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> _GraphRecommender:
        self._cache, self._params = None, None
        return super()._apply(fn, *args, **kwargs)

    def _graph(self, like: Tensor) -> Tensor:
        """The adjacency, on ``like``'s device (follows the model after a later ``.to()``)."""
        if self.adj.device != like.device:
            self.adj = self.adj.to(like.device)
        return self.adj

    def predict(self, interaction: Any) -> Tensor:
        user_e, item_e = self.propagated()
        return (user_e[interaction[self.USER_ID]] * item_e[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> Tensor:
        user_e, item_e = self.propagated()
        return (user_e[interaction[self.USER_ID]] @ item_e.t()).view(-1)

    def _bpr(self, interaction: Any) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
        """BPR loss of a batch, its (user, pos, neg) ids and their propagated embeddings."""
        ids = (interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID])
        user_e, item_e = self.forward()
        u, p, n = user_e[ids[0]], item_e[ids[1]], item_e[ids[2]]
        return self.mf_loss((u * p).sum(dim=1), (u * n).sum(dim=1)), ids, (u, p, n)


class PyGLightGCN(_GraphRecommender):
    r"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation", SIGIR 2020) with PyG :class:`LGConv` layers.

    .. math::
        E^{(k+1)} = D^{-1/2} A D^{-1/2} E^{(k)}, \qquad
        E = \frac{1}{K+1} \sum_{k=0}^{K} E^{(k)}, \qquad \hat{y}_{ui} = e_u^\top e_i

    trained with BPR on sampled negatives plus ``reg_weight`` × L2 of the layer-0 embeddings of
    the batch (RecBole's ``EmbLoss``, honouring ``require_pow``).
    """

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.latent_dim = int(config["embedding_size"])
        self.n_layers = int(config["n_layers"])
        self.require_pow = bool(config["require_pow"])
        # Same modules, order and initialisation as RecBole's LightGCN (same RNG draws).
        self.user_embedding = nn.Embedding(self.n_users, self.latent_dim)
        self.item_embedding = nn.Embedding(self.n_items, self.latent_dim)
        self.convs = nn.ModuleList(SymmetricLGConv() for _ in range(self.n_layers))
        self.apply(xavier_uniform_initialization)

    def forward(self) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        adj, out = self._graph(x), x
        for conv in self.convs:
            x = conv(x, adj)
            out = out + x
        out = out / (self.n_layers + 1)
        return out[: self.n_users], out[self.n_users :]

    def calculate_loss(self, interaction: Any) -> Tensor:
        loss, (user, pos, neg), _ = self._bpr(interaction)
        reg = self.reg_loss(
            self.user_embedding(user), self.item_embedding(pos), self.item_embedding(neg),
            require_pow=self.require_pow,
        )
        return loss + self.reg_weight * reg


class PyGNGCF(_GraphRecommender):
    r"""NGCF (Wang et al., "Neural Graph Collaborative Filtering", SIGIR 2019) with PyG
    :class:`NGCFConv` layers.

    .. math::
        E^{(l+1)} = \mathrm{norm}\Big(\mathrm{drop}\big(\mathrm{LeakyReLU}_{0.2}\big(
            (\mathcal{L}+I) E^{(l)} W_1^{(l)} + (\mathcal{L}E^{(l)} \odot E^{(l)}) W_2^{(l)}\big)\big)\Big),
        \qquad E = E^{(0)} \,\|\, E^{(1)} \,\|\, \cdots \,\|\, E^{(L)}

    scored by :math:`e_u^\top e_i`, trained with BPR + ``reg_weight`` × L2 of the batch's final
    embeddings (as RecBole's NGCF). ``node_dropout`` drops *undirected* edges (both directions
    together, keeping :math:`\mathcal{L}` symmetric; RecBole drops each direction independently),
    ``message_dropout`` is dropout on each layer's output.
    """

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.embedding_size = int(config["embedding_size"])
        sizes = [self.embedding_size, *[int(h) for h in config["hidden_size_list"]]]
        self.node_dropout = float(config["node_dropout"])
        self.message_dropout = float(config["message_dropout"])
        # Same modules, order and initialisation as RecBole's NGCF (same RNG draws).
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.emb_dropout = nn.Dropout(self.message_dropout)
        self.convs = nn.ModuleList(NGCFConv(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.apply(xavier_normal_initialization)
        self._mirror: Tensor | None = None  # entry → its transpose's position, built on first use

    def _dropped_adjacency(self, like: Tensor) -> Tensor:
        adj = self._graph(like)
        if not self.training or self.node_dropout <= 0:
            return adj
        if self._mirror is None or self._mirror.device != adj.device:
            self._mirror = _mirror_index(adj)
        keep = 1.0 - self.node_dropout
        values = adj.values()
        draw = torch.rand(values.numel(), device=values.device) < keep
        position = torch.arange(values.numel(), device=values.device)
        mask = draw[torch.minimum(position, self._mirror)]  # one draw per undirected edge
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
            return torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(), values * mask / keep, adj.shape)

    def forward(self) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        adj = self._dropped_adjacency(x)
        layers = [x]
        for conv in self.convs:
            x = F.normalize(self.emb_dropout(F.leaky_relu(conv(x, adj), negative_slope=0.2)), p=2, dim=1)
            layers.append(x)
        out = torch.cat(layers, dim=1)
        return out[: self.n_users], out[self.n_users :]

    def calculate_loss(self, interaction: Any) -> Tensor:
        loss, _, embeddings = self._bpr(interaction)
        return loss + self.reg_weight * self.reg_loss(*embeddings)


# ---------------------------------------------------------------------------------------- configs


class LightGCNConfig(PluginConfig):
    """LightGCN hyper-parameters; defaults are RecBole 1.2.1's ``LightGCN.yaml``."""

    embedding_size: int = Field(64, ge=1, description="size of user and item embeddings")
    n_layers: int = Field(2, ge=0, description="number of LGConv propagation layers")
    reg_weight: float = Field(1e-5, ge=0, description="weight of the L2 term on layer-0 embeddings")


def lightgcn_search_space(trial: Any) -> dict[str, Any]:
    """Optuna space: RecBole's LightGCN grid (https://recbole.io/hyperparameters/, ``choice`` ranges).

    The very grid of the RecBole ``LightGCN`` baseline (``m6rec_bench.tuning.spaces.lightgcn``),
    so the two implementations are tuned alike and their rows compare; RecBole's defaults
    (trial 0) lie in it.
    """
    return {
        "learning_rate": trial.suggest_categorical("learning_rate", [5e-4, 1e-3, 2e-3]),
        "n_layers": trial.suggest_categorical("n_layers", [1, 2, 3, 4]),
        "reg_weight": trial.suggest_categorical("reg_weight", [1e-5, 1e-4, 1e-3, 1e-2]),
    }


class NGCFConfig(PluginConfig):
    """NGCF hyper-parameters; defaults are RecBole 1.2.1's ``NGCF.yaml``."""

    embedding_size: int = Field(64, ge=1, description="size of layer-0 user and item embeddings")
    hidden_size_list: tuple[int, ...] = Field((64, 64, 64), min_length=1, description="output size of each NGCF layer")
    node_dropout: float = Field(0.0, ge=0, lt=1, description="drop rate of (undirected) graph edges in training")
    message_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on each layer's output in training")
    reg_weight: float = Field(1e-5, ge=0, description="weight of the L2 term on the batch's final embeddings")


def ngcf_search_space(trial: Any) -> dict[str, Any]:
    """Optuna space: RecBole's NGCF grid (https://recbole.io/hyperparameters/, ``choice`` ranges).

    The very grid of the RecBole ``NGCF`` baseline (``m6rec_bench.tuning.spaces.ngcf``), so the
    two implementations are tuned alike; RecBole's defaults (trial 0) lie in it.
    """
    return {
        "learning_rate": trial.suggest_categorical("learning_rate", [1e-4, 5e-4, 1e-3]),
        "node_dropout": trial.suggest_categorical("node_dropout", [0.0, 0.1]),
        "message_dropout": trial.suggest_categorical("message_dropout", [0.0, 0.1, 0.2]),
        "reg_weight": trial.suggest_categorical("reg_weight", [1e-5, 1e-4]),
        "hidden_size_list": [
            int(h) for h in trial.suggest_categorical("hidden_size_list", ["64,64,64", "128,128,128"]).split(",")
        ],
    }


lightgcn = Plugin(
    name="GNN-LightGCN",
    family="gnn",
    description="LightGCN on PyTorch Geometric (He et al., SIGIR 2020)",
    config_cls=LightGCNConfig,
    model_cls=PyGLightGCN,
    needs=frozenset({"inter"}),
    search_space=lightgcn_search_space,
    implements="LightGCN",  # RecBole's LightGCN: boards compare the two in their implementations table
)

ngcf = Plugin(
    name="GNN-NGCF",
    family="gnn",
    description="NGCF on PyTorch Geometric (Wang et al., SIGIR 2019)",
    config_cls=NGCFConfig,
    model_cls=PyGNGCF,
    needs=frozenset({"inter"}),
    search_space=ngcf_search_space,
    # Its dense per-layer transforms make a full early-stopping run take ~30 min on 2 CPU cores;
    # run it explicitly with --models GNN-NGCF.
    in_default_suite=False,
)
