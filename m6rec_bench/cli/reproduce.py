"""``m6bench reproduce``: rerun the cell of a published record and report the difference."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.errors import UsageError


@friendly_errors
def reproduce(
    record: Annotated[Path, typer.Argument(help="A record JSON (e.g. leaderboards/ml-100k/default/records/<cell_id>.json).")],
    tolerance: Annotated[float, typer.Option(help="Largest absolute metric difference reported as a match (default 0.001).")] = 1e-3,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Your copy of the dataset (a folder or a registered name) — needed when the record ran on a local folder, which a published record names <dir>/<name>.")] = None,
) -> None:
    """Rerun the (dataset, protocol, model, config, seed) cell a record describes and compare its test metrics."""
    from m6rec_bench.resolve import check_record_spec
    from m6rec_bench.engine.cell import run_cell
    from m6rec_bench.results.portable import PLACEHOLDER
    from m6rec_bench.results.store import RecordStore, read_record

    published = read_record(record)  # unreadable, or names that would lead outside the runs folder: one line
    if not published.spec:
        raise UsageError(f"{record} has no cell spec to rerun (written by an older m6rec-bench)")
    if published.status != "ok":
        raise UsageError(f"{record} is a {published.status} cell ({published.reason}); nothing to reproduce")
    if dataset is not None:
        published = published.model_copy(update={"spec": {**published.spec, "dataset": dataset}})
    elif str(published.spec.get("dataset", "")).startswith(PLACEHOLDER):  # published: the folder of another machine
        raise UsageError(f"{record} ran on a local dataset folder ({published.spec['dataset']}) — give your copy: "
                         f"m6bench reproduce {record} --dataset <folder> (checksum {published.dataset_checksum})")
    spec = check_record_spec(published, record)  # a downloaded record's overrides pass the allow-list, before anything runs
    console.print(f"rerunning {spec.row} seed {spec.seed} on {spec.dataset}/{spec.protocol} …", markup=False, highlight=False)
    with tempfile.TemporaryDirectory(prefix="m6bench-reproduce-") as tmp:
        rerun = run_cell(spec, store=RecordStore(tmp), resume=False)
    if rerun.status != "ok":
        raise UsageError(f"the rerun {rerun.status}: {rerun.reason}")
    if rerun.dataset_checksum != published.dataset_checksum:
        console.print(f"[yellow]dataset checksum differs[/yellow]: {escape(f'published {published.dataset_checksum}, now {rerun.dataset_checksum}')}")
    table = Table(title=escape(f"{spec.row} seed {spec.seed}: published vs rerun (test)"))
    for col in ("metric", "published", "rerun", "difference"):
        table.add_column(col)
    worst = 0.0
    for name in sorted(published.test):
        a, b = published.test[name], rerun.test.get(name, float("nan"))
        worst = max(worst, abs(a - b))
        table.add_row(escape(name), f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
    console.print(table)
    console.print(f"train time: published {published.train_time_s:.1f}s, rerun {rerun.train_time_s:.1f}s")
    verdict = "[green]reproduced[/green]" if worst <= tolerance else "[yellow]differs[/yellow]"
    console.print(f"{verdict}: largest difference {worst:.4g} (tolerance {tolerance})")
    if worst > tolerance:
        raise typer.Exit(1)
