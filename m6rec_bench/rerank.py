"""Re-ranking a trained model's top-N into a top-10 slate: a LinUCB bandit learned by replay, and MMR.

``m6bench run --rerank linucb,mmr`` adds, for every model, rows such as ``BPR [linucb]``: the
model's own trained artifact (never retrained) re-ranks each test user's top-:data:`N_CANDIDATES`
(50, the user's history masked as RecBole's evaluator masks it) into a slate of :data:`SLATE` (10)
items, filled position by position. Both policies score a candidate ``c`` at a position from one
context vector, given the items ``S`` already in the slate:

.. math::

    x_c = \\big[\\,\\mathrm{rel}_c,\\ \\mathrm{nov}_c,\\ \\mathrm{div}_c(S),\\ 1\\,\\big],\\qquad
    \\mathrm{rel}_c = \\frac{s_c - \\min s}{\\max s - \\min s},\\quad
    \\mathrm{nov}_c = \\frac{-\\log_2 p_c}{\\log_2 n},\\quad
    \\mathrm{div}_c(S) = 1 - \\max_{j \\in S} \\cos(c, j)

(``s``: the base model's scores of the user's candidates; ``p_c``: share of the ``n`` training users
who interacted with ``c``; cosine over the item columns of the training matrix — the novelty and
item vectors of :mod:`m6rec_bench.beyond`, so the slate is judged by the very quantities it uses;
``div`` is 1 for the first position).

* ``linucb[:w]`` — LinUCB (Li, Chu, Langford & Schapire, "A Contextual-Bandit Approach to
  Personalized News Article Recommendation", WWW 2010, Algorithm 1 with one linear model shared by
  all arms, since the arms — candidate items — change with every user): ridge statistics
  :math:`A = I + \\sum x x^\\top`, :math:`b = \\sum r x`, :math:`\\theta = A^{-1} b`, and the arm
  :math:`\\arg\\max_c\\ \\theta^\\top x_c + \\alpha \\sqrt{x_c^\\top A^{-1} x_c}` while learning.
  It learns **offline by replay** (Li, Chu, Langford & Wang, "Unbiased Offline Evaluation of
  Contextual-Bandit-based News Article Recommendation Algorithms", WSDM 2011, Algorithm 3) on
  events logged by the simulator of :func:`simulate_log` on the **validation** split: per
  validation user, :data:`ROUNDS` logged slates, each position showing one of the remaining
  candidates uniformly at random (seeded by the cell's seed), with reward

  .. math:: r = \\mathbb{1}[c \\in V_u]\\,(1 + w\\,\\mathrm{nov}_c)

  (``V_u``: the user's validation items; ``w`` = ``novelty_weight``, default 1, the knob that
  trades accuracy for novelty: ``linucb:0`` rewards hits only). Replay offers each logged context
  to the policy; **only events whose chosen arm equals the logged one count** — the reward is
  added and the model updated — the others are discarded. Under the uniform logger the mean reward
  over matched events is an unbiased estimate of the policy's per-position reward (the arm count
  shrinks from 50 to 41 along a slate, which weights later positions very slightly more). At test
  time the learned :math:`\\theta` fills each slate greedily, exploiting (no UCB bonus).
* ``mmr[:λ]`` — Maximal Marginal Relevance (Carbonell & Goldstein, "The Use of MMR,
  Diversity-Based Reranking for Reordering Documents and Producing Summaries", SIGIR 1998):
  :math:`\\arg\\max_c\\ \\lambda\\,\\mathrm{rel}_c - (1-\\lambda)\\max_{j\\in S}\\cos(c, j)`, default
  :math:`\\lambda = 0.5`; not learned — the reference the bandit must beat on the trade-off.

Evaluation goes through RecBole's evaluator unchanged: :class:`RerankedModel` wraps the base model,
and its ``full_sort_predict`` returns the base scores with the user's slate lifted above every
other item in slate order, so the evaluator's masked top-10 is exactly the slate and the rest of
the ranking keeps the base order (``trainer.evaluate``, per-user metrics and
:mod:`m6rec_bench.beyond` all apply as to any model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from typing import Protocol as Interface  # not an evaluation protocol: the structural type of a re-ranker

import numpy as np
import torch
from torch import nn

from m6rec_bench import compat
from m6rec_bench.beyond import ItemStats
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.lookup import Registry

#: Candidates re-ranked per user: the base model's top-N.
N_CANDIDATES = 50
#: Slate length (the evaluator's top-10).
SLATE = 10
#: Logged slates per validation user in the replay simulator.
ROUNDS = 10
#: LinUCB's exploration weight while it learns by replay.
ALPHA = 0.5
#: Default knobs: LinUCB's novelty weight in the reward, MMR's λ.
DEFAULTS = {"linucb": 1.0, "mmr": 0.5}
#: The extra-metrics group of a re-ranked cell's record (a leaderboard column set).
GROUP = "rerank"
#: Names of the context features, in order.
FEATURES = ("rel", "nov", "div", "bias")


@dataclass(frozen=True)
class Method:
    """A parsed ``--rerank`` value: ``linucb[:novelty_weight]`` or ``mmr[:lambda]``."""

    kind: Literal["linucb", "mmr"]
    param: float

    @property
    def name(self) -> str:
        return self.kind if self.param == DEFAULTS[self.kind] else f"{self.kind}:{self.param:g}"


def _check_linucb(p: float, text: str) -> None:
    if not (p >= 0.0 and np.isfinite(p)):
        raise UsageError(f"--rerank {text}: LinUCB's novelty weight must be a number ≥ 0 (e.g. linucb:2)")


def _check_mmr(p: float, text: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise UsageError(f"--rerank {text}: MMR's lambda must be a number between 0 and 1 (e.g. mmr:0.7)")


#: ``--rerank`` methods: name -> the check of its parameter (``(value, the option as given)``; UsageError when bad).
METHODS: Registry[Callable[[float, str], None]] = Registry(
    "re-ranking method",
    unknown="--rerank {text!r} is not a re-ranking method{hint}; use linucb (contextual bandit learned by replay on "
            "validation), mmr (maximal marginal relevance), linucb:<novelty weight> or mmr:<lambda>, "
            "e.g. --rerank linucb,mmr:0.7")
METHODS.register("linucb", _check_linucb)
METHODS.register("mmr", _check_mmr)


def parse(text: str) -> Method:
    """``linucb``, ``linucb:<novelty weight ≥ 0>``, ``mmr`` or ``mmr:<λ in [0, 1]>``; UsageError otherwise."""
    kind, sep, arg = str(text).strip().lower().partition(":")
    check = METHODS.get(kind, text=text)
    if not sep:
        return Method(kind, DEFAULTS[kind])  # type: ignore[arg-type]
    try:
        p = float(arg)
    except ValueError:
        p = float("nan")
    check(p, text)
    return Method(kind, p)  # type: ignore[arg-type]


# ------------------------------------------------------------------ candidates and contexts


@dataclass
class Candidates:
    """Each evaluated user's top-N of the base model on one loader (history masked as RecBole masks it).

    Attributes:
        user_ids: internal user ids, in loader order.
        items: ``(n_users, N)`` internal item ids, best first; 0 where the user had fewer unmasked items.
        scores: ``(n_users, N)`` their base scores (``-inf`` where ``items`` is 0).
        positives: each user's ground-truth items on the loader (validation or test items).
    """

    user_ids: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    positives: list[np.ndarray] = field(default_factory=list)


@torch.no_grad()
def candidates(model: Any, eval_data: Any, n: int = N_CANDIDATES) -> Candidates:
    """The base model's masked top-``n`` for every user of a full-sort loader (RecBole's scoring step)."""
    from m6rec_bench.evaluation import _device_of, _score_batch

    dataset = compat.loader_dataset(eval_data)
    n_items, uid_field = dataset.item_num, dataset.uid_field
    n = min(n, n_items - 1)
    device = _device_of(model)
    try:
        item_tensor = dataset.get_item_feature().to(device)
    except Exception:  # noqa: BLE001 - only needed by models without full_sort_predict
        item_tensor = None
    was_training = model.training
    model.eval()
    users, items, scores, positives = [], [], [], []
    try:
        for batched in eval_data:
            interaction, _, positive_u, positive_i = batched
            s = _score_batch(model, batched, eval_data, device, n_items, item_tensor)
            top_s, top_i = torch.topk(s, n, dim=-1)
            top_s, top_i = top_s.cpu().numpy().astype(np.float64), top_i.cpu().numpy()
            top_i[~np.isfinite(top_s)] = 0
            users.append(interaction[uid_field].cpu().numpy())
            items.append(top_i)
            scores.append(np.where(top_i > 0, top_s, -np.inf))
            pu, pi = positive_u.cpu().numpy(), positive_i.cpu().numpy()
            positives += [pi[pu == row] for row in range(len(top_i))]
    finally:
        model.train(was_training)
    out = Candidates(np.concatenate(users), np.concatenate(items), np.concatenate(scores), positives)
    if len(np.unique(out.user_ids)) != len(out.user_ids):
        raise DataError("this loader has several rows per user; re-ranking keeps one slate per user "
                        "(the default, cold-item and sequential protocols give one row per user)")
    return out


class UserContext:
    """Context vectors of one user's candidates as a slate is filled (see the module doc)."""

    def __init__(self, items: np.ndarray, scores: np.ndarray, stats: ItemStats) -> None:
        keep = items > 0
        self.items = items[keep]
        s = scores[keep]
        span = float(s.max() - s.min()) if len(s) else 0.0
        self.rel = (s - s.min()) / span if span > 0 else np.ones(len(s))
        self.nov = stats.normalized_novelty(self.items)
        self.sim = stats.cosine(self.items) if len(self.items) else np.zeros((0, 0))
        self.reset()

    def reset(self) -> None:
        self.remaining = np.arange(len(self.items))  # candidate rows not yet in the slate, best base rank first
        self.max_sim: np.ndarray | None = None  # max cosine of every candidate to the slate so far

    def contexts(self) -> np.ndarray:
        """``(len(remaining), 4)`` contexts of the remaining candidates at the next position."""
        r = self.remaining
        div = np.ones(len(r)) if self.max_sim is None else 1.0 - self.max_sim[r]
        return np.column_stack([self.rel[r], self.nov[r], div, np.ones(len(r))])

    def take(self, pos: int) -> int:
        """Put ``remaining[pos]`` into the slate; returns its candidate row."""
        row = int(self.remaining[pos])
        self.remaining = np.delete(self.remaining, pos)
        col = self.sim[:, row]
        self.max_sim = col.copy() if self.max_sim is None else np.maximum(self.max_sim, col)
        return row


