"""Scoring for ``m6bench serve``: one adapter per model family, and the in-memory state of users.

A :class:`Recommender` wraps a loaded artifact (:func:`m6rec_bench.artifacts.load`). It answers

* top-k for a known user — the model's own ranking (the scores its ``full_sort_predict`` gives)
  with the user's training history and the items added through the API excluded;
* top-k for an anonymous list of items (*fold-in*: a user representation built from the list,
  no retraining) — only for models that can fold in: a plugin whose ``Plugin.fold_in`` hook gives
  its vectors (:class:`~m6rec_bench.models.plugin.FoldInVectors`), or a baseline with an adapter;
* new interactions of a known user, kept in memory: they are excluded from that user's next
  answers and, for fold-in models, move the user's representation toward them.

A plugin's rule is found from the record's model (so its ablation rows, ``M6-Fusion w/o KG``, fold in
too); the core names no plugin. Baseline adapters (:data:`ADAPTERS`) are keyed by the model's class,
found along its MRO; :func:`register` adds one. Every scorer precomputes what it needs at start-up,
so a request is one matrix–vector product (or one sparse row sum) plus a top-k.

Fold-in rules
-------------
Vector models (a plugin's ``fold_in`` hook: M6-Fusion, Text-Tower, Text-ZeroShot among the
built-ins) score item :math:`j` for a user vector :math:`u` as :math:`v_j^\\top u`, so only the
direction of :math:`u` matters. Each item also has a *fold-in vector* :math:`f_j`, chosen by the
plugin (M6-Fusion, Text-Tower: :math:`f_j = v_j / \\lVert v_j \\rVert`; Text-ZeroShot: the raw text
vector :math:`t_j`, since its user *is* the mean of these).

An anonymous list :math:`L` becomes :math:`u_L = \\operatorname{normalise}(\\sum_{j \\in L} f_j)`,
the normalised mean of its fold-in vectors. A known user :math:`i` with :math:`n_i` training
interactions, trained vector :math:`u_i` and items :math:`A` added through the API becomes

.. math::

    u_i' = \\operatorname{normalise}\\big(n_i\\, b_i + \\textstyle\\sum_{j \\in A} f_j\\big)

where :math:`b_i` is the plugin's base vector of the user: :math:`u_i / \\lVert u_i \\rVert` for trained users
(the trained vector counts as much as the :math:`n_i` interactions it was learnt from; each new item
counts as one) and, for Text-ZeroShot, the mean text vector of the training history, which makes
:math:`u_i'` exactly the zero-shot user of history plus new items. With no added items the trained :math:`u_i` is used
as is, so the answer is the model's own ranking.

ItemKNN (``knn_method=item``): RecBole scores :math:`s_u = r_u W` (``pred_mat``), the sum of the
similarity rows of the user's items; a list scores :math:`\\sum_{j \\in L} W_j`, a known user
:math:`s_u + \\sum_{j \\in A} W_j` — exactly ItemKNN's score had those items been in training.

Ties are broken by the smaller internal item id, so every answer is deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from m6rec_bench.errors import UsageError
from m6rec_bench.lookup import Registry

#: Largest ``k`` a request may ask for (and at most the number of items).
MAX_K = 1000
#: Longest item list one request may carry.
MAX_LIST = 10_000


# ------------------------------------------------------------------ errors (each one HTTP status)


class ServeError(UsageError):
    """Bad input to the service; ``status`` is its HTTP status, ``code`` a stable machine name."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class UnknownUser(ServeError):
    status, code = 404, "unknown_user"


class UnknownItems(ServeError):
    status, code = 422, "unknown_items"


class KOutOfRange(ServeError):
    status, code = 422, "k_out_of_range"


class FoldInUnsupported(ServeError):
    status, code = 400, "fold_in_unsupported"


# ------------------------------------------------------------------ scorers


