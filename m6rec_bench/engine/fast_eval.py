"""Full-sort evaluation in large user batches, with RecBole's own scores, top-k and metric formulas.

Why: RecBole's ``FullSortEvalDataLoader`` batches ``eval_batch_size // n_items`` users (about 2 on
ml-100k) and collates an ``Interaction``, a history index and the positives per batch with Python
loops over users. Measured on ml-100k / BPR (2 shared cores): one validation pass 0.057 s through
RecBole, 0.018 s with one large batch, 0.006-0.009 s in plain torch (``benchmarks/limit.py``).

What stays RecBole's, so the numbers are the same:

* the scores: the model's own ``full_sort_predict`` (or the ``predict`` fallback of
  ``Trainer._full_sort_batch_eval``, via :func:`m6rec_bench.evaluation._score_batch`), with the
  padding item and the user's history set to ``-inf``;
* the ranking: ``torch.topk(scores, max(topk))`` per row, as ``Collector.eval_batch_collect`` calls
  it (the per-row result does not depend on how many rows a call holds; ties are broken the same way);
* the metrics: the ``rec.topk`` matrix goes through the trainer's own ``Evaluator`` (RecBole's
  metric classes, its rounding), and the per-user values are those classes' ``metric_info`` rows of
  the very same matrix, so a user-level mean equals the reported mean by construction.

What changes: users are scored ``rows_per_call`` at a time (a budget of :data:`SCORE_BUDGET` score
floats per call; models without ``full_sort_predict`` — NeuMF, ConvNCF, NNCF score every
(user, item) pair through a network — keep RecBole's own ``eval_batch_size`` pairs per call, which
bounds the work per call, unless :mod:`m6rec_bench.engine.pair_scores` computes their pairs'
scores factorised: NeuMF, whose scores then differ from ``predict``'s by rounding, which the
``replay`` guard below handles as it handles large batches), and each split's history and
positives are gathered once into CSR arrays (cached on the loader) instead of per batch.

Engines (``M6BENCH_ENGINE``, ``m6bench run --engine``):

- ``replay`` (default): RecBole's training batches rebuilt from tensors by
  :mod:`m6rec_bench.engine.fast_train` — the same random draws in the same order, so the same
  batches bit for bit — validation during training in large batches with a near-tie guard (a row
  whose top-k order batched rounding could change, :func:`near_ties`, is scored again in its own
  RecBole batch: every validation list is RecBole's, so the same epochs are chosen; when nothing
  reads the lists but the hits, as in validation during ``fit``, only rows where a tie could move a
  positive, :func:`hit_changing_ties`, so every hit vector and metric is RecBole's), and the test
  pass through RecBole's own loader batches: every number is RecBole's. Training costs 1.0-1.2x
  plain torch an epoch instead of ~3.4x, validation 3.6-6x less than RecBole's loop
  (``benchmarks/RESULTS.md``).
- ``recbole``: RecBole's own training loader too — every step RecBole's code (the agreement mode;
  ``tests/test_fast_train.py`` holds ``replay`` equal to it).
- ``fast``: ``replay``, plus ``Trainer.evaluate`` hooked for full-sort loaders (validation during
  ``fit``) and the test pass scored in large batches.

Each gives one :class:`EvalPass` whose means and per-user values come from the same ranking. Why
``fast`` is not the default: a model that scores by a matrix product gets scores
rounded differently by the BLAS for 150 rows than for RecBole's 2, so near-tied items may trade
places. ``tests/test_fast_eval.py`` finds RecBole's result dict (its 4-decimal rounding) from both
engines on every offered general and sequential model, identical top-k lists on all but SpectralCF
and NGCF with ``fast`` (0.1-0.2 % of top-20 entries on the test slice: adjacent swaps) — and on all
of them with ``replay``'s guarded validation (:func:`near_ties`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from m6rec_bench import compat
from m6rec_bench.engine import pair_scores
from m6rec_bench.engine.engines import (  # noqa: F401 - re-exported: the engine names
    DEFAULT_ENGINE,
    ENGINE_ENV,
    ENGINES,
    REPLAY_ENGINES,
    engine_from_env,
    set_engine,
)
from m6rec_bench.errors import UsageError
from m6rec_bench.evaluation import PerUserMetrics, _device_of, _score_batch, mask_scores

#: Score floats per scoring call (users x items): 8M floats = 32 MiB, all of ml-100k in one call.
SCORE_BUDGET = 1 << 23

#: Collector entries this evaluator fills; a metric needing another (``rec.score``, ``rec.meanrank``,
#: ``data.label``) sends the pass back to RecBole's own ``Trainer.evaluate``.
_FILLED = ("rec.topk", "rec.items")
_UNFILLED = ("rec.score", "rec.meanrank", "data.label")


@dataclass
class EvalPass:
    """One evaluation pass: RecBole's result dict and, from the same ranking, per-user values.

    Attributes:
        result: what ``Trainer.evaluate`` returns (``"ndcg@10" -> value``, RecBole's rounding).
        per_user: every top-k metric at every cut-off, per evaluated user, unrounded;
            ``per_user.top_items`` holds each user's ranked top-``max(topk)`` internal item ids.
    """

    result: dict[str, float]
    per_user: PerUserMetrics | None
    #: rows the ``replay`` engine's near-tie guard scored again in their RecBole batch
    rescored_rows: int = 0


@dataclass
class SplitIndex:
    """A general full-sort split gathered once: the users in loader order, their history (masked)
    and positives (ground truth) as CSR arrays over rows."""

    user_df: Any
    hist_ptr: torch.Tensor
    hist_idx: torch.Tensor
    pos_ptr: torch.Tensor
    pos_idx: torch.Tensor

    @property
    def n_rows(self) -> int:
        return len(self.pos_ptr) - 1

    def rows(self, start: int, stop: int) -> tuple[Any, tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Rows ``[start, stop)`` shaped like one batch of ``FullSortEvalDataLoader``."""
        return (self.user_df[start:stop], _csr_rows(self.hist_ptr, self.hist_idx, start, stop),
                *_csr_rows(self.pos_ptr, self.pos_idx, start, stop))


def _csr(lists: Any) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(t) for t in lists], dtype=torch.int64)
    ptr = torch.zeros(len(lens) + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(lens, 0)
    idx = torch.cat([t.to(torch.int64) for t in lists]) if len(lists) else torch.zeros(0, dtype=torch.int64)
    return ptr, idx


def _csr_rows(ptr: torch.Tensor, idx: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row within the batch, column) pairs of CSR rows ``[start, stop)``."""
    counts = ptr[start + 1 : stop + 1] - ptr[start:stop]
    rows = torch.repeat_interleave(torch.arange(stop - start), counts)
    return rows, idx[int(ptr[start]) : int(ptr[stop])]


def split_index(eval_data: Any) -> SplitIndex:
    """The general loader's :class:`SplitIndex`, built on first use and kept on the loader."""
    cached = eval_data.__dict__.get("_m6_split_index")
    if cached is not None:
        return cached
    uids = eval_data.uid_list.tolist()
    hist_ptr, hist_idx = _csr(eval_data.uid2history_item[uids])
    pos_ptr, pos_idx = _csr(eval_data.uid2positive_item[uids])
    index = SplitIndex(eval_data.user_df, hist_ptr, hist_idx, pos_ptr, pos_idx)
    eval_data.__dict__["_m6_split_index"] = index
    return index


def _pairwise(model: Any) -> bool:
    """True for a model without its own ``full_sort_predict`` (scored pair by pair through ``predict``)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    return getattr(type(model), "full_sort_predict", None) is AbstractRecommender.full_sort_predict


#: Models whose ``full_sort_predict`` depends on the call, not only on the user: RecBole's Random
#: draws one score vector per call and gives it to every user of the batch; ADMMSLIM adds
#: ``1e-5 * torch.rand`` noise of the batch's shape (``admmslim.add_noise``), so a batch of another
#: size draws other noise. They keep RecBole's own batches, so they draw exactly what RecBole draws.
PER_CALL_MODELS = frozenset({"Random", "ADMMSLIM"})


def rows_per_call(model: Any, eval_data: Any) -> int:
    """Users (rows) scored per call: :data:`SCORE_BUDGET` score floats; for a pairwise model,
    RecBole's own ``eval_batch_size`` pairs (its cost per user is a network pass per item); for a
    :data:`PER_CALL_MODELS` model, RecBole's own loader step."""
    if type(model).__name__ in PER_CALL_MODELS:
        return int(eval_data.step)
    n_items = compat.loader_dataset(eval_data).item_num
    budget = eval_data.config["eval_batch_size"] if _pairwise(model) else SCORE_BUDGET
    return max(budget // n_items, 1)


def _n_rows(eval_data: Any) -> int:
    """Rows (users, or sequences) of a full-sort loader, in loader order."""
    return int(eval_data.sample_size) if eval_data.is_sequential else split_index(eval_data).n_rows


def _rows_batch(eval_data: Any, start: int, stop: int) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    """Rows ``[start, stop)`` as one batch of the loader (RecBole's own collation for sequences:
    no history to mask)."""
    if eval_data.is_sequential:
        return eval_data.collate_fn(np.arange(start, stop))
    return split_index(eval_data).rows(start, stop)


def _fast_batches(model: Any, eval_data: Any, rows: int | None) -> Iterator[tuple[int, int, Any]]:
    """``(start, stop, batch)`` over the loader's rows, ``rows`` (default :func:`rows_per_call`) at a time."""
    step, n = rows or rows_per_call(model, eval_data), _n_rows(eval_data)
    for start in range(0, n, step):
        yield start, min(start + step, n), _rows_batch(eval_data, start, min(start + step, n))


#: The near-tie guard of the ``replay`` engine's validation: a row's top-k list from a large batch
#: is kept only when every gap between its ``max(topk) + 1`` best scores exceeds this share of the
#: row's largest score magnitude (at least 1). Batched float rounding moves scores by far less
#: (measured ≤ 2e-6 relative on the offered models, ``tests/test_fast_eval.py``), so a kept list is
#: the list RecBole's own batches give; any other row is scored again in its RecBole batch.
NEAR_TIE = 1e-5


def near_ties(scores: torch.Tensor, k: int, tol: float = NEAR_TIE) -> torch.Tensor:
    """Rows whose ``k + 1`` best scores are not separated by more than ``tol`` × the row's scale
    (ties, near ties, fewer than ``k + 1`` finite scores): their order could depend on rounding."""
    vals = torch.topk(scores, min(k + 1, scores.shape[1]), dim=-1)[0]
    finite = torch.isfinite(vals)
    return ~((_gaps(vals) > tol * _row_scale(vals)) & finite[:, 1:]).all(dim=1)


def _row_scale(vals: torch.Tensor) -> torch.Tensor:
    """Each row's largest finite score magnitude, at least 1: what the near-tie tolerance is a share of."""
    finite = torch.isfinite(vals)
    return torch.where(finite, vals.abs(), torch.zeros_like(vals)).amax(dim=1, keepdim=True).clamp(min=1.0)


def _gaps(vals: torch.Tensor) -> torch.Tensor:
    """Gaps between consecutive scores of rows sorted in descending order."""
    return vals[:, :-1] - vals[:, 1:]


#: Ranks past ``max(topk)`` that :func:`hit_changing_ties` looks at: a run of near ties that reaches
#: past them is scored again (an item that far down could only enter the top k through a run of
#: near ties that long).
TIE_WINDOW = 8


def hit_changing_ties(scores: torch.Tensor, k: int, positive: torch.Tensor, tol: float = NEAR_TIE,
                      window: int = TIE_WINDOW) -> torch.Tensor:
    """Rows where rounding could change *which ranks of the top k hold a positive*: the rows whose
    hit vector (``rec.topk``, all a top-k metric reads) another batch could change.

    A run of near-tied scores (consecutive gaps within ``tol`` × the row's scale, as in
    :func:`near_ties`) may come out in any order; it changes the hits only when it holds both
    positives and other items and touches the top ``k``. Flagged: such a mixed run inside the top
    ``k`` or across its boundary, a boundary run that reaches the end of the ``k + window`` ranks
    looked at, and a row with a NaN score. Masked (``-inf``) items tie with each other, never with
    a finite score. ``positive``: the batch's 0/1 ground-truth matrix.
    """
    m = min(k + window, scores.shape[1])
    vals, idx = torch.topk(scores, m, dim=-1)
    tied = ~(_gaps(vals) > tol * _row_scale(vals))  # rank j and j + 1 may swap (-inf and -inf: NaN gap)
    hit = torch.gather(positive, 1, idx) > 0
    mixed = tied & (hit[:, 1:] != hit[:, :-1])
    inside = mixed[:, : k - 1].any(dim=1)
    chain = tied[:, k - 1 :].to(torch.int8).cumprod(dim=1).bool()  # the run that holds rank k, onwards
    flagged = inside | (mixed[:, k - 1 :] & chain).any(dim=1) | torch.isnan(vals).any(dim=1)
    if m < scores.shape[1] and chain.shape[1]:
        flagged |= chain[:, -1]
    return flagged


def _exact_rows(model: Any, eval_data: Any, device: Any, n_items: int, item_tensor: Any, max_k: int,
                start: int, flagged: torch.Tensor, topk_idx: torch.Tensor) -> None:
    """Score again, in RecBole's own batches, the loader rows ``start + flagged`` of a large batch
    and put their top-k lists into ``topk_idx`` (rows of the large batch)."""
    step, n = int(eval_data.step), _n_rows(eval_data)
    rows = (start + flagged).tolist()
    for first in sorted({r - r % step for r in rows}):
        batch = _rows_batch(eval_data, first, min(first + step, n))
        exact = torch.topk(_score_batch(model, batch, eval_data, device, n_items, item_tensor), max_k, dim=-1)[1]
        for r in (r for r in rows if first <= r < first + step):
            topk_idx[r - start] = exact[r - first]


def supports(trainer: Any, eval_data: Any) -> bool:
    """Whether this evaluator can stand in for ``trainer.evaluate(eval_data)``: a full-sort loader,
    one process, and only metrics that read the top-k lists."""
    from recbole.data.dataloader.general_dataloader import FullSortEvalDataLoader

    register = trainer.eval_collector.register
    return (isinstance(eval_data, FullSortEvalDataLoader) and bool(trainer.config["single_spec"])
            and not any(register.need(key) for key in _UNFILLED))


@torch.no_grad()
def evaluate_pass(trainer: Any, eval_data: Any, *, engine: str = "fast", rows: int | None = None,
                  per_user: bool = True) -> EvalPass:
    """Evaluate ``trainer.model`` on a full-sort loader: RecBole's result and per-user values, one pass.

    Args:
        trainer: a RecBole ``Trainer`` (its model, collector and evaluator are used).
        eval_data: a ``FullSortEvalDataLoader`` (validation or test).
        engine: ``fast`` (large batches, CSR masks), ``replay`` (large batches with the
            :func:`near_ties` guard: a row whose order rounding could change is scored again in
            its RecBole batch, so every top-k list is RecBole's) or ``recbole`` (RecBole's own
            loader batches).
        rows: users per scoring call for ``fast``/``replay`` (default :func:`rows_per_call`).
        per_user: also compute the per-user values (the validation hook skips them; ``per_user``
            is then ``None``).
    """
    if engine not in ENGINES:
        raise UsageError(f"evaluation engine {engine!r} is unknown; use one of: {', '.join(ENGINES)}")
    if not supports(trainer, eval_data):
        raise ValueError("evaluate_pass needs a full-sort loader, one process and top-k metrics only")
    model, collector = trainer.model, trainer.eval_collector
    model.eval()
    dataset = compat.loader_dataset(eval_data)
    n_items, uid_field = dataset.item_num, dataset.uid_field
    device = _device_of(model)
    item_tensor = dataset.get_item_feature().to(device) if _pairwise(model) else None
    max_k = max(collector.topk)
    exact_step = int(eval_data.step)
    scorer = None if engine == "recbole" or not _pairwise(model) else pair_scores.factorised(model)
    if engine == "recbole":
        batches: Iterator[tuple[int, int, Any]] = ((0, 0, batch) for batch in eval_data)
    else:
        step = rows or (scorer.rows_per_call() if scorer else rows_per_call(model, eval_data))
        if engine == "replay":  # whole RecBole batches inside each large one, for the guard's re-scoring
            step = max(exact_step, step - step % exact_step)
        batches = _fast_batches(model, eval_data, step)
    guard = engine == "replay"
    # Nothing reads the lists, only which ranks hold a positive: the guard lets hit-neutral ties be.
    hits_only = not per_user and not collector.register.need("rec.items")
    topk_rows, users, rescored = [], [], 0
    for start, stop, batch in batches:
        interaction, history_index, positive_u, positive_i = batch
        if scorer is not None:  # the pairs' scores computed factorised: predict's to rounding
            scores = mask_scores(scorer(interaction[uid_field].to(device)), history_index)
        else:
            scores = _score_batch(model, batch, eval_data, device, n_items, item_tensor)
        topk_idx = torch.topk(scores, max_k, dim=-1)[1]  # Collector.eval_batch_collect's call
        pos = torch.zeros_like(scores, dtype=torch.int)
        pos[positive_u, positive_i] = 1
        if guard and (stop - start > exact_step or scorer is not None):
            risky = hit_changing_ties(scores, max_k, pos) if hits_only else near_ties(scores, max_k)
            flagged = torch.nonzero(risky).flatten().cpu()
            if len(flagged):
                _exact_rows(model, eval_data, device, n_items, item_tensor, max_k, start, flagged, topk_idx)
                rescored += len(flagged)
        pos_len = pos.sum(dim=1, keepdim=True)
        topk_rows.append((torch.cat((torch.gather(pos, dim=1, index=topk_idx), pos_len), dim=1).cpu(), topk_idx.cpu()))
        users.append(interaction[uid_field].cpu())
    rec_topk = torch.cat([t for t, _ in topk_rows])
    items = torch.cat([i for _, i in topk_rows])
    if collector.register.need("rec.topk"):
        collector.data_struct.update_tensor("rec.topk", rec_topk)
    if collector.register.need("rec.items"):
        collector.data_struct.update_tensor("rec.items", items)
    collector.model_collect(model)
    struct = collector.get_data_struct()
    result = trainer.evaluator.evaluate(struct)
    values = _per_user(trainer, rec_topk, torch.cat(users).numpy(), items.numpy()) if per_user else None
    return EvalPass(result=result, per_user=values, rescored_rows=rescored)


def _per_user(trainer: Any, rec_topk: torch.Tensor, user_ids: np.ndarray, items: np.ndarray) -> PerUserMetrics:
    """Each top-k metric's ``metric_info`` rows (RecBole's own per-user values) at every cut-off."""
    from recbole.evaluator.base_metric import TopkMetric
    from recbole.evaluator.collector import DataStruct

    struct = DataStruct()
    struct.set("rec.topk", rec_topk)
    values: dict[str, np.ndarray] = {}
    pos_len = rec_topk[:, -1].numpy()
    for name, metric in trainer.evaluator.metric_class.items():
        if not isinstance(metric, TopkMetric):
            continue
        pos_index, lens = metric.used_info(struct)
        takes_len = "pos_len" in inspect.signature(metric.metric_info).parameters
        rows = metric.metric_info(pos_index, lens) if takes_len else metric.metric_info(pos_index)
        for k in metric.topk:
            values[f"{name}@{k}"] = np.asarray(rows[:, k - 1], dtype=np.float64)
    return PerUserMetrics(user_ids=user_ids, values=values, n_positives=pos_len, top_items=items)


def install(trainer: Any, engine: str = "fast") -> None:
    """Route ``trainer.evaluate`` (validation during ``fit``) through :func:`evaluate_pass` with
    engine ``fast`` or ``replay`` (large batches; ``replay`` with the near-tie guard, so its
    validation scores are RecBole's) for the loaders it supports; every other call (a checkpoint to
    load, sampled negatives, value metrics) and engine ``recbole`` keep RecBole's own method.
    Idempotent."""
    if engine not in ("fast", "replay") or "_m6_recbole_evaluate" in trainer.__dict__:
        return
    original = trainer.evaluate
    trainer._m6_recbole_evaluate = original

    def evaluate(eval_data: Any, load_best_model: bool = True, model_file: Any = None, show_progress: bool = False) -> Any:
        if load_best_model or not eval_data or not supports(trainer, eval_data):
            return original(eval_data, load_best_model=load_best_model, model_file=model_file, show_progress=show_progress)
        return evaluate_pass(trainer, eval_data, engine=engine, per_user=False).result

    trainer.evaluate = evaluate


__all__ = ["DEFAULT_ENGINE", "ENGINES", "ENGINE_ENV", "NEAR_TIE", "REPLAY_ENGINES", "TIE_WINDOW", "EvalPass", "PER_CALL_MODELS",
           "SCORE_BUDGET", "SplitIndex", "engine_from_env", "evaluate_pass", "hit_changing_ties", "near_ties", "install", "rows_per_call", "set_engine", "split_index", "supports"]