# ------------------------------------------------------------------ policies


class Reranker(Interface):
    """What replay needs of a re-ranking policy (LinUCB, MMR): choose a row of a context matrix; learn
    from a matched event."""

    def choose(self, contexts: np.ndarray) -> int: ...
    def update(self, x: np.ndarray, reward: float) -> None: ...


class LinUCB:
    """LinUCB with one shared ridge-regression model (Li et al., WWW 2010, Algorithm 1).

    ``A⁻¹`` is kept by Sherman–Morrison updates; ``explore`` adds the upper-confidence bonus
    :math:`\\alpha\\sqrt{x^\\top A^{-1} x}` (learning) or leaves it out (exploitation).
    """

    def __init__(self, dim: int = len(FEATURES), alpha: float = ALPHA, ridge: float = 1.0) -> None:
        self.alpha = alpha
        self.A_inv = np.eye(dim) / ridge
        self.b = np.zeros(dim)
        self.theta = np.zeros(dim)
        self.explore = True

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        mean = contexts @ self.theta
        if not self.explore:
            return mean
        width = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", contexts, self.A_inv, contexts), 0.0))
        return mean + self.alpha * width

    def choose(self, contexts: np.ndarray) -> int:
        return int(np.argmax(self.scores(contexts)))  # ties: the better base rank (rows are in rank order)

    def update(self, x: np.ndarray, reward: float) -> None:
        ax = self.A_inv @ x
        self.A_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
        self.b += reward * x
        self.theta = self.A_inv @ self.b


