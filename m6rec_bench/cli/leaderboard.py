"""``m6bench leaderboard``: show a written leaderboard, rebuild leaderboards from records, prune rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from m6rec_bench.cli.common import LegacyDirOption, OutOption, console, friendly_errors, leaderboard_root, warn_skipped
from m6rec_bench.cli.help import Group
from m6rec_bench.cli.tables import Col, Format, FormatOption, WideOption, render
from m6rec_bench.errors import UsageError
from m6rec_bench.names import check_slug

app = typer.Typer(help="Show, rebuild or prune leaderboards.", no_args_is_help=True, cls=Group)


def _canonical(dataset: str) -> str:
    try:
        from m6rec_bench.datasets.registry import get_spec

        return get_spec(dataset).name
    except Exception:  # noqa: BLE001 - a path or unregistered name is shown as given
        return Path(dataset).name if "/" in dataset else dataset


#: The metrics ``show`` prints, best-known first; group metrics (cold / warm…) follow them.
SHOW_METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10")


def board_columns(groups: list[str]) -> list[Col]:
    """``show``'s columns: at 80 columns rank, model, NDCG@10 and the paired test fit first."""
    from m6rec_bench.leaderboard.text import metric_label

    cols = [Col("rank", "#", justify="right"), Col("model"), Col(SHOW_METRICS[0], metric_label(SHOW_METRICS[0]), priority=1)]
    cols += [Col(f"{g} ndcg@10", f"{g} NDCG@10", priority=3) for g in groups]
    cols.append(Col("vs_baseline", "vs best baseline", priority=2))
    cols += [Col(m, metric_label(m), priority=5 + i) for i, m in enumerate(SHOW_METRICS[1:])]
    cols += [Col("seeds", priority=4, justify="right"), Col("train_s", "train s", priority=9, justify="right"),
             Col("status", priority=4, flex=True)]
    return cols


@app.command("show")
@friendly_errors
def show(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or alias (default ml-100k).")] = "ml-100k",
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="Protocol of the leaderboard (default: default).")] = "default",
    out: OutOption = None,
    legacy_dir: LegacyDirOption = None,
    tuned: Annotated[bool, typer.Option("--tuned", help="Show the board of tuned runs (run --tune-budget N).")] = False,
    fmt: FormatOption = Format.table,
    wide: WideOption = False,
) -> None:
    """Print a leaderboard written by m6bench run: mean ± std over seeds, and the seed-paired
    t-test (Holm-corrected) against the baseline best on validation."""
    from m6rec_bench.leaderboard.aggregate import Leaderboard, board_slug
    from m6rec_bench.leaderboard.readme import fmt_stat, versus_cell
    from m6rec_bench.leaderboard.text import title, train_seconds
    from m6rec_bench.leaderboard.writers import board_dir
    from m6rec_bench.untrusted import loads_json

    out = leaderboard_root(out, legacy_dir)
    name = check_slug(_canonical(dataset), "--dataset", hint="give a dataset name (m6bench datasets list)")
    check_slug(protocol, "--protocol", hint="give a protocol name such as default")
    path = board_dir(out, name, board_slug(protocol, "tuned" if tuned else "")) / "leaderboard.json"
    if not path.exists():
        hint = " --tune-budget N" if tuned else ""
        raise UsageError(f"no leaderboard at {path}; run: m6bench run --dataset {dataset} --protocol {protocol}{hint}")
    try:  # UntrustedInputError is a ValueError: damaged, binary, nested too deep; so is a board of another shape
        board = Leaderboard.from_dict(loads_json(path.read_bytes()))
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a readable leaderboard — rebuild it: m6bench leaderboard build --out {out}") from None
    groups = sorted({g for row in board.rows for g in row.groups})
    rows = []
    for i, row in enumerate(board.rows, 1):
        train = train_seconds(row)  # set-up + training
        rows.append({
            "rank": str(i) if row.status.startswith("ok") else "", "model": row.label,
            **{m: fmt_stat(row.test.get(m)) for m in SHOW_METRICS},
            **{f"{g} ndcg@10": fmt_stat(row.groups.get(g, {}).get("ndcg@10")) for g in groups},
            "vs_baseline": versus_cell(row, compact=fmt is Format.table and not wide), "seeds": str(len(row.seeds)),
            "train_s": f"{train.mean:.1f}" if train else "—",
            "status": row.status + (f": {row.reason}" if row.reason else ""),
        })
    name = title(board.protocol, board.variant, partial=board.partial, budget=board.budget)
    heading = f"{board.dataset} / {name}: mean ± std over seeds"
    render(board_columns(groups), rows, title=heading, fmt=fmt, wide=wide)


