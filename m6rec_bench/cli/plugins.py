"""``m6bench plugins``: what the ``m6rec_bench.plugins`` entry points provide, broken ones included."""

from __future__ import annotations

import typer
from rich.text import Text

from m6rec_bench.cli.common import friendly_errors
from m6rec_bench.cli.help import Group
from m6rec_bench.cli.tables import Col, Format, FormatOption, WideOption, render
from m6rec_bench.models import registry

app = typer.Typer(
    help="Inspect plugins found through the 'm6rec_bench.plugins' entry points "
    f"(set {registry.ALLOW_ENV}=a,b to load only some).",
    no_args_is_help=True,
    cls=Group,
)

COLUMNS = (
    Col("name"), Col("status", priority=1), Col("family", priority=3), Col("needs", priority=5),
    Col("package", priority=4), Col("version", priority=6), Col("description", priority=2, flex=True),
)


@app.command("list")
@friendly_errors
def list_plugins(fmt: FormatOption = Format.table, wide: WideOption = False) -> None:
    """Show each plugin's name, status, family, needs, package and version; broken ones with their error.

    Imports every plugin to check that it loads (seconds: PyKEEN, PyG, sentence-transformers);
    m6bench models list describes them without importing.
    """
    broken = registry.broken_plugins()  # loads every plugin
    rows: list[dict[str, object]] = [
        {"name": m.name, "status": "ok", "family": m.family, "needs": ", ".join(sorted(m.needs)),
         "package": m.package, "version": m.version, "description": m.description}
        for m in registry.all_models() if m.kind == "plugin" and m.source and m.source.ep.name not in {b.name for b in broken}
    ]
    rows += [{"name": b.name, "status": Text("broken", style="red"), "family": "?", "needs": "?",
              "package": b.package, "version": b.version, "description": b.error} for b in broken]
    render(COLUMNS, rows, title="plugins", fmt=fmt, wide=wide)
