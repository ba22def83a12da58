"""``m6bench models``: every runnable model — RecBole baselines and plugins (described, not loaded)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from m6rec_bench.cli.common import err_console, friendly_errors
from m6rec_bench.cli.help import Group
from m6rec_bench.cli.tables import Col, Format, FormatOption, WideOption, render
from m6rec_bench.errors import UsageError

app = typer.Typer(help="List the models m6bench can run: RecBole baselines and plugins.", no_args_is_help=True, cls=Group)

#: Columns in the order shown; at 80 columns name, kind, family and a cut description fit.
COLUMNS = (
    Col("name"), Col("kind", priority=2), Col("family", priority=3), Col("needs", priority=5),
    Col("protocols", priority=6), Col("default_suite", "default suite", priority=4), Col("package", priority=7),
    Col("version", priority=8), Col("description", priority=1, flex=True),
)


@app.command("list")
@friendly_errors
def list_models(
    kind: Annotated[str | None, typer.Option(help="Show only 'baseline' or 'plugin' models.")] = None,
    fmt: FormatOption = Format.table,
    wide: WideOption = False,
) -> None:
    """List models: kind, family, needed dataset features, protocols, default suites, package.

    Protocols are those a model runs under (sequential models only under sequential); default
    suite names the protocols whose default suite includes it. Plugins are listed from their
    cards, without importing them (m6bench plugins list imports and checks them).
    """
    if kind not in (None, "baseline", "plugin"):
        raise UsageError(f"--kind takes 'baseline' or 'plugin', got '{kind}'")
    from m6rec_bench.models import registry
    from m6rec_bench.protocols import PROTOCOLS, protocols_for  # numpy: only when listing

    defaults = {p: set(registry.default_suite(p, loadable_only=False)) for p in PROTOCOLS}
    rows = [
        {"name": m.name, "kind": m.kind, "family": m.family, "needs": ", ".join(sorted(m.needs)),
         "protocols": ", ".join(m.protocols or protocols_for(m.model_type)),
         "default_suite": ", ".join(p for p, names in defaults.items() if m.name in names),
         "package": m.package, "version": m.version, "description": m.description}
        for m in registry.all_models()
        if kind is None or m.kind == kind
    ]
    render(COLUMNS, rows, title="models", fmt=fmt, wide=wide)
    broken = registry.known_broken_plugins()
    if broken and kind != "baseline":
        names = ", ".join(f"{b.name} ({b.error})" for b in broken)
        err_console.print(f"[yellow]not listed, failed to load:[/yellow] {escape(names)} (m6bench plugins list)",
                          highlight=False, soft_wrap=True)
