"""Beyond-accuracy metrics of top-10 lists: catalogue coverage, novelty and intra-list diversity.

Computed from every test user's top-10 — the very lists RecBole's full-sort evaluator ranks
(padding and the user's history masked; :func:`m6rec_bench.evaluation.evaluate_groups` keeps them
with ``top_items=10``) — and from the *training* user–item matrix :math:`R` (binary, one row per
user, one column per item):

* **coverage@10** — distinct items recommended to any test user / items in the catalogue (RecBole's
  padding item excluded): aggregate diversity (Adomavicius & Kwon, "Improving Aggregate
  Recommendation Diversity Using Ranking-Based Techniques", IEEE TKDE 2012).
* **novelty@10** — mean over users of the list's mean self-information
  :math:`-\\log_2 p_i`, with :math:`p_i = |\\{u : R_{ui} = 1\\}| / n` the share of the :math:`n`
  training users (users with at least one training interaction) who interacted with item :math:`i`;
  an item without training interactions gets :math:`p_i = 1/n` (Vargas & Castells, "Rank and
  Relevance in Novelty and Diversity Metrics for Recommender Systems", RecSys 2011, popularity-based
  novelty, eq. for :math:`\\mathrm{nov}(i) = -\\log_2 p(\\mathrm{seen}|i)`).
* **ild@10** — intra-list diversity: mean over users of the mean pairwise distance
  :math:`1 - \\cos(R_{:,i}, R_{:,j})` over the :math:`\\binom{10}{2}` pairs of the list (Ziegler,
  McNee, Konstan & Lausen, "Improving Recommendation Lists Through Topic Diversification", WWW 2005,
  intra-list similarity; Vargas & Castells 2011, ILD with distance :math:`1 - \\cos`). An item with
  no training interaction has a zero column; its cosine with anything is taken as 0 (distance 1).

Sequential models (``--protocol sequential``) get the same metrics: their test loader masks no
history (as RecBole's evaluator does), and their training matrix is rebuilt from the augmented
training rows (each target plus the items of its ``item_id_list``), i.e. every training
interaction of the time-ordered split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from m6rec_bench import compat

#: The extra-metrics group of every cell record (a leaderboard column set, ``leaderboard/columns.py``).
GROUP = "beyond"
#: Length of the lists the metrics are computed on.
K = 10
#: Users whose lists are summed in one sparse product (bounded memory on large catalogues).
_CHUNK = 512


def train_matrix(train_dataset: Any) -> sp.csr_matrix:
    """Binary ``(user_num, item_num)`` training matrix of a RecBole training dataset.

    For a sequential dataset (RecBole's data augmentation: one row per target with the preceding
    items in ``item_id_list``) the items of every list are added, so each user's first item counts.
    """
    feat = train_dataset.inter_feat
    users = [feat[train_dataset.uid_field].numpy().astype(np.int64)]
    items = [feat[train_dataset.iid_field].numpy().astype(np.int64)]
    list_field = getattr(train_dataset, "item_id_list_field", None)
    if list_field is not None and list_field in feat:
        lists = feat[list_field].numpy()
        rows, cols = np.nonzero(lists)
        users.append(users[0][rows])
        items.append(lists[rows, cols].astype(np.int64))
    u, i = np.concatenate(users), np.concatenate(items)
    shape = (int(train_dataset.user_num), int(train_dataset.item_num))
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
    m.data[:] = 1.0  # duplicates were summed; the matrix is binary
    return m


@dataclass
class ItemStats:
    """What the metrics (and :mod:`m6rec_bench.rerank`'s features) know about each item.

    Attributes:
        novelty: ``-log2 p_i`` per internal item id (index 0, RecBole's padding, is 0).
        max_novelty: ``log2 n``, the novelty of an item no training user has seen (normalizer).
        vectors: ``(item_num, user_num)`` CSR item columns of the training matrix, L2-normalized
            (zero rows for items without training interactions).
        n_items: catalogue size without the padding item.
    """

    novelty: np.ndarray
    max_novelty: float
    vectors: sp.csr_matrix
    n_items: int

    @classmethod
    def from_matrix(cls, matrix: sp.spmatrix) -> ItemStats:
        """Statistics of a binary ``(users, items)`` training matrix (row / column 0 = padding)."""
        m = sp.csr_matrix(matrix, dtype=np.float64)
        m.data[:] = 1.0
        n_users = max(int((m.getnnz(axis=1) > 0).sum()), 1)
        degree = np.asarray(m.getnnz(axis=0), dtype=np.float64)
        p = np.where(degree > 0, degree / n_users, 1.0 / n_users)
        novelty = -np.log2(p)
        novelty[0] = 0.0
        items = sp.csr_matrix(m.T)
        norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return cls(novelty=novelty, max_novelty=float(np.log2(n_users)) if n_users > 1 else 1.0,
                   vectors=sp.csr_matrix(sp.diags(scale) @ items), n_items=int(m.shape[1]) - 1)

    @classmethod
    def from_train(cls, train_dataset: Any) -> ItemStats:
        return cls.from_matrix(train_matrix(train_dataset))

    def normalized_novelty(self, items: np.ndarray) -> np.ndarray:
        """Novelty in [0, 1]: ``-log2 p_i / log2 n``."""
        return self.novelty[items] / self.max_novelty

    def cosine(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """Dense ``(len(a), len(b))`` cosine similarities of item columns (``b`` defaults to ``a``)."""
        va = self.vectors[a]
        vb = va if b is None else self.vectors[b]
        return np.asarray((va @ vb.T).todense(), dtype=np.float64)


def list_metrics(top_items: np.ndarray, stats: ItemStats) -> dict[str, float]:
    """``coverage@k``, ``novelty@k`` and ``ild@k`` of ``(n_users, k)`` internal item-id lists."""
    top = np.asarray(top_items, dtype=np.int64)
    k = top.shape[1] if top.ndim == 2 else K
    if top.ndim != 2 or len(top) == 0:
        return {f"coverage@{k}": float("nan"), f"novelty@{k}": float("nan"), f"ild@{k}": float("nan")}
    distinct = np.unique(top)
    coverage = float(len(distinct[distinct > 0])) / max(stats.n_items, 1)
    novelty = float(stats.novelty[top].mean(axis=1).mean())
    pairs = k * (k - 1) / 2
    # ILD without a Gram matrix: for unit (or zero) item vectors v, the cosines of a list's pairs sum to
    # (|sum v|^2 - sum |v|^2) / 2, so one sparse product (lists x items) @ (items x users) serves every list
    self_sq = np.asarray(stats.vectors.multiply(stats.vectors).sum(axis=1)).ravel()
    ild_users: list[np.ndarray] = []
    for start in range(0, len(top), _CHUNK):
        block = top[start:start + _CHUNK]
        rows = np.repeat(np.arange(len(block)), k)
        picks = sp.csr_matrix((np.ones(block.size), (rows, block.ravel())), shape=(len(block), stats.vectors.shape[0]))
        sums = picks @ stats.vectors  # a repeated item is added twice, as its pair with itself counts cosine 1
        cos_sum = (np.asarray(sums.multiply(sums).sum(axis=1)).ravel() - self_sq[block].sum(axis=1)) / 2
        ild_users.append((pairs - cos_sum) / pairs if pairs else np.zeros(len(block)))
    ild = float(np.concatenate(ild_users).mean())
    return {f"coverage@{k}": coverage, f"novelty@{k}": novelty, f"ild@{k}": ild}


def stats_of(run: Any) -> ItemStats:
    """Item statistics of a finished run's training split (``run.train_data``), cached on the run."""
    cached = getattr(run, "item_stats", None)
    if cached is None:
        cached = ItemStats.from_train(compat.loader_dataset(run.train_data))
        run.item_stats = cached
    return cached


def metrics(run: Any, top_items: np.ndarray) -> dict[str, float]:
    """The ``beyond`` group of a run's record from its test users' top-10 lists."""
    return {k: round(v, 6) for k, v in list_metrics(np.asarray(top_items)[:, :K], stats_of(run)).items()}


__all__ = ["GROUP", "K", "ItemStats", "list_metrics", "metrics", "stats_of", "train_matrix"]
