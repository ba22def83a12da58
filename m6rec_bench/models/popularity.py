"""Popularity: every user gets the items with the most training interactions, ties to the lower item id.

The classic non-personalised baseline, counted exactly. RecBole's own ``Pop`` is kept beside it (for
agreement checks with raw RecBole) but is not this: its ``calculate_loss`` does
``item_cnt[item, :] = item_cnt[item, :] + 1`` on each training batch, and an indexed assignment
with repeated indices writes once, so an item is counted at most once per batch — and the pointwise
batches it counts hold the sampled negatives too. Its counts saturate at the number of batches
(about 54 distinct scores on ml-100k) and its ranking depends on ``train_batch_size``. Upstream:
RUCAIBox/RecBole#2198 (the fix in PR #2199 accumulates, but still counts negatives) and #1844
(results change with ``train_batch_size``).

Definition. For item :math:`i`, :math:`c_i = |\\{(u, i) \\in \\text{train} : \\text{label} > 0\\}|`,
counted once from the training split the model is built on (every row when the dataset has no
label field; the rows with a positive label when a ``threshold`` gave it one). Nothing is learned:
training is one no-op epoch of RecBole's ``TraditionalTrainer``, as for ``Pop``.

Tie-break. Items are ranked by :math:`(c_i \\downarrow, i \\uparrow)` — the lower internal item id
first — and scored :math:`s_i = n_{items} - \\text{rank}_i`, so every item has a distinct score and
the order does not depend on how ``torch.topk`` breaks ties (it breaks them differently for
different ``k``). The scores are integers, exact in float32 for catalogues of up to
:math:`2^{24}` (16,777,216) items; a larger catalogue is refused rather than ranked inexactly.

Measured (ml-100k, seed 2020, test NDCG@10, this machine's RecBole 1.2.1): default protocol, RecBole
``Pop`` 0.1033 and ``Popularity`` 0.1416; sequential protocol, 0.0374 and 0.0449.
``tests/test_popularity.py`` checks the default-protocol number against a ranking counted with numpy.

The evaluator writes ``-inf`` over each user's history *in place* in the scores it is given, so
:meth:`Popularity.full_sort_predict` returns a copy of the score buffer, never a view.
"""

from __future__ import annotations

from typing import Any

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from m6rec_bench.errors import DataError

#: Largest catalogue whose rank scores are exact in float32 (integers up to 2**24 are).
MAX_EXACT_ITEMS = 2**24


def training_counts(dataset: Any) -> torch.Tensor:
    """Interactions per internal item id in ``dataset`` (a RecBole training split): positives only.

    Rows whose label field (RecBole's ``LABEL_FIELD``, present when a ``threshold`` is set) is not
    positive are not interactions a user chose, so they are not counted.
    """
    feat = dataset.inter_feat
    items = feat[dataset.iid_field].long()
    label = getattr(dataset, "label_field", None)
    if label is not None and label in feat.columns:
        items = items[feat[label] > 0]
    return torch.bincount(items, minlength=dataset.item_num)


def rank_scores(counts: torch.Tensor) -> torch.Tensor:
    """Distinct float32 scores ordering items by (count descending, item id ascending).

    The best item scores ``len(counts)``, the worst ``1``; a stable sort on ``-counts`` keeps equal
    counts in id order, which is the tie-break.
    """
    n = counts.numel()
    if n > MAX_EXACT_ITEMS:
        raise DataError(f"the catalogue has {n:,} items; Popularity's float32 rank scores are exact only up to "
                        f"{MAX_EXACT_ITEMS:,} items — filter rare items (min_item_inter_num) or use Pop")
    order = torch.argsort(-counts, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=counts.device)
    return (n - rank).to(torch.float32)


class Popularity(GeneralRecommender):
    r"""Most-popular items first: :math:`s_i = n_{items} - \text{rank}(c_i \downarrow, i \uparrow)`,
    :math:`c_i` the training interactions of item :math:`i` (module docstring)."""

    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        counts = training_counts(dataset)
        self.register_buffer("item_count", counts.to(self.device))
        self.register_buffer("score", rank_scores(counts).to(self.device))
        # RecBole's trainer builds an optimizer over the parameters: it needs one (never updated).
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))

    def forward(self) -> None:
        """Nothing to compute: the scores are fixed at construction."""

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        """Zero: the counts come from the training split itself, not from training batches."""
        return self.fake_loss * 0.0

    def predict(self, interaction: Any) -> torch.Tensor:
        return self.score[interaction[self.ITEM_ID]]

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        # a copy, never a view of the buffer: RecBole's evaluator writes -inf over each user's history
        # in place (an expand().reshape() of one user is a view, and would mask the buffer for good)
        return self.score.repeat(interaction[self.USER_ID].shape[0])
