"""Full-sort scores of a pairwise model computed without building the pairs: the same function.

RecBole scores a model that has no ``full_sort_predict`` by repeating every user ``n_items`` times
and calling ``predict`` on the pairs (``Trainer._full_sort_batch_eval``), ``eval_batch_size`` pairs
(about 2 users on ml-100k) per call. For NeuMF (He et al., "Neural Collaborative Filtering",
WWW 2017) that is most of a training run's time: each validation pass sends all 1.6 M (user, item)
pairs of ml-100k through the concatenation and the first MLP layer, the widest.

The first layer of NeuMF's MLP is linear in the concatenation ``[p_u; q_i]``, so it splits exactly:
``W [p_u; q_i] + b = (W_u p_u) + (W_i q_i + b)``, one product per user and one per item instead of
one per pair; and the GMF branch's share of the prediction layer is a matrix product,
``h_mf . (p'_u * q'_i) = (h_mf * p'_u) . q'_i``. What follows the first layer (ReLU, the other
layers, the prediction layer, the sigmoid) is computed per pair as ``predict`` does. The scores
are ``predict``'s to float rounding (the sums run in another order; measured ≤ 2e-7 on ml-100k,
``tests/test_pair_scores.py``), about 3-5x faster a validation pass on ml-100k
(``benchmarks/RESULTS.md``).

Used by :mod:`m6rec_bench.engine.fast_eval` for the large batches of its ``fast`` and ``replay``
passes. Under ``replay`` (the default engine's validation) the near-tie guard scores again, through
RecBole's own ``predict`` in RecBole's own batch, every row whose top-k holds two scores closer
than :data:`m6rec_bench.engine.fast_eval.NEAR_TIE`, so each validation list is the list RecBole's
evaluator gives, and the same epochs are chosen. Only the exact classes listed here are factorised
(a subclass may override ``forward``), with the layer structure their code builds and the model in
eval mode (dropout off); anything else returns ``None`` and keeps RecBole's pairs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Hidden-layer floats per call (rows x items x first-layer width): 1M floats = 4 MiB, which keeps
#: the per-pair layers in cache (4 users of ml-100k a call; larger blocks measured slower).
HIDDEN_BUDGET = 1 << 20


class FactorisedNeuMF:
    """NeuMF's ``predict`` for every item of a block of users, with the first MLP layer and the
    GMF product factorised per user and per item (see the module docstring)."""

    @torch.no_grad()
    def __init__(self, model: Any, mlp: list[nn.Linear]) -> None:
        d, first = model.mlp_embedding_size, mlp[0]
        self.rest = mlp[1:]
        self.width = first.out_features
        self.n_items = model.n_items
        self.mf, self.mlp = model.mf_train, model.mlp_train
        weight, self.bias = model.predict_layer.weight[0], model.predict_layer.bias
        dm = model.mf_embedding_size if self.mf else 0  # the prediction layer reads [GMF; MLP]
        self.w_mlp = weight[dm:]
        if self.mlp:
            self.user_mlp = model.user_mlp_embedding.weight @ first.weight[:, :d].T
            self.item_mlp = torch.addmm(first.bias, model.item_mlp_embedding.weight, first.weight[:, d:].T)
        if self.mf:
            self.user_mf = model.user_mf_embedding.weight * weight[:dm]
            self.item_mf_t = model.item_mf_embedding.weight.T

    def rows_per_call(self) -> int:
        """Users per call within :data:`HIDDEN_BUDGET`."""
        return max(HIDDEN_BUDGET // max(self.n_items * self.width, 1), 1)

    @torch.no_grad()
    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), n_items)`` scores: ``sigmoid`` of NeuMF's output for every item."""
        out = self.bias.expand(len(users), self.n_items).clone()
        if self.mlp:
            hidden = (self.user_mlp[users][:, None, :] + self.item_mlp[None, :, :]).relu_()
            for layer in self.rest:
                hidden = nn.functional.linear(hidden, layer.weight, layer.bias).relu_()
            out += hidden @ self.w_mlp
        if self.mf:
            out.addmm_(self.user_mf[users], self.item_mf_t)
        return out.sigmoid_()


def _mlp_linears(mlp_layers: Any) -> list[nn.Linear] | None:
    """The Linear layers of a RecBole ``MLPLayers`` built as ``[Dropout, Linear, ReLU] * n`` (no
    batch norm, ReLU activation), else ``None``."""
    modules = list(mlp_layers.mlp_layers)
    if not modules or len(modules) % 3:
        return None
    linears = []
    for i in range(0, len(modules), 3):
        drop, linear, act = modules[i : i + 3]
        if not (type(drop) is nn.Dropout and type(linear) is nn.Linear and type(act) is nn.ReLU):
            return None
        linears.append(linear)
    return linears


def factorised(model: Any) -> FactorisedNeuMF | None:
    """A factorised full-sort scorer for ``model``, or ``None`` when it has none: a class other than
    RecBole's own ``NeuMF``, another layer structure, or a model in training mode."""
    from recbole.model.general_recommender.neumf import NeuMF

    if type(model) is not NeuMF or model.training:
        return None
    if not (model.mf_train or model.mlp_train):
        return None
    mlp = _mlp_linears(model.mlp_layers)
    if mlp is None or mlp[0].in_features != 2 * model.mlp_embedding_size:
        return None
    return FactorisedNeuMF(model, mlp)


__all__ = ["HIDDEN_BUDGET", "FactorisedNeuMF", "factorised"]
