"""Leaderboard renderers — Markdown, CSV, JSON and the HTML page — one registry, one model.

Every writer renders the typed :class:`~m6rec_bench.leaderboard.aggregate.Leaderboard` (the HTML
site, the README block and ``leaderboard show`` read ``leaderboard.json`` back into it:
``Leaderboard.from_dict``). Output: ``<out>/<dataset>/<protocol>/leaderboard.{md,csv,json}`` and
``index.html``. Writing the board's files into its folder (merged with what it already holds,
atomically, under the folder's lock) is :mod:`m6rec_bench.leaderboard.board`'s job; the HTML page,
which needs matplotlib, is written by ``m6bench publish`` (:mod:`m6rec_bench.leaderboard.site`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m6rec_bench.leaderboard.aggregate import COLUMNS, GROUP_COLUMNS, Implementation, Leaderboard, Row
from m6rec_bench.leaderboard.columns import Column, ColumnSet, present
from m6rec_bench.leaderboard.stats import Comparison
from m6rec_bench.leaderboard.text import (IMPLEMENTATIONS_NOTE, PAGE, comparison_cell, comparison_text, method_note,
                                          metric_label, title)
from m6rec_bench.lookup import Registry
from m6rec_bench.names import contained


def _cell(row: Row, metric: str, group: str | None = None) -> str:
    stats = row.groups.get(group, {}) if group else row.test
    stat = stats.get(metric)
    return stat.fmt() if stat else "—"


def _cost(row: Row, key: str, digits: int = 1) -> str:
    stat = row.cost.get(key)
    return f"{stat.mean:.{digits}f}" if stat else "—"


def tuning_note(lb: Leaderboard) -> str:
    """``"8 Optuna trials per model"`` (equal budget) or ``"untuned"`` from the records' settings."""
    budgets = [b for b in lb.settings.get("tune_budget", []) if b != "untuned"]
    if not budgets:
        return "untuned (each model's defaults)"
    note = f"{' / '.join(budgets)} Optuna TPE trials per model"
    if lb.settings.get("tune_epochs"):
        note += f" of ≤ {' / '.join(lb.settings['tune_epochs'])} epochs each"
    note += ", selected on validation NDCG@10"
    return note + (" (some rows untuned)" if "untuned" in lb.settings.get("tune_budget", []) else "")


def significance_cell(row: Row) -> str:
    """The row against the reference (mean per-seed difference, 95 % CI, mark, Holm p); ``reference`` for that row."""
    if row.is_reference:
        return "reference"
    c = row.significance
    if c is None:
        return "—"
    return comparison_cell(c) + (" capped" if row.capped else "")


def _implementation_cells(impl: Implementation, row: Row) -> list[str]:
    c: Comparison | None = impl.comparison
    delta = comparison_text(c.delta, c.ci_low, c.ci_high, "", c.p_value, c.n_seeds) if c else "—"

    def sec(v: float | None) -> str:
        return f"{v:.2f}" if v is not None else "—"

    return [impl.implements, row.label, str(len(row.seeds)), _cell(row, "ndcg@10"), delta, sec(impl.s_per_epoch),
            sec(impl.original_s_per_epoch), f"{impl.speedup:.2f}×" if impl.speedup is not None else "—",
            row.status + (f": {row.reason}" if row.reason else "")]


def superseded_note(lb: Leaderboard) -> str:
    """The header line naming rows whose earlier records a newer configuration replaced."""
    items = [f"**{s['label']}** (seeds {', '.join(map(str, s['seeds']))}; cells {', '.join(f'`{c}`' for c in s['cell_ids'])}; "
             f"replaced {s['replaced_at']})" for s in lb.superseded]
    return ("*Replaced rows*: a run of another configuration (settings, epochs, overrides or code version) "
            "replaces a row's earlier records; replaced here: " + "; ".join(items) + ".")


#: What the cost columns of the Markdown board hold (the CSV and JSON have each part).
COST_NOTE = ("*Train s*: model set-up (pretraining, text encoding; recorded since record schema 3) + training, "
             "mean over seeds; *Params*: parameters, trainable and frozen (the CSV adds trainable parameters and "
             "buffer values: precomputed KG / text vectors).")


def _span(values: list[Any]) -> str:
    return " / ".join(map(str, values)) if values else "?"