class Scorer:
    """Known users only: the model's own ``full_sort_predict`` for one user, under ``no_grad``."""

    can_fold_in = False

    def __init__(self, loaded: Any) -> None:
        from recbole.utils import ModelType

        self.model = loaded.model
        self.label = loaded.record.label or loaded.record.model
        if getattr(self.model, "type", None) == ModelType.SEQUENTIAL:
            raise UsageError(f"{self.label} is a sequential model: its ranking needs the user's item sequence, "
                             "which `m6bench serve` does not keep yet; serve a general model (BPR, M6-Fusion, …)")
        self.uid_field = loaded.dataset.uid_field
        self.device = loaded.config["device"]

    def user_scores(self, uid: int, added: Sequence[int]) -> np.ndarray:
        """Scores of every internal item id for known user ``uid`` (``added``: items posted through the API)."""
        from recbole.data.interaction import Interaction

        with torch.no_grad():
            inter = Interaction({self.uid_field: torch.tensor([uid], device=self.device)})
            return self.model.full_sort_predict(inter).view(-1).float().cpu().numpy()

    def fold_in_error(self) -> FoldInUnsupported:
        return FoldInUnsupported(
            f"{self.label} cannot fold in an item list without retraining (it serves known users only: "
            f"GET /users/{{user_id}}/recommendations); models that can: {', '.join(fold_in_models())}",
            fold_in_models=fold_in_models())

    def list_scores(self, items: np.ndarray) -> np.ndarray:
        """Scores of every item for an anonymous user who interacted with ``items``."""
        raise self.fold_in_error()


