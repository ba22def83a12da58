"""``m6bench models``: every runnable model — RecBole baselines and loaded plugins."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from m6rec_bench.cli.common import console, err_console, friendly_errors
from m6rec_bench.models import registry
from m6rec_bench.protocols import PROTOCOLS, protocols_for

app = typer.Typer(help="List the models m6bench can run: RecBole baselines and plugins.", no_args_is_help=True)


@app.command("list")
@friendly_errors
def list_models(
    kind: Annotated[str | None, typer.Option(help="Show only 'baseline' or 'plugin' models.")] = None,
) -> None:
    """List models with their kind, family, needed dataset features, protocols and source package.

    ``protocols`` are the protocols a model runs under (sequential models only under
    ``sequential``); ``default suite`` names the protocols whose default suite includes it.
    """
    defaults = {p: set(registry.default_suite(p)) for p in PROTOCOLS}
    table = Table(title="models")
    for col in ("name", "kind", "family", "needs", "protocols", "package", "version", "default suite", "description"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for m in registry.all_models():
        if kind and m.kind != kind:
            continue
        in_default = [p for p, names in defaults.items() if m.name in names]
        table.add_row(m.name, m.kind, m.family, ", ".join(sorted(m.needs)), ", ".join(protocols_for(m.model_type)),
                      m.package, m.version, ", ".join(in_default), m.description)
    console.print(table)
    broken = registry.broken_plugins()
    if broken and kind != "baseline":
        names = ", ".join(f"{b.name} ({b.error})" for b in broken)
        err_console.print(f"[yellow]not listed, failed to load:[/yellow] {escape(names)} (m6bench plugins list)",
                          highlight=False, soft_wrap=True)
