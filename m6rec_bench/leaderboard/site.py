"""The static leaderboard site: ``index.html`` plus one page per dataset and protocol.

Everything is inline — tables sortable with a few lines of JavaScript, plots as matplotlib SVG — so
the pages open from disk with no network. A page renders the typed board
(:class:`~m6rec_bench.leaderboard.aggregate.Leaderboard`) like every other writer: it is the
``html`` entry of the writer registry (:data:`~m6rec_bench.leaderboard.writers.WRITERS`), which imports this module only when it renders.
``m6bench publish`` reads each ``leaderboard.json`` back into that model (a writer never re-runs a
model); each row links the records that reproduce it.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

from m6rec_bench.io import atomic_write_text
from m6rec_bench.leaderboard.aggregate import LEGACY_METHOD, Leaderboard, Row, Stat
from m6rec_bench.leaderboard.columns import present
from m6rec_bench.leaderboard.text import (PAGE, IMPLEMENTATIONS_NOTE, comparison_cell, comparison_text, load_board,
                                          method_note, metric_label, title, train_seconds)

PLOT_METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
table{border-collapse:collapse;font-size:.85rem;margin:1rem 0}th,td{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:right}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}th:hover{background:#e8e8ef}td:nth-child(2),th:nth-child(2){text-align:left}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}
.skipped,.failed{color:#888}.up{color:#1a7f37;font-weight:600}.down{color:#cf222e;font-weight:600}code{font-size:.8rem}
"""

_JS = """
function sortTable(table, col, dir){
  const body = table.tBodies[0], rows = Array.from(body.rows);
  const key = r => { const c = r.cells[col]; const v = c.dataset.sort ?? c.textContent.trim();
                     const n = parseFloat(v); return isNaN(n) ? v.toLowerCase() : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
  rows.forEach(r => body.appendChild(r));
  table.querySelectorAll('th').forEach((th, i) => th.className = i === col ? (dir > 0 ? 'asc' : 'desc') : '');
}
document.querySelectorAll('table.sortable').forEach(table => {
  table.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () =>
    sortTable(table, i, th.className === 'desc' ? 1 : -1)));
  const m = location.hash.match(/sort=(\\d+)(-asc)?/);
  if (m) sortTable(table, parseInt(m[1]), m[2] ? 1 : -1);
});
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}<script>{_JS}</script></body></html>\n")


def _svg(fig: Any, salt: str) -> str:
    """The figure as inline SVG; ``salt`` fixes its element ids, so the same board renders the same bytes."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _ok_rows(board: Leaderboard) -> list[Row]:
    return [r for r in board.rows if r.status.startswith("ok") and r.test]


def _salt(board: Leaderboard, what: str) -> str:
    return f"{board.dataset}/{board.protocol}/{board.variant}/{what}"


def bar_chart(board: Leaderboard, metric: str) -> str:
    """Mean test metric per row with ± std error bars, as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in _ok_rows(board) if metric in r.test]
    fig, ax = plt.subplots(figsize=(5.5, 0.32 * len(rows) + 1.2))
    labels = [r.label for r in rows][::-1]
    means = [r.test[metric].mean for r in rows][::-1]
    stds = [r.test[metric].std for r in rows][::-1]
    colors = ["#4c72b0" if r.kind == "baseline" else "#dd8452" for r in rows][::-1]
    ax.barh(labels, means, xerr=stds, color=colors, capsize=3)
    ax.set_xlabel(f"test {metric_label(metric)} (mean ± std over seeds)")
    ax.set_title(metric_label(metric))
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, _salt(board, metric))


def quality_vs_time(board: Leaderboard) -> str:
    """Test NDCG@10 against mean training wall time (log scale), as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r in _ok_rows(board):
        t = train_seconds(r)
        if t is None or "ndcg@10" not in r.test:
            continue
        x, y = max(t.mean, 0.05), r.test["ndcg@10"].mean
        ax.errorbar(x, y, yerr=r.test["ndcg@10"].std, fmt="o",
                    color="#4c72b0" if r.kind == "baseline" else "#dd8452", capsize=3)
        ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("train time per run, seconds (log)")
    ax.set_ylabel("test NDCG@10")
    ax.set_title("quality vs training time")
    ax.grid(alpha=0.3)
    return _svg(fig, _salt(board, "time"))


