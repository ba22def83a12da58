"""``m6bench models``: every runnable model — RecBole baselines and loaded plugins."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.models import registry

app = typer.Typer(help="List the models m6bench can run: RecBole baselines and plugins.", no_args_is_help=True)


@app.command("list")
@friendly_errors
def list_models(
    kind: Annotated[str | None, typer.Option(help="Show only 'baseline' or 'plugin' models.")] = None,
) -> None:
    """List models with their kind, family, needed dataset features and source package."""
    default = set(registry.default_suite())
    table = Table(title="models")
    for col in ("name", "kind", "family", "needs", "package", "version", "default suite", "description"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for m in registry.all_models():
        if kind and m.kind != kind:
            continue
        table.add_row(m.name, m.kind, m.family, ", ".join(sorted(m.needs)), m.package, m.version,
                      "yes" if m.name in default else "", m.description)
    console.print(table)
