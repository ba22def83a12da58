"""Each row against the reference row, with the training run (the seed) as the unit of replication.

**What is compared.** For a row and the reference — the baseline with the best mean *validation*
NDCG@10 (chosen on validation, so the yardstick is not picked by the numbers it is then tested on) —
each seed both rows ran gives one paired difference of test means, ``d_s = row_s − reference_s``
(seeds paired by seed value; a seed only one of the two rows ran is left out). The board shows the
mean difference ``d̄`` with a 95 % t-interval ``d̄ ± t(0.975, n−1) · sd(d) / √n``.

**Why the seed is the unit.** What a reader wants to know is whether *training the model again*
gives a better recommender, and the run-to-run variation of training (initialisation, sampling,
early stopping) is the noise that answers that. Users are not independent replications of a
training run: a per-user test over one pooled run treats a single lucky seed as hundreds of
confirmations. Dacrema et al. (RecSys 2019, "Are we really making much progress?") and Rendle et
al. (2019, "On the difficulty of evaluating baselines") show how far claimed gains shrink once
baselines are run properly and across runs; our own boards had a row marked ▲ that lost to the
reference on two of its three seeds (cold-item Text-Tower vs MultiVAE: −0.0021, +0.0602, −0.0030).

**Which test.** A paired t-test over the per-seed differences (two-sided, ``n−1`` degrees of
freedom), the test whose interval is the one shown. The alternative, an exact sign-flip
permutation test over seeds, makes no normality assumption but has only ``2^n`` sign patterns: with
3 seeds its smallest two-sided p-value is 2/8 = 0.25, so it could *never* mark a row, whatever the
effect. The t-test assumes the per-seed differences are roughly normal (each is a mean over
hundreds of users, which helps); with 3 seeds it is still a weak test — a row needs a consistent
difference across seeds to be marked, which is the point. The p-values of all compared rows are
corrected together with Holm's step-down method (Holm 1979), controlling the family-wise error
rate at ``alpha``; ``▲``/``▼`` only where the corrected p-value is below ``alpha``. A row with a
single paired seed gets its difference but no interval and no test.

**Secondary, never the basis of a mark.** Where records carry per-user metrics, the Wilcoxon
signed-rank test over users (each user's metric averaged over the paired seeds) is kept as
``users``: uncorrected, for readers who want the per-user picture. Published records keep their
per-user metrics beside them (``records/<cell_id>.per_user.npz``, see
:mod:`m6rec_bench.leaderboard.board`), so a board rebuilt from its published records alone
recomputes every number here. For older boards published without them, a row's per-user test is
carried from the board's JSON while the row and the reference are the very same cells
(:class:`Published`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from m6rec_bench.results.record import Record

ALPHA = 0.05
#: Coverage of the interval shown for the mean per-seed difference.
CONFIDENCE = 0.95
METHOD = "paired t-test over seeds"


@dataclass(frozen=True)
class UserTest:
    """Secondary: Wilcoxon signed-rank over users (seed-averaged), uncorrected; never decides a mark."""

    n_users: int
    delta: float  # mean over users of (row - reference)
    p_value: float


@dataclass(frozen=True)
class Comparison:
    """One row against the reference on one metric, seed by seed (see the module docstring)."""

    reference: str
    metric: str
    seeds: tuple[int, ...]  # the seeds both rows ran: the pairs
    delta: float  # mean over those seeds of (row − reference) test means
    ci_low: float | None = None  # 95 % t-interval of ``delta``; None with one seed
    ci_high: float | None = None
    p_value: float | None = None  # paired t-test over seeds; None with one seed
    p_holm: float | None = None  # Holm-corrected across the board's tested rows
    mark: str = ""  # "▲", "▼" or ""
    users: UserTest | None = None
    method: str = METHOD

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


def seed_means(records: list[Record], metric: str) -> dict[int, float]:
    """``seed -> test metric`` of a row's finished records."""
    return {r.seed: float(r.test[metric]) for r in records if r.status == "ok" and metric in r.test}


