r"""GenRec-TIGER: generative retrieval — a Transformer writes the next item's semantic ID, token by token.

Follows TIGER (Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023):

* every item is its **semantic ID** :math:`(c_1, \dots, c_L, c_{L+1})`, residual k-means codes of
  its frozen all-MiniLM-L6-v2 text vector plus a collision index
  (:mod:`m6rec_plugins.semantic_ids`); the catalogue needs no item-ID embedding table;
* a user's items :math:`i_1, i_2, \dots` are the token sequence
  :math:`\text{BOS}, c_1(i_1), \dots, c_{L+1}(i_1), c_1(i_2), \dots`, and the model is trained,
  teacher-forced, to generate every item's codes from the items before it:

.. math::
    \mathcal{L} = -\frac{1}{n(L+1)} \sum_{t=1}^{n} \sum_{l=1}^{L+1}
        \log p_\theta\big(c_l(i_t) \mid i_{<t}, c_{<l}(i_t)\big)

(a cross-entropy over level :math:`l`'s :math:`K_l` codes at each token). Each training row is
its history plus its target item, and every item of it is a target (SASRec's all-positions
objective, Kang & McAuley, ICDM 2018, on code tokens). A user's rows overlap (RecBole's
sequential rows are the prefixes of one sequence; the cold plugin's rows are windows of one
history), so an interaction is a target in up to ``MAX_ITEM_LIST_LENGTH`` + 1 rows of an
epoch; each batch therefore trains on a random ``train_share`` of its rows only.

* At inference a **beam search constrained by the trie** of valid tuples returns the
  ``beam_size`` most probable items, each with :math:`\log p(i) = \sum_l \log \tilde p(c_l \mid \cdot)`,
  where :math:`\tilde p` is the model's distribution renormalised over the codes the trie allows
  after the prefix (the scores form a distribution over real items, and no invalid tuple — no
  hallucinated item — can be produced). ``predict`` scores any (user, item) pair by the same
  :math:`\log p(i)`, teacher-forced.

TIGER uses a T5 encoder–decoder; here the model is a small decoder-only Transformer (pre-LN
blocks with causal self-attention, as in GPT-2). A token's input vector is the embedding of its
code (token ids are offset by level, so every level has its own table) plus an embedding of its
level and of its item's index in the window. Decoding runs the history once and caches every
layer's keys and values, so each beam step costs one token per beam.

``full_sort_predict`` returns, per user, the beam's log-probabilities for the items in the beam
and :data:`OUTSIDE_BEAM` (a finite floor, :math:`-10^9`, far below any log-probability) for every
other item: **items outside the beam are ranked last, tied**. With ``beam_size`` ≥ 20 the top-20
of the ranking is exactly the beam's list as long as at least 20 beam items survive the
evaluator's masking; beyond the beam the order of the tied items is arbitrary, so metrics at
cut-offs above the beam size mean little. (A finite floor rather than ``-inf``: the shared plugin
contract requires finite scores for real items; the ranking is the same.)

Two plugins share this core (:class:`GenerativeCore`):

* ``GenRec-TIGER`` — a RecBole ``SequentialRecommender`` (``--protocol sequential``): the history
  is RecBole's ``item_id_list`` (``MAX_ITEM_LIST_LENGTH`` items at most, 20 by default as on the
  sequential board; every prefix of a training sequence is one row, RecBole's augmentation),
  ``loss_type: CE`` with no sampled negatives. Like RecBole's sequential models it may generate
  an item the user already has (the evaluator masks nothing for sequential models).
* ``GenRec-TIGER-Cold`` — a ``GeneralRecommender`` for the protocols that run general models
  (``cold-item``, ``default``): each user's training interactions in time order (``timestamp``,
  which the plugin loads; file order if the dataset has none). A training interaction is one row:
  the target and the (at most) ``max_history`` items before it. At evaluation it generates from
  the user's last ``max_history`` training items and keeps the user's training items out of the
  beam (RecBole's evaluator masks them for a general model anyway; this keeps the beam's slots for
  rankable items, and never changes a score). Because the codes come from text, **cold items
  have semantic IDs**: the trie holds every item with text, warm or cold, and the decoder can
  generate a cold item through the code prefixes it shares with warm ones.

Training recipe and budget (a shared 2-core CPU; ``d_model`` 64, 2 layers, 20 history items and
the target = 85 tokens per row): 256 trained rows take about a second on one core. Adam at
learning rate 0.003 (better than RecBole's 0.001 on seed 2020's validation NDCG@10 in a pilot whose
numbers were not kept; to be confirmed on validation by
``m6bench tune --dataset movielens --protocol sequential --model GenRec-TIGER --trials 30``, whose
trial 0 is this default).
``GenRec-TIGER`` trains on half of each 512-row batch (``train_share`` 0.5,
``train_batch_size`` 512): one epoch over ml-100k (~98k rows, 192 steps) takes ~2 min, so the
sequential board's budget of one epoch per model holds (each interaction is a target ~10 times
in it). ``GenRec-TIGER-Cold`` trains on an eighth of each 2,048-row batch (``train_share``
0.125): ~30 s per epoch over ml-100k's ~64k cold-item training rows. Histories are capped at 20
items (``MAX_ITEM_LIST_LENGTH`` / ``max_history``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import Field
from recbole.model.abstract_recommender import GeneralRecommender, SequentialRecommender
from recbole.utils import InputType
from torch import Tensor, nn
from torch.nn import functional as F

from m6rec_bench.plugin_api import DataError, Plugin, PluginConfig
from m6rec_plugins.semantic_ids import SemanticIds, Trie, residual_kmeans

__all__ = [
    "OUTSIDE_BEAM", "Beam", "CodeDecoder", "GenRecColdConfig", "GenRecConfig", "GenRecTIGER", "GenRecTIGERCold",
    "GenerativeCore", "cold", "cold_search_space", "plugin", "search_space", "semantic_ids", "time_ordered_histories",
]

#: Score of every item outside the beam in ``full_sort_predict``: ranked last, tied (finite on purpose).
OUTSIDE_BEAM = -1e9
#: Token ids of padding and of the start of a sequence; code tokens follow, offset by level.
PAD, BOS, N_SPECIAL = 0, 1, 2


class GenRecConfig(PluginConfig):
    """Hyper-parameters of GenRec-TIGER: the semantic IDs, the decoder, training and the beam."""

    n_levels: int = Field(3, ge=1, le=6, description="residual k-means levels L (a collision level comes on top)")
    n_codes: int = Field(32, ge=2, le=1024, description="k-means centroids per level K")
    kmeans_iters: int = Field(50, ge=1, description="Lloyd iterations per level at most")
    d_model: int = Field(64, ge=8, description="Transformer width")
    n_layers: int = Field(2, ge=1, description="Transformer blocks")
    n_heads: int = Field(2, ge=1, description="attention heads (must divide d_model)")
    ffn_size: int = Field(128, ge=8, description="feed-forward width of a block")
    dropout_prob: float = Field(0.1, ge=0, lt=1, description="dropout on the embeddings and block outputs")
    train_share: float = Field(0.5, gt=0, le=1, description="share of each batch's rows trained on (all positions)")
    beam_size: int = Field(40, ge=20, description="beam width of constrained decoding (>= 20: top-20 is the beam)")
    text_model: str = Field("all-MiniLM-L6-v2", description="sentence-transformer for item text")
    text_batch_size: int = Field(64, ge=1, description="encoding batch size (once, then cached)")


class GenRecColdConfig(GenRecConfig):
    """GenRec-TIGER-Cold: GenRec-TIGER's settings plus the length of the history it reads."""

    max_history: int = Field(20, ge=1, description="training items (latest first) a user's history keeps")
    cold_share: float = Field(0.1, ge=0, le=1, description="TIGER's epsilon: unseen items added, as a share of the beam")
    train_share: float = Field(0.125, gt=0, le=1, description="share of each batch's rows trained on (all positions)")


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna space of :class:`GenRecConfig` (plus RecBole's learning rate)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
        "n_codes": trial.suggest_categorical("n_codes", [16, 32, 64]),
        "n_levels": trial.suggest_int("n_levels", 2, 3),
        "d_model": trial.suggest_categorical("d_model", [64, 128]),
        "n_layers": trial.suggest_int("n_layers", 1, 3),
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.0, 0.1, 0.2]),
        "train_share": trial.suggest_categorical("train_share", [0.125, 0.25, 0.5, 1.0]),
    }