class Linear:
    """A fixed linear scorer over the contexts: MMR is ``θ = (λ, 0, 1 − λ, 0)``."""

    def __init__(self, theta: np.ndarray) -> None:
        self.theta = np.asarray(theta, dtype=np.float64)

    def choose(self, contexts: np.ndarray) -> int:
        return int(np.argmax(contexts @ self.theta))

    def update(self, x: np.ndarray, reward: float) -> None:  # not learned
        return None


def mmr(lam: float) -> Linear:
    """MMR (Carbonell & Goldstein 1998): ``λ rel − (1 − λ) max cos`` = ``λ rel + (1 − λ) div`` − const."""
    return Linear(np.array([lam, 0.0, 1.0 - lam, 0.0]))


# ------------------------------------------------------------------ replay


@dataclass
class Event:
    """One logged event: the contexts of the shown position, the row the logger showed, its reward."""

    contexts: np.ndarray
    items: np.ndarray
    shown: int
    reward: float


def simulate_log(cands: Candidates, stats: ItemStats, *, seed: int, novelty_weight: float,
                 rounds: int = ROUNDS, slate: int = SLATE) -> Iterator[Event]:
    """Logged events of a uniformly random logging policy on validation candidates (module doc).

    For each user and round a slate of ``slate`` positions is logged; at each position the logger
    shows one remaining candidate uniformly at random (``numpy.random.default_rng(seed)``), and the
    logged reward is ``1 + novelty_weight · nov`` when the shown item is a validation item, else 0.
    """
    rng = np.random.default_rng(seed)
    for row in range(len(cands.user_ids)):
        ctx = UserContext(cands.items[row], cands.scores[row], stats)
        hits = np.isin(ctx.items, cands.positives[row])
        for _ in range(rounds):
            ctx.reset()
            for _ in range(min(slate, len(ctx.items))):
                x = ctx.contexts()
                pos = int(rng.integers(len(x)))
                shown = int(ctx.remaining[pos])
                reward = float(hits[shown]) * (1.0 + novelty_weight * float(ctx.nov[shown]))
                yield Event(x, ctx.items[ctx.remaining], pos, reward)
                ctx.take(pos)


