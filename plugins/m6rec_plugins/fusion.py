"""M6-Fusion: one item vector from ID, knowledge graph, text and graph propagation, fused per item.

Ideas and the papers they come from:

* **M6-Rec** (Cui et al., "M6-Rec: Generative Pretrained Language Models are Open-Ended Recommender
  Systems", arXiv 2205.08084): an item is described by its content (text) so that items never seen
  in training can still be represented and ranked; here the text tower's frozen
  all-MiniLM-L6-v2 sentence vector (``m6rec_plugins.text.item_text_embeddings``) plays that role.
* **CKE** (Zhang et al., "Collaborative Knowledge Base Embedding for Recommender Systems", KDD
  2016): the item vector adds a structural-knowledge embedding to the collaborative one; here the
  frozen PyKEEN TransE entity vector of ``m6rec_plugins.kg.entity_embeddings`` (same cache).
* **LightGCN** (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
  Recommendation", SIGIR 2020): parameter-free propagation over the normalised training graph,
  :math:`E^{(l+1)} = D^{-1/2} A D^{-1/2} E^{(l)}`; users are the layer mean, items get the mean of
  layers :math:`1..L` as their *graph* modality (layer 0 is the *ID* modality).
* **Modality dropout / gated fusion** (as in DropoutNet, Volkovs et al., NeurIPS 2017, for cold
  start): during training the ID and graph modalities of a random fraction of items are removed
  (and their degree input set to 0), so content-only vectors are trained to rank; a cold item
  (no training interactions) is then scored from its KG and text vectors alone.

Item :math:`j` with modality vectors :math:`h_{j,m}` (ID, graph, KG, text; each projected to
``embedding_size``), availability :math:`a_{j,m}\\in\\{0,1\\}` (ID/graph: the item has training
interactions; KG: it is linked to an entity; text: it has text) and item features
:math:`\\phi_j = [\\log(1+\\deg_j)/\\log(1+\\deg_{max}), a_{j,\\cdot}]`:

.. math::

    \\text{gate:}\\quad e_j = \\sum_m a_{j,m}\\,\\sigma(w_m^\\top[h_{j,m};\\phi_j] + b_m)\\,h_{j,m}
    \\qquad
    \\text{attention:}\\quad e_j = \\sum_m \\operatorname{softmax}_{m: a_{j,m}=1}
        \\big(q^\\top \\tanh(W[h_{j,m};\\phi_j])\\big)\\,h_{j,m}

and :math:`\\hat y_{uj} = \\cos(u, e_j)` (softmax loss) or :math:`u^\\top e_j` (BPR), with :math:`u` the
LightGCN user vector (the ID embedding when ``use_graph`` is off). Loss: a softmax with temperature
over all items that have training interactions (default; or over ``n_negatives`` sampled ones), or
BPR (Rendle et al., UAI 2009). Negatives are only ever items with training interactions: an item
the training data says nothing about is not evidence of dislike. ``use_kg`` / ``use_text`` /
``use_graph`` switch modalities off (a switched-off modality is not even loaded); the plugin's
``ablations`` are exactly those three switches.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import EmbLoss
from recbole.utils import InputType
from torch import nn
from torch.nn import functional as F

from m6rec_bench.plugin_api import DataError, FoldIn, FoldInVectors, Plugin, PluginConfig, symmetric_spmm
from m6rec_plugins.kg import isolated_rng
from m6rec_plugins.towers import DotScores

class FusionConfig(PluginConfig):
    """Hyper-parameters of :class:`M6Fusion`.

    ``loss_type="softmax"`` is a softmax over cosine similarities divided by ``temperature``
    against ``n_negatives`` uniform negatives, or against every item with training interactions
    when ``n_negatives`` is 0 (the default: a full softmax is cheap at MovieLens scale).
    ``cold_dropout`` is the share of items per batch whose ID and graph vectors are removed;
    ``content_dropout`` the share whose KG / text vector is removed (each independently).
    """

    embedding_size: int = 64
    n_layers: int = 2
    fusion: Literal["gate", "attention"] = "gate"
    loss_type: Literal["bpr", "softmax"] = "softmax"
    n_negatives: int = 0
    temperature: float = 0.2
    reg_weight: float = 1e-5
    use_kg: bool = True
    use_text: bool = True
    use_graph: bool = True
    cold_dropout: float = 0.2
    content_dropout: float = 0.1
    content_hidden: int = 128


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space of :class:`FusionConfig` (plus RecBole's learning rate)."""
    return {
        "embedding_size": trial.suggest_categorical("embedding_size", [32, 64, 128]),
        "n_layers": trial.suggest_int("n_layers", 1, 3),
        "fusion": trial.suggest_categorical("fusion", ["gate", "attention"]),
        "loss_type": trial.suggest_categorical("loss_type", ["bpr", "softmax"]),
        "temperature": trial.suggest_float("temperature", 0.05, 0.5, log=True),
        "reg_weight": trial.suggest_float("reg_weight", 1e-6, 1e-3, log=True),
        "cold_dropout": trial.suggest_float("cold_dropout", 0.0, 0.5),
        "content_dropout": trial.suggest_float("content_dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


# ---------------------------------------------------------------- content (sibling plugins' caches)


def kg_vectors(config: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """KG entity vector per internal item id and the linked mask (the KG plugin's cached TransE)."""
    from m6rec_plugins.kg import entity_embeddings

    return entity_embeddings(config, dataset)


def text_vectors(config: Any, dataset: Any) -> np.ndarray:
    """Text vector per internal item id (the text tower's cached all-MiniLM-L6-v2 embedding)."""
    from m6rec_plugins.text import item_text_embeddings

    return item_text_embeddings(config, dataset)


def _rows_present(arr: np.ndarray) -> np.ndarray:
    present = np.abs(arr).sum(axis=1) > 0
    present[0] = False
    return present


class _ContentTower(nn.Module):
    """Frozen content vectors → a two-layer MLP into the collaborative space."""

    def __init__(self, table: np.ndarray, hidden: int, out: int) -> None:
        super().__init__()
        table = table.astype(np.float32)
        norm = np.linalg.norm(table, axis=1, keepdims=True)
        table = np.where(norm > 0, table / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
        self.register_buffer("table", torch.from_numpy(table), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(table.shape[1], hidden), nn.GELU(), nn.Linear(hidden, out))

    def forward(self, items: torch.Tensor | None) -> torch.Tensor:
        x = self.table if items is None else self.table[items]
        return self.mlp(x)


#: The most logits (batch rows × candidates) the softmax loss holds at once. A larger batch is
#: computed in row chunks, each recomputed in the backward pass (activation checkpointing), so the
#: loss's memory stays ~4 × this × 4 bytes (≈ 0.5 GB) whatever the batch and catalogue: a full
#: softmax of a 65,536 batch over 27k items (20M interactions) would otherwise hold ~28 GB of logits,
#: softmax and gradients. At MovieLens-100k scale (2,048 × 1,682) one chunk is the whole batch and
#: the loss is computed exactly as before.
SOFTMAX_CHUNK_LOGITS = 2**25


def _softmax_rows(u_n: torch.Tensor, pos_n: torch.Tensor, cand_n: torch.Tensor, pos: torch.Tensor,
                  cand: torch.Tensor, temperature: float, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the positive against itself plus the candidates (the positive masked among them)."""
    pos_logit = (u_n * pos_n).sum(1, keepdim=True)
    cand_logit = (u_n @ cand_n.T).masked_fill(cand.unsqueeze(0) == pos.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos_logit, cand_logit], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device), reduction=reduction)


def _softmax_columns(u_n: torch.Tensor, cand_n: torch.Tensor, target: torch.Tensor, temperature: float,
                     reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the candidates with the positive's own column as the target."""
    return F.cross_entropy((u_n / temperature) @ cand_n.T, target, reduction=reduction)


def positive_columns(pos: torch.Tensor, cand: torch.Tensor) -> torch.Tensor | None:
    """Each positive's column in ``cand`` when ``cand`` is strictly increasing and holds every
    positive (the full softmax over warm items); None otherwise (sampled candidates)."""
    if len(cand) == 0 or (len(cand) > 1 and not bool((cand[1:] > cand[:-1]).all())):
        return None
    col = torch.searchsorted(cand, pos).clamp(max=len(cand) - 1)
    return col if bool((cand.index_select(0, col) == pos).all()) else None


def softmax_loss(u_n: torch.Tensor, pos_n: torch.Tensor, cand_n: torch.Tensor, pos: torch.Tensor,
                 cand: torch.Tensor, temperature: float, chunk_logits: int = SOFTMAX_CHUNK_LOGITS) -> torch.Tensor:
    """Mean sampled/full softmax loss with memory bounded by ``chunk_logits`` (see the constant).

    When every positive is among the candidates (the full softmax: ``cand`` is the sorted warm
    items) and ``pos_n`` are the candidates' own rows, the positive's logit is its column, so the
    loss is the plain cross-entropy over the candidates: the same value as masking the positive's
    column and prepending its logit, without the mask, the concatenation and a division of the whole
    logit matrix (on ml-100k the loss went from ~55 % of an M6-Fusion epoch to ~20 %). Otherwise
    (sampled candidates) the positive is prepended and masked among them.
    """
    col = positive_columns(pos, cand)
    rows = max(1, chunk_logits // max(1, len(cand) + 1))
    if col is not None:
        fn, args = _softmax_columns, lambda part: (u_n[part], cand_n, col[part], temperature)
    else:
        fn, args = _softmax_rows, lambda part: (u_n[part], pos_n[part], cand_n, pos[part], cand, temperature)
    if len(pos) <= rows:
        return fn(*args(slice(None)))
    from torch.utils.checkpoint import checkpoint

    total = u_n.new_zeros(())
    for start in range(0, len(pos), rows):
        total = total + checkpoint(fn, *args(slice(start, start + rows)), "sum", use_reentrant=False)
    return total / len(pos)


def drop_modalities(avail: dict[str, torch.Tensor], log_deg: torch.Tensor, collaborative: list[str],
                    content: list[str], cold_dropout: float, content_dropout: float) -> torch.Tensor:
    """Modality dropout (DropoutNet), updating ``avail`` in place; returns the degree feature.

    A ``cold_dropout`` share of the items loses its ``collaborative`` modalities (ID, graph) and its
    degree, as if it had no training interactions; each ``content`` modality is dropped for a
    ``content_dropout`` share, never for a simulated cold item (it must rank from content).
    """
    cold = torch.rand(log_deg.shape, device=log_deg.device) < cold_dropout
    for name in collaborative:
        avail[name] = avail[name] & ~cold
    log_deg = torch.where(cold, torch.zeros_like(log_deg), log_deg)
    for name in content:
        keep = torch.rand(log_deg.shape, device=log_deg.device) >= content_dropout
        avail[name] = avail[name] & (keep | cold)
    return log_deg


def modality_inputs(modalities: list[str], vecs: dict[str, torch.Tensor], avail: dict[str, torch.Tensor],
                    log_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Availability ``a`` [B, M], modality vectors ``h`` [B, M, d] and the gate/attention input
    ``z = [h; log degree; a]`` [B, M, d + 1 + M]. An item with no modality keeps its ID vector."""
    a = torch.stack([avail[m] for m in modalities], dim=1).float()
    none = a.sum(dim=1) == 0
    if none.any():  # an item with no modality at all keeps its (untrained) ID vector
        a[none, 0] = 1.0
    h = torch.stack([vecs[m] for m in modalities], dim=1)
    feat = torch.cat([log_deg.unsqueeze(1), a], dim=1).unsqueeze(1).expand(-1, len(modalities), -1)
    return a, h, torch.cat([h, feat], dim=2)


def gate_weights(gate: nn.ModuleDict, modalities: list[str], z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The gate's weight of each modality, :math:`a_{j,m}\\,\\sigma(w_m^\\top[h_{j,m};\\phi_j] + b_m)`."""
    return torch.cat([torch.sigmoid(gate[m](z[:, i])) for i, m in enumerate(modalities)], dim=1) * a


class M6Fusion(DotScores, GeneralRecommender):
    """Gated (or attention) fusion of ID, LightGCN graph, KG and text item vectors; see the module doc."""

    input_type = InputType.PAIRWISE

    #: evaluation caches, rebuilt on demand: mid-cell checkpoints leave them out (plugin API, "cache_attributes")
    cache_attributes = ("_cache",)

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.d = int(config["embedding_size"])
        self.n_layers = int(config["n_layers"])
        self.fusion = str(config["fusion"])
        self.loss_type = str(config["loss_type"])
        self.n_negatives = int(config["n_negatives"])
        self.temperature = float(config["temperature"])
        self.reg_weight = float(config["reg_weight"])
        self.use_graph = bool(config["use_graph"])
        self.cold_dropout = float(config["cold_dropout"])
        self.content_dropout = float(config["content_dropout"])
        hidden = int(config["content_hidden"])

        inter = dataset.inter_matrix(form="coo").astype(np.float32)
        deg = np.bincount(inter.col, minlength=self.n_items).astype(np.float32)
        deg[0] = 0.0
        self.register_buffer("log_deg", torch.from_numpy(np.log1p(deg) / max(np.log1p(deg.max()), 1.0)),
                             persistent=False)
        warm = np.flatnonzero(deg > 0)
        if len(warm) == 0:
            raise DataError("M6-Fusion: the training data has no interactions")
        self.register_buffer("warm_items", torch.from_numpy(warm.astype(np.int64)), persistent=False)
        self.register_buffer("is_warm", torch.from_numpy(deg > 0), persistent=False)

        self.user_embedding = nn.Embedding(self.n_users, self.d)
        self.item_embedding = nn.Embedding(self.n_items, self.d)
        if self.use_graph:
            self.register_buffer("norm_adj", self._norm_adj(inter), persistent=False)

        self.towers = nn.ModuleDict()
        # A cache miss trains/encodes content; the global RNGs must not notice (same seed, same model).
        with isolated_rng():
            kg, linked = kg_vectors(config, dataset) if config["use_kg"] else (None, None)
            text = text_vectors(config, dataset) if config["use_text"] else None
        if kg is not None:
            self._check_rows("KG", kg)
            self.towers["kg"] = _ContentTower(kg, hidden, self.d)
            self.register_buffer("avail_kg", torch.from_numpy(linked & _rows_present(kg)), persistent=False)
        if text is not None:
            self._check_rows("text", text)
            self.towers["text"] = _ContentTower(text, hidden, self.d)
            self.register_buffer("avail_text", torch.from_numpy(_rows_present(text)), persistent=False)
        self.modalities = ["id"] + (["graph"] if self.use_graph else []) + list(self.towers.keys())
        n_mod = len(self.modalities)
        self.n_feat = 1 + n_mod  # log degree + availability flags
        if self.fusion == "gate":
            self.gate = nn.ModuleDict({m: nn.Linear(self.d + self.n_feat, 1) for m in self.modalities})
        else:
            self.att_proj = nn.Linear(self.d + self.n_feat, self.d)
            self.att_query = nn.Parameter(torch.zeros(self.d))
            self.modality_bias = nn.Parameter(torch.zeros(n_mod))
        self.reg_loss = EmbLoss()
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.apply(xavier_uniform_initialization)
        if self.fusion == "gate":
            for layer in self.gate.values():
                nn.init.zeros_(layer.weight)
                nn.init.constant_(layer.bias, 2.0)  # start with every available modality open
        else:
            nn.init.normal_(self.att_query, std=0.1)

    # ------------------------------------------------------------ construction helpers

    def _check_rows(self, what: str, table: np.ndarray) -> None:
        if table.shape[0] != self.n_items:
            raise DataError(f"M6-Fusion: {what} vectors cover {table.shape[0]} items, the dataset has {self.n_items}")

    def _norm_adj(self, inter: Any) -> torch.Tensor:
        """LightGCN's :math:`D^{-1/2} A D^{-1/2}` of the user–item training graph, as a sparse tensor."""
        n = self.n_users + self.n_items
        rows = np.concatenate([inter.row, inter.col + self.n_users])
        cols = np.concatenate([inter.col + self.n_users, inter.row])
        pairs = np.unique(np.stack([rows, cols]), axis=1)
        deg = np.bincount(pairs[0], minlength=n).astype(np.float64) + 1e-7
        vals = (deg[pairs[0]] ** -0.5) * (deg[pairs[1]] ** -0.5)
        coo = torch.sparse_coo_tensor(
            torch.from_numpy(pairs.astype(np.int64)), torch.from_numpy(vals.astype(np.float32)), (n, n),
            check_invariants=True,
        ).coalesce()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": products and their grads are stable
            warnings.simplefilter("ignore", UserWarning)
            return coo.to_sparse_csr()  # ~30 % faster sparse-dense products on CPU than COO

    # ------------------------------------------------------------ representations

    def _propagate(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """User vectors and the graph modality of every item (None without propagation)."""
        users, items = self.user_embedding.weight, self.item_embedding.weight
        if not self.use_graph:
            return users, None
        x = torch.cat([users, items], dim=0)
        layers = []
        for _ in range(self.n_layers):
            x = symmetric_spmm(self.norm_adj, x)
            layers.append(x)
        mean = torch.stack(layers, dim=0).mean(dim=0)
        user_graph, item_graph = torch.split(mean, [self.n_users, self.n_items])
        user_vec = (users + self.n_layers * user_graph) / (self.n_layers + 1)  # LightGCN layer mean
        return user_vec, item_graph

    def _item_vectors(self, items: torch.Tensor | None, item_graph: torch.Tensor | None,
                      drop: bool) -> torch.Tensor:
        """Fused vectors of ``items`` (all items when None).

        ``drop`` applies modality dropout, drawn once per distinct item of the batch; the towers and
        gates run once per distinct item too (a batch repeats popular items many times).
        """
        if items is None:
            return self._fuse(None, item_graph, drop)[0]
        uniq, inverse = torch.unique(items, return_inverse=True)
        return self._fuse(uniq, item_graph, drop)[0].index_select(0, inverse)

    def _fuse(self, items: torch.Tensor | None, item_graph: torch.Tensor | None,
              drop: bool) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(self.n_items, device=self.log_deg.device) if items is None else items
        vecs = {"id": self.item_embedding(idx)}
        avail = {"id": self.is_warm[idx]}
        if self.use_graph:
            vecs["graph"] = item_graph.index_select(0, idx)
            avail["graph"] = avail["id"]
        for name, tower in self.towers.items():
            vecs[name] = tower(idx)
            avail[name] = getattr(self, f"avail_{name}")[idx]
        log_deg = self.log_deg[idx]
        if drop:
            log_deg = drop_modalities(avail, log_deg, ["id", "graph"] if self.use_graph else ["id"], list(self.towers),
                                      self.cold_dropout, self.content_dropout)
        a, h, z = modality_inputs(self.modalities, vecs, avail, log_deg)
        if self.fusion == "gate":
            w = gate_weights(self.gate, self.modalities, z, a)
        else:
            score = torch.tanh(self.att_proj(z)) @ self.att_query + self.modality_bias
            w = torch.softmax(score.masked_fill(a == 0, float("-inf")), dim=1)
        return (w.unsqueeze(2) * h).sum(dim=1), w

    @torch.no_grad()
    def modality_weights(self) -> dict[str, np.ndarray]:
        """Fusion weight of every modality for every item (gate value × availability, or attention)."""
        _, item_graph = self._propagate()
        _, w = self._fuse(None, item_graph, drop=False)
        return {m: w[:, i].cpu().numpy() for i, m in enumerate(self.modalities)}

    # ------------------------------------------------------------ RecBole API

    def _negatives(self, neg_item: torch.Tensor) -> torch.Tensor:
        """RecBole's negatives, with items that have no training interaction redrawn among warm items."""
        bad = ~self.is_warm[neg_item]
        if bad.any():
            pick = torch.randint(len(self.warm_items), (int(bad.sum()),), device=neg_item.device)
            neg_item = neg_item.clone()
            neg_item[bad] = self.warm_items[pick]
        return neg_item

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        self._cache = None
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        user_all, item_graph = self._propagate()
        u = user_all.index_select(0, user)  # not user_all[user]: its CPU backward is not deterministic
        if self.loss_type == "bpr":
            neg = self._negatives(interaction[self.NEG_ITEM_ID])
            items = torch.cat([pos, neg])
            e = self._item_vectors(items, item_graph, drop=True)
            pos_e, neg_e = e[: len(pos)], e[len(pos):]
            loss = -F.logsigmoid((u * pos_e).sum(1) - (u * neg_e).sum(1)).mean()
            reg = self.reg_loss(self.user_embedding(user), self.item_embedding(pos), self.item_embedding(neg))
        else:
            if 0 < self.n_negatives < len(self.warm_items):
                cand = self.warm_items[torch.randint(len(self.warm_items), (self.n_negatives,), device=pos.device)]
            else:  # full softmax over every item with training interactions
                cand = self.warm_items
            e = self._item_vectors(torch.cat([pos, cand]), item_graph, drop=True)
            pos_e, cand_e = e[: len(pos)], e[len(pos):]
            u_n, pos_n, cand_n = F.normalize(u, dim=1), F.normalize(pos_e, dim=1), F.normalize(cand_e, dim=1)
            loss = softmax_loss(u_n, pos_n, cand_n, pos, cand, self.temperature)
            reg = self.reg_loss(self.user_embedding(user), self.item_embedding(pos))
        return loss + self.reg_weight * reg

    def _all_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self.training:
            user_all, item_graph = self._propagate()
            items = self._item_vectors(None, item_graph, drop=False)
            if self.loss_type == "softmax":
                user_all, items = F.normalize(user_all, dim=1), F.normalize(items, dim=1)
            cache = (user_all, items)
            if self.training:
                return cache
            self._cache = cache
        return self._cache



def fold_in_vectors(loaded: Any) -> FoldInVectors:
    """``m6bench serve``'s fold-in: the vectors ``full_sort_predict`` multiplies; an item folds in as its
    unit fused vector, a known user starts from their unit trained vector (with the softmax default both
    are already unit vectors, so scores are cosines)."""
    with torch.no_grad():
        users, items = loaded.model._all_vectors()
    return FoldInVectors(users=users, items=items, fold=F.normalize(items, dim=1), base=F.normalize(users, dim=1))


#: M6-Fusion's fold-in rule, shared by the plugins whose model is an M6Fusion (M6-Fusion-MTL).
FOLD_IN = FoldIn("M6-Fusion", fold_in_vectors)


def modality_weights(model: M6Fusion) -> dict[str, np.ndarray]:
    """``m6bench explain``'s modality gates: :meth:`M6Fusion.modality_weights`."""
    return model.modality_weights()


plugin = Plugin(
    name="M6-Fusion",
    family="fusion",
    description="M6-Rec style fusion of ID, LightGCN graph, PyKEEN KG and MiniLM text item vectors "
    "(arXiv 2205.08084; LightGCN; CKE)",
    config_cls=FusionConfig,
    model_cls=M6Fusion,
    needs=frozenset({"inter", "kg", "item_text"}),
    search_space=search_space,
    recbole_config={"learning_rate": 0.005},
    ablations={
        "w/o KG": {"use_kg": False},
        "w/o text": {"use_text": False},
        "w/o graph": {"use_graph": False},
    },
    fold_in=FOLD_IN,
    modality_weights=modality_weights,
)
