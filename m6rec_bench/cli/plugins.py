"""``m6bench plugins``: what the ``m6rec_bench.plugins`` entry points provide, broken ones included."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from m6rec_bench.cli.common import friendly_errors
from m6rec_bench.cli.help import Group
from m6rec_bench.cli.tables import Col, Format, FormatOption, WideOption, render

app = typer.Typer(
    help="Inspect plugins found through the 'm6rec_bench.plugins' entry points "
    "(set M6BENCH_PLUGINS=a,b to load only some).",
    no_args_is_help=True,
    cls=Group,
)

COLUMNS = (
    Col("name"), Col("status", priority=1), Col("family", priority=3), Col("needs", priority=5),
    Col("package", priority=4), Col("version", priority=6), Col("description", priority=2, flex=True),
)


@app.command("list")
@friendly_errors
def list_plugins(
    check: Annotated[bool, typer.Option("--check", help="Import every plugin to check that it loads (seconds).")] = False,
    fmt: FormatOption = Format.table,
    wide: WideOption = False,
) -> None:
    """Show each plugin's name, status, family, needs, package and version; broken ones with their error.

    Status: ok (imported), broken (failed to import; the error is its description), or listed
    (described by its package's card, not imported: --check imports it).
    """
    from m6rec_bench.models import registry  # pydantic: only when listing

    broken = registry.broken_plugins() if check else registry.known_broken_plugins()
    failed = {b.name for b in broken}
    rows: list[dict[str, object]] = [
        {"name": m.name, "status": "ok" if registry.is_loaded(m) else "listed", "family": m.family,
         "needs": ", ".join(sorted(m.needs)), "package": m.package, "version": m.version, "description": m.description}
        for m in registry.all_models() if m.source is not None and m.source.ep.name not in failed
    ]
    rows += [{"name": b.name, "status": Text("broken", style="red"), "family": "?", "needs": "?",
              "package": b.package, "version": b.version, "description": b.error} for b in broken]
    render(COLUMNS, rows, title="plugins", fmt=fmt, wide=wide)