@dataclass
class ReplayResult:
    """Replay counts: logged events, events whose logged arm the policy also chose, their reward."""

    events: int = 0
    matched: int = 0
    reward_sum: float = 0.0

    @property
    def reward(self) -> float:
        """Mean reward over matched events (the replay estimate of the policy's per-position reward)."""
        return self.reward_sum / self.matched if self.matched else float("nan")


def replay(policy: Reranker, events: Iterator[Event]) -> ReplayResult:
    """Li et al. (WSDM 2011) replay: a logged event counts — reward added, policy updated — only when
    the policy, offered its context, chooses the arm the logger showed; other events are discarded."""
    out = ReplayResult()
    for ev in events:
        out.events += 1
        if policy.choose(ev.contexts) == ev.shown:
            out.matched += 1
            out.reward_sum += ev.reward
            policy.update(ev.contexts[ev.shown], ev.reward)
    return out


# ------------------------------------------------------------------ slates and the wrapped model


def build_slates(policy: Reranker, cands: Candidates, stats: ItemStats, slate: int = SLATE) -> np.ndarray:
    """``(n_users, slate)`` item ids each user's candidates are re-ranked into (0-padded when short)."""
    if isinstance(policy, LinUCB):
        policy.explore = False
    out = np.zeros((len(cands.user_ids), slate), dtype=np.int64)
    for row in range(len(cands.user_ids)):
        ctx = UserContext(cands.items[row], cands.scores[row], stats)
        for pos in range(min(slate, len(ctx.items))):
            out[row, pos] = ctx.items[ctx.take(policy.choose(ctx.contexts()))]
    return out