def timing_note(lb: Leaderboard) -> str | None:
    """The line saying under which conditions the rows were timed, and whether their times compare.

    None for a board none of whose records says (written before conditions were recorded).
    """
    t = lb.settings.get("timing")
    if not t:
        return None
    load = t.get("load") or []
    load_text = (f"{load[0]:g}" if load[0] == load[1] else f"{load[0]:g}–{load[1]:g}") if load else "?"
    text = (f"machine load {load_text}; torch threads per cell: {_span(t.get('torch_threads', []))}; "
            f"OMP_WAIT_POLICY: {_span(t.get('omp_wait_policy', []))}; cells at once: {_span(t.get('parallel_cells', []))}")
    if t.get("unrecorded"):
        text += f"; {t['unrecorded']} cell(s) recorded no conditions"
    differs = [d for d in t.get("differs", []) if d != "unrecorded"]
    if not differs and not t.get("unrecorded"):
        return f"*Timed at*: {text}."
    what = ", ".join({"load": "load more than 2× apart", "torch_threads": "thread counts",
                      "omp_wait_policy": "wait policies", "parallel_cells": "parallel cells"}[d] for d in differs)
    return (f"*Timed under different conditions* ({what or 'some unknown'}): {text} — compare *Train s* "
            "between rows with care (leaderboard.json has each record's conditions).")


def _column_sets(lb: Leaderboard) -> list[ColumnSet]:
    """The column sets (compression, beyond accuracy, rating, …) some row of this board has."""
    return present(row.extras for row in lb.rows)


def _extra_cell(row: Row, cs: ColumnSet, col: Column) -> str:
    stat = row.extras.get(cs.group, {}).get(col.key)
    return "—" if stat is None else col.fmt(stat.mean)


