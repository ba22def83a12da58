"""Scoring shared by the built-in two-tower plugins, written once.

Every built-in model scores a (user, item) pair as a dot product of a user vector and an item
vector, and keeps evaluation caches that must be dropped whenever the weights may change. Those
caches are the ones its ``cache_attributes`` names (the plugin API's contract: mid-cell checkpoints
leave them out), so one mixin can drop them all.

- :class:`EvalCache`: drops every ``cache_attributes`` entry on ``train()`` / ``eval()`` and on
  ``load_state_dict``.
- :class:`DotScores`: ``predict`` / ``full_sort_predict`` from ``_all_vectors() -> (users, items)``
  (M6-Fusion, M6-Adapt).
- :class:`UserItemTower`: ``predict`` / ``full_sort_predict`` from ``user_embedding`` and
  ``item_vectors()``, the item side built once per evaluation (KG-TransE, Text-Tower), and
  ``item_vectors_of`` for a training batch (the tower once per distinct item).

Mixins go before RecBole's base class (``class M(DotScores, GeneralRecommender)``) so their
``train`` / ``load_state_dict`` wrap ``torch.nn.Module``'s.
"""

from __future__ import annotations

from typing import Any

import torch


class EvalCache:
    """Drop the evaluation caches named in ``cache_attributes`` whenever the weights may change."""

    cache_attributes: tuple[str, ...] = ()

    def drop_caches(self) -> None:
        for name in self.cache_attributes:
            setattr(self, name, None)

    def train(self, mode: bool = True) -> Any:
        self.drop_caches()  # parameters change in training: the cached vectors are stale
        return super().train(mode)  # type: ignore[misc]

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.drop_caches()
        return super().load_state_dict(*args, **kwargs)  # type: ignore[misc]


class DotScores(EvalCache):
    """Scores from ``_all_vectors() -> (users, items)``: ``users[u] · items[i]``."""

    USER_ID: str
    ITEM_ID: str

    def _all_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - the model's own
        raise NotImplementedError

    def predict(self, interaction: Any) -> torch.Tensor:
        users, items = self._all_vectors()
        return (users[interaction[self.USER_ID]] * items[interaction[self.ITEM_ID]]).sum(1)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        users, items = self._all_vectors()
        return (users[interaction[self.USER_ID]] @ items.T).view(-1)


class UserItemTower(EvalCache):
    """Scores ``user_embedding(u) · item_vectors(i)``; full ranking builds the item side once per evaluation."""

    cache_attributes: tuple[str, ...] = ("_eval_items",)
    USER_ID: str
    ITEM_ID: str
    user_embedding: torch.nn.Embedding
    _eval_items: torch.Tensor | None

    def item_vectors(self, item: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - the model's own
        raise NotImplementedError

    def item_vectors_of(self, *items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``item_vectors`` of each id tensor, the tower run once per distinct item among them.

        A training batch names each popular item many times (positives and sampled negatives); an
        item tower costs a matrix product per row, so running it on the distinct ids and gathering
        is the same function with fewer products (the gradient into the tower sums over the same
        rows; only float summation order differs).
        """
        flat = torch.cat([i.reshape(-1) for i in items])
        distinct, where = torch.unique(flat, return_inverse=True)
        return self.item_vectors(distinct)[where].split([i.numel() for i in items])

    def predict(self, interaction: Any) -> torch.Tensor:
        user_e = self.user_embedding(interaction[self.USER_ID])
        return (user_e * self.item_vectors(interaction[self.ITEM_ID])).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        user_e = self.user_embedding(interaction[self.USER_ID])
        if self.training:
            return (user_e @ self.item_vectors().T).view(-1)
        if self._eval_items is None:  # RecBole scores a couple of users per batch: build items once
            self._eval_items = self.item_vectors().detach()
        return (user_e @ self._eval_items.T).view(-1)


__all__ = ["DotScores", "EvalCache", "UserItemTower"]
