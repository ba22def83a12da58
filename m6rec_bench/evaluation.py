"""Per-user top-K ranking metrics, computed the way RecBole's full-sort evaluator computes them.

RecBole's ``Trainer.evaluate`` returns only means. The cold-item protocol needs the same metrics
restricted to some ground-truth items (cold ones, warm ones), and paired significance tests need
the per-user values, so this module re-runs the scoring step of ``Trainer._full_sort_batch_eval``
(``model.full_sort_predict``, padding item and the user's history masked with ``-inf``,
``torch.topk``) and RecBole's metric formulas (``recbole.evaluator.metrics``: Recall, MRR, NDCG,
Hit, Precision), keeping one value per user.

Sequential loaders (``--protocol sequential``) work the same way: each row is one user's test
target after their item sequence, and RecBole's loader gives no history to mask
(``history_index`` is ``None``), so only the padding item is masked — as in RecBole's evaluator
(tested in ``tests/test_sequential.py``).

With no item filter the means equal ``trainer.evaluate(test_data)`` (tested to 4 decimals). With an
``item_filter`` (a boolean mask over internal item ids) only the user's positives inside the filter
count as positives, the ranking is still over the full catalogue, and users with no such positive
are left out of that group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from m6rec_bench import compat

METRICS = ("Recall", "MRR", "NDCG", "Hit", "Precision")
TOPK = (10, 20)


@dataclass
class PerUserMetrics:
    """Metric values per evaluated user.

    Attributes:
        user_ids: internal RecBole user ids, in evaluation order.
        values: ``"ndcg@10" -> array`` aligned with ``user_ids`` (RecBole's lowercase names).
        n_positives: number of ground-truth items of each user inside the group.
        top_items: with ``evaluate_groups(top_items=k)``, each user's ranked top-``k`` internal item
            ids ``(n_users, k)`` (the evaluator's own lists, for :mod:`m6rec_bench.beyond`).
    """

    user_ids: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    n_positives: np.ndarray | None = None
    top_items: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return int(len(self.user_ids))

    def means(self, decimals: int | None = None) -> dict[str, float]:
        """Mean over users of every metric (``nan`` when the group has no user)."""
        out = {}
        for name, arr in self.values.items():
            value = float(arr.mean()) if len(arr) else float("nan")
            out[name] = round(value, decimals) if decimals is not None else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (user ids and per-user lists) for artifacts and significance tests."""
        return {
            "user_ids": self.user_ids.tolist(),
            "n_positives": None if self.n_positives is None else self.n_positives.tolist(),
            "values": {k: v.tolist() for k, v in self.values.items()},
        }


def _metric_rows(name: str, hits: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    """RecBole's ``metric_info`` of one metric: ``(n_users, max_k)`` values at every cut-off."""
    n, max_k = hits.shape
    ranks = np.arange(1, max_k + 1, dtype=np.float64)
    if name == "hit":
        return (np.cumsum(hits, axis=1) > 0).astype(np.float64)
    if name == "recall":
        return np.cumsum(hits, axis=1) / pos_len.reshape(-1, 1)
    if name == "precision":
        return np.cumsum(hits, axis=1) / ranks
    if name == "mrr":
        first = hits.argmax(axis=1)
        found = hits[np.arange(n), first]
        out = np.zeros((n, max_k), dtype=np.float64)
        mask = (np.arange(max_k)[None, :] >= first[:, None]) & found[:, None]
        out[mask] = np.broadcast_to(1.0 / (first + 1.0), (max_k, n)).T[mask]
        return out
    if name == "ndcg":
        idcg_len = np.minimum(pos_len, max_k)
        idcg = np.cumsum(1.0 / np.log2(ranks + 1))
        idcg = np.tile(idcg, (n, 1))
        cols = np.arange(max_k)[None, :]
        cap = idcg[np.arange(n), np.maximum(idcg_len - 1, 0)][:, None]
        idcg = np.where(cols >= idcg_len[:, None], cap, idcg)
        dcg = np.cumsum(np.where(hits, 1.0 / np.log2(ranks + 1), 0.0), axis=1)
        return dcg / idcg
    raise ValueError(f"metric '{name}' is not a supported top-K metric; supported: {', '.join(METRICS)}")


def _score_batch(model: Any, batched: Any, eval_data: Any, device: torch.device, n_items: int,
                 item_tensor: Any) -> torch.Tensor:
    """``Trainer._full_sort_batch_eval`` step for step; returns masked ``(batch, n_items)`` scores."""
    interaction, history_index, _, _ = batched
    try:
        scores = model.full_sort_predict(interaction.to(device))
    except NotImplementedError:
        inter_len = len(interaction)
        new_inter = interaction.to(device).repeat_interleave(n_items)
        new_inter.update(item_tensor.repeat(inter_len))
        chunk = eval_data.config["eval_batch_size"]
        if len(new_inter) <= chunk:
            scores = model.predict(new_inter)
        else:  # Trainer._spilt_predict
            from recbole.data.interaction import Interaction

            parts = {k: t.split(chunk, dim=0) for k, t in new_inter.interaction.items()}
            blocks = []
            for i in range((len(new_inter) + chunk - 1) // chunk):
                out = model.predict(Interaction({k: v[i] for k, v in parts.items()}).to(device))
                blocks.append(out.unsqueeze(0) if out.dim() == 0 else out)
            scores = torch.cat(blocks, dim=0)
    return mask_scores(scores.view(-1, n_items), history_index)


def mask_scores(scores: torch.Tensor, history_index: Any) -> torch.Tensor:
    """``scores`` with the padding item and the users' history set to ``-inf``, in place (as
    ``Trainer._full_sort_batch_eval`` masks them)."""
    scores[:, 0] = -np.inf
    if history_index is not None:
        scores[history_index] = -np.inf
    return scores


def _device_of(model: Any) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate_groups(
    model: Any,
    eval_data: Any,
    groups: Mapping[str, np.ndarray | torch.Tensor | None],
    *,
    metrics: Iterable[str] = METRICS,
    topk: Sequence[int] | int = TOPK,
    top_items: int | None = None,
) -> dict[str, PerUserMetrics]:
    """Per-user metrics of ``model`` on a RecBole full-sort dataloader, for several item groups.

    Args:
        model: a trained RecBole recommender.
        eval_data: a ``FullSortEvalDataLoader`` (``CellRun.test_data``).
        groups: ``name -> item_filter``; ``None`` means every positive counts, a boolean mask over
            internal item ids keeps only the positives inside it. Scores are computed once.
        metrics: RecBole metric names (case-insensitive) among Recall, MRR, NDCG, Hit, Precision.
        topk: cut-offs.
        top_items: also keep each user's top-``top_items`` item ids (``PerUserMetrics.top_items``).

    Returns:
        ``name -> PerUserMetrics`` whose values are keyed like RecBole's results (``"ndcg@10"``).
    """
    from recbole.data.dataloader.general_dataloader import FullSortEvalDataLoader

    if not isinstance(eval_data, FullSortEvalDataLoader):
        raise TypeError(f"evaluate_groups needs a full-sort eval dataloader, got {type(eval_data).__name__}")
    names = [m.lower() for m in metrics]
    ks = [topk] if isinstance(topk, int) else [int(k) for k in topk]
    max_k = max(ks)
    n_top = max(max_k, top_items or 0)
    dataset = compat.loader_dataset(eval_data)
    n_items = dataset.item_num
    uid_field = dataset.uid_field
    device = _device_of(model)
    filters: dict[str, torch.Tensor | None] = {}
    for name, mask in groups.items():
        if mask is None:
            filters[name] = None
            continue
        t = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        if t.shape != (n_items,):
            raise ValueError(f"item filter '{name}' has shape {tuple(t.shape)}; expected ({n_items},) over item ids")
        filters[name] = t
    item_tensor = None
    was_training = model.training
    model.eval()
    hits: dict[str, list[np.ndarray]] = {g: [] for g in filters}
    lens: dict[str, list[np.ndarray]] = {g: [] for g in filters}
    users: dict[str, list[np.ndarray]] = {g: [] for g in filters}
    tops: dict[str, list[np.ndarray]] = {g: [] for g in filters}
    try:
        for batched in eval_data:
            interaction, _, positive_u, positive_i = batched
            if item_tensor is None:
                try:
                    item_tensor = dataset.get_item_feature().to(device)
                except Exception:  # noqa: BLE001 - only needed by models without full_sort_predict
                    item_tensor = None
            scores = _score_batch(model, batched, eval_data, device, n_items, item_tensor)
            ranked = torch.topk(scores, n_top, dim=-1)[1].cpu()
            topk_idx = ranked[:, :max_k]
            scores = scores.cpu()
            uids = interaction[uid_field].cpu().numpy()
            for g, mask in filters.items():
                keep = torch.ones_like(positive_i, dtype=torch.bool) if mask is None else mask[positive_i]
                pos = torch.zeros_like(scores, dtype=torch.int)
                pos[positive_u[keep], positive_i[keep]] = 1
                pos_len = pos.sum(dim=1)
                rows = pos_len > 0
                hit = torch.gather(pos, dim=1, index=topk_idx)[rows]
                hits[g].append(hit.to(torch.bool).numpy())
                lens[g].append(pos_len[rows].numpy())
                users[g].append(uids[rows.numpy()])
                if top_items:
                    tops[g].append(ranked[rows, :top_items].numpy())
    finally:
        model.train(was_training)

    out: dict[str, PerUserMetrics] = {}
    for g in filters:
        hit = np.concatenate(hits[g]) if hits[g] else np.zeros((0, max_k), dtype=bool)
        pos_len = np.concatenate(lens[g]) if lens[g] else np.zeros(0, dtype=np.int64)
        values: dict[str, np.ndarray] = {}
        for name in names:
            rows = _metric_rows(name, hit, pos_len) if len(hit) else np.zeros((0, max_k))
            for k in ks:
                values[f"{name}@{k}"] = rows[:, k - 1]
        out[g] = PerUserMetrics(
            user_ids=np.concatenate(users[g]) if users[g] else np.zeros(0, dtype=np.int64),
            values=values, n_positives=pos_len,
            top_items=(np.concatenate(tops[g]) if tops[g] else np.zeros((0, top_items), dtype=np.int64)) if top_items else None,
        )
    return out


def per_user_metrics(
    model: Any,
    eval_data: Any,
    *,
    item_filter: np.ndarray | torch.Tensor | None = None,
    metrics: Iterable[str] = METRICS,
    topk: Sequence[int] | int = TOPK,
) -> PerUserMetrics:
    """Per-user metrics on ``eval_data``, optionally counting only positives inside ``item_filter``.

    Without a filter, ``per_user_metrics(model, test_data).means(4)`` equals RecBole's
    ``trainer.evaluate(test_data)``.
    """
    return evaluate_groups(model, eval_data, {"all": item_filter}, metrics=metrics, topk=topk)["all"]


__all__ = ["METRICS", "TOPK", "PerUserMetrics", "evaluate_groups", "per_user_metrics"]