def _tuning(r: Row) -> dict[str, Any]:
    return r.reproduce.get("tuning", {}) or {}


def _tuned(board: Leaderboard) -> bool:
    """A board some of whose rows carry their study's summary (records of ``--tune-budget`` runs)."""
    return any("trials" in _tuning(r) for r in board.rows)


def best_so_far(board: Leaderboard) -> str:
    """Best validation score so far against trials, one line per tuned row, as inline SVG.

    Trial 0 is the row's defaults, so each line starts at the untuned score and can only rise:
    how far it rises, and how soon it flattens, says how much the budget bought each model.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    metric = "valid"
    for r in board.rows:
        t = _tuning(r)
        history = t.get("history") or []
        best, xs, ys = None, [], []
        for i, v in enumerate(history, 1):
            if v is not None:
                best = v if best is None else max(best, v)
            if best is not None:
                xs.append(i)
                ys.append(best)
        if xs:
            metric = f"valid {t.get('metric', 'NDCG@10')}"
            ax.step(xs, ys, where="post", label=r.label, marker="o", markersize=3)
    ax.set_xlabel("trials (trial 1 = the defaults)")
    ax.set_ylabel(f"best {metric} so far")
    ax.set_title("tuning: best-so-far vs trials")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, loc="lower right")
    return _svg(fig, _salt(board, "tuning"))


def _fmt(stat: Stat | None) -> tuple[str, str]:
    if stat is None:
        return "—", ""
    return stat.fmt(), f"{stat.mean:.6f}"


def table(board: Leaderboard) -> str:
    """The leaderboard as a sortable HTML table; each row links its records."""
    groups = sorted({g for r in board.rows for g in r.groups})
    # column sets (compression, beyond accuracy, rating, adaptation, rerank) some row has
    sets = present(r.extras for r in board.rows)
    tuned = _tuned(board)  # each row's study: trials, compute, the chosen trial's validation score
    cols = ["#", "Model", "Kind", "Seeds", *[f"Test {metric_label(m)}" for m in PLOT_METRICS],
            *[f"{g} NDCG@10" for g in groups], *[c.heading for cs in sets for c in cs.columns],
            "vs best baseline", "Train s", "Params",
            *(["Trials", "Tuning epochs", "Tuning s", "Best valid"] if tuned else []), "Status", "Reproduce"]
    out = ["<table class='sortable' id='leaderboard'><thead><tr>",
           *[f"<th>{html.escape(c)}</th>" for c in cols], "</tr></thead><tbody>"]
    for i, r in enumerate(board.ranked_rows, 1):
        cls = "" if r.status.startswith("ok") else r.status.split()[0]
        cells = [(str(i), str(i)), (r.label, r.label), (r.kind, r.kind), (str(len(r.seeds)), str(len(r.seeds)))]
        cells += [_fmt(r.test.get(m)) for m in PLOT_METRICS]
        cells += [_fmt(r.groups.get(g, {}).get("ndcg@10")) for g in groups]
        for cs in sets:
            for col in cs.columns:
                stat = r.extras.get(cs.group, {}).get(col.key)
                cells.append((col.fmt(stat.mean), f"{stat.mean:.6g}") if stat else ("—", ""))
        sig = r.significance
        if r.is_reference:
            cells.append(("reference", "0"))
        elif sig:
            cells.append((comparison_cell(sig) + (" capped" if r.capped else ""), f"{sig.delta:.6f}"))
        else:
            cells.append(("—", ""))
        t = train_seconds(r)
        p = r.cost.get("n_params")
        cells += [(f"{t.mean:.1f}" if t else "—", f"{t.mean:.3f}" if t else ""),
                  (f"{p.mean:,.0f}" if p else "—", f"{p.mean:.0f}" if p else "")]
        if tuned:
            tu = _tuning(r)
            trials, epochs, secs, best = (tu.get(k) for k in ("trials", "trial_epochs", "trial_seconds", "best_valid"))
            cells += [(f"{trials}/{tu.get('budget', '?')}" if trials is not None else "—", str(trials or "")),
                      (str(epochs) if epochs is not None else "—", str(epochs or "")),
                      (f"{secs:.0f}" if secs is not None else "—", f"{secs:.3f}" if secs is not None else ""),
                      (f"{best:.4f}" if best is not None else "—", f"{best:.6f}" if best is not None else "")]
        cells += [(r.status + (f": {r.reason}" if r.reason else ""), r.status)]
        links = " ".join(f"<a href='records/{html.escape(cid)}.json'>seed {s}</a>"
                         for cid, s in zip(r.reproduce["cell_ids"], sorted(r.seeds) or [None] * 99, strict=False))
        row_html = "".join(
            f"<td data-sort='{html.escape(sort)}'"
            + (" class='up'" if text.find("▲") >= 0 else " class='down'" if text.find("▼") >= 0 else "")
            + f">{html.escape(text)}</td>" for text, sort in cells)
        out.append(f"<tr class='{cls}'>{row_html}<td>{links}<br><code>{html.escape(r.reproduce['command'])}</code></td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _inline(md: str) -> str:
    """The few Markdown marks of the shared notes (``**b**``, ``*em*``, backticks) as escaped HTML."""
    text = html.escape(md, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<em>\1</em>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def implementations_table(board: Leaderboard) -> str:
    """Plugin rows that re-implement a RecBole model, against that model's row (not ranked)."""
    impls = board.implementations
    if not impls:
        return ""
    rows = {r.label: r for r in board.rows}
    cols = ["Implements", "Model", "Seeds", "Test NDCG@10", "Δ vs implemented", "Train s/epoch", "Implemented s/epoch",
            "Speed ratio"]
    out = [f"<h2>Implementations</h2><p>{_inline(IMPLEMENTATIONS_NOTE)}</p><table class='sortable' id='implementations'>"
           "<thead><tr>", *[f"<th>{html.escape(c)}</th>" for c in cols], "</tr></thead><tbody>"]
    for impl in impls:
        r = rows.get(impl.label)
        c = impl.comparison
        delta = comparison_text(c.delta, c.ci_low, c.ci_high, "", c.p_value, c.n_seeds) if c else "—"
        cells = [impl.implements, impl.label, str(len(r.seeds) if r else 0), _fmt(r.test.get("ndcg@10") if r else None)[0],
                 delta, *[f"{v:.2f}" if v is not None else "—" for v in (impl.s_per_epoch, impl.original_s_per_epoch)],
                 f"{impl.speedup:.2f}×" if impl.speedup is not None else "—"]
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def board_page(board: Leaderboard) -> str:
    """A board's HTML page (``index.html`` in its folder): its table, implementations, plots and tuning."""
    plots = "".join(f"<figure>{bar_chart(board, m)}</figure>" for m in PLOT_METRICS)
    capped = board.settings.get("tune_epochs")  # --tune-epochs: trials shorter than the final runs
    trial_epochs = f" of ≤ {html.escape(', '.join(capped))} epochs each" if capped else ""
    body = (
        f"<p><a href='../../index.html'>← all leaderboards</a></p>"
        f"<h1>{html.escape(board.dataset)} / {html.escape(_name(board))}</h1>"
        f"<p>Mean ± sample std over seeds; sorted by test NDCG@10 (click a header to sort). "
        f"Dataset checksum <code>{html.escape(board.dataset_checksum)}</code>; epochs setting "
        f"{html.escape(', '.join(board.settings.get('epochs', [])))}; tuning budget: "
        f"{html.escape(', '.join(board.settings.get('tune_budget', ['untuned'])))} trials per model{trial_epochs}; "
        f"generated {html.escape(board.created_at)}. "
        f"Blue: RecBole baselines, orange: plugins.</p>"
        f"<p id='method'>{_method(board)}</p>"
        f"{_replaced(board)}{table(board)}{implementations_table(board)}<h2>Metrics</h2><div class='plots' id='bars'>{plots}</div>"
        f"<h2>Quality vs training time</h2><div class='plots' id='scatter'><figure>{quality_vs_time(board)}</figure></div>"
    )
    if any(_tuning(r).get("history") for r in board.rows):
        body += (f"<h2>Tuning</h2><p>Best validation score so far against trials; trial 1 is each model's defaults, "
                 f"so the chosen configuration is never worse on validation.</p>"
                 f"<div class='plots' id='tuning'><figure>{best_so_far(board)}</figure></div>")
    return _page(f"{board.dataset} / {_name(board)} — m6rec-bench", body)