class RerankedModel(nn.Module):
    """A RecBole-compatible model: the base model's scores with each user's slate put first, in order.

    ``full_sort_predict`` lifts the slate's items above the user's best base score (slate order
    kept) and leaves every other item at its base score, so the evaluator's masked top-10 is the
    slate and the rest of the ranking is the base ranking. Users without a slate keep the base scores.
    """

    def __init__(self, base: nn.Module, user_ids: np.ndarray, slates: np.ndarray, eval_data: Any) -> None:
        super().__init__()
        self.base = base
        dataset = compat.loader_dataset(eval_data)
        self.USER_ID, self.n_items, self._eval_data = dataset.uid_field, dataset.item_num, eval_data
        table = torch.zeros((dataset.user_num, slates.shape[1]), dtype=torch.long)
        table[torch.as_tensor(user_ids, dtype=torch.long)] = torch.as_tensor(slates, dtype=torch.long)
        self.slates = table
        self._item_tensor: Any = None

    def forward(self, interaction: Any) -> torch.Tensor:
        return self.full_sort_predict(interaction)

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        raise NotImplementedError("a re-ranked model is not trained; its base model was")

    def predict(self, interaction: Any) -> torch.Tensor:
        return self.base.predict(interaction)

    @torch.no_grad()
    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        from m6rec_bench.evaluation import _device_of, _score_batch

        device = _device_of(self.base)
        if self._item_tensor is None:
            try:
                self._item_tensor = compat.loader_dataset(self._eval_data).get_item_feature().to(device)
            except Exception:  # noqa: BLE001 - only needed by base models without full_sort_predict
                self._item_tensor = None
        scores = _score_batch(self.base, (interaction, None, None, None), self._eval_data, device, self.n_items,
                              self._item_tensor).clone()
        finite = torch.where(torch.isfinite(scores), scores, torch.full_like(scores, -torch.inf))
        lift = finite.max(dim=1, keepdim=True).values.clamp_min(-1e30) + 1.0
        slate = self.slates.to(scores.device)[interaction[self.USER_ID].long()]
        k = slate.shape[1]
        bonus = torch.arange(k, 0, -1, device=scores.device, dtype=scores.dtype).expand_as(slate)
        placed = torch.where(slate > 0, lift + bonus, scores.gather(1, slate))
        scores.scatter_(1, slate, placed)
        scores[:, 0] = -torch.inf  # slate padding wrote into the padding item's column
        return scores.view(-1)


@dataclass
class Reranked:
    """The outcome of :func:`fit_and_wrap`: the wrapped model, the slates and the record's numbers."""

    model: RerankedModel
    slates: np.ndarray
    user_ids: np.ndarray
    group: dict[str, float]


def fit_and_wrap(method: Method, model: nn.Module, train_data: Any, valid_data: Any, test_data: Any, *,
                 seed: int) -> Reranked:
    """Learn the policy (LinUCB: replay on validation) and re-rank every test user's candidates."""
    import time

    stats = ItemStats.from_train(compat.loader_dataset(train_data))
    group: dict[str, float] = {}
    t0 = time.perf_counter()
    if method.kind == "linucb":
        policy: Reranker = LinUCB()
        log = simulate_log(candidates(model, valid_data), stats, seed=seed, novelty_weight=method.param)
        res = replay(policy, log)
        group = {"replay_events": float(res.events), "replay_matched": float(res.matched),
                 "replay_reward": round(res.reward, 6), "novelty_weight": method.param, "alpha": ALPHA,
                 **{f"theta_{n}": round(float(v), 6) for n, v in zip(FEATURES, policy.theta, strict=True)}}
    else:
        policy = mmr(method.param)
    test = candidates(model, test_data)
    slates = build_slates(policy, test, stats)
    group["rerank_s"] = round(time.perf_counter() - t0, 3)
    return Reranked(RerankedModel(model, test.user_ids, slates, test_data), slates, test.user_ids, group)


__all__ = ["ALPHA", "DEFAULTS", "GROUP", "N_CANDIDATES", "ROUNDS", "SLATE", "Candidates", "Event", "LinUCB",
           "Linear", "Method", "ReplayResult", "RerankedModel", "UserContext", "build_slates", "candidates",
           "fit_and_wrap", "mmr", "parse", "replay", "simulate_log"]
