"""Paired significance of each row against the best baseline, Holm-corrected across rows.

Every record keeps its per-user test metrics. For a row and the reference (the baseline with the
best mean test NDCG@10), each user's metric is averaged over the seeds both rows ran, and the
paired differences are tested with the Wilcoxon signed-rank test (two-sided). The p-values of all
compared rows are corrected together with Holm's step-down method (Holm 1979), controlling the
family-wise error rate at ``alpha``. A row is marked ``▲`` (significantly better) or ``▼``
(significantly worse) only when its corrected p-value is below ``alpha``.

Records published beside a board are kept without their per-user arrays, so a board rebuilt from
them cannot pair users again. What it can do exactly is carry each row's published *raw* test
(:class:`Published`): the Wilcoxon test of a row depends only on that row's records and the
reference's, so while both are the very same cells its raw p-value still holds, and Holm's
correction is recomputed over the board's rows as they are now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from m6rec_bench.results.record import Record

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One row against the reference row on one metric."""

    reference: str
    metric: str
    n_users: int
    delta: float  # mean over users of (row - reference)
    p_value: float
    p_holm: float = float("nan")
    mark: str = ""  # "▲", "▼" or ""


def per_user_means(records: list[Record], metric: str) -> dict[tuple[int, str], float]:
    """``(seed, user) -> value`` from the per-user metrics of a row's records."""
    out: dict[tuple[int, str], float] = {}
    for rec in records:
        pu = rec.per_user
        if metric in pu:
            for user, value in zip(pu["users"], pu[metric], strict=True):
                out[(rec.seed, user)] = float(value)
    return out


def paired(row: list[Record], ref: list[Record], metric: str, reference: str) -> Comparison | None:
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
    return Comparison(reference, metric, len(users), float(diff.mean()), p)


def holm(comparisons: dict[str, Comparison], alpha: float = ALPHA) -> dict[str, Comparison]:
    """Holm step-down correction over all comparisons; sets ``p_holm`` and ``mark``."""
    order = sorted(comparisons, key=lambda k: comparisons[k].p_value)
    m = len(order)
    out: dict[str, Comparison] = {}
    running = 0.0
    for i, key in enumerate(order):
        c = comparisons[key]
        running = max(running, min(1.0, (m - i) * c.p_value))
        mark = ("▲" if c.delta > 0 else "▼") if running < alpha else ""
        out[key] = Comparison(c.reference, c.metric, c.n_users, c.delta, c.p_value, running, mark)
    return out


@dataclass(frozen=True)
class Published:
    """The raw comparisons a written board published, and the cells each was computed from.

    ``rows`` maps a row label to the cell ids of its records and its raw comparison against
    ``reference`` (whose records were ``reference_cells``).
    """

    reference: str
    reference_cells: frozenset[str]
    rows: dict[str, tuple[frozenset[str], Comparison]]

    def excluding(self, labels: set[str]) -> Published | None:
        """Without the tests of ``labels`` (rows whose records changed); None when the reference changed."""
        if self.reference in labels:
            return None
        return Published(self.reference, self.reference_cells, {k: v for k, v in self.rows.items() if k not in labels})

    def raw(self, label: str, cells: frozenset[str], reference: str, reference_cells: frozenset[str],
            metric: str) -> Comparison | None:
        """The published raw test of ``label``, if it was run on exactly these cells of row and reference."""
        if (reference, reference_cells) != (self.reference, self.reference_cells):
            return None
        held = self.rows.get(label)
        if held is None or held[0] != cells or held[1].metric != metric:
            return None
        c = held[1]
        return Comparison(c.reference, c.metric, c.n_users, c.delta, c.p_value)


def significance(rows: dict[str, list[Record]], reference: str, metric: str = "ndcg@10",
                 published: Published | None = None) -> dict[str, Comparison]:
    """Compare every row with ``reference`` and Holm-correct across rows.

    A row whose records (or the reference's) carry no per-user metrics takes its raw test from
    ``published`` when that was computed on the same cells (see the module docstring).
    """
    ref = rows[reference]
    ref_cells = frozenset(r.cell_id for r in ref)
    raw = {}
    for label, recs in rows.items():
        if label == reference:
            continue
        c = paired([r for r in recs if r.status == "ok"], ref, metric, reference)
        if c is None and published is not None:
            c = published.raw(label, frozenset(r.cell_id for r in recs), reference, ref_cells, metric)
        if c is not None:
            raw[label] = c
    return holm(raw)