def _method(board: Leaderboard) -> str:
    """How the board compares rows (the Markdown header's words); a board of the older per-user method says so."""
    sigs = [r.significance for r in board.rows if r.significance is not None]
    if sigs and all(s.method == LEGACY_METHOD for s in sigs):
        return (f"<em>vs best baseline</em>: per-user paired Wilcoxon test against <b>{html.escape(str(board.reference))}</b>, "
                "Holm-corrected; ▲/▼ significant at α = 0.05 (a board written before the seed-level test; "
                "rebuild it with <code>m6bench leaderboard build</code>).")
    return _inline(method_note(board.reference, board.budget, any(r.capped for r in board.rows)))


def _replaced(board: Leaderboard) -> str:
    """The rows whose earlier records a newer configuration replaced (m6rec_bench.leaderboard.board)."""
    notes = [n for n in board.superseded if isinstance(n, dict)]
    if not notes:
        return ""
    items = "; ".join(f"<b>{html.escape(str(n.get('label')))}</b> (seeds {html.escape(', '.join(map(str, n.get('seeds', []))))}; "
                      f"cells {html.escape(', '.join(map(str, n.get('cell_ids', []))))}; replaced {html.escape(str(n.get('replaced_at')))})"
                      for n in notes)
    return (f"<p id='replaced'><em>Replaced rows</em>: a run of another configuration (settings, epochs, overrides or "
            f"code version) replaces a row's earlier records; replaced here: {items}.</p>")


