"""``m6bench leaderboard``: show a written leaderboard, or rebuild leaderboards from records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from m6rec_bench.cli.common import console, friendly_errors, warn_skipped
from m6rec_bench.errors import UsageError
from m6rec_bench.leaderboard import aggregate, write
from m6rec_bench.leaderboard.aggregate import board_slug
from m6rec_bench.leaderboard.writers import board_dir, metric_label, title
from m6rec_bench.names import check_slug
from m6rec_bench.results.store import RecordStore

app = typer.Typer(help="Show or rebuild leaderboards.", no_args_is_help=True)


def _canonical(dataset: str) -> str:
    try:
        from m6rec_bench.datasets.registry import get_spec

        return get_spec(dataset).name
    except Exception:  # noqa: BLE001 - a path or unregistered name is shown as given
        return Path(dataset).name if "/" in dataset else dataset


@app.command("show")
@friendly_errors
def show(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or alias (movielens → ml-100k).")] = "ml-100k",
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="Protocol of the leaderboard.")] = "default",
    out: Annotated[Path, typer.Option("--dir", help="Leaderboard root directory.")] = Path("leaderboards"),
    tuned: Annotated[bool, typer.Option("--tuned", help="Show the board of tuned runs (m6bench run --tune-budget N), kept apart from untuned rows.")] = False,
) -> None:
    """Print a leaderboard written by ``m6bench run``."""
    name = check_slug(_canonical(dataset), "--dataset", hint="give a dataset name (m6bench datasets list)")
    check_slug(protocol, "--protocol", hint="give a protocol name such as default")
    path = board_dir(out, name, board_slug(protocol, "tuned" if tuned else "")) / "leaderboard.json"
    if not path.exists():
        hint = " --tune-budget N" if tuned else ""
        raise UsageError(f"no leaderboard at {path}; run: m6bench run --dataset {dataset} --protocol {protocol}{hint}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UsageError(f"{path} is not a readable leaderboard — rebuild it: m6bench leaderboard build --out {out}")
    table = Table(title=f"{data['dataset']} / {title(data['protocol'], data.get('variant', ''))}  (mean ± std over seeds)")
    metrics = ["ndcg@10", "recall@10", "mrr@10", "hit@10"]
    groups = sorted({g for row in data["rows"] for g in row.get("groups", {})})
    for col in ["#", "model", "seeds", *[metric_label(m) for m in metrics], *[f"{g} NDCG@10" for g in groups], "train s", "status"]:
        table.add_column(col, overflow="fold")

    def fmt(stat: dict | None) -> str:
        if not stat:
            return "—"
        return f"{stat['mean']:.4f} ± {stat['std']:.4f}" if stat["n"] > 1 else f"{stat['mean']:.4f}"

    for i, row in enumerate(data["rows"], 1):
        train = row["cost"].get("train_time_s")
        table.add_row(str(i), row["label"], str(len(row["seeds"])), *[fmt(row["test"].get(m)) for m in metrics],
                      *[fmt(row["groups"].get(g, {}).get("ndcg@10")) for g in groups],
                      f"{train['mean']:.1f}" if train else "—", row["status"])
    console.print(table)


@app.command("build")
@friendly_errors
def build(
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Directory of records written by m6bench run.")] = Path("runs"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Leaderboard root directory.")] = Path("leaderboards"),
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Only this protocol.")] = None,
) -> None:
    """Rebuild leaderboards from every record under --runs-dir (newest record per row and seed)."""
    records = list(RecordStore(runs_dir).records(_canonical(dataset) if dataset else None, protocol, on_skip=warn_skipped))
    if not records:
        raise UsageError(f"no records under {runs_dir}; run m6bench run first")
    for board in aggregate(records):
        paths = write(board, out, records)
        console.print(f"leaderboard {board.dataset}/{board.slug}: {paths['md']}")
