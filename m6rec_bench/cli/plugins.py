"""``m6bench plugins``: what the ``m6rec_bench.plugins`` entry points provide, broken ones included."""

from __future__ import annotations

import typer
from rich.table import Table

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.models import registry

app = typer.Typer(
    help="Inspect plugins found through the 'm6rec_bench.plugins' entry points "
    f"(set {registry.ALLOW_ENV}=a,b to load only some).",
    no_args_is_help=True,
)


@app.command("list")
@friendly_errors
def list_plugins() -> None:
    """Show each plugin's name, family, needs, package and version; broken plugins with their error."""
    table = Table(title="plugins")
    for col in ("name", "family", "needs", "package", "version", "status", "description"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for m in registry.all_models():
        if m.kind == "plugin":
            table.add_row(m.name, m.family, ", ".join(sorted(m.needs)), m.package, m.version, "ok", m.description)
    for b in registry.broken_plugins():
        table.add_row(b.name, "?", "?", b.package, b.version, "[red]broken[/red]", b.error)
    console.print(table)