def _name(board: Leaderboard) -> str:
    return title(board.protocol, board.variant, partial=board.partial, budget=board.budget)


def build_site(root: Path) -> list[Path]:
    """Render every ``<root>/<dataset>/<board>/leaderboard.json`` and the index; return the pages."""
    root = Path(root)
    boards = sorted(root.glob("*/*/leaderboard.json"))
    pages = []
    items = []
    for path in boards:
        board = load_board(path)
        page = path.parent / PAGE
        atomic_write_text(page, board_page(board))
        pages.append(page)
        ok = _ok_rows(board)
        top = ", ".join(f"{r.label} {r.test['ndcg@10'].mean:.4f}" for r in ok[:3] if "ndcg@10" in r.test)
        rel = page.relative_to(root).as_posix()
        items.append(f"<li><a href='{html.escape(rel)}'>{html.escape(board.dataset)} / {html.escape(_name(board))}</a>"
                     f" — {len(board.rows)} rows; top NDCG@10: {html.escape(top)}</li>")
    # other published roots below this one (e.g. compression/, components/: `m6bench publish --out` each)
    others = sorted(p.parent.name for p in root.glob("*/index.html"))
    more = ("<h2>Other leaderboard roots</h2><ul id='roots'>"
            + "".join(f"<li><a href='{html.escape(n)}/index.html'>{html.escape(n)}</a></li>" for n in others)
            + "</ul>") if others else ""
    index = root / "index.html"
    atomic_write_text(index, _page("m6rec-bench leaderboards",
                                   "<h1>m6rec-bench leaderboards</h1><ul id='boards'>" + "".join(items) + "</ul>" + more +
                                   "<p>Generated by <code>m6bench publish</code> from the committed leaderboard files.</p>"))
    return [index, *pages]