def cold_search_space(trial: Any) -> dict[str, Any]:
    """Optuna space of :class:`GenRecColdConfig`."""
    return {**search_space(trial), "max_history": trial.suggest_categorical("max_history", [10, 20, 50]),
            "cold_share": trial.suggest_categorical("cold_share", [0.0, 0.05, 0.1, 0.2, 0.3])}


def _trim(items: Tensor, count: Tensor) -> Tensor:
    """Drop trailing columns that are padding in every row (right-padded windows; at least one column)."""
    return items[:, : max(1, int(count.max()) if len(count) else 1)]


class Beam(NamedTuple):
    """Result of :meth:`GenerativeCore.beam_search`, all ``[U, beam]``, best first."""

    items: Tensor  #: item ids (0 where a user has fewer candidates than the beam)
    logp: Tensor  #: their log-probabilities (-inf where no item)
    prefix: Tensor  #: trie node of each item's first ``depth - 1`` codes (all but the collision index)
    prefix_logp: Tensor  #: log-probability of that prefix


class _Block(nn.Module):
    """Pre-LN Transformer block (GPT-2): causal multi-head self-attention, then a GELU feed-forward."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise DataError(f"d_model {d} is not divisible by n_heads {heads} — pick n_heads that divides d_model")
        self.heads, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Whole right-padded sequences ``[B, T, d]`` with causal attention: a real token never sees
        the padding after it, so no mask is needed (SDPA's fused causal kernel). Returns x, k, v."""
        b, t, d = x.shape
        q, k, v = (z.reshape(b, t, self.heads, self.dh).transpose(1, 2) for z in self.qkv(self.ln1(x)).chunk(3, -1))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ffn(self.ln2(x))), k, v

    def step(self, x: Tensor, pre_k: Tensor, pre_v: Tensor, pre_ok: Tensor, gen: list[Tensor]) -> Tensor:
        """One new token per beam, ``x`` ``[U, b, d]``, attending to the cached history and earlier beam tokens.

        ``pre_k/pre_v``: ``[U, heads, T0, dh]`` (the history, shared by a user's beams); ``pre_ok``
        ``[U, T0]`` its real keys; ``gen`` = ``[k, v]`` of the beam's own tokens,
        ``[U, b, heads, t, dh]``, extended in place with this token.
        """
        u, nb, d = x.shape
        q, k, v = (z.reshape(u, nb, self.heads, self.dh) for z in self.qkv(self.ln1(x)).chunk(3, -1))
        gen[0] = torch.cat([gen[0], k.unsqueeze(3)], dim=3) if gen[0].numel() else k.unsqueeze(3)
        gen[1] = torch.cat([gen[1], v.unsqueeze(3)], dim=3) if gen[1].numel() else v.unsqueeze(3)
        scale = 1.0 / math.sqrt(self.dh)
        s_pre = torch.einsum("ubhd,uhtd->ubht", q, pre_k).mul(scale).masked_fill(~pre_ok[:, None, None, :], float("-inf"))
        s_gen = torch.einsum("ubhd,ubhtd->ubht", q, gen[0]).mul(scale)
        att = torch.softmax(torch.cat([s_pre, s_gen], dim=-1), dim=-1)
        t0 = pre_k.shape[2]
        o = torch.einsum("ubht,uhtd->ubhd", att[..., :t0], pre_v) + torch.einsum("ubht,ubhtd->ubhd", att[..., t0:], gen[1])
        x = x + self.drop(self.out(o.reshape(u, nb, d)))
        return x + self.drop(self.ffn(self.ln2(x)))