def to_markdown(lb: Leaderboard) -> str:
    groups = lb.groups
    head = ["#", "Model", "Kind", "Seeds", *[f"Test {metric_label(m)}" for m in COLUMNS]]
    head += [f"{g} {metric_label(m)}" for g in groups for m in GROUP_COLUMNS]
    sets = _column_sets(lb)
    head += [col.heading for cs in sets for col in cs.columns]
    head += ["vs best baseline", "Best epoch", "Train s", "Params", "Status"]
    lines = [
        f"# Leaderboard — {lb.dataset} / {title(lb.protocol, lb.variant, partial=lb.partial, budget=lb.budget)}",
        "",
        f"Sorted by test NDCG@10; mean ± sample std over seeds. Dataset checksum `{lb.dataset_checksum}`; "
        f"epochs setting: {', '.join(lb.settings.get('epochs', []))}; "
        f"tuning budget: {tuning_note(lb)}; generated {lb.created_at}. "
        "Reproduce any row with the command in `leaderboard.json` (`rows[].reproduce.command`).",
        "",
        method_note(lb.reference, lb.budget, any(r.capped for r in lb.rows)),
        "",
    ]
    if lb.superseded:
        lines += [superseded_note(lb), ""]
    lines += [COST_NOTE, ""]
    timing = timing_note(lb)
    if timing:
        lines += [timing, ""]
    for cs in sets:
        lines += [cs.note, ""]
    lines += [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for i, row in enumerate(lb.ranked_rows, 1):
        cells = [str(i) if row.status.startswith("ok") else "", row.label, row.kind, str(len(row.seeds))]
        cells += [_cell(row, m) for m in COLUMNS]
        cells += [_cell(row, m, g) for g in groups for m in GROUP_COLUMNS]
        cells += [_extra_cell(row, cs, col) for cs in sets for col in cs.columns]
        params = row.cost.get("n_params")
        cells += [significance_cell(row), _cost(row, "best_epoch", 0), _cost(row, "cost_time_s"),
                  f"{params.mean:,.0f}" if params else "—",
                  row.status + (f": {row.reason}" if row.reason else "")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if lb.implementations:
        by_label = {row.label: row for row in lb.rows}
        head = ["Implements", "Model", "Seeds", "Test NDCG@10", "Δ vs implemented", "Train s/epoch",
                "Implemented s/epoch", "Speed ratio", "Status"]
        lines += ["", "## Implementations", "", IMPLEMENTATIONS_NOTE, "",
                  "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for impl in lb.implementations:
            cells = _implementation_cells(impl, by_label[impl.label])
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(lb: Leaderboard) -> str:
    groups = lb.groups
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["rank", "model", "label", "kind", "family", "status", "reason", "n_seeds", "seeds"]
    for m in COLUMNS:
        header += [f"test_{m}_mean", f"test_{m}_std"]
    for g in groups:
        for m in GROUP_COLUMNS:
            header += [f"{g}_{m}_mean", f"{g}_{m}_std"]
    sets = _column_sets(lb)
    header += [cs.csv_key(col) for cs in sets for col in cs.columns]
    header += ["implements", "delta_vs_reference", "delta_ci_low", "delta_ci_high", "n_paired_seeds", "p_value", "p_holm",
               "significant", "users_p_value", "valid_ndcg@10_mean", "best_epoch_mean", "train_time_s_mean", "eval_time_s_mean",
               "peak_mem_mb_mean", "n_params", "setup_time_s_mean", "cost_time_s_mean", "n_trainable_params",
               "n_buffers", "command"]
    writer.writerow(header)
    ranks = {row.label: i for i, row in enumerate(lb.ranked_rows, 1)}
    impls = {impl.label: impl for impl in lb.implementations}
    for row in lb.rows:
        out: list[object] = [ranks.get(row.label, ""), row.model, row.label, row.kind, row.family, row.status, row.reason or "",
                             len(row.seeds), " ".join(map(str, row.seeds))]
        for m in COLUMNS:
            s = row.test.get(m)
            out += [f"{s.mean:.6f}", f"{s.std:.6f}"] if s else ["", ""]
        for g in groups:
            for m in GROUP_COLUMNS:
                s = row.groups.get(g, {}).get(m)
                out += [f"{s.mean:.6f}", f"{s.std:.6f}"] if s else ["", ""]
        out += [f"{row.extras[cs.group][col.key].mean:.6g}" if col.key in row.extras.get(cs.group, {}) else ""
                for cs in sets for col in cs.columns]
        out.append(row.implements or "")
        c = row.significance if row.ranked else (impls[row.label].comparison if row.label in impls else None)

        def num(v: float | None, fmt: str = ".6g") -> str:
            return "" if v is None else format(v, fmt)

        out += ["reference", "", "", "", "", "", "", ""] if row.is_reference else (
            [f"{c.delta:.6f}", num(c.ci_low, ".6f"), num(c.ci_high, ".6f"), c.n_seeds, num(c.p_value), num(c.p_holm),
             c.mark, num(c.users.p_value) if c.users else ""] if c else [""] * 8)
        v = row.valid.get("ndcg@10")
        out += [f"{v.mean:.6f}" if v else ""]
        for key, digits in (("best_epoch", 1), ("train_time_s", 3), ("eval_time_s", 3), ("peak_mem_mb", 1), ("n_params", 0),
                            ("setup_time_s", 3), ("cost_time_s", 3), ("n_trainable_params", 0), ("n_buffers", 0)):
            s = row.cost.get(key)
            out.append(f"{s.mean:.{digits}f}" if s else "")
        out.append(row.reproduce.get("command", ""))
        writer.writerow(out)
    return buf.getvalue()


def to_json(lb: Leaderboard) -> str:
    return json.dumps(lb.to_dict(), indent=2, sort_keys=False, default=str) + "\n"


def to_html(lb: Leaderboard) -> str:
    """The board's page of the static site (matplotlib plots inline: imported only here)."""
    from m6rec_bench.leaderboard.site import board_page

    return board_page(lb)


@dataclass(frozen=True)
class Writer:
    """One output format of a board: the file it goes to in the board's folder and its renderer."""

    filename: str
    render: Callable[[Leaderboard], str]
    #: written with the board (``m6bench run``, ``leaderboard build``, ``prune``); the HTML page is
    #: written by ``m6bench publish``, which also writes the site's index
    with_board: bool = True


#: The writer registry: format → writer. One model (:class:`Leaderboard`) feeds every format.
WRITERS: Registry[Writer] = Registry("board format", case_sensitive=True)
WRITERS.register("md", Writer("leaderboard.md", to_markdown))
WRITERS.register("csv", Writer("leaderboard.csv", to_csv))
WRITERS.register("json", Writer("leaderboard.json", to_json))
WRITERS.register("html", Writer(PAGE, to_html, with_board=False))


def board_dir(out: Path, dataset: str, slug: str) -> Path:
    """``<out>/<dataset>/<slug>``; the slug is the protocol, plus ``-tuned`` for a tuned board (never outside ``out``)."""
    return contained(out, Path(out) / dataset / slug, what=f"board {dataset}/{slug}")