@app.command("build")
@friendly_errors
def build(
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Directory of records written by m6bench run, or a published board's records/ folder (<cell_id>.json with their .per_user.npz).")] = Path("runs"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Leaderboard root (default ./leaderboards); boards there are merged into, never emptied.")] = Path("leaderboards"),
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Only this protocol.")] = None,
) -> None:
    """Rebuild leaderboards from every record under --runs-dir (newest record per row and seed).

    A board folder that already holds a board keeps its other rows: the records are merged into it
    (m6bench leaderboard prune removes rows). From a published board's records/ folder alone, the
    board's every p-value and interval is recomputed.
    """
    from m6rec_bench.leaderboard import aggregate, write
    from m6rec_bench.leaderboard.board import published_records
    from m6rec_bench.results.store import RecordStore

    name = _canonical(dataset) if dataset else None
    records = list(RecordStore(runs_dir).records(name, protocol, on_skip=warn_skipped))
    if not records:  # a published board's records/ folder: <cell_id>.json (+ .per_user.npz), flat
        records = [r for r in published_records(runs_dir)
                   if (name is None or r.dataset == name) and (protocol is None or r.protocol == protocol)]
    if not records:
        raise UsageError(f"no records under {runs_dir}; run m6bench run first")
    for board in aggregate(records):
        paths = write(board, out, records)
        console.print(f"leaderboard {board.dataset}/{board.slug}: {paths['md']}", markup=False, highlight=False)


#: One line per paragraph: Typer keeps a docstring's line breaks, so --help would wrap it twice.
_PRUNE_HELP = "\n\n".join([
    "Remove rows (or some seeds of rows) from a board and rewrite it from the records left.",
    "A board only grows when m6bench run or leaderboard build write into it: this is the one way a row leaves it. "
    "The selection must be explicit: at least one of --label, --model, --seed, --cell-id. A record goes when it "
    "matches every option given (any value of a repeated one): --label BPR --seed 2021 removes BPR's seed 2021 "
    "only. The removed records' records/<cell_id>.json go too.",
    "Nothing is asked (safe in CI); --dry-run lists what would go and changes nothing. The seed-level tests of the "
    "rows left are recomputed from their records (against a new reference if the reference row is pruned), Holm over "
    "the rows left. Run m6bench publish afterwards to refresh the HTML pages.",
])


@app.command("prune", help=_PRUNE_HELP)
@friendly_errors
def prune(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset of the board (name or alias: movielens → ml-100k).")],
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="Protocol of the board.")],
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="Remove the row with this label, e.g. 'M6-Fusion w/o KG' or 'BPR \\[int8]' (repeat for several).")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Remove every row of this model: its plain row and its variants (ablations, compressed, re-ranked). Repeat for several.")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", "-s", help="Remove only this seed's records (repeat for several); the row keeps its other seeds.")] = None,
    cell_id: Annotated[list[str] | None, typer.Option("--cell-id", help="Remove the record of this cell (the name of its records/<cell_id>.json). Repeat for several.")] = None,
    out: OutOption = None,
    legacy_dir: LegacyDirOption = None,
    tuned: Annotated[bool, typer.Option("--tuned", help="Prune the board of tuned runs (<dataset>/<protocol>-tuned).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed; change nothing.")] = False,
) -> None:
    """Remove rows (or some seeds of rows) from a board and rewrite it from the records left (see _PRUNE_HELP)."""
    from m6rec_bench.leaderboard.board import Selection, row_label
    from m6rec_bench.leaderboard.board import prune as prune_board

    out = leaderboard_root(out, legacy_dir)
    select = Selection(labels=label or [], models=model or [], seeds=seed or [], cell_ids=cell_id or [])
    if not select:
        raise UsageError("say which rows to prune: --label, --model, --seed and/or --cell-id "
                         "(m6bench leaderboard show lists the rows)")
    name = _canonical(dataset)
    result = prune_board(out, name, protocol, "tuned" if tuned else "", select, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    by_row: dict[str, list[str]] = {}
    for rec in sorted(result.removed, key=lambda r: (row_label(r), r.seed)):
        by_row.setdefault(row_label(rec), []).append(f"seed {rec.seed} ({rec.cell_id})")
    for row, seeds in by_row.items():
        console.print(f"{verb} {row}: {', '.join(seeds)}", highlight=False, markup=False)
    left = [row.label for row in result.board.rows] if result.board else []
    where = result.directory
    if dry_run:
        console.print(f"dry run: {where} unchanged; {len(left)} rows would remain", highlight=False, markup=False)
    elif left:
        console.print(f"rewrote {where}: {len(left)} rows left ({', '.join(left)}); "
                      "run m6bench publish to refresh the HTML", highlight=False, markup=False)
    else:
        console.print(f"removed every row: the board files under {where} are gone", highlight=False, markup=False)