class CodeDecoder(nn.Module):
    """Decoder-only Transformer over ``[BOS, codes of item 1, codes of item 2, …]``.

    Position ``t`` predicts token ``t + 1``; a token's input is its code embedding (token ids are
    offset by level, so each level has its own table) plus a level embedding and the embedding of
    its item's index in the window (BOS: index 0, the window's items 1, 2, …). The output layer
    has one slice of ``level_sizes[l]`` logits per level.
    """

    def __init__(self, level_sizes: tuple[int, ...], max_items: int, d: int, layers: int, heads: int,
                 ffn: int, dropout: float) -> None:
        super().__init__()
        self.level_sizes = level_sizes
        self.depth = len(level_sizes)
        offsets = np.concatenate([[0], np.cumsum(level_sizes)])
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.max_items = max_items
        self.token = nn.Embedding(N_SPECIAL + int(offsets[-1]), d, padding_idx=PAD)
        self.level = nn.Embedding(self.depth + 1, d)  # levels 0..depth-1; BOS = depth
        self.position = nn.Embedding(max_items + 1, d)  # 0: BOS; item j of the window: j + 1
        self.blocks = nn.ModuleList(_Block(d, heads, ffn, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, int(offsets[-1]))
        self.drop = nn.Dropout(dropout)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def level_logits(self, hidden: Tensor, level: int) -> Tensor:
        """Logits over level ``level``'s codes from hidden states ``[..., d]``."""
        lo, hi = int(self.offsets[level]), int(self.offsets[level + 1])
        return F.linear(self.ln(hidden), self.head.weight[lo:hi], self.head.bias[lo:hi])

    def code_vectors(self, codes: Tensor, level: int | Tensor, index: Tensor) -> Tensor:
        """Input vectors of code tokens: ``codes`` at ``level`` of the window's item ``index`` (0-based)."""
        return self.token(codes + self.offsets[level] + N_SPECIAL) + self.level(torch.as_tensor(level, device=codes.device)) \
            + self.position((index + 1).clamp(max=self.max_items))

    def forward(self, codes: Tensor, count: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Hidden states ``[B, 1 + W·depth, d]`` of ``[BOS, window]`` and every layer's (k, v).

        ``codes`` ``[B, W, depth]`` the window's items, right-padded: the first ``count`` are real.
        """
        b, w, depth = codes.shape
        dev = codes.device
        index = torch.arange(w, device=dev).view(1, w, 1).expand(b, w, depth)
        levels = torch.arange(depth, device=dev).view(1, 1, depth).expand(b, w, depth)
        vec = self.code_vectors(codes, levels, index)
        real = torch.arange(w, device=dev).unsqueeze(0) < count.unsqueeze(1)
        vec = vec.masked_fill(~real.view(b, w, 1, 1), 0.0).reshape(b, w * depth, -1)
        bos = (self.token.weight[BOS] + self.level.weight[depth] + self.position.weight[0]).expand(b, 1, -1)
        x = self.drop(torch.cat([bos, vec], dim=1))
        cache = []
        for block in self.blocks:
            x, k, v = block(x)
            cache.append((k, v))
        return x, cache

    def step(self, codes: Tensor, level: int, index: Tensor, cache: list[tuple[Tensor, Tensor]], real: Tensor,
             gen: list[list[Tensor]]) -> Tensor:
        """Feed one level-``level`` code per beam (``[U, b]``, of item ``index`` ``[U]``); hidden ``[U, b, d]``."""
        x = self.code_vectors(codes, level, index.unsqueeze(1).expand_as(codes))
        for block, (k, v), g in zip(self.blocks, cache, gen, strict=True):
            x = block.step(x, k, v, real, g)
        return x


class GenerativeCore(nn.Module):
    """Semantic IDs, their trie, the code decoder and constrained beam search (shared by both plugins).

    Every method takes item *windows* ``[B, W]`` of item ids, right-padded, the first ``count``
    real (RecBole's ``item_id_list`` layout), oldest first.
    """

    def __init__(self, config: Any, dataset: Any, n_items: int, max_history: int) -> None:
        super().__init__()
        self.ids = semantic_ids(config, dataset, n_items)
        self.trie = Trie(self.ids.codes, np.flatnonzero(self.ids.has_text), self.ids.level_sizes)
        self.register_buffer("codes", torch.from_numpy(self.ids.codes.clip(min=0)), persistent=False)
        self.register_buffer("trie_children", self.trie.children, persistent=False)
        self.register_buffer("item_at", self.trie.item_at, persistent=False)
        in_trie = torch.zeros(n_items, dtype=torch.bool)
        in_trie[self.trie.items()] = True
        self.register_buffer("in_trie", in_trie, persistent=False)
        parent, slot = (self.trie.children >= 0).nonzero(as_tuple=True)
        self.register_buffer("edge_parent", parent, persistent=False)
        self.register_buffer("edge_child", self.trie.children[parent, slot], persistent=False)
        self.depth = self.ids.n_levels
        self.beam_size = int(config["beam_size"])
        self.train_share = float(config["train_share"])
        self.decoder = CodeDecoder(self.ids.level_sizes, max_history + 1, int(config["d_model"]),
                                   int(config["n_layers"]), int(config["n_heads"]), int(config["ffn_size"]),
                                   float(config["dropout_prob"]))

    def loss(self, window: Tensor, count: Tensor) -> Tensor:
        """Next-token cross-entropy at every position of the window: each item's codes given the items
        before it and its own earlier codes (teacher forcing; SASRec's all-positions objective), mean
        over the predicted tokens. In training only a random ``train_share`` of the rows is used."""
        if self.training and self.train_share < 1.0:
            keep = torch.rand(len(window), device=window.device) < self.train_share
            if not bool(keep.any()):
                keep[0] = True
            window, count = window[keep], count[keep]
        window = _trim(window, count)
        codes = self.codes[window]  # [B, W, depth]
        hidden, _ = self.decoder(codes, count)
        b, w, depth = codes.shape
        before = hidden[:, : w * depth].reshape(b, w, depth, -1)  # position j·depth + l predicts item j, level l
        real = torch.arange(w, device=window.device).unsqueeze(0) < count.unsqueeze(1)
        total = hidden.new_zeros(())
        for lvl in range(depth):
            logits = self.decoder.level_logits(before[:, :, lvl][real], lvl)
            total = total + F.cross_entropy(logits, codes[:, :, lvl][real], reduction="sum")
        return total / (real.sum() * depth)

    @staticmethod
    def _constrained_logp(logits: Tensor, valid: Tensor) -> Tensor:
        """log-softmax over the valid codes only (-inf elsewhere; rows with none: all -inf)."""
        any_valid = valid.any(-1, keepdim=True)
        logp = torch.log_softmax(logits.masked_fill(~valid, float("-inf")).masked_fill(~any_valid, 0.0), dim=-1)
        return logp.masked_fill(~valid, float("-inf"))

    def item_logprob(self, hist: Tensor, count: Tensor, items: Tensor) -> Tensor:
        """Exact constrained :math:`\\log p(i \\mid \\text{history})` of ``items`` ``[B]`` (-inf: not in the trie)."""
        hist = _trim(hist, count)
        window = torch.cat([hist, torch.zeros_like(hist[:, :1])], dim=1).scatter(1, count.unsqueeze(1), items.unsqueeze(1))
        hidden, _ = self.decoder(self.codes[window], count + 1)
        tgt = self.codes[items]
        nodes = self.trie.path_nodes(tgt)
        start = count * self.depth  # the last history token (or BOS) predicts the item's first code
        total = torch.zeros(len(items), device=items.device)
        rows = torch.arange(len(items), device=items.device)
        for lvl in range(self.depth):
            size = self.ids.level_sizes[lvl]
            valid = (self.trie_children[nodes[:, lvl].clamp(min=0), :size] >= 0) & (nodes[:, lvl] >= 0).unsqueeze(1)
            logp = self._constrained_logp(self.decoder.level_logits(hidden[rows, start + lvl], lvl), valid)
            total = total + logp.gather(1, tgt[:, lvl : lvl + 1]).squeeze(1)
        return total.masked_fill(~self.in_trie[items], float("-inf"))

    @torch.no_grad()
    def beam_search(self, hist: Tensor, count: Tensor, exclude: Tensor | None = None, beam_size: int | None = None,
                    chunk: int = 256) -> Beam:
        """Trie-constrained beam search of the next item after right-padded histories ``[U, H]``.

        ``exclude`` (``[U, n_items]`` bool) keeps items out of the result: a prefix all of whose
        items are excluded never takes a beam slot, so the beam ends with ``min(beam, items left)``
        items; the scores stay the model's (trie-renormalised) log-probabilities, exclusion does not
        renormalise them.
        """
        beam = int(beam_size or self.beam_size)
        out = [self._beam(hist[s : s + chunk], count[s : s + chunk], None if exclude is None else exclude[s : s + chunk],
                          beam) for s in range(0, len(hist), chunk)]
        return Beam(*(torch.cat([o[k] for o in out]) for k in range(4)))

    def _alive(self, exclude: Tensor) -> Tensor:
        """``[U, n_nodes]``: trie nodes with at least one item below them that ``exclude`` leaves in."""
        alive = (self.item_at > 0) & ~exclude[:, self.item_at]
        for _ in range(self.depth):
            below = torch.zeros(alive.shape, device=alive.device).index_add_(1, self.edge_parent,
                                                                               alive[:, self.edge_child].float())
            alive = alive | (below > 0)
        return alive

    def _beam(self, hist: Tensor, count: Tensor, exclude: Tensor | None, beam: int) -> Beam:
        hist = _trim(hist, count)
        hidden_all, cache = self.decoder(self.codes[hist], count)
        n_users, dev = len(hist), hist.device
        last = count * self.depth  # the history's last token (BOS for an empty history)
        real_keys = torch.arange(hidden_all.shape[1], device=dev).unsqueeze(0) <= last.unsqueeze(1)
        hidden = hidden_all[torch.arange(n_users, device=dev), last].unsqueeze(1)  # [U, 1, d]
        node = torch.zeros(n_users, 1, dtype=torch.long, device=dev)
        score = torch.zeros(n_users, 1, device=dev)
        empty = torch.empty(0, device=dev)
        gen: list[list[Tensor]] = [[empty, empty] for _ in cache]
        rows = torch.arange(n_users, device=dev).unsqueeze(1)
        alive = None if exclude is None else self._alive(exclude)
        for lvl in range(self.depth):
            size = self.ids.level_sizes[lvl]
            child = self.trie_children[node, :size]  # [U, b, size]
            valid = (child >= 0) & torch.isfinite(score).unsqueeze(-1)
            cand = score.unsqueeze(-1) + self._constrained_logp(self.decoder.level_logits(hidden, lvl), valid)
            if alive is not None:  # a prefix whose items are all excluded takes no beam slot
                cand = cand.masked_fill(~alive[rows.unsqueeze(-1), child.clamp(min=0)], float("-inf"))
            prev_node, prev_score = node, score
            score, idx = cand.reshape(n_users, -1).topk(min(beam, cand.shape[1] * size), dim=1)
            parent, code = idx // size, idx % size
            node = child.reshape(n_users, -1).gather(1, idx).clamp(min=0)
            if lvl < self.depth - 1:
                gen = [[g[0][rows, parent], g[1][rows, parent]] if g[0].numel() else g for g in gen]
                hidden = self.decoder.step(code, lvl, count, cache, real_keys, gen)
        items = torch.where(torch.isfinite(score), self.item_at[node], torch.zeros_like(node))
        return Beam(items, score, prev_node.gather(1, parent), prev_score.gather(1, parent))

    def full_scores(self, hist: Tensor, count: Tensor, n_items: int, exclude: Tensor | None = None,
                    unseen: Tensor | None = None, n_unseen: int = 0) -> Tensor:
        """``[U, n_items]``: beam log-probabilities inside the beam, :data:`OUTSIDE_BEAM` elsewhere.

        With ``unseen`` (``[n_items]`` bool) and ``n_unseen`` > 0, TIGER's cold-start retrieval
        (Rajput et al., §4.3): unseen items whose semantic ID agrees with a generated item's in all
        but the collision index are added, the ``n_unseen`` most probable per user, each scored by
        the log-probability of that shared prefix (the collision index of an item never seen in
        training carries no evidence).
        """
        beam = self.beam_search(hist, count, exclude)
        n_users, dev = len(hist), hist.device
        scores = torch.full((n_users, n_items), OUTSIDE_BEAM, device=dev)
        rows = torch.arange(n_users, device=dev).unsqueeze(1).expand_as(beam.items)
        ok = torch.isfinite(beam.logp)
        scores[rows[ok], beam.items[ok]] = beam.logp[ok]
        if unseen is None or n_unseen <= 0:
            return scores
        child = self.trie_children[beam.prefix, : self.ids.level_sizes[-1]]  # [U, b, last level]
        item = self.item_at[child.clamp(min=0)]
        ok = (child >= 0) & unseen[item] & torch.isfinite(beam.prefix_logp).unsqueeze(-1)
        if exclude is not None:
            ok &= ~exclude[rows.unsqueeze(-1), item]
        value = torch.where(ok, beam.prefix_logp.unsqueeze(-1).expand_as(ok), float("-inf"))
        cand = torch.full((n_users, n_items), float("-inf"), device=dev)
        cand.scatter_reduce_(1, item.flatten(1), value.flatten(1), reduce="amax")
        cand = cand.masked_fill(scores > OUTSIDE_BEAM, float("-inf"))  # generated items keep their own score
        top, idx = cand.topk(min(n_unseen, n_items), dim=1)
        add = torch.isfinite(top)
        scores[torch.arange(n_users, device=dev).unsqueeze(1).expand_as(idx)[add], idx[add]] = top[add]
        return scores


def semantic_ids(config: Any, dataset: Any, n_items: int) -> SemanticIds:
    """Residual k-means semantic IDs of the dataset's items from their cached text vectors.

    The k-means generator is seeded with the cell's ``seed``; a text cache miss (encoding) runs
    without touching the global RNGs, so model initialisation is the same either way.
    """
    from m6rec_plugins import text as text_plugin
    from m6rec_plugins.kg import isolated_rng

    with isolated_rng():
        vectors = text_plugin.item_text_embeddings(config, dataset)
    if vectors.shape[0] != n_items:
        raise DataError(f"text embeddings cover {vectors.shape[0]} items, the dataset has {n_items}")
    return residual_kmeans(vectors, n_levels=int(config["n_levels"]), n_codes=int(config["n_codes"]),
                           seed=int(config["seed"]), n_iter=int(config["kmeans_iters"]))


class GenRecTIGER(SequentialRecommender):
    """TIGER-style generative next-item model (Rajput et al., NeurIPS 2023); see the module docstring."""

    input_type = InputType.POINTWISE

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.core = GenerativeCore(config, dataset, self.n_items, int(self.max_seq_length))

    def _hist(self, interaction: Any) -> tuple[Tensor, Tensor]:
        return interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]

    def calculate_loss(self, interaction: Any) -> Tensor:
        seq, length = self._hist(interaction)
        window = torch.cat([seq, torch.zeros_like(seq[:, :1])], dim=1)
        window = window.scatter(1, length.unsqueeze(1), interaction[self.POS_ITEM_ID].unsqueeze(1))
        return self.core.loss(window, length + 1)

    def predict(self, interaction: Any) -> Tensor:
        return self.core.item_logprob(*self._hist(interaction), interaction[self.ITEM_ID]).clamp(min=OUTSIDE_BEAM)

    def full_sort_predict(self, interaction: Any) -> Tensor:
        return self.core.full_scores(*self._hist(interaction), self.n_items)


def time_ordered_histories(dataset: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Every user's training items in time order, right-padded, and each interaction's position.

    Returns ``(seqs [n_users, max_len], lengths [n_users], keys)`` where ``keys`` are the sorted
    ``user * n_items + item`` of every interaction with its position in ``seqs`` packed as
    ``key * max_len + position`` (a repeated (user, item) keeps its last position).
    Order: ``timestamp`` when the dataset loaded one, else the order of ``inter_feat``.
    """
    inter = dataset.inter_feat
    users = np.asarray(inter[dataset.uid_field], dtype=np.int64)
    items = np.asarray(inter[dataset.iid_field], dtype=np.int64)
    time_field = dataset.time_field
    if time_field is not None and time_field in inter:
        times = np.asarray(inter[time_field], dtype=np.float64)
    else:
        times = np.zeros(len(users))
    order = np.lexsort((np.arange(len(users)), times, users))  # by user, then time, then file order
    users, items = users[order], items[order]
    n_users = int(dataset.user_num)
    lengths = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(len(users)) - starts[users]
    width = max(1, int(lengths.max()) if len(lengths) else 1)
    seqs = np.zeros((n_users, width), dtype=np.int64)
    seqs[users, pos] = items
    keys = (users * int(dataset.item_num) + items) * width + pos
    return torch.from_numpy(seqs), torch.from_numpy(lengths), torch.from_numpy(np.sort(keys))


class GenRecTIGERCold(GeneralRecommender):
    """GenRec-TIGER for general-model protocols (cold-item): histories from the training split in time order."""

    input_type = InputType.POINTWISE

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.max_history = int(config["max_history"])
        self.core = GenerativeCore(config, dataset, self.n_items, self.max_history)
        seqs, lengths, keys = time_ordered_histories(dataset)
        if int(lengths.sum()) == 0:
            raise DataError("GenRec-TIGER-Cold: the training data has no interactions")
        self.register_buffer("seqs", seqs, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)
        self.register_buffer("keys", keys, persistent=False)
        trained = torch.bincount(seqs.flatten(), minlength=self.n_items) > 0
        self.register_buffer("unseen", self.core.in_trie & ~trained, persistent=False)
        self.n_unseen = math.ceil(float(config["cold_share"]) * self.core.beam_size)

    def _span(self, users: Tensor, end: Tensor, width: int) -> tuple[Tensor, Tensor]:
        """Right-padded ``[B, width]``: each user's last (at most ``width``) training items before position ``end``."""
        count = end.clamp(max=width)
        offs = torch.arange(width, device=end.device).unsqueeze(0)
        cols = (end - count).unsqueeze(1) + offs
        items = self.seqs[users.unsqueeze(1), cols.clamp(max=self.seqs.shape[1] - 1)]
        return items.masked_fill(offs >= count.unsqueeze(1), 0), count

    def _positions(self, users: Tensor, items: Tensor) -> Tensor:
        """Position of each (user, item) in the user's time-ordered training sequence."""
        width = self.seqs.shape[1]
        key = (users * self.n_items + items) * width
        at = torch.searchsorted(self.keys, key + width) - 1  # last entry of this (user, item)
        found = self.keys[at.clamp(min=0)]
        ok = (at >= 0) & (found // width == key // width)
        if not bool(ok.all()):
            raise DataError("GenRec-TIGER-Cold got a training interaction that is not in its training data")
        return found % width

    def calculate_loss(self, interaction: Any) -> Tensor:
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        # the window ends with the target: its last max_history + 1 items, the target included
        return self.core.loss(*self._span(users, self._positions(users, items) + 1, self.max_history + 1))

    def histories(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """The last ``max_history`` training items of ``users`` (right-padded) and their count."""
        return self._span(users, self.lengths[users], self.max_history)

    def seen(self, users: Tensor) -> Tensor:
        """``[U, n_items]`` the users' training items (kept out of the beam)."""
        mask = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=users.device)
        mask.scatter_(1, self.seqs[users], True)
        mask[:, 0] = False
        return mask

    def predict(self, interaction: Any) -> Tensor:
        users = interaction[self.USER_ID]
        return self.core.item_logprob(*self.histories(users), interaction[self.ITEM_ID]).clamp(min=OUTSIDE_BEAM)

    def full_sort_predict(self, interaction: Any) -> Tensor:
        users = interaction[self.USER_ID]
        return self.core.full_scores(*self.histories(users), self.n_items, self.seen(users), self.unseen,
                                     self.n_unseen).view(-1)


plugin = Plugin(
    name="GenRec-TIGER",
    family="generative",
    description="generative retrieval: a Transformer decodes the next item's residual-k-means semantic ID "
    "under a trie (TIGER, Rajput et al., NeurIPS 2023)",
    config_cls=GenRecConfig,
    model_cls=GenRecTIGER,
    needs=frozenset({"inter", "item_text"}),
    search_space=search_space,
    # cross-entropy over the code vocabulary of each level: RecBole samples no training negatives;
    # 20 history items (+ target: 85 tokens) by default, the sequential board's budget for every sequential model
    # (learning rate and batch: see the module docstring, "Training recipe")
    recbole_config={"train_neg_sample_args": None, "loss_type": "CE", "MAX_ITEM_LIST_LENGTH": 20,
                    "learning_rate": 0.003, "train_batch_size": 512},
    in_default_suite=False,
)

cold = Plugin(
    name="GenRec-TIGER-Cold",
    family="generative",
    description="TIGER generative retrieval over training histories, for cold-item evaluation: cold items have "
    "text semantic IDs and can be generated (Rajput et al., NeurIPS 2023)",
    config_cls=GenRecColdConfig,
    model_cls=GenRecTIGERCold,
    needs=frozenset({"inter", "item_text"}),
    search_space=cold_search_space,
    # each training interaction is one generation target; the timestamp orders a user's history
    recbole_config={"train_neg_sample_args": None, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                    "learning_rate": 0.003},
    in_default_suite=False,
)