class VectorScorer(Scorer):
    """``score = V @ u`` over precomputed item vectors; fold-in by the module's rule."""

    can_fold_in = True

    def __init__(self, loaded: Any, *, users: torch.Tensor, items: torch.Tensor, fold: torch.Tensor,
                 base: torch.Tensor) -> None:
        super().__init__(loaded)
        self.users = users.detach().float().cpu().contiguous()
        self.items = items.detach().float().cpu().contiguous()
        self.items_t = self.items.T  # a view: the same product full_sort_predict computes
        self.fold = fold.detach().float().cpu().contiguous()
        self.base = base.detach().float().cpu().contiguous()
        self.n_history = torch.from_numpy(np.array([len(h) for h in loaded.train_history()], dtype=np.float32))

    def _scores(self, u: torch.Tensor) -> np.ndarray:
        return (u.unsqueeze(0) @ self.items_t).view(-1).numpy()

    def user_vector(self, uid: int, added: Sequence[int]) -> torch.Tensor:
        """The user's representation: trained as is, or folded in with the items in ``added``."""
        if not added:
            return self.users[uid]
        u = self.n_history[uid] * self.base[uid] + self.fold[torch.as_tensor(added)].sum(dim=0)
        return torch.nn.functional.normalize(u, dim=0)

    def list_vector(self, items: np.ndarray) -> torch.Tensor:
        return torch.nn.functional.normalize(self.fold[torch.from_numpy(items)].sum(dim=0), dim=0)

    def user_scores(self, uid: int, added: Sequence[int]) -> np.ndarray:
        with torch.no_grad():
            return self._scores(self.user_vector(uid, added))

    def list_scores(self, items: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._scores(self.list_vector(items))


class ItemKNNScorer(Scorer):
    """RecBole ItemKNN: a user's scores are the sum of the similarity rows ``w`` of their items."""

    can_fold_in = True

    def __init__(self, loaded: Any) -> None:
        import scipy.sparse as sp

        super().__init__(loaded)
        self.w = sp.csr_matrix(self.model.w, dtype=np.float32)
        self.pred = sp.csr_matrix(self.model.pred_mat, dtype=np.float32)

    def _rows(self, items: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.asarray(self.w[np.asarray(items)].sum(axis=0), dtype=np.float32).ravel()

    def user_scores(self, uid: int, added: Sequence[int]) -> np.ndarray:
        scores = self.pred[uid].toarray().ravel()
        return scores + self._rows(added) if len(added) else scores

    def list_scores(self, items: np.ndarray) -> np.ndarray:
        return self._rows(items)


# ------------------------------------------------------------------ the adapter registry


@dataclass(frozen=True)
class Adapter:
    """How one model class folds in: ``name`` (shown to users) and a factory ``Loaded -> Scorer``."""

    name: str
    build: Callable[[Any], Scorer]


#: The core's own fold-in adapters (RecBole baselines), ``"module.Class"`` (matched along the model's
#: MRO) → adapter. A plugin folds in through its ``Plugin.fold_in`` hook instead.
ADAPTERS: Registry[Adapter] = Registry("fold-in adapter", case_sensitive=True)


def register(class_path: str, name: str) -> Callable[[Callable[[Any], Scorer]], Callable[[Any], Scorer]]:
    """Decorator: ``build(loaded) -> Scorer`` is the fold-in adapter of the baseline class ``class_path``."""

    def deco(build: Callable[[Any], Scorer]) -> Callable[[Any], Scorer]:
        ADAPTERS.register(class_path, Adapter(name, build))
        return build

    return deco


def fold_in_models() -> list[str]:
    """Names of the models that can fold in, as shown in error messages and ``/health``: the installed
    plugins' fold-in rules (from their cards, nothing imported), then the core's baselines."""
    from m6rec_bench.models import registry

    return list(dict.fromkeys([*registry.fold_in_rules(), *(a.name for a in ADAPTERS.values())]))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _plugin_of(loaded: Any) -> Any:
    """The :class:`~m6rec_bench.models.plugin.Plugin` that trained ``loaded`` (None for a baseline)."""
    from m6rec_bench.models import registry

    return registry.get(loaded.record.model).plugin


def scorer_for(loaded: Any) -> Scorer:
    """The loaded model's fold-in scorer (its plugin's ``fold_in`` hook, or a baseline adapter), or
    the known-users-only :class:`Scorer`."""
    plugin = _plugin_of(loaded)
    if plugin is not None:
        if plugin.fold_in is None:
            return Scorer(loaded)
        v = plugin.fold_in.vectors(loaded)
        return VectorScorer(loaded, users=v.users, items=v.items, fold=v.fold, base=v.base)
    for cls in type(loaded.model).__mro__:
        adapter = ADAPTERS.find(_class_path(cls))
        if adapter is not None:
            return adapter.build(loaded)
    return Scorer(loaded)


@register("recbole.model.general_recommender.itemknn.ItemKNN", "ItemKNN (knn_method=item)")
def _itemknn(loaded: Any) -> Scorer:
    if str(loaded.config["knn_method"]) != "item":  # UserKNN: similarities between users, no item rows
        return Scorer(loaded)
    return ItemKNNScorer(loaded)


# ------------------------------------------------------------------ top-k


def top_k(scores: np.ndarray, exclude: Iterable[np.ndarray], k: int) -> np.ndarray:
    """Internal ids of the ``k`` best items (score descending, then id ascending), never an excluded
    one, the padding id 0 or an item scored NaN / -inf; fewer than ``k`` when fewer are left."""
    s = np.array(scores, dtype=np.float32)  # a copy: the caller's array stays untouched
    s[0] = -np.inf
    for ids in exclude:
        if len(ids):
            s[ids] = -np.inf
    s[np.isnan(s)] = -np.inf
    n_left = int(np.count_nonzero(s > -np.inf))
    k = min(k, n_left)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-s, k - 1)[:k]
    cand = np.flatnonzero(s >= s[part].min())  # the k best plus every tie of the k-th
    return cand[np.lexsort((cand, -s[cand]))][:k]


# ------------------------------------------------------------------ the service's state


@dataclass
class Ranking:
    """One answer: external item ids with their scores, best first."""

    items: list[str]
    scores: list[float]
    folded_in: bool
    n_excluded: int


@dataclass
class Added:
    """What ``add_interactions`` did: newly added items and those the user already had."""

    added: list[str]
    already_known: list[str]
    n_added: int


class Recommender:
    """A loaded artifact with its scorer, training histories and the items users added since start-up."""

    def __init__(self, loaded: Any, scorer: Scorer | None = None) -> None:
        self.loaded = loaded
        self.scorer = scorer or scorer_for(loaded)
        self.label = loaded.record.label or loaded.record.model
        self.user_tokens: list[str] = list(loaded.users)
        self.item_tokens: list[str] = list(loaded.items)
        self._uid = {t: i for i, t in enumerate(self.user_tokens) if i > 0}
        self._iid = {t: i for i, t in enumerate(self.item_tokens) if i > 0}
        self.history = [np.asarray(h, dtype=np.int64) for h in loaded.train_history()]
        self._history_sets: dict[int, frozenset[int]] = {}
        self._added: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self.n_users, self.n_items = len(self.user_tokens) - 1, len(self.item_tokens) - 1
        self.max_k = min(MAX_K, self.n_items)

    # ---- lookups

    def user_id(self, token: str) -> int:
        uid = self._uid.get(str(token))
        if uid is None:
            raise UnknownUser(f"user '{token}' is not in the training data of {self.label} "
                              "(for a new user, POST their items to /recommendations)", user_id=str(token))
        return uid

    def item_ids(self, tokens: Sequence[str | int]) -> np.ndarray:
        """Internal ids of ``tokens`` (duplicates dropped, order kept); every unknown one is named."""
        ids, unknown, seen = [], [], set()
        for t in tokens:
            iid = self._iid.get(str(t))
            if iid is None:
                unknown.append(str(t))
            elif iid not in seen:
                seen.add(iid)
                ids.append(iid)
        if unknown:
            shown = ", ".join(f"'{u}'" for u in unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            raise UnknownItems(f"unknown item ids: {shown} — not in {self.loaded.record.dataset}'s item list "
                               f"({self.n_items} items; ids are the dataset's item_id tokens)", unknown_items=unknown)
        return np.asarray(ids, dtype=np.int64)

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.max_k:
            raise KOutOfRange(f"k must be between 1 and {self.max_k} (the catalogue has {self.n_items} items), got {k}")

    def added(self, uid: int) -> list[int]:
        with self._lock:
            return list(self._added.get(uid, ()))

    # ---- answers

    def _ranking(self, scores: np.ndarray, exclude: list[np.ndarray], k: int, folded_in: bool) -> Ranking:
        best = top_k(scores, exclude, k)
        return Ranking(items=[self.item_tokens[i] for i in best], scores=scores[best].astype(float).tolist(),
                       folded_in=folded_in, n_excluded=int(sum(len(e) for e in exclude)))

    def recommend_user(self, token: str, k: int = 10) -> Ranking:
        """Top-k for a known user: history and API-added items excluded."""
        self.check_k(k)
        uid = self.user_id(token)
        added = self.added(uid)
        scores = self.scorer.user_scores(uid, added)
        return self._ranking(scores, [self.history[uid], np.asarray(added, dtype=np.int64)], k,
                             folded_in=bool(added) and self.scorer.can_fold_in)

    def recommend_items(self, tokens: Sequence[str | int], k: int = 10) -> Ranking:
        """Top-k for an anonymous user who interacted with ``tokens`` (fold-in); the list is excluded."""
        self.check_k(k)
        if not self.scorer.can_fold_in:  # refused before the items are even looked up
            raise self.scorer.fold_in_error()
        items = self.item_ids(tokens)
        return self._ranking(self.scorer.list_scores(items), [items], k, folded_in=True)

    def add_interactions(self, token: str, tokens: Sequence[str | int]) -> Added:
        """Remember new interactions of a known user (in memory, until the service stops)."""
        uid = self.user_id(token)
        items = self.item_ids(tokens)
        with self._lock:
            hist = self._history_sets.get(uid)
            if hist is None:
                hist = self._history_sets[uid] = frozenset(self.history[uid].tolist())
            mine = self._added.setdefault(uid, [])
            have = hist | set(mine)
            new = [int(i) for i in items if int(i) not in have]
            mine.extend(new)
            n = len(mine)
        old = [int(i) for i in items if int(i) not in set(new)]
        return Added(added=[self.item_tokens[i] for i in new], already_known=[self.item_tokens[i] for i in old], n_added=n)