def seed_test(row: list[Record], ref: list[Record], metric: str, reference: str) -> Comparison | None:
    """Paired t-test and t-interval over the per-seed differences; None without a common seed."""
    a, b = seed_means(row, metric), seed_means(ref, metric)
    seeds = tuple(sorted(a.keys() & b.keys()))
    if not seeds:
        return None
    d = np.array([a[s] - b[s] for s in seeds])
    delta = float(d.mean())
    n = len(seeds)
    if n < 2:
        return Comparison(reference, metric, seeds, delta)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    from scipy.stats import t as student_t  # lazily: scipy.stats costs ~1 s at CLI start-up

    half = float(student_t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * se
    if se == 0.0:  # every seed the same difference: none (p = 1) or a certain one (p = 0)
        p = 1.0 if delta == 0.0 else 0.0
    else:
        p = float(2 * student_t.sf(abs(delta) / se, n - 1))
    return Comparison(reference, metric, seeds, delta, delta - half, delta + half, p)


def per_user_means(records: list[Record], metric: str) -> dict[tuple[int, str], float]:
    """``(seed, user) -> value`` from the per-user metrics of a row's records."""
    out: dict[tuple[int, str], float] = {}
    for rec in records:
        pu = rec.per_user
        if metric in pu:
            for user, value in zip(pu["users"], pu[metric], strict=True):
                out[(rec.seed, user)] = float(value)
    return out


def user_test(row: list[Record], ref: list[Record], metric: str) -> UserTest | None:
    """Wilcoxon signed-rank on users' seed-averaged metric; None without per-user data to pair."""
    a, b = per_user_means(row, metric), per_user_means(ref, metric)
    common_seeds = {s for s, _ in a} & {s for s, _ in b}
    by_user_a: dict[str, list[float]] = defaultdict(list)
    by_user_b: dict[str, list[float]] = defaultdict(list)
    for (seed, user), value in a.items():
        if seed in common_seeds and (seed, user) in b:
            by_user_a[user].append(value)
            by_user_b[user].append(b[(seed, user)])
    users = sorted(by_user_a)
    if len(users) < 10:
        return None
    x = np.array([np.mean(by_user_a[u]) for u in users])
    y = np.array([np.mean(by_user_b[u]) for u in users])
    diff = x - y
    # imported here: scipy.stats costs ~1 s, which every m6bench command (--help too) paid at import
    from scipy.stats import wilcoxon

    p = 1.0 if np.allclose(diff, 0) else float(wilcoxon(x, y, zero_method="wilcox", alternative="two-sided").pvalue)
    return UserTest(len(users), float(diff.mean()), p)


def holm(comparisons: dict[str, Comparison], alpha: float = ALPHA, unmarked: Collection[str] = ()) -> dict[str, Comparison]:
    """Holm step-down correction over the comparisons that have a p-value; sets ``p_holm`` and ``mark``.

    ``unmarked``: rows that stay in the family but get no ``▲``/``▼`` (rows still improving when an
    ``--epochs`` cap stopped them, every row of a budget run; see ``aggregate``).
    """
    tested = sorted((k for k, c in comparisons.items() if c.p_value is not None), key=lambda k: comparisons[k].p_value)
    m = len(tested)
    out = dict(comparisons)
    running = 0.0
    for i, key in enumerate(tested):
        c = comparisons[key]
        running = max(running, min(1.0, (m - i) * c.p_value))
        mark = ("▲" if c.delta > 0 else "▼") if key not in unmarked and running < alpha else ""
        out[key] = Comparison(c.reference, c.metric, c.seeds, c.delta, c.ci_low, c.ci_high, c.p_value, running, mark,
                              c.users, c.method)
    return out


@dataclass(frozen=True)
class Published:
    """The per-user tests a written board published, and the cells each was computed from.

    ``rows`` maps a row label to the cell ids of its records and its per-user test against
    ``reference`` (whose records were ``reference_cells``). Only the secondary per-user test is
    carried: the seed-level test needs nothing but the records' test means.
    """

    reference: str
    reference_cells: frozenset[str]
    rows: dict[str, tuple[frozenset[str], UserTest]]
    metric: str = "ndcg@10"

    def excluding(self, labels: set[str]) -> Published | None:
        """Without the tests of ``labels`` (rows whose records changed); None when the reference changed."""
        if self.reference in labels:
            return None
        return Published(self.reference, self.reference_cells, {k: v for k, v in self.rows.items() if k not in labels},
                         self.metric)

    def users(self, label: str, cells: frozenset[str], reference: str, reference_cells: frozenset[str],
              metric: str) -> UserTest | None:
        """The published per-user test of ``label``, if it was run on exactly these cells of row and reference."""
        if (reference, reference_cells, metric) != (self.reference, self.reference_cells, self.metric):
            return None
        held = self.rows.get(label)
        return held[1] if held is not None and held[0] == cells else None


def significance(rows: dict[str, list[Record]], reference: str, metric: str = "ndcg@10",
                 published: Published | None = None, exclude: Collection[str] = (),
                 unmarked: Collection[str] = ()) -> dict[str, Comparison]:
    """Compare every row (but ``exclude``) with ``reference`` seed by seed and Holm-correct across rows.

    ``exclude``: rows kept out of the comparison and the Holm family (implementation variants).
    ``unmarked``: rows tested and corrected but never marked (capped rows; all rows of a budget run). A row whose records (or the reference's) carry
    no per-user metrics takes its secondary per-user test from ``published`` when that was
    computed on the same cells.
    """
    ref = [r for r in rows[reference] if r.status == "ok"]
    ref_cells = frozenset(r.cell_id for r in rows[reference])
    raw = {}
    for label, recs in rows.items():
        if label == reference or label in exclude:
            continue
        ok = [r for r in recs if r.status == "ok"]
        c = seed_test(ok, ref, metric, reference)
        if c is None:
            continue
        users = user_test(ok, ref, metric)
        if users is None and published is not None:
            users = published.users(label, frozenset(r.cell_id for r in recs), reference, ref_cells, metric)
        raw[label] = Comparison(c.reference, c.metric, c.seeds, c.delta, c.ci_low, c.ci_high, c.p_value,
                                users=users)
    return holm(raw, unmarked=unmarked)
