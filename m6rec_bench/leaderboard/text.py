"""The words a board says, shared by every format (Markdown, CSV, JSON, the HTML page, the README block):
metric labels, the comparison cell, the method note, titles; and reading a published board back.

Below :mod:`m6rec_bench.leaderboard.writers` (the writer registry) and
:mod:`m6rec_bench.leaderboard.site` (the HTML page), which both import it.
"""

from __future__ import annotations

from pathlib import Path

from m6rec_bench.errors import UsageError
from m6rec_bench.leaderboard.aggregate import LEGACY_METHOD, Leaderboard, Row, Stat
from m6rec_bench.leaderboard.stats import ALPHA, Comparison
from m6rec_bench.untrusted import loads_json

#: The file name of a board's HTML page (the site's ``index.html`` of each board folder).
PAGE = "index.html"

_LABELS = {"ndcg": "NDCG", "recall": "Recall", "mrr": "MRR", "hit": "Hit", "precision": "Precision"}


def metric_label(name: str) -> str:
    """``ndcg@10`` → ``NDCG@10``."""
    base, _, k = name.partition("@")
    return f"{_LABELS.get(base, base)}@{k}" if k else _LABELS.get(base, base)


def comparison_text(delta: float, ci_low: float | None, ci_high: float | None, mark: str, p: float | None,
                    n_seeds: int) -> str:
    """``+0.0123 [+0.0040, +0.0206] ▲ (p=0.003)``; with one paired seed ``+0.0123 (1 seed, no test)``."""
    if ci_low is None or ci_high is None or p is None:
        return f"{delta:+.4f} ({n_seeds} seed{'s' if n_seeds != 1 else ''}, no test)"
    return f"{delta:+.4f} [{ci_low:+.4f}, {ci_high:+.4f}]{(' ' + mark) if mark else ''} (p={p:.3g})"


def comparison_cell(c: Comparison, p_digits: int = 3) -> str:
    """:func:`comparison_text` of a row's test against the reference; a board of the per-user method keeps its words.

    ``p_digits``: significant digits of an older board's Holm p (the README block printed 2).
    """
    if c.method == LEGACY_METHOD:  # written before the seed-level test: delta and Holm p of the per-user test
        return f"{c.delta:+.4f}{' ' + c.mark if c.mark else ''} (p={c.p_holm:.{p_digits}g})"
    return comparison_text(c.delta, c.ci_low, c.ci_high, c.mark, c.p_holm, c.n_seeds)


def train_seconds(row: Row) -> Stat | None:
    """A row's cost in seconds: set-up + training (``cost_time_s``), or training alone on older boards."""
    return row.cost.get("cost_time_s") or row.cost.get("train_time_s")


def method_note(reference: str | None, budget: bool, capped: bool = False) -> str:
    """What the *vs best baseline* column means (Markdown; the site renders the same words)."""
    note = (f"*vs best baseline*: test NDCG@10 minus that of **{reference or '—'}** (the baseline with the best mean "
            "*validation* NDCG@10), averaged over the seeds both rows ran, [95 % t-interval]; p: paired t-test over "
            "those per-seed differences — the training run is the unit, not the user — Holm-corrected across the "
            f"ranked rows; ▲/▼ = significantly better/worse at α = {ALPHA}. With 3 seeds only a difference that holds "
            "on every seed can be marked (an exact permutation test over 3 seeds could never reach p < 0.05). "
            "A per-user Wilcoxon test is kept in `leaderboard.json` (`rows[].significance.users`): secondary, "
            "uncorrected, never the basis of a mark.")
    if budget:
        note += (" **Budget run, not converged**: most rows (or the reference) ran to their `--epochs` cap with their "
                 "best validation epoch the last one run, so their differences say little about the models: no ▲/▼.")
    elif capped:  # some row of the board is
        note += (" *capped*: a row still improving when its `--epochs` cap stopped it (best validation epoch the last "
                 "one run, on most seeds): tested, never marked.")
    return note


IMPLEMENTATIONS_NOTE = (
    "*Implementations*: rows of a plugin that re-implements a RecBole model (`Plugin.implements`), compared with "
    "that model's row instead of ranked: Δ = its test NDCG@10 minus the original's, averaged over the seeds both "
    "ran [95 % t-interval] (p: paired t-test over seeds, uncorrected, outside the Holm family); *speed ratio* = the "
    "original's training seconds per epoch ÷ this row's (> 1: this implementation trains an epoch faster).")


def load_board(path: Path) -> Leaderboard:
    """The typed board of a ``leaderboard.json``; a file that is not one raises UsageError naming it."""
    try:
        return Leaderboard.from_dict(loads_json(Path(path).read_bytes()))  # ValueError: not JSON, nested too deep
    except (OSError, ValueError) as exc:
        folder = Path(path).parent
        raise UsageError(f"{path} is not a readable leaderboard ({exc}) — rebuild it from its records: m6bench "
                         f"leaderboard build --runs-dir {folder / 'records'} --out {folder.parent.parent}") from None


#: How a board written mid-suite is titled (m6bench run rewrites it as cells finish).
PARTIAL = "partial: suite still running or interrupted"


def title(protocol: str, variant: str = "", partial: bool = False, budget: bool = False) -> str:
    """How a board is named to a reader: ``default``, ``default (tuned)``, ``default (partial: …)``,
    ``sequential — budget run, not converged``."""
    notes = [n for n in (variant, PARTIAL if partial else "") if n]
    name = f"{protocol} ({'; '.join(notes)})" if notes else protocol
    return f"{name} — budget run, not converged" if budget else name
